"""Manifests and tags: push with reference checks, pull by tag or digest, delete, tag listing,
and the referrers index.

Manifest bytes are stored once per digest in blob storage and returned byte for byte; the row in
``manifests`` records which repository holds it, its media type, subject and artifact type.
Tags live only in the database.

A manifest's bytes count towards its project's quota like a blob's: pushing one that does not fit
is refused before its bytes are stored (an estimate) and when its row is inserted (the decision);
deleting one stops counting it once nothing else in the project references its digest.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, bindparam, delete, select

from portside.db.engine import Database
from portside.db.queries import insert_ignore, now, upsert
from portside.db.tables import blobs, manifest_references, manifests, repository_blobs, tags
from portside.oci.digest import Digest, parse_digest
from portside.oci.errors import ErrorCode, RegistryError
from portside.oci.manifest import ParsedManifest, parse_manifest
from portside.oci.names import validate_tag
from portside.projects.quotas import ProjectQuotas, release_unreferenced
from portside.registry.cache import LRUCache
from portside.registry.pulls import PullRecorder
from portside.registry.repositories import Repositories, RepositoryIds
from portside.storage.base import PathNotFound, StorageDriver
from portside.storage.layout import blob_path

__all__ = ["ManifestRecord", "Manifests", "PushedManifest", "Reference", "parse_reference"]

log = structlog.get_logger(__name__)

_BODY_CACHE_MAX_BYTES = 16 << 10  # manifests above this are read from storage each time

# Hot statements, built once (see db.queries).
_RECORD_COLUMNS = (manifests.c.digest, manifests.c.media_type, manifests.c.size)
_BY_TAG = (
    select(*_RECORD_COLUMNS)
    .join(tags, tags.c.manifest_id == manifests.c.id)
    .where(tags.c.repository_id == bindparam("repository_id"), tags.c.name == bindparam("name"))
)
_BY_DIGEST = select(*_RECORD_COLUMNS).where(
    manifests.c.repository_id == bindparam("repository_id"),
    manifests.c.digest == bindparam("digest"),
)
_MANIFEST_ID = select(manifests.c.id).where(
    manifests.c.repository_id == bindparam("repository_id"),
    manifests.c.digest == bindparam("digest"),
)
_LINKED_BLOBS = select(repository_blobs.c.digest).where(
    repository_blobs.c.repository_id == bindparam("repository_id"),
    repository_blobs.c.digest.in_(bindparam("digests", expanding=True)),
)
_PRESENT_MANIFESTS = select(manifests.c.digest).where(
    manifests.c.repository_id == bindparam("repository_id"),
    manifests.c.digest.in_(bindparam("digests", expanding=True)),
)
_INSERT_REFERENCE = manifest_references.insert()


@dataclass(frozen=True, slots=True)
class Reference:
    """A manifest reference from a URL: exactly one of tag and digest is set."""

    tag: str | None
    digest: Digest | None

    def __str__(self) -> str:
        return self.tag if self.tag is not None else str(self.digest)


def parse_reference(value: str) -> Reference:
    """A tag or a digest. Raises ``TAG_INVALID`` or ``DIGEST_INVALID``."""
    if ":" in value:
        return Reference(None, parse_digest(value))
    return Reference(validate_tag(value), None)


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: Digest
    media_type: str
    size: int
    repository: str = ""  # where it was resolved: what a GET of its body counts a pull for


@dataclass(frozen=True, slots=True)
class PushedManifest:
    digest: Digest
    subject: Digest | None


class Manifests:
    def __init__(
        self,
        db: Database,
        storage: StorageDriver,
        repos: Repositories,
        max_bytes: int,
        cache_ttl: float,
        *,
        quotas: ProjectQuotas,
        pulls: PullRecorder | None = None,
    ) -> None:
        self._db = db
        self._pulls = pulls
        self._storage = storage
        self._repos = repos
        self._quotas = quotas
        self.max_bytes = max_bytes
        self._by_tag: LRUCache[tuple[str, str], ManifestRecord] = LRUCache(50_000, cache_ttl)
        self._by_digest: LRUCache[tuple[str, str], ManifestRecord] = LRUCache(50_000, cache_ttl)
        # Content-addressed bytes never change, so this cache needs no invalidation.
        self._bodies: LRUCache[str, bytes] = LRUCache(2048, float("inf"))
        # Each repository's whole sorted tag list; dropped by every local tag change.
        self._tag_lists: LRUCache[str, list[str]] = LRUCache(64, cache_ttl)
        repos.on_delete(self._forget_repository)

    def _forget_repository(self, _name: str) -> None:
        self._by_tag.clear()
        self._by_digest.clear()
        self._tag_lists.clear()

    # -- pull --------------------------------------------------------------------------------

    async def resolve(self, repository: str, reference: Reference) -> ManifestRecord:
        """Find a manifest by tag or digest. Raises ``MANIFEST_UNKNOWN``."""
        cache = self._by_tag if reference.tag is not None else self._by_digest
        key = (repository, str(reference))
        record = cache.get(key)
        if record is not None:
            return record

        async def load() -> ManifestRecord | None:
            repository_id = await self._repos.id_of(repository)
            if repository_id is None:
                return None
            if reference.tag is not None:
                query, params = _BY_TAG, {"repository_id": repository_id, "name": reference.tag}
            else:
                query = _BY_DIGEST
                params = {"repository_id": repository_id, "digest": str(reference.digest)}
            row = await self._db.read(lambda c: c.execute(query, params).first())
            if row is None:
                return None
            return ManifestRecord(
                Digest.parse(row.digest), row.media_type, int(row.size), repository
            )

        record = await cache.fetch(key, load)
        if record is None:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"reference": str(reference)})
        return record

    async def body(self, record: ManifestRecord) -> bytes:
        """The manifest's bytes for a pull: the pull is counted (in memory, see
        :mod:`portside.registry.pulls`)."""
        raw = await self.content(record.digest)
        if self._pulls is not None and record.repository:
            self._pulls.record(record.repository, str(record.digest))
        return raw

    async def content(self, digest: Digest) -> bytes:
        """The manifest's bytes, without counting a pull. Raises ``MANIFEST_UNKNOWN``."""
        cached = self._bodies.get(str(digest))
        if cached is not None:
            return cached
        try:
            raw = await self._storage.get(blob_path(digest))
        except PathNotFound:
            raise RegistryError(
                ErrorCode.MANIFEST_UNKNOWN, "manifest content is missing from storage"
            ) from None
        # Checked once per read from storage (the cache keeps bytes forever): wrong bytes kept
        # under this digest are never served (portside fsck --verify-digests repairs them).
        actual = Digest.of(raw, digest.algorithm)
        if actual != digest:
            log.error(
                "manifest bytes do not match their digest", digest=str(digest), actual=str(actual)
            )
            raise RegistryError(
                ErrorCode.MANIFEST_UNKNOWN, "manifest content in storage does not match its digest"
            )
        if len(raw) <= _BODY_CACHE_MAX_BYTES:
            self._bodies.put(str(digest), raw)
        return raw

    # -- push --------------------------------------------------------------------------------

    async def put(
        self, repository: str, reference: Reference, raw: bytes, content_type: str | None
    ) -> PushedManifest:
        """Validate and store a manifest, then tag it when ``reference`` is a tag."""
        if len(raw) > self.max_bytes:
            raise RegistryError(
                ErrorCode.SIZE_INVALID,
                f"manifest is larger than the limit of {self.max_bytes} bytes",
                status=413,
            )
        parsed = parse_manifest(raw, content_type)
        algorithm = reference.digest.algorithm if reference.digest else "sha256"
        digest = Digest.of(raw, algorithm)
        if reference.digest is not None and reference.digest != digest:
            raise RegistryError(
                ErrorCode.DIGEST_INVALID,
                "manifest digest does not match the reference",
                detail={"expected": str(reference.digest), "actual": str(digest)},
            )
        # A manifest refused for missing references must leave nothing behind, so check them
        # before storing its bytes (and again in the transaction, against concurrent deletes).
        repository_id = await self._repos.id_of(repository)
        if repository_id is not None:
            known_id = repository_id
            await self._db.read(lambda c: self._check_references(c, known_id, parsed))
        elif any(not d.foreign for d in parsed.blobs) or parsed.manifests:
            self._check_references_missing_repository(parsed)
        room = await self._quotas.room_for(repository, str(digest))
        if room is not None and len(raw) > room.left:
            raise room.refuse(len(raw), "this manifest")
        # Bytes first, rows second: a crash leaves an orphan blob, never a dangling row.
        await self._storage.put_new(blob_path(digest), raw)

        def store_rows(connection: Connection) -> None:
            ids = self._repos.ensure(connection, repository)
            self._check_references(connection, ids.id, parsed)
            manifest_id = self._insert(connection, ids, repository, digest, raw, parsed)
            if reference.tag is not None:
                upsert(
                    connection,
                    tags,
                    {"repository_id": ids.id, "name": reference.tag},
                    {"manifest_id": manifest_id, "updated_at": now()},
                )

        await self._db.write(store_rows)
        record = ManifestRecord(digest, parsed.media_type, len(raw), repository)
        self._by_digest.put((repository, str(digest)), record)
        if reference.tag is not None:
            self._by_tag.put((repository, reference.tag), record)
            self._tag_lists.discard(repository)
        return PushedManifest(digest, parsed.subject)

    @staticmethod
    def _check_references_missing_repository(parsed: ParsedManifest) -> None:
        """A repository nothing was pushed to holds no blobs: every reference is missing."""
        missing = {str(d.digest) for d in parsed.blobs if not d.foreign}
        missing |= {str(d.digest) for d in parsed.manifests}
        raise RegistryError(ErrorCode.MANIFEST_BLOB_UNKNOWN, detail={"digests": sorted(missing)})

    def _check_references(
        self, connection: Connection, repository_id: int, parsed: ParsedManifest
    ) -> None:
        wanted_blobs = {str(d.digest) for d in parsed.blobs if not d.foreign}
        wanted_manifests = {str(d.digest) for d in parsed.manifests}
        missing: set[str] = set()
        if wanted_blobs:
            params = {"repository_id": repository_id, "digests": list(wanted_blobs)}
            found = set(connection.scalars(_LINKED_BLOBS, params))
            missing |= wanted_blobs - found
        if wanted_manifests:
            params = {"repository_id": repository_id, "digests": list(wanted_manifests)}
            found = set(connection.scalars(_PRESENT_MANIFESTS, params))
            missing |= wanted_manifests - found
        if missing:
            raise RegistryError(
                ErrorCode.MANIFEST_BLOB_UNKNOWN, detail={"digests": sorted(missing)}
            )

    def _insert(
        self,
        connection: Connection,
        ids: RepositoryIds,
        repository: str,
        digest: Digest,
        raw: bytes,
        parsed: ParsedManifest,
    ) -> int:
        """Insert the manifest row (if new) and what it references, and count it towards the
        project's quota. Raises ``QuotaExceeded``: the caller's transaction then rolls back."""
        repository_id = ids.id
        stamp = now()
        insert_ignore(connection, blobs, digest=str(digest), size=len(raw), created_at=stamp)
        inserted = insert_ignore(
            connection,
            manifests,
            repository_id=repository_id,
            digest=str(digest),
            media_type=parsed.media_type,
            artifact_type=parsed.artifact_type,
            size=len(raw),
            subject_digest=str(parsed.subject) if parsed.subject else None,
            annotations=json.dumps(parsed.annotations) if parsed.annotations else None,
            config_media_type=parsed.blobs[0].media_type if parsed.blobs else None,
            created_at=stamp,
        )
        manifest_id = connection.scalar(
            _MANIFEST_ID, {"repository_id": repository_id, "digest": str(digest)}
        )
        assert manifest_id is not None
        if inserted:
            self._quotas.charge(
                connection, ids.project_id, repository, str(digest), len(raw), "this manifest"
            )
            references = {(str(d.digest), "blob") for d in parsed.blobs} | {
                (str(d.digest), "manifest") for d in parsed.manifests
            }
            if references:
                connection.execute(
                    _INSERT_REFERENCE,
                    [{"manifest_id": manifest_id, "digest": d, "kind": k} for d, k in references],
                )
        return int(manifest_id)

    # -- management API: copy and tag ---------------------------------------------------------

    async def copy(self, source: str, reference: Reference, target: str) -> Digest:
        """Make the manifest ``reference`` of ``source`` (with its children, and every blob they
        reference) available in ``target`` too, tagged like the reference when it is a tag.

        Nothing is copied in storage: rows link the same content, and count it towards the
        target project's quota (raising ``QuotaExceeded`` when it does not fit).
        """
        record = await self.resolve(source, reference)
        ordered: list[tuple[Digest, bytes, ParsedManifest]] = []
        seen: set[str] = set()

        async def gather(digest: Digest, media_type: str) -> None:
            if str(digest) in seen:
                return
            seen.add(str(digest))
            raw = await self.content(digest)
            parsed = parse_manifest(raw, media_type)
            for child in parsed.manifests:
                await gather(child.digest, child.media_type)
            ordered.append((digest, raw, parsed))  # children first, as a push must be

        await gather(record.digest, record.media_type)
        wanted = sorted({str(d.digest) for _, _, p in ordered for d in p.blobs if not d.foreign})
        query = select(blobs.c.digest, blobs.c.size).where(blobs.c.digest.in_(wanted))
        sizes = {
            row.digest: int(row.size)
            for row in await self._db.read(lambda c: c.execute(query).all())
        }
        missing = set(wanted) - set(sizes)
        if missing:
            raise RegistryError(
                ErrorCode.MANIFEST_BLOB_UNKNOWN, detail={"digests": sorted(missing)}
            )
        await self._repos.ids_of(target)  # warm the cache outside the transaction

        def store_rows(connection: Connection) -> None:
            ids = self._repos.ensure(connection, target)
            stamp = now()
            for digest, size in sizes.items():
                if insert_ignore(
                    connection,
                    repository_blobs,
                    repository_id=ids.id,
                    digest=digest,
                    created_at=stamp,
                ):
                    self._quotas.charge(
                        connection, ids.project_id, target, digest, size, "this blob"
                    )
            manifest_id = 0
            for digest, raw, parsed in ordered:
                manifest_id = self._insert(connection, ids, target, digest, raw, parsed)
            if reference.tag is not None:
                upsert(
                    connection,
                    tags,
                    {"repository_id": ids.id, "name": reference.tag},
                    {"manifest_id": manifest_id, "updated_at": stamp},
                )

        await self._db.write(store_rows)
        self._tag_lists.discard(target)
        if reference.tag is not None:
            self._by_tag.discard((target, reference.tag))
        return record.digest

    async def add_tag(self, repository: str, tag: str, digest: Digest) -> bool:
        """Tag the manifest ``digest`` of ``repository``. False when the tag exists already
        (it is not moved). Raises ``MANIFEST_UNKNOWN`` when there is no such manifest."""
        repository_id = await self._repos.id_of(repository)
        if repository_id is None:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"reference": str(digest)})
        params = {"repository_id": repository_id, "digest": str(digest)}

        def store(connection: Connection) -> bool | None:
            manifest_id = connection.scalar(_MANIFEST_ID, params)
            if manifest_id is None:
                return None
            return insert_ignore(
                connection,
                tags,
                repository_id=repository_id,
                name=tag,
                manifest_id=int(manifest_id),
                updated_at=now(),
            )

        created = await self._db.write(store)
        if created is None:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"reference": str(digest)})
        self._tag_lists.discard(repository)
        self._by_tag.discard((repository, tag))
        return created

    # -- delete ------------------------------------------------------------------------------

    async def delete(self, repository: str, reference: Reference) -> None:
        """Delete a tag, or a manifest by digest with every tag pointing to it.

        Raises ``MANIFEST_UNKNOWN`` when there is nothing to delete.
        """
        ids = await self._repos.ids_of(repository)
        deleted = 0
        if ids is not None:
            if reference.tag is not None:
                statement = delete(tags).where(
                    tags.c.repository_id == ids.id, tags.c.name == reference.tag
                )
            else:
                statement = delete(manifests).where(
                    manifests.c.repository_id == ids.id,
                    manifests.c.digest == str(reference.digest),
                )
            project_id = ids.project_id

            def remove(connection: Connection) -> int:
                count = int(connection.execute(statement).rowcount)
                if count and reference.digest is not None:
                    release_unreferenced(connection, project_id, [str(reference.digest)])
                return count

            deleted = await self._db.write(remove)
        self._tag_lists.discard(repository)
        if reference.tag is not None:
            self._by_tag.discard((repository, reference.tag))
        else:
            self._by_digest.discard((repository, str(reference.digest)))
            self._by_tag.clear()  # tags of the deleted manifest went with it
        if not deleted:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"reference": str(reference)})

    # -- listing -----------------------------------------------------------------------------

    async def tags(self, repository: str, limit: int | None, last: str | None) -> list[str]:
        """Tags in byte order after ``last``; at most ``limit`` when given.

        Raises ``NAME_UNKNOWN`` for a repository that was never pushed to.
        """
        repository_id = await self._repos.id_of(repository)
        if repository_id is None:
            raise RegistryError(ErrorCode.NAME_UNKNOWN, detail={"name": repository})
        names = self._tag_lists.get(repository)
        if names is None:
            query = select(tags.c.name).where(tags.c.repository_id == repository_id)
            loaded: list[str] = await self._db.read(
                lambda c: list(c.scalars(query.order_by(tags.c.name)))
            )
            # Python's str order is code point order, which for UTF-8 is the byte order the
            # database used; sorting again guards the bisect below against a collation surprise.
            loaded.sort()
            self._tag_lists.put(repository, loaded)
            names = loaded
        start = bisect.bisect_right(names, last) if last else 0
        end = len(names) if limit is None else start + limit
        return names[start:end]

    async def referrers(
        self, repository: str, subject: Digest, artifact_type: str | None
    ) -> list[dict[str, Any]]:
        """Descriptors of the manifests in ``repository`` whose subject is ``subject``."""
        repository_id = await self._repos.id_of(repository)
        if repository_id is None:
            return []
        query = select(
            manifests.c.digest,
            manifests.c.media_type,
            manifests.c.size,
            manifests.c.artifact_type,
            manifests.c.annotations,
        ).where(
            manifests.c.repository_id == repository_id,
            manifests.c.subject_digest == str(subject),
        )
        if artifact_type is not None:
            query = query.where(manifests.c.artifact_type == artifact_type)
        rows = await self._db.read(lambda c: c.execute(query.order_by(manifests.c.id)).all())
        descriptors = []
        for row in rows:
            descriptor: dict[str, Any] = {
                "mediaType": row.media_type,
                "digest": row.digest,
                "size": int(row.size),
            }
            if row.artifact_type:
                descriptor["artifactType"] = row.artifact_type
            if row.annotations:
                descriptor["annotations"] = json.loads(row.annotations)
            descriptors.append(descriptor)
        return descriptors
