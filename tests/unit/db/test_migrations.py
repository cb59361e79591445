"""Migrations run forwards and backwards on both supported databases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, inspect, select, text
from sqlalchemy.exc import IntegrityError

from portside.db.engine import sqlite_sync_url
from portside.db.migrate import downgrade, upgrade
from portside.db.queries import upsert
from portside.db.tables import metadata, tags
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


def _seed_tags(engine: Engine, stamp: dt.datetime) -> None:
    """Two repositories, a manifest each, and tags on them, in the pre-0005 shape."""
    with engine.begin() as connection:
        for repository in ("lib/a", "lib/b"):
            connection.execute(
                text("INSERT INTO repositories (name, created_at) VALUES (:n, :t)"),
                {"n": repository, "t": stamp},
            )
            connection.execute(
                text(
                    "INSERT INTO manifests (repository_id, digest, media_type, size, created_at) "
                    "SELECT id, 'sha256:aa', 'x', 7, :t FROM repositories WHERE name = :r"
                ),
                {"t": stamp, "r": repository},
            )
        for repository, tag in [("lib/a", "v1"), ("lib/a", "latest"), ("lib/b", "v1")]:
            connection.execute(
                text(
                    "INSERT INTO tags (repository_id, name, manifest_id, updated_at) "
                    "SELECT r.id, :n, m.id, :t FROM repositories r "
                    "JOIN manifests m ON m.repository_id = r.id WHERE r.name = :r"
                ),
                {"n": tag, "t": stamp, "r": repository},
            )


def _tag_rows(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT r.name, t.name FROM tags t JOIN repositories r ON r.id = t.repository_id "
                "ORDER BY r.name, t.name"
            )
        ).all()
    return [(r[0], r[1]) for r in rows]


def test_existing_tags_get_unique_ids_that_are_never_reused(database_url: str) -> None:
    upgrade(database_url, "0004")
    engine = _engine(database_url)
    stamp = dt.datetime.now(dt.UTC)
    try:
        _seed_tags(engine, stamp)
        before = _tag_rows(engine)
        upgrade(database_url)
        assert _tag_rows(engine) == before
        schema = inspect(engine)
        assert schema.get_pk_constraint("tags")["constrained_columns"] == ["id"]
        unique = [u["column_names"] for u in schema.get_unique_constraints("tags")]
        assert ["repository_id", "name"] in unique
        assert "ix_tags_manifest_id" in {i["name"] for i in schema.get_indexes("tags")}
        if engine.dialect.name == "postgresql":
            # Byte-order tag paging depends on the column's collation surviving the change.
            (name,) = [c for c in schema.get_columns("tags") if c["name"] == "name"]
            assert getattr(name["type"], "collation", None) == "C"
        with engine.begin() as connection:
            ids = list(connection.scalars(text("SELECT id FROM tags ORDER BY id")))
            assert len(ids) == len(set(ids)) == 3 and all(isinstance(i, int) for i in ids)
            top = max(ids)
            connection.execute(text("DELETE FROM tags WHERE id = :i"), {"i": top})
            # Through the same single-statement upsert a manifest PUT uses.
            repository_id, manifest_id = connection.execute(
                text("SELECT repository_id, manifest_id FROM tags WHERE id = :i"), {"i": ids[0]}
            ).one()
            keys = {"repository_id": repository_id, "name": "fresh"}
            statements: list[str] = []

            def seen(*args: Any) -> None:
                statements.append(args[2])

            event.listen(connection, "before_cursor_execute", seen)
            upsert(connection, tags, keys, {"manifest_id": manifest_id, "updated_at": stamp})
            event.remove(connection, "before_cursor_execute", seen)
            assert len(statements) == 1, statements  # the id costs no extra round trip
            fresh = connection.scalar(select(tags.c.id).where(tags.c.name == "fresh"))
            assert fresh is not None and fresh > top  # the deleted id is not handed out again
            # Upserting an existing (repository, name) moves it and keeps its id.
            upsert(connection, tags, keys, {"manifest_id": manifest_id, "updated_at": stamp})
            assert connection.scalar(select(tags.c.id).where(tags.c.name == "fresh")) == fresh
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO tags (repository_id, name, manifest_id, updated_at) "
                    "VALUES (:r, 'fresh', :m, :t)"
                ),
                {"r": repository_id, "m": manifest_id, "t": stamp},
            )
        downgrade(database_url, "0004")
        assert inspect(engine).get_pk_constraint("tags")["constrained_columns"] == [
            "repository_id",
            "name",
        ]
        assert len(_tag_rows(engine)) == 3
    finally:
        engine.dispose()
