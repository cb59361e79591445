"""Outages are told from bugs: a database that cannot be reached or written raises
DatabaseUnavailable (DatabaseFull when it has no room); ordinary errors pass unchanged."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from portside.db.engine import Database, DatabaseUnavailable
from portside.db.migrate import upgrade
from portside.db.queries import now
from portside.db.tables import blobs
from portside.system.failures import outage_of


def _chattr(flag: str, files: list[str]) -> None:
    """``chattr +i`` fails writes even through open descriptors (tests run as root, whom file
    permissions would not stop)."""
    subprocess.run(["chattr", flag, *files], check=True)


async def test_an_unreachable_postgres_raises_database_unavailable() -> None:
    # Nothing listens on port 9 of loopback: the connection is refused at once.
    db = Database("postgresql+asyncpg://postgres@127.0.0.1:9/nothing")
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await db.read(lambda c: c.execute(text("SELECT 1")).scalar())
        with pytest.raises(DatabaseUnavailable):
            await db.write(lambda c: c.execute(text("SELECT 1")).scalar())
    finally:
        await db.close()
    outage = outage_of(caught.value)
    assert outage is not None and (outage.status, outage.component) == (503, "database")


async def test_an_unwritable_sqlite_file_fails_writes_only(tmp_path: Path) -> None:
    if shutil.which("chattr") is None:
        pytest.skip("needs chattr")
    url = f"sqlite:///{tmp_path / 'o.db'}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    try:
        await db.write(
            lambda c: c.execute(blobs.insert(), {"digest": "a", "size": 1, "created_at": now()})
        )
        # The file and its WAL (there once written); not the -shm, which SQLite maps into
        # memory: made immutable, touching it would kill the process (SIGBUS).
        files = [str(tmp_path / "o.db"), str(tmp_path / "o.db-wal")]
        await asyncio.to_thread(_chattr, "+i", files)
        try:
            insert = {"digest": "b", "size": 1, "created_at": now()}
            with pytest.raises(DatabaseUnavailable):
                await db.write(lambda c: c.execute(blobs.insert(), insert))
            assert db.failing_writes(within=30) is not None
            count = text("SELECT count(*) FROM blobs")
            assert await db.read(lambda c: c.execute(count).scalar()) == 1
        finally:
            await asyncio.to_thread(_chattr, "-i", files)
        await db.write(lambda c: c.execute(blobs.insert(), insert))
        assert db.failing_writes(within=30) is None
    finally:
        await db.close()


async def test_an_ordinary_error_is_not_an_outage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    row = {"digest": "a", "size": 1, "created_at": now()}
    try:
        await db.write(lambda c: c.execute(blobs.insert(), row))
        with pytest.raises(IntegrityError) as caught:
            await db.write(lambda c: c.execute(blobs.insert(), row))
    finally:
        await db.close()
    assert outage_of(caught.value) is None
