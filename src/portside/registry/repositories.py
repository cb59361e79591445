"""Repository rows: looked up on every request, created implicitly by the first push."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from portside.db.engine import Database
from portside.db.queries import insert_ignore, now
from portside.db.tables import repositories
from portside.registry.cache import LRUCache

__all__ = ["Repositories"]


class Repositories:
    def __init__(self, db: Database, cache_ttl: float) -> None:
        self._db = db
        # Repository ids never change while the repository exists, so caching them is safe.
        self._ids: LRUCache[str, int] = LRUCache(10_000, cache_ttl)

    async def id_of(self, name: str) -> int | None:
        """The repository's id, or None if nothing was ever pushed to it."""
        cached = self._ids.get(name)
        if cached is not None:
            return cached
        async with self._db.read() as connection:
            found = await connection.scalar(
                select(repositories.c.id).where(repositories.c.name == name)
            )
        if found is not None:
            self._ids.put(name, found)
        return found

    async def ensure(self, connection: AsyncConnection, name: str) -> int:
        """The repository's id, creating the row inside the caller's transaction if needed."""
        cached = self._ids.get(name)
        if cached is not None:
            return cached
        await insert_ignore(connection, repositories, name=name, created_at=now())
        found = await connection.scalar(
            select(repositories.c.id).where(repositories.c.name == name)
        )
        assert found is not None  # inserted or already present, in this transaction
        return int(found)

    def forget(self, name: str) -> None:
        self._ids.discard(name)

    async def names(self, limit: int | None, last: str | None) -> list[str]:
        """Repository names in byte order after ``last``; at most ``limit`` when given."""
        query = select(repositories.c.name)
        if last:
            query = query.where(repositories.c.name > last)
        query = query.order_by(repositories.c.name)
        if limit is not None:
            query = query.limit(limit)
        async with self._db.read() as connection:
            return list(await connection.scalars(query))
