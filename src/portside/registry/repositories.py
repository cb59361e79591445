"""Repository rows: looked up on every request, created implicitly by the first push."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select

from portside.db.engine import Database
from portside.db.queries import insert_ignore, now
from portside.db.tables import repositories
from portside.registry.cache import LRUCache

__all__ = ["Repositories"]


_ID_OF = select(repositories.c.id).where(repositories.c.name == bindparam("name"))


def _id_of(connection: Connection, name: str) -> int | None:
    found = connection.scalar(_ID_OF, {"name": name})
    return None if found is None else int(found)


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
        found = await self._db.read(lambda c: _id_of(c, name))
        if found is not None:
            self._ids.put(name, found)
        return found

    def ensure(self, connection: Connection, name: str) -> int:
        """The repository's id, creating the row inside the caller's transaction if needed."""
        cached = self._ids.get(name)
        if cached is not None:
            return cached
        found = _id_of(connection, name)
        if found is not None:
            self._ids.put(name, found)  # it existed before this transaction: safe to remember
            return found
        insert_ignore(connection, repositories, name=name, created_at=now())
        created = _id_of(connection, name)
        assert created is not None  # inserted or already present, in this transaction
        return created

    async def names(self, limit: int | None, last: str | None) -> list[str]:
        """Repository names in byte order after ``last``; at most ``limit`` when given."""
        query = select(repositories.c.name)
        if last:
            query = query.where(repositories.c.name > last)
        query = query.order_by(repositories.c.name)
        if limit is not None:
            query = query.limit(limit)
        return await self._db.read(lambda c: list(c.scalars(query)))
