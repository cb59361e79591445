"""Migrations run forwards and backwards on both supported databases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text

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


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return create_engine(sqlite_sync_url(url))
    return create_engine(url.replace("+asyncpg", "+psycopg2"))


def _tables(url: str) -> set[str]:
    engine = _engine(url)
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


def test_repositories_from_before_projects_are_placed_in_projects(database_url: str) -> None:
    upgrade(database_url, "0001")
    engine = _engine(database_url)
    names = ["team_a/app", "team_a/tools/cli", "team/app", "solo"]
    try:
        stamp = dt.datetime.now(dt.UTC)
        with engine.begin() as connection:
            for name in names:
                connection.execute(
                    text("INSERT INTO repositories (name, created_at) VALUES (:n, :t)"),
                    {"n": name, "t": stamp},
                )
            connection.execute(
                text("INSERT INTO blobs VALUES ('sha256:aa', 100, :t), ('sha256:bb', 7, :t)"),
                {"t": stamp},
            )
            # sha256:aa is in two repositories of team_a: counted once.
            for repository, digest in [("team_a/app", "aa"), ("team_a/tools/cli", "aa")]:
                connection.execute(
                    text(
                        "INSERT INTO repository_blobs SELECT id, :d, :t FROM repositories "
                        "WHERE name = :r"
                    ),
                    {"d": f"sha256:{digest}", "t": stamp, "r": repository},
                )
            connection.execute(
                text(
                    "INSERT INTO manifests (repository_id, digest, media_type, size, created_at) "
                    "SELECT id, 'sha256:bb', 'x', 7, :t FROM repositories WHERE name = 'solo'"
                ),
                {"t": stamp},
            )
        upgrade(database_url)
        with engine.connect() as connection:
            usage = connection.execute(
                text(
                    "SELECT p.name, SUM(pb.size) FROM project_blobs pb "
                    "JOIN projects p ON p.id = pb.project_id GROUP BY p.name ORDER BY p.name"
                )
            ).all()
            rows = connection.execute(
                text(
                    "SELECT r.name, p.name FROM repositories r "
                    "JOIN projects p ON p.id = r.project_id ORDER BY r.name"
                )
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("solo", "solo"),
        ("team/app", "team"),
        ("team_a/app", "team_a"),
        ("team_a/tools/cli", "team_a"),
    ]
    assert [tuple(r) for r in usage] == [("solo", 7), ("team_a", 100)]
