"""CVE allowlists (Harbor's ``CVEAllowlist``): CVE ids that do not count towards a project's
"prevent vulnerable images" gate, with an optional expiry (unix seconds).

One system allowlist (project id 0) and one per project. A project uses the system list when
its metadata says ``reuse_sys_cve_allowlist: true``, otherwise its own. An expired list
allows nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select, update

from portside.db.engine import Database
from portside.db.queries import as_utc, now
from portside.db.tables import cve_allowlists
from portside.projects.projects import Project
from portside.registry.cache import LRUCache

__all__ = ["SYSTEM", "Allowlist", "Allowlists", "cve_problem"]

SYSTEM = 0
MAX_ITEMS = 10_000
# CVE ids as Harbor accepts them in practice: scanners also report GHSA-, PYSEC-, DLA- … ids,
# so allow any short id of letters, digits and - _ . : characters.
_CVE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def cve_problem(cve_id: str) -> str | None:
    if not _CVE_ID.fullmatch(cve_id):
        return f"invalid CVE id {cve_id[:64]!r}"
    return None


@dataclass(frozen=True)
class Allowlist:
    id: int
    project_id: int
    expires_at: int | None
    items: tuple[str, ...]
    created_at: dt.datetime | None
    updated_at: dt.datetime | None

    def active(self, at: float | None = None) -> frozenset[str]:
        if self.expires_at is not None and self.expires_at <= (at or time.time()):
            return frozenset()
        return frozenset(self.items)


def _allowlist(project_id: int, row: Any) -> Allowlist:
    if row is None:
        return Allowlist(0, project_id, None, (), None, None)
    return Allowlist(
        row.id,
        project_id,
        row.expires_at,
        tuple(json.loads(row.items)),
        as_utc(row.created_at),
        as_utc(row.updated_at),
    )


class Allowlists:
    def __init__(self, db: Database, cache_ttl: float) -> None:
        self._db = db
        self._cache: LRUCache[int, Allowlist] = LRUCache(10_000, cache_ttl)

    async def get(self, project_id: int) -> Allowlist:
        return (await self.get_many([project_id]))[project_id]

    async def get_many(self, project_ids: list[int]) -> dict[int, Allowlist]:
        """The allowlists of several projects in one query (project listings)."""
        found = {pid: cached for pid in project_ids if (cached := self._cache.get(pid))}
        missing = [pid for pid in project_ids if pid not in found]
        if missing:
            rows = await self._db.read(
                lambda c: c.execute(
                    select(cve_allowlists).where(cve_allowlists.c.project_id.in_(missing))
                ).all()
            )
            by_project = {row.project_id: row for row in rows}
            for pid in missing:
                row = by_project.get(pid)
                found[pid] = _allowlist(pid, row)
                self._cache.put(pid, found[pid])
        return found

    async def delete(self, project_id: int) -> None:
        await self._db.write(
            lambda c: c.execute(
                delete(cve_allowlists).where(cve_allowlists.c.project_id == project_id)
            )
        )
        self._cache.discard(project_id)

    async def put(self, project_id: int, items: list[str], expires_at: int | None) -> None:
        unique = list(dict.fromkeys(items))

        def store(connection: Connection) -> None:
            stamp = now()
            values = {"expires_at": expires_at, "items": json.dumps(unique), "updated_at": stamp}
            changed = connection.execute(
                update(cve_allowlists)
                .where(cve_allowlists.c.project_id == project_id)
                .values(**values)
            ).rowcount
            if not changed:
                connection.execute(
                    cve_allowlists.insert().values(
                        project_id=project_id, created_at=stamp, **values
                    )
                )

        await self._db.write(store)
        self._cache.discard(project_id)

    async def effective(self, project: Project) -> frozenset[str]:
        """The CVE ids the project's gate ignores right now."""
        if project.metadata.get("reuse_sys_cve_allowlist", "true") == "true":
            return (await self.get(SYSTEM)).active()
        return (await self.get(project.id)).active()
