"""Query helpers that differ by dialect. Everything else is plain SQLAlchemy Core.

Hot-path statements are built once and executed with parameters: a statement object memoizes
its cache key, so reusing it skips SQLAlchemy's per-call construction and cache-key work, which
otherwise costs more than SQLite's own execution of a small insert.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from sqlalchemy import Connection, Executable, Table
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

__all__ = ["as_utc", "insert_ignore", "now", "upsert"]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """A timestamp read back from the database, as an aware UTC datetime: SQLite returns the
    naive UTC value we stored, PostgreSQL an aware one."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _insert_for(dialect: str) -> Any:
    if dialect == "postgresql":
        # Here, not at the top: the PostgreSQL dialect costs ~2 MB an SQLite server never uses.
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    return sqlite_insert


@functools.cache
def _insert_ignore_statement(dialect: str, table: Table) -> Executable:
    statement: Executable = _insert_for(dialect)(table).on_conflict_do_nothing()
    return statement


@functools.cache
def _upsert_statement(
    dialect: str, table: Table, keys: tuple[str, ...], updated: tuple[str, ...]
) -> Executable:
    insert = _insert_for(dialect)(table)
    statement: Executable = insert.on_conflict_do_update(
        index_elements=list(keys), set_={name: insert.excluded[name] for name in updated}
    )
    return statement


def insert_ignore(connection: Connection, table: Table, **values: Any) -> bool:
    """Insert a row unless one with the same primary or unique key exists.

    Returns True when a row was inserted. Race-free: two concurrent callers never both fail.
    """
    statement = _insert_ignore_statement(connection.dialect.name, table)
    return bool(connection.execute(statement, values).rowcount)


def upsert(
    connection: Connection, table: Table, keys: dict[str, Any], values: dict[str, Any]
) -> None:
    """Insert ``keys | values``, or update ``values`` on the row with those primary-key ``keys``."""
    statement = _upsert_statement(
        connection.dialect.name, table, tuple(keys), tuple(sorted(values))
    )
    connection.execute(statement, {**keys, **values})
