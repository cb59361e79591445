"""Scrub: hash stored blobs again and find any whose bytes do not have the digest they are kept
under (``portside fsck --verify-digests``, and the optional background loop of ``serve``).

A push keeps a blob that is already stored (its key is its digest, so its bytes should never
change), which is why a blob once stored with the wrong bytes would be served forever, and every
later push of the genuine content would keep the wrong bytes. The scrub finds such blobs:
layers, configs and manifests alike, since they share the key space.

What it reads:

- without a repository, every key under ``blobs/`` in storage, referenced or not: an orphan
  with wrong bytes is as harmful, since the next push of its digest would keep it;
- with a repository, the blobs it links and the manifests it holds, from the database. A digest
  there whose bytes are missing is reported as missing.

Each blob is streamed through the hasher from the driver's reader (memory is bounded by a chunk
per worker); ``workers`` blobs are hashed at a time, each in a thread of the scrub's own pool.

Repair (``repair=True``) quarantines a mismatched blob:

1. its bytes move from the blob key to ``layout.quarantine_path`` (kept for inspection);
2. in one transaction, every repository's link to the digest and its ``blobs`` row go (the
   project quotas stop counting it), and so does a cached layer analysis of the wrong bytes;
3. an audit entry (operation ``quarantine``) records it.

Then nothing claims the digest any more: a blob HEAD or GET answers 404 ``BLOB_UNKNOWN``, a
cross-repository mount of it falls back to an upload, and the next push of the genuine content
(monolithic, chunked, or a manifest PUT) finds its key empty and stores it. Manifest rows (and
their tags) stay: their GET answers 404 ``MANIFEST_UNKNOWN`` until the manifest is pushed again.
Bytes move first: if the process dies before the transaction, the rows point at missing
content, which a scrub of the repository reports as missing and, with repair, unlinks. A push of
the genuine content racing the repair may lose its link (it is pushed once more); it can never
keep the wrong bytes, which are gone from the key before the rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog
from sqlalchemy import Connection, delete, select, union, update

from portside.audit.log import AuditLog
from portside.config import ScrubSettings
from portside.db.engine import Database
from portside.db.queries import insert_ignore, now
from portside.db.tables import (
    blobs,
    layer_analyses,
    manifests,
    repositories,
    repository_blobs,
    schedules,
)
from portside.oci.digest import Digest, new_hasher
from portside.projects.quotas import release_unreferenced
from portside.storage.base import PathNotFound, StorageDriver, StorageError
from portside.storage.layout import (
    BLOBS_PREFIX,
    blob_path,
    digest_of_blob_path,
    quarantine_path,
)

__all__ = [
    "Mismatch",
    "ScrubReport",
    "Scrubber",
    "UnknownRepository",
    "scrub_loop",
    "take_turn",
]

log = structlog.get_logger("portside.scrub")

SCRUBBER = "system"  # the audit log's user for repairs of the background loop
SCHEDULE = "scrub"  # its row in ``schedules``: when the last background pass started
_POLL_SECONDS = 300.0  # how often each replica looks whether a background pass is due


class UnknownRepository(LookupError):
    """The repository to scrub does not exist."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A blob whose bytes do not have its digest: what they hash to, their size, and who links
    or holds it. ``quarantined_to`` is the key the bytes went to, when repaired."""

    digest: Digest
    actual: Digest
    size: int
    repositories: tuple[str, ...]
    quarantined_to: str | None = None


@dataclass(slots=True)
class ScrubReport:
    checked: int = 0
    bytes: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    # Digests the database names (with a repository given) whose bytes are not stored.
    missing: list[Digest] = field(default_factory=list)
    # Keys that could not be read, and why.
    failures: list[tuple[str, str]] = field(default_factory=list)
    repaired: bool = False

    @property
    def clean(self) -> bool:
        return not (self.mismatches or self.missing or self.failures)

    @property
    def left_broken(self) -> bool:
        """Something found is still in place: a mismatch or missing bytes not repaired, or a
        blob that could not be read at all."""
        return bool(self.failures) or (not self.repaired and not self.clean)


def _lower_priority() -> None:
    """Thread initializer: lowest CPU priority for this thread only (Linux takes a thread id
    for ``PRIO_PROCESS``), so hashing yields to the threads that serve requests."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _repository_digests(connection: Connection, repository: str) -> list[str]:
    repository_id = connection.scalar(
        select(repositories.c.id).where(repositories.c.name == repository)
    )
    if repository_id is None:
        raise UnknownRepository(repository)
    linked = select(repository_blobs.c.digest).where(
        repository_blobs.c.repository_id == repository_id
    )
    held = select(manifests.c.digest).where(manifests.c.repository_id == repository_id)
    return sorted(connection.scalars(union(linked, held)))


def _users_of(connection: Connection, digest: str) -> tuple[str, ...]:
    """Names of the repositories that link ``digest`` or hold it as a manifest."""
    linked = (
        select(repositories.c.name)
        .join(repository_blobs, repository_blobs.c.repository_id == repositories.c.id)
        .where(repository_blobs.c.digest == digest)
    )
    held = (
        select(repositories.c.name)
        .join(manifests, manifests.c.repository_id == repositories.c.id)
        .where(manifests.c.digest == digest)
    )
    return tuple(sorted(connection.scalars(union(linked, held))))


def _forget_blobs(connection: Connection, digests: list[str]) -> None:
    """Drop every claim that ``digests`` are stored: links, ``blobs`` rows, their quota counts
    and layer analyses made of wrong bytes. Manifest rows stay (see the module docstring)."""
    linked_projects = (
        select(repositories.c.project_id)
        .join(repository_blobs, repository_blobs.c.repository_id == repositories.c.id)
        .where(repository_blobs.c.digest.in_(digests))
        .distinct()
    )
    project_ids = list(connection.scalars(linked_projects))
    connection.execute(delete(repository_blobs).where(repository_blobs.c.digest.in_(digests)))
    for project_id in project_ids:
        release_unreferenced(connection, project_id, digests)
    connection.execute(delete(blobs).where(blobs.c.digest.in_(digests)))
    connection.execute(delete(layer_analyses).where(layer_analyses.c.digest.in_(digests)))


class Scrubber:
    def __init__(
        self, db: Database, storage: StorageDriver, audit: AuditLog, username: str = SCRUBBER
    ) -> None:
        self._db = db
        self._storage = storage
        self._audit = audit
        self._username = username

    async def run(
        self,
        repository: str | None = None,
        *,
        workers: int = 4,
        repair: bool = False,
        low_priority: bool = False,
        on_mismatch: Callable[[Mismatch], None] | None = None,
    ) -> ScrubReport:
        """Hash every blob (or those of ``repository``), ``workers`` at a time. Raises
        :class:`UnknownRepository`. ``on_mismatch`` is called as each mismatch is found."""
        if workers < 1:
            raise ValueError("workers must be at least 1")
        report = ScrubReport(repaired=repair)
        if repository is None:
            digests: AsyncIterator[Digest] = self._stored_digests()
        else:
            names = await self._db.read(lambda c: _repository_digests(c, repository))
            digests = _each(Digest.parse(name) for name in names)
        queue: asyncio.Queue[Digest | None] = asyncio.Queue(maxsize=workers * 2)
        executor = ThreadPoolExecutor(
            workers,
            thread_name_prefix="portside-scrub",
            initializer=_lower_priority if low_priority else None,
        )

        async def worker() -> None:
            while (digest := await queue.get()) is not None:
                try:
                    found = await self._check(digest, executor, report, bool(repository))
                    if found is not None and repair:
                        found = await self._quarantine(found)
                except Exception as exc:  # a database hiccup: report it, go on with the rest
                    log.exception("cannot scrub blob", digest=str(digest))
                    report.failures.append((blob_path(digest), str(exc) or type(exc).__name__))
                    continue
                if found is not None:
                    report.mismatches.append(found)
                    if on_mismatch is not None:
                        on_mismatch(found)

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        try:
            async for digest in digests:
                await queue.put(digest)
            for _ in tasks:
                await queue.put(None)
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            executor.shutdown(wait=False, cancel_futures=True)
        if repair and report.missing:
            missing = [str(digest) for digest in report.missing]
            await self._db.write(lambda c: _forget_blobs(c, missing))
            for digest in report.missing:
                self._record(digest, "bytes missing from storage; links removed")
        log.info(
            "scrub finished",
            repository=repository,
            checked=report.checked,
            bytes=report.bytes,
            mismatches=len(report.mismatches),
            missing=len(report.missing),
            failures=len(report.failures),
            repaired=repair,
        )
        return report

    async def _stored_digests(self) -> AsyncIterator[Digest]:
        async for key in self._storage.list(BLOBS_PREFIX):
            digest = digest_of_blob_path(key)
            if digest is not None:
                yield digest

    async def _check(
        self,
        digest: Digest,
        executor: ThreadPoolExecutor,
        report: ScrubReport,
        by_database: bool,
    ) -> Mismatch | None:
        """Hash one blob; a :class:`Mismatch` when its bytes have another digest."""
        loop = asyncio.get_running_loop()
        hasher = new_hasher(digest.algorithm)
        size = 0
        key = blob_path(digest)
        try:
            async for chunk in self._storage.reader(key):
                await loop.run_in_executor(executor, hasher.update, chunk)
                size += len(chunk)
        except PathNotFound:
            # Listed a moment ago and gone now (deleted, or quarantined by another scrub): only
            # what the database says is stored is missing.
            if by_database:
                report.missing.append(digest)
                log.warning("blob bytes missing from storage", digest=str(digest))
            return None
        except StorageError as exc:
            report.failures.append((key, str(exc)))
            log.warning("cannot read blob to scrub it", digest=str(digest), error=str(exc))
            return None
        report.checked += 1
        report.bytes += size
        actual = Digest(digest.algorithm, hasher.hexdigest())
        if actual == digest:
            return None
        users = await self._db.read(lambda c: _users_of(c, str(digest)))
        log.error(
            "blob bytes do not match their digest",
            digest=str(digest),
            actual=str(actual),
            size=size,
            repositories=list(users),
        )
        return Mismatch(digest, actual, size, users)

    async def _quarantine(self, found: Mismatch) -> Mismatch:
        destination = quarantine_path(found.digest, now())
        try:
            await self._storage.move(blob_path(found.digest), destination)
        except PathNotFound:  # another scrub got there first; the rows are its job too
            return found
        await self._db.write(lambda c: _forget_blobs(c, [str(found.digest)]))
        self._record(
            found.digest,
            f"bytes hash to {found.actual} ({found.size} bytes); moved to {destination}; "
            f"unlinked from {', '.join(found.repositories) or 'no repository'}",
        )
        log.warning("quarantined blob", digest=str(found.digest), key=destination)
        return Mismatch(found.digest, found.actual, found.size, found.repositories, destination)

    def _record(self, digest: Digest, detail: str) -> None:
        self._audit.record(
            self._username, "quarantine", "blob", str(digest), "success", None, detail=detail
        )


async def _each(items: Iterable[Digest]) -> AsyncIterator[Digest]:
    for item in items:
        yield item


def _take_turn(connection: Connection, interval: dt.timedelta, at: dt.datetime) -> bool:
    """Whether this replica scrubs now: the last pass on any replica started ``interval`` ago or
    more (a compare-and-set on the schedule's row). The row's first write counts as a pass, so
    the first scrub runs an interval after the loop was first switched on."""
    insert_ignore(
        connection, schedules, name=SCHEDULE, type="Interval", last_run_at=at, updated_at=at
    )
    claimed = connection.execute(
        update(schedules)
        .where(schedules.c.name == SCHEDULE, schedules.c.last_run_at <= at - interval)
        .values(last_run_at=at, updated_at=at)
    )
    return bool(claimed.rowcount)


async def take_turn(db: Database, interval: dt.timedelta, at: dt.datetime | None = None) -> bool:
    """Claim the next background scrub for this replica, if it is due (see :func:`_take_turn`)."""
    stamp = (at or now()).astimezone(dt.UTC)  # SQLite compares stored UTC text
    return await db.write(lambda c: _take_turn(c, interval, stamp))


async def scrub_loop(
    db: Database, storage: StorageDriver, audit: AuditLog, settings: ScrubSettings
) -> None:
    """Background loop of the server (started only when ``interval_hours`` is set): every
    ``interval_hours``, one replica scrubs every blob, in threads of the lowest CPU priority.

    The time of the last pass is kept in the database (``schedules``), so restarts do not put
    the scrub off, and the replica that claims a due pass runs it (the others wait for the next
    one). A pass longer than the interval may overlap the next one on another replica: repairs
    are idempotent, so that only costs reads."""
    interval = dt.timedelta(hours=settings.interval_hours)
    scrubber = Scrubber(db, storage, audit)
    while True:
        await asyncio.sleep(min(interval.total_seconds(), _POLL_SECONDS))
        try:
            if await take_turn(db, interval):
                await scrubber.run(
                    workers=settings.workers, repair=settings.repair, low_priority=True
                )
        except Exception:
            log.exception("scrub failed; will retry at the next interval")
