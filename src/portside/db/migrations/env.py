"""Alembic environment: runs migrations over the async engine Portside uses at run time."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from portside.db.engine import sqlite_sync_url
from portside.db.tables import metadata

# Any constant works; it only has to be the same in every replica.
_MIGRATION_LOCK_ID = 7_734_117


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Serialise replicas that start together; released at the end of the session.
        connection.execute(text(f"SELECT pg_advisory_lock({_MIGRATION_LOCK_ID})"))
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK_ID})"))
        connection.commit()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def _run_sqlite(url: str) -> None:
    engine = create_engine(sqlite_sync_url(url))
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


_url = context.config.attributes["database_url"]
if make_url(_url).get_backend_name() == "sqlite":
    _run_sqlite(_url)
else:
    asyncio.run(_run_async(_url))
