"""Query helpers that differ by dialect. Everything else is plain SQLAlchemy Core."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

__all__ = ["insert_ignore", "now", "upsert"]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def insert_ignore(connection: Connection, table: Table, **values: Any) -> bool:
    """Insert a row unless one with the same primary or unique key exists.

    Returns True when a row was inserted. Race-free: two concurrent callers never both fail.
    """
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    result = connection.execute(insert(table).values(**values).on_conflict_do_nothing())
    return bool(result.rowcount)


def upsert(
    connection: Connection, table: Table, keys: dict[str, Any], values: dict[str, Any]
) -> None:
    """Insert ``keys | values``, or update ``values`` on the row with those primary-key ``keys``."""
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = insert(table).values(**keys, **values)
    connection.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=values))
