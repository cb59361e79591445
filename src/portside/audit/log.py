"""Recording audit entries without slowing the request that causes them.

:meth:`AuditLog.record` only appends to an in-memory queue; a background task writes queued
entries in batches, so a pull costs no extra database round-trip. Identical pulls (same caller,
address, artifact and result) recorded between two writes become one entry whose detail gives
their number and the time of the last: a CI fleet pulling one image thousands of times a second
would otherwise write as many rows, and a repeat costs only a counter. Even the project an entry
belongs to may be given by name and is resolved to its id when the batch is written, so the
request never waits for a lookup. Entries still queued when the process stops are written by
:meth:`close`.

When syslog forwarding is on, each entry is also sent there by the same background task, from a
queue of its own: a database outage does not hold up syslog, and a retried database write does
not send an entry twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import structlog
from sqlalchemy import Connection, select

from portside.db.engine import Database
from portside.db.queries import now
from portside.db.tables import audit_logs, projects
from portside.registry.cache import LRUCache

__all__ = ["AuditEntry", "AuditLog", "Forwarder", "Result", "iso8601"]

log = structlog.get_logger("portside.audit")
Result = Literal["success", "failure"]
Clock = Callable[[], dt.datetime]
_BATCH = 500
_MAX_QUEUED = 100_000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    op_time: dt.datetime
    username: str
    operation: str
    resource_type: str
    resource: str
    result: Result
    client_ip: str | None
    project_id: int | None
    detail: str | None
    # The project's name when its id was not at hand; resolved when the entry is written.
    project: str | None = None


@dataclass(slots=True)
class _Repeats:
    """A pull recorded since the last write: where its entry is, and how many identical pulls
    (itself included) there have been, the last at ``last``."""

    index: int
    last: dt.datetime
    count: int = 1


class Forwarder(Protocol):
    """Somewhere else entries go as well (syslog). Called from a worker thread."""

    def send(self, entries: list[AuditEntry]) -> None: ...

    def close(self) -> None: ...


def iso8601(stamp: dt.datetime) -> str:
    """``2006-01-02T15:04:05.000Z``, as Harbor shows times. A naive time (SQLite gives those
    back) is UTC, which is what was stored."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    text = stamp.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _clip(value: str, limit: int) -> str:
    """``value`` as a column can hold it: at most ``limit`` characters, and no NUL, which
    PostgreSQL refuses in text. A refused entry would fail its whole batch again and again,
    so whatever a caller sends (a username, say) must never be able to cause one."""
    value = value[:limit]
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _to_milliseconds(stamp: dt.datetime) -> dt.datetime:
    """Listings show milliseconds (as Harbor does); storing no more than that lets a time copied
    from a listing find its entry again in an ``op_time`` filter."""
    return stamp.replace(microsecond=stamp.microsecond - stamp.microsecond % 1000)


class AuditLog:
    def __init__(self, db: Database, flush_interval: float = 1.0, clock: Clock = now) -> None:
        self._db = db
        self._flush_interval = flush_interval
        self._clock = clock
        # Entries recorded since the last write, and for each pull among them, how many identical
        # pulls followed it; folded together into ``_queue`` when the next write starts.
        self._recorded: list[AuditEntry] = []
        self._pull_repeats: dict[tuple[Any, ...], _Repeats] = {}
        self._queue: list[AuditEntry] = []  # what the next write sends (or a failed one kept)
        self._outbox: list[AuditEntry] = []
        self._forwarder: Forwarder | None = None
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._recent_logins: LRUCache[tuple[str, str | None], bool] = LRUCache(10_000, 60.0)

    def login_succeeded(self, username: str, kind: str, client_ip: str | None) -> None:
        """Record a successful login, at most once a minute per account and address: clients
        send basic credentials with every request, which is not a new login each time."""
        if self._recent_logins.get((username, client_ip)) is None:
            self._recent_logins.put((username, client_ip), True)
            self.record(username, "login", kind, username, "success", client_ip)

    def now(self) -> dt.datetime:
        """The time as this log sees it (a test may pass in its own clock)."""
        return self._clock()

    def forward(self, forwarder: Forwarder) -> None:
        """Also send every entry recorded from now on to ``forwarder``."""
        self._forwarder = forwarder

    def record(
        self,
        username: str,
        operation: str,
        resource_type: str,
        resource: str,
        result: Result,
        client_ip: str | None,
        project_id: int | None = None,
        detail: str | None = None,
        project: str | None = None,
    ) -> None:
        """Queue one entry. Never blocks and never fails the caller's request.

        ``project`` names the entry's project when its id is not known; the id is looked up
        when the entry is written.
        """
        stamp = self._clock()
        key: tuple[Any, ...] | None = None
        if operation == "pull":
            key = (username, resource, result, client_ip, detail, project_id, project)
            repeats = self._pull_repeats.get(key)
            if repeats is not None:  # the hot path of a busy registry: count, nothing more
                repeats.count += 1
                repeats.last = stamp
                return
        if len(self._recorded) + len(self._queue) >= _MAX_QUEUED:
            log.error(
                "audit queue full; dropping entry",
                username=username[:255],
                operation=operation[:32],
                resource_type=resource_type[:32],
                resource=resource[:512],
                result=result,
                client_ip=client_ip,
                project=project,
                project_id=project_id,
                detail=detail,
            )
            return
        self._recorded.append(
            AuditEntry(
                _to_milliseconds(stamp),
                _clip(username, 255) or "anonymous",
                _clip(operation, 32),
                _clip(resource_type, 32),
                _clip(resource, 512),
                result,
                _clip(client_ip, 64) if client_ip else None,
                project_id,
                _clip(detail, 1024) if detail else None,
                _clip(project, 255) if project and project_id is None else None,
            )
        )
        if key is not None:
            self._pull_repeats[key] = _Repeats(len(self._recorded) - 1, stamp)
        if len(self._recorded) >= _BATCH:
            self._wakeup.set()

    def _fold_recorded(self) -> None:
        """Move what was recorded since the last write into the write queue (and the syslog
        outbox), each run of identical pulls as its first entry with their number and the
        time of the last. Pulls recorded from here on start counting afresh."""
        entries, self._recorded = self._recorded, []
        repeated, self._pull_repeats = self._pull_repeats, {}
        for repeats in repeated.values():
            if repeats.count > 1:
                first = entries[repeats.index]
                note = (
                    f"{repeats.count} identical pulls until "
                    f"{iso8601(_to_milliseconds(repeats.last))}"
                )
                detail = f"{first.detail}; {note}" if first.detail else note
                entries[repeats.index] = replace(first, detail=_clip(detail, 1024))
        self._queue.extend(entries)
        if self._forwarder is not None and len(self._outbox) < _MAX_QUEUED:
            self._outbox.extend(entries)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def flush(self) -> None:
        """Write everything queued so far. When this returns, every entry recorded before the
        call is in the database (or this raised): a flush already under way is waited for."""
        async with self._lock:
            self._fold_recorded()
            await self._forward_queued()
            while self._queue:
                batch, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
                try:
                    await self._db.write(functools.partial(_insert, batch=batch))
                except Exception:
                    self._queue[:0] = batch  # keep them for the next attempt
                    raise

    async def _forward_queued(self) -> None:
        forwarder = self._forwarder
        if forwarder is None or not self._outbox:
            return
        entries, self._outbox = self._outbox, []
        try:
            await asyncio.to_thread(forwarder.send, entries)
        except Exception:
            log.exception("failed to forward audit entries", lost=len(entries))

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._flush_interval)
            self._wakeup.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("failed to write audit entries; will retry")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception:
            log.exception("failed to write audit entries at shutdown", lost=len(self._queue))
        if self._forwarder is not None:
            self._forwarder.close()


_INSERT = audit_logs.insert()


def _insert(connection: Connection, batch: list[AuditEntry]) -> None:
    """Insert ``batch``, resolving project names to ids in the same transaction. Leaves
    ``batch`` untouched: the database layer may run a transaction twice."""
    names = {e.project for e in batch if e.project is not None}
    ids: dict[str, int] = {}
    if names:
        query = select(projects.c.name, projects.c.id).where(projects.c.name.in_(sorted(names)))
        ids = {row.name: int(row.id) for row in connection.execute(query)}
    # Plain dicts, not dataclasses.asdict(): asdict deep-copies every field and cost more than
    # the insert itself at thousands of entries a second.
    rows = [
        {
            "op_time": e.op_time,
            "username": e.username,
            "operation": e.operation,
            "resource_type": e.resource_type,
            "resource": e.resource,
            "result": e.result,
            "client_ip": e.client_ip,
            "project_id": e.project_id if e.project is None else ids.get(e.project),
            "detail": e.detail,
        }
        for e in batch
    ]
    connection.execute(_INSERT, rows)
