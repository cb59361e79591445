"""Pull times and pull counts, recorded without a database write on the pull path.

A manifest GET only notes the pull in memory (two dictionary updates). A background loop
flushes what accumulated every few seconds in one transaction: per manifest the latest pull
time, per repository the number of pulls. A crash loses at most one interval of statistics,
never a pull.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import structlog
from sqlalchemy import Connection, bindparam, select, update

from portside.db.engine import Database
from portside.db.queries import now
from portside.db.tables import manifests, repositories

__all__ = ["PullRecorder"]

log = structlog.get_logger("portside.pulls")

_REPOSITORY_ID = (
    select(repositories.c.id).where(repositories.c.name == bindparam("repo_name")).scalar_subquery()
)
_SET_PULL_TIME = (
    update(manifests)
    .where(
        manifests.c.repository_id == _REPOSITORY_ID,
        manifests.c.digest == bindparam("manifest_digest"),
    )
    .values(pull_time=bindparam("stamp"))
)
_ADD_PULLS = (
    update(repositories)
    .where(repositories.c.name == bindparam("repo_name"))
    .values(pull_count=repositories.c.pull_count + bindparam("pulls"))
)


class PullRecorder:
    def __init__(self, db: Database, interval_seconds: float = 3.0) -> None:
        self._db = db
        self.interval = interval_seconds
        self._times: dict[tuple[str, str], dt.datetime] = {}
        self._counts: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def record(self, repository: str, digest: str) -> None:
        """Note one pull of ``digest`` from ``repository`` (called on every manifest GET)."""
        self._times[(repository, digest)] = now()
        self._counts[repository] = self._counts.get(repository, 0) + 1

    async def flush(self) -> None:
        """Write what accumulated since the last flush in one transaction."""
        if not self._times and not self._counts:
            return
        times, self._times = self._times, {}
        counts, self._counts = self._counts, {}
        time_rows = [
            {"repo_name": repo, "manifest_digest": digest, "stamp": stamp}
            for (repo, digest), stamp in times.items()
        ]
        count_rows = [{"repo_name": repo, "pulls": pulls} for repo, pulls in counts.items()]

        def write(connection: Connection) -> None:
            if time_rows:
                connection.execute(_SET_PULL_TIME, time_rows)
            if count_rows:
                connection.execute(_ADD_PULLS, count_rows)

        try:
            await self._db.write(write)
        except Exception:
            # Keep the statistics for the next attempt rather than losing them.
            for key, stamp in times.items():
                self._times[key] = max(stamp, self._times.get(key, stamp))
            for repo, pulls in counts.items():
                self._counts[repo] = self._counts.get(repo, 0) + pulls
            raise

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:
                log.exception("failed to record pull statistics; will retry")

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()
