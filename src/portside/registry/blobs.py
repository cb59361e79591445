"""Blobs: which repository may serve which content, and reading that content back.

A blob's bytes are stored once (``storage.layout.blob_path``); a row in ``repository_blobs``
links it to each repository that pushed or mounted it. Deleting a blob from a repository only
removes the link; the bytes are left for garbage collection.

Linking counts the blob towards its project's quota, and unlinking stops counting it once nothing
in the project references it, both in the transaction that changes the link
(:mod:`portside.projects.quotas`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, delete, select

from portside.db.engine import Database
from portside.db.queries import insert_ignore, now
from portside.db.tables import blobs, repositories, repository_blobs
from portside.oci.digest import Digest
from portside.oci.errors import ErrorCode, RegistryError
from portside.projects.quotas import ProjectQuotas, release_unreferenced
from portside.registry.cache import LRUCache
from portside.registry.repositories import Repositories
from portside.storage.base import StorageDriver
from portside.storage.layout import blob_path

__all__ = ["BlobContent", "Blobs"]

# Built once (see db.queries): the size of a blob if a repository links it.
_SIZE_IN_REPOSITORY = (
    select(blobs.c.size)
    .select_from(
        repository_blobs.join(
            repositories, repositories.c.id == repository_blobs.c.repository_id
        ).join(blobs, blobs.c.digest == repository_blobs.c.digest)
    )
    .where(
        repositories.c.name == bindparam("repository"),
        repository_blobs.c.digest == bindparam("digest"),
    )
)
_UNLINK = delete(repository_blobs).where(
    repository_blobs.c.repository_id == bindparam("repository_id"),
    repository_blobs.c.digest == bindparam("digest"),
)


@dataclass(frozen=True, slots=True)
class BlobContent:
    """A blob a repository may serve: its size, and its key in storage to read it from."""

    digest: Digest
    size: int
    storage_key: str


class Blobs:
    def __init__(
        self,
        db: Database,
        storage: StorageDriver,
        repos: Repositories,
        cache_ttl: float,
        *,
        quotas: ProjectQuotas,
    ) -> None:
        self._db = db
        self._storage = storage
        self.repositories = repos
        self.quotas = quotas
        # (repository, digest) -> size; only positive answers are cached.
        self._linked: LRUCache[tuple[str, str], int] = LRUCache(100_000, cache_ttl)
        repos.on_delete(lambda _name: self._linked.clear())

    async def size_in(self, repository: str, digest: Digest) -> int | None:
        """Size of the blob if ``repository`` may serve it, else None."""
        key = (repository, str(digest))
        cached = self._linked.get(key)
        if cached is not None:
            return cached
        params = {"repository": repository, "digest": str(digest)}

        async def load() -> int | None:
            size = await self._db.lookup(lambda c: c.scalar(_SIZE_IN_REPOSITORY, params))
            return None if size is None else int(size)

        return await self._linked.fetch(key, load)

    async def open(self, repository: str, digest: Digest) -> BlobContent:
        """Describe how to read a blob of ``repository``. Raises ``BLOB_UNKNOWN``."""
        size = await self.size_in(repository, digest)
        if size is None:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)})
        return BlobContent(digest, size, blob_path(digest))

    def stream(
        self, content: BlobContent, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes | memoryview]:
        return self._storage.reader(content.storage_key, offset, length)

    async def repositories_with(self, digest: Digest, limit: int = 50) -> list[str]:
        """Names of repositories linking ``digest`` (for automatic cross-repository mount)."""
        query = (
            select(repositories.c.name)
            .join(repository_blobs, repositories.c.id == repository_blobs.c.repository_id)
            .where(repository_blobs.c.digest == str(digest))
            .limit(limit)
        )
        return await self._db.read(lambda c: list(c.scalars(query)))

    def link(self, connection: Connection, repository: str, digest: Digest, size: int) -> None:
        """Record (inside the caller's transaction) that ``repository`` holds ``digest``.

        The bytes must already be durably in storage: rows never point at missing content.
        Raises :class:`~portside.projects.quotas.QuotaExceeded` when the blob is new to the
        project and does not fit its quota; the caller's transaction must then roll back.
        """
        ids = self.repositories.ensure(connection, repository)
        insert_ignore(connection, blobs, digest=str(digest), size=size, created_at=now())
        if insert_ignore(
            connection,
            repository_blobs,
            repository_id=ids.id,
            digest=str(digest),
            created_at=now(),
        ):  # new to the repository, maybe to the project (a repository's blobs are counted)
            self.quotas.charge(
                connection, ids.project_id, repository, str(digest), size, "this blob"
            )

    async def unlink(self, repository: str, digest: Digest) -> None:
        """Remove ``digest`` from ``repository``. Raises ``BLOB_UNKNOWN`` if it was not there."""
        ids = await self.repositories.ids_of(repository)
        if ids is None:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)})
        params = {"repository_id": ids.id, "digest": str(digest)}

        def remove(connection: Connection) -> bool:
            if not connection.execute(_UNLINK, params).rowcount:
                return False
            release_unreferenced(connection, ids.project_id, [str(digest)])
            return True

        deleted = await self._db.write(remove)
        self._linked.discard((repository, str(digest)))
        if not deleted:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)})
