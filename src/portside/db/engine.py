"""The database handle. Every query is a plain function of a SQLAlchemy ``Connection``:

    def tag_names(connection: Connection) -> list[str]: ...
    names = await db.read(tag_names)          # one connection, nothing committed
    size = await db.lookup(blob_size)         # the same, for an indexed point lookup
    await db.write(lambda c: insert_tag(c, x)) # one transaction, committed on return

The function runs as a unit, which is what makes this fast on both databases:

- PostgreSQL (asyncpg): through ``AsyncConnection.run_sync``, on the event loop, no threads.
- SQLite (the standard library's driver): reads in one worker-thread hop each. An async SQLite
  driver would hop to its thread for every cursor call, three or four per statement.
  SQLite allows one writer at a time, so writes go to one writer thread that commits them in
  groups: the transactions waiting at that moment run back to back under a single COMMIT and a
  single fsync. If one of them raises, the group is rolled back and each is run again alone,
  so only the failing one fails.
  Concurrent pushes then share fsyncs instead of queueing for them. Readers are never blocked
  (WAL mode). A lookup runs on the event loop itself, on a read-only connection of its own:
  for a query of a few microseconds the hop to a worker thread cost more than the query (blob
  HEADs of missing blobs went from 5,100 to 7,450 per second).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["Database", "DatabaseFull", "DatabaseUnavailable", "sqlite_sync_url"]

T = TypeVar("T")

# How long opening a PostgreSQL connection may take before the request fails with
# DatabaseUnavailable (asyncpg waits 60 s by default, long past any client's patience).
CONNECT_TIMEOUT_SECONDS = 5.0


class DatabaseUnavailable(Exception):
    """The database cannot be reached or does not accept the work now (a PostgreSQL outage,
    an SQLite file that cannot be written). The request may succeed when retried later; the
    API answers 503. The message is for the log, not for clients."""


class DatabaseFull(DatabaseUnavailable):
    """The database has no room left for a write (PostgreSQL's disk_full, SQLITE_FULL)."""


# PostgreSQL SQLSTATE classes that mean "not now" rather than "not this": connection
# exceptions, insufficient resources, operator intervention (shutdown, terminated backends).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
_DISK_FULL_SQLSTATE = "53100"
_SQLITE_FULL = 13
# SQLite primary result codes that mean the file cannot be used now: busy past busy_timeout,
# locked, read-only, I/O error, cannot open, lock protocol.
_SQLITE_UNAVAILABLE = frozenset({5, 6, 8, 10, 14, 15})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, the DBAPI error it wraps and their causes, each once."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        pending += [current.__cause__, current.__context__]
        if isinstance(orig, BaseException):
            pending.append(orig)


def _outage(exc: BaseException) -> DatabaseUnavailable | None:
    """The outage ``exc`` reports, or None when it is an ordinary error (a constraint, a bug)."""
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    for error in _chain(exc):
        if isinstance(error, DatabaseUnavailable):
            return error
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate:
            if sqlstate == _DISK_FULL_SQLSTATE:
                return DatabaseFull(reason)
            if sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES) or (
                sqlstate == "55000" and "accepting connections" in str(error)
            ):
                return DatabaseUnavailable(reason)
        if isinstance(error, sqlite3.Error):
            code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
            if code == _SQLITE_FULL:
                return DatabaseFull(reason)
            if code in _SQLITE_UNAVAILABLE:
                return DatabaseUnavailable(reason)
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return DatabaseUnavailable(reason)
        # The pool waited for a free connection in vain, a socket could not be opened, or a
        # connection was closed under a query (asyncpg's InterfaceError says so).
        if isinstance(error, sa_exc.TimeoutError | OSError | TimeoutError):
            return DatabaseUnavailable(reason)
        if type(error).__name__ == "InterfaceError" and "connection is closed" in str(error):
            return DatabaseUnavailable(reason)
    return None


@contextlib.contextmanager
def _outages_raised() -> Iterator[None]:
    """Re-raise a failure that means the database is out of reach as
    :class:`DatabaseUnavailable` (or :class:`DatabaseFull`), so callers and the API can tell
    an outage from a bug."""
    try:
        yield
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        outage = _outage(exc)
        if outage is None:
            raise
        raise outage from exc


def sqlite_sync_url(url: str) -> str:
    """SQLite URLs may name the async driver (older configs); we always use the sync one."""
    return make_url(url).set(drivername="sqlite").render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: an acknowledged push survives a power cut, not only a crash.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # The write transaction takes the write lock up front (IMMEDIATE), so it never fails
    # half-way on lock upgrade when another process writes too.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_read_only(dbapi_connection: Any, _record: Any) -> None:
    # Readers run in autocommit mode (no BEGIN/ROLLBACK round trips; each statement sees a
    # consistent snapshot); query_only makes sure nothing a reader does can ever commit.
    _sqlite_pragmas(dbapi_connection, _record)
    dbapi_connection.execute("PRAGMA query_only=ON")


class Database:
    def __init__(self, url: str, pool_size: int = 10) -> None:
        self._async_engine: AsyncEngine | None = None
        self._read_engine: Engine | None = None
        self._inline: Connection | None = None
        self._write_failure: tuple[float, str] | None = None  # when, and why
        if make_url(url).get_backend_name() == "sqlite":
            sync_url = sqlite_sync_url(url)
            threads = {"check_same_thread": False}
            self._read_engine = create_engine(
                sync_url, pool_size=pool_size, max_overflow=pool_size, connect_args=threads
            )
            event.listen(self._read_engine, "connect", _sqlite_read_only)
            writer_engine = create_engine(sync_url, pool_size=1, connect_args=threads)
            event.listen(writer_engine, "connect", _sqlite_pragmas)
            event.listen(writer_engine, "begin", _sqlite_begin)
            self._threads = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="sqlite")
            self._writer = _GroupCommitWriter(writer_engine)
            # Autocommit and query_only (see _sqlite_read_only): each statement sees the latest
            # commit and can never write.
            self._inline_engine = create_engine(sync_url, pool_size=1, connect_args=threads)
            event.listen(self._inline_engine, "connect", _sqlite_read_only)
            self._inline = self._inline_engine.connect()
        else:
            # Only PostgreSQL needs it; it pulls in the ORM, ~7 MB an SQLite server never uses.
            from sqlalchemy.ext.asyncio import create_async_engine

            self._async_engine = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},
            )

    @property
    def shared(self) -> bool:
        """Whether other server processes may use this database too (PostgreSQL, with
        replicas), so that state a request leaves for the next one must be in it. An SQLite
        database belongs to one server process."""
        return self._async_engine is not None

    async def read(self, query: Callable[[Connection], T]) -> T:
        """Run ``query`` on a connection; nothing it does is committed. Raises
        :class:`DatabaseUnavailable` when the database cannot be reached (as do
        :meth:`write` and :meth:`lookup`)."""
        with _outages_raised():
            if self._async_engine is not None:
                async with self._async_engine.connect() as connection:
                    return await connection.run_sync(query)
            return await asyncio.get_running_loop().run_in_executor(
                self._threads, self._run_sqlite_read, query
            )

    async def write(self, transaction: Callable[[Connection], T]) -> T:
        """Run ``transaction`` in a transaction, committed when it returns and rolled back when
        it raises. It may be run more than once (on SQLite, when a transaction grouped with it
        fails), so it must do nothing but database work."""
        try:
            with _outages_raised():
                if self._async_engine is not None:
                    async with self._async_engine.begin() as connection:
                        result = await connection.run_sync(transaction)
                else:
                    result = await self._writer.submit(transaction)
        except DatabaseUnavailable as exc:
            self._write_failure = (time.monotonic(), str(exc))
            raise
        self._write_failure = None
        return result

    def failing_writes(self, within: float) -> str | None:
        """Why writes fail, if the last one (less than ``within`` seconds ago) failed for want
        of the database: a file that cannot be written still answers reads."""
        if self._write_failure is None or time.monotonic() - self._write_failure[0] > within:
            return None
        return self._write_failure[1]

    async def lookup(self, query: Callable[[Connection], T]) -> T:
        """Like :meth:`read`, for an indexed point lookup on a hot path. On SQLite it runs on
        the calling thread, on a connection of its own: the query takes microseconds, and a
        hop to a worker thread and back (two interpreter-lock hand-overs, two wake-ups) cost
        several times that. Never for a query that scans."""
        if self._inline is None:
            return await self.read(query)
        with _outages_raised():
            try:
                return query(self._inline)
            finally:
                self._inline.rollback()  # ends SQLAlchemy's implicit transaction (no SQL sent)

    def _run_sqlite_read(self, work: Callable[[Connection], T]) -> T:
        assert self._read_engine is not None
        with self._read_engine.connect() as connection:
            return work(connection)

    async def close(self) -> None:
        if self._async_engine is not None:
            await self._async_engine.dispose()
        if self._inline is not None:
            self._inline.close()
            self._inline_engine.dispose()
        if self._read_engine is not None:
            self._writer.stop()
            self._read_engine.dispose()
            self._threads.shutdown(wait=False)


_Job = tuple[Callable[[Connection], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]
_MAX_GROUP = 128


class _GroupCommitWriter:
    """One thread that runs SQLite write transactions, committing waiting ones together."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._thread.start()

    async def submit(self, transaction: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((transaction, future, loop))
        return await future

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=10)
        self._engine.dispose()

    def _run(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            group = [first]
            while len(group) < _MAX_GROUP:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._jobs.put(None)  # finish this group, then stop
                    break
                group.append(job)
            self._commit(group)

    def _commit(self, group: list[_Job]) -> None:
        try:
            outcomes = self._run_together(group)
        except _GroupFailed as failed:
            if len(group) == 1:  # it ran alone already: its failure is the answer
                outcomes = [(False, failed.__cause__)]
            else:  # run each on its own, so only the failing one fails
                outcomes = [self._run_alone(job) for job in group]
        for (_, future, loop), (ok, value) in zip(group, outcomes, strict=True):
            loop.call_soon_threadsafe(_settle, future, ok, value)

    def _run_together(self, group: list[_Job]) -> list[tuple[bool, Any]]:
        """All transactions of the group under one COMMIT. Raises :class:`_GroupFailed`
        (having rolled everything back) when any of them raises."""
        results = []
        try:
            with self._engine.begin() as connection:
                for transaction, _, _ in group:
                    try:
                        results.append(transaction(connection))
                    except BaseException as exc:
                        raise _GroupFailed from exc
        except _GroupFailed:
            raise
        except BaseException as exc:  # the COMMIT itself failed: nothing of the group stuck
            return [(False, exc)] * len(group)
        return [(True, result) for result in results]

    def _run_alone(self, job: _Job) -> tuple[bool, Any]:
        try:
            with self._engine.begin() as connection:
                return True, job[0](connection)
        except BaseException as exc:
            return False, exc


class _GroupFailed(Exception):
    """A transaction in a group raised; the group's work was rolled back."""


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller was cancelled; the transaction committed regardless
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
