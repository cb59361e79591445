"""Fixtures for unit tests that need a real, migrated database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from portside.db.engine import Database
from portside.db.migrate import upgrade
from tests.support.backends import postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'e.db'}"
        await asyncio.to_thread(upgrade, url)
        database = Database(url)
        yield database
        await database.close()
        return
    with postgres_database() as url:
        await asyncio.to_thread(upgrade, url)
        database = Database(url)
        yield database
        await database.close()
