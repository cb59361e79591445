"""Real PostgreSQL and S3-compatible backends for tests: a fresh database and bucket per run."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import psycopg2

__all__ = ["postgres_database"]

POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """Create a throwaway database on the local PostgreSQL; yield its asyncpg URL."""
    name = f"portside_test_{secrets.token_hex(6)}"
    admin = psycopg2.connect(POSTGRES_DSN)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
