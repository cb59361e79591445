"""The database handle: transactions as functions, SQLite group commit, PostgreSQL run_sync."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from sqlalchemy import Connection, func, select

from portside.db.engine import Database
from portside.db.queries import insert_ignore, now
from portside.db.tables import blobs


def _count(connection: Connection) -> int:
    return int(connection.scalar(select(func.count()).select_from(blobs)) or 0)


class Boom(Exception):
    pass


async def test_concurrent_writes_commit_independently(db: Database) -> None:
    def insert(i: int) -> Callable[[Connection], int]:
        def transaction(connection: Connection) -> int:
            insert_ignore(connection, blobs, digest=f"d{i}", size=i, created_at=now())
            if i % 10 == 3:
                raise Boom(i)  # its own insert must be rolled back, nobody else's
            return i

        return transaction

    results = await asyncio.gather(
        *(db.write(insert(i)) for i in range(100)),
        return_exceptions=True,
    )
    failed = [r for r in results if isinstance(r, Boom)]
    assert len(failed) == 10
    assert sorted(r for r in results if isinstance(r, int)) == [
        i for i in range(100) if i % 10 != 3
    ]
    assert await db.read(_count) == 90
    sizes = await db.read(lambda c: set(c.scalars(select(blobs.c.size))))
    assert not any(size % 10 == 3 for size in sizes)


async def test_a_write_is_visible_to_the_next_read(db: Database) -> None:
    await db.write(lambda c: insert_ignore(c, blobs, digest="x", size=7, created_at=now()))
    size = await db.read(lambda c: c.scalar(select(blobs.c.size).where(blobs.c.digest == "x")))
    assert size == 7


async def test_reads_commit_nothing(db: Database) -> None:
    # SQLite refuses the write outright (query_only); PostgreSQL rolls it back.
    with contextlib.suppress(Exception):
        await db.read(lambda c: insert_ignore(c, blobs, digest="ghost", size=1, created_at=now()))
    assert await db.read(_count) == 0


async def test_a_lookup_sees_each_commit_and_survives_a_failed_query(db: Database) -> None:
    def size_of(connection: Connection) -> int | None:
        return connection.scalar(select(blobs.c.size).where(blobs.c.digest == "x"))

    assert await db.lookup(size_of) is None
    await db.write(lambda c: insert_ignore(c, blobs, digest="x", size=7, created_at=now()))
    assert await db.lookup(size_of) == 7  # the very next lookup, no stale snapshot
    with contextlib.suppress(Exception):
        await db.lookup(lambda c: c.exec_driver_sql("SELECT * FROM no_such_table").all())
    with contextlib.suppress(Exception):  # a lookup commits nothing either
        await db.lookup(lambda c: insert_ignore(c, blobs, digest="y", size=1, created_at=now()))
    await db.write(lambda c: c.execute(blobs.update().values(size=8)))
    assert await db.lookup(size_of) == 8
    assert await db.read(_count) == 1
