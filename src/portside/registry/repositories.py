"""Repository rows: looked up on every request, created implicitly by the first push."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from sqlalchemy import Connection, bindparam, delete, select

from portside.db.engine import Database
from portside.db.queries import insert_ignore, now
from portside.db.tables import manifests, projects, repositories, repository_blobs
from portside.oci.errors import ErrorCode, RegistryError
from portside.projects.projects import project_of
from portside.projects.quotas import release_unreferenced
from portside.registry.cache import LRUCache

__all__ = ["Repositories", "RepositoryIds"]


class RepositoryIds(NamedTuple):
    """A repository's id and the id of the project it belongs to (whose quota it uses)."""

    id: int
    project_id: int | None


_PROJECT_ID = select(projects.c.id).where(projects.c.name == bindparam("name"))
_IDS_OF = select(repositories.c.id, repositories.c.project_id).where(
    repositories.c.name == bindparam("name")
)
_BLOB_DIGESTS = select(repository_blobs.c.digest).where(
    repository_blobs.c.repository_id == bindparam("repository_id")
)
_MANIFEST_DIGESTS = select(manifests.c.digest).where(
    manifests.c.repository_id == bindparam("repository_id")
)
_DELETE = delete(repositories).where(repositories.c.id == bindparam("repository_id"))


def _ids_of(connection: Connection, name: str) -> RepositoryIds | None:
    row = connection.execute(_IDS_OF, {"name": name}).first()
    if row is None:
        return None
    return RepositoryIds(int(row.id), None if row.project_id is None else int(row.project_id))


class Repositories:
    def __init__(self, db: Database, cache_ttl: float) -> None:
        self._db = db
        # Repository ids never change while the repository exists, so caching them is safe.
        self._ids: LRUCache[str, RepositoryIds] = LRUCache(10_000, cache_ttl)
        self._on_delete: list[Callable[[str], None]] = []

    async def ids_of(self, name: str) -> RepositoryIds | None:
        """The repository's ids, or None if nothing was ever pushed to it."""
        cached = self._ids.get(name)
        if cached is not None:
            return cached
        return await self._ids.fetch(name, lambda: self._db.read(lambda c: _ids_of(c, name)))

    async def id_of(self, name: str) -> int | None:
        """The repository's id, or None if nothing was ever pushed to it."""
        found = await self.ids_of(name)
        return None if found is None else found.id

    def ensure(self, connection: Connection, name: str) -> RepositoryIds:
        """The repository's ids, creating the row inside the caller's transaction if needed.

        What a transaction finds is never cached: on SQLite it may share its commit with the
        transaction that created the row, and be rolled back with it. Callers warm the cache
        with :meth:`ids_of` before their transaction, so a push into a known repository does
        not query here.
        """
        cached = self._ids.get(name)
        if cached is not None:
            return cached
        found = _ids_of(connection, name)
        if found is not None:
            return found
        project_id = connection.scalar(_PROJECT_ID, {"name": project_of(name)})
        if project_id is None:
            raise RegistryError(
                ErrorCode.NAME_UNKNOWN,
                f"project {project_of(name)!r} does not exist",
                detail={"name": name},
            )
        insert_ignore(connection, repositories, name=name, project_id=project_id, created_at=now())
        created = _ids_of(connection, name)
        assert created is not None  # inserted or already present, in this transaction
        return created

    def on_delete(self, forget: Callable[[str], None]) -> None:
        """Have ``forget(name)`` called when a repository is deleted, so caches keyed by
        repository name drop it."""
        self._on_delete.append(forget)

    async def delete(self, name: str) -> bool:
        """Delete a repository with its blob links, manifests and tags, and stop counting, in
        the same transaction, what its project no longer references. Returns False when there
        was no such repository. Stored bytes are left for garbage collection."""

        def remove(connection: Connection) -> bool:
            ids = _ids_of(connection, name)
            if ids is None:
                return False
            params = {"repository_id": ids.id}
            digests = set(connection.scalars(_BLOB_DIGESTS, params))
            digests |= set(connection.scalars(_MANIFEST_DIGESTS, params))
            # The repository row first: a push into it still running holds a key lock on it,
            # so it has committed (and counted its blob) before the rows below are examined.
            connection.execute(_DELETE, params)
            release_unreferenced(connection, ids.project_id, digests)
            return True

        deleted = await self._db.write(remove)
        self._ids.discard(name)
        for forget in self._on_delete:
            forget(name)
        return deleted

    async def names(
        self, limit: int | None, last: str | None, project_ids: set[int] | None = None
    ) -> list[str]:
        """Repository names in byte order after ``last``; at most ``limit`` when given; only
        those in ``project_ids`` unless that is None."""
        query = select(repositories.c.name)
        if project_ids is not None:
            query = query.where(repositories.c.project_id.in_(sorted(project_ids)))
        if last:
            query = query.where(repositories.c.name > last)
        query = query.order_by(repositories.c.name)
        if limit is not None:
            query = query.limit(limit)
        return await self._db.read(lambda c: list(c.scalars(query)))
