"""Migrations run forwards and backwards on both supported databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from portside.db.engine import sqlite_sync_url
from portside.db.migrate import downgrade, upgrade
from portside.db.tables import metadata
from tests.support.backends import postgres_database


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
    else:
        with postgres_database() as url:
            yield url


def _tables(url: str) -> set[str]:
    if url.startswith("sqlite"):
        engine = create_engine(sqlite_sync_url(url))
    else:
        engine = create_engine(url.replace("+asyncpg", "+psycopg2"))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    upgrade(database_url)
    assert _tables(database_url) == set(metadata.tables)
    downgrade(database_url, "base")
    assert _tables(database_url) == set()
    upgrade(database_url)
    assert _tables(database_url) == set(metadata.tables)
    upgrade(database_url)  # already at head: a no-op
