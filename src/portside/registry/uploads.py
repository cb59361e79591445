"""Blob uploads: POST, PATCH, PUT, GET status, DELETE, and cross-repository mount.

An upload is a row in ``uploads`` (which repository it belongs to, when it was last touched)
plus its bytes in storage under ``layout.upload_path``. The bytes in storage are the truth about
progress: after a restart, or on another replica, the upload continues after the bytes stored.

The row is what lets another process find the upload. When no other process can (SQLite: one
server process owns the database), an upload that has stored no bytes yet keeps its row in
memory, unsaved: most uploads are a POST and a PUT carrying the whole blob, which then costs
no upload row at all. The row is saved before the upload's first bytes are stored, and for every
upload still open when the server shuts down, so a restart loses none.

Hashing is incremental: each process keeps a hasher per upload it is serving, fed as the bytes
arrive, so the closing PUT does not read the data again. Only when that state is missing (after
a restart, or when another replica took part of the upload) is the stored prefix re-hashed once.

Quotas: in a project with a storage limit, an upload whose bytes (declared or received so far)
would not fit what the project has left is refused with ``DENIED`` and discarded, mid-push if need
be. The final decision is taken when the blob is linked (:mod:`portside.projects.quotas`); a push
refused there is discarded too, leaving no row behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import mmap
import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, bindparam, delete, select, update

from portside.db.engine import Database
from portside.db.queries import now
from portside.db.tables import uploads
from portside.oci.digest import Digest, new_hasher
from portside.oci.errors import ErrorCode, RegistryError
from portside.projects.quotas import QuotaExceeded, Room
from portside.registry.blobs import Blobs
from portside.registry.cache import LRUCache
from portside.storage.base import StorageDriver, Writer
from portside.storage.layout import blob_path, upload_path

__all__ = ["ContentRange", "UploadStatus", "Uploads", "parse_content_range"]

log = structlog.get_logger(__name__)

_BATCH = 8 << 20  # bytes handed to the hashing/writing threads at a time
_SPARE_BUFFERS = 4  # idle batch buffers kept for reuse (32 MiB at most)
_INLINE_HASH = 256 << 10  # smaller batches are hashed on the event loop (about 0.15 ms)
_MAX_SESSIONS = 256  # open upload writers kept per process
_MAX_UNSAVED = 10_000  # upload rows kept in memory only; beyond this the oldest are saved
# Built once (see db.queries).
_INSERT_UPLOAD = uploads.insert()
_DELETE_UPLOAD = delete(uploads).where(uploads.c.id == bindparam("id"))
_UPLOAD_OWNER = select(uploads.c.repository).where(uploads.c.id == bindparam("id"))
_TOUCH_UPLOAD = (
    update(uploads)
    .where(uploads.c.id == bindparam("upload_id"))
    .values(updated_at=bindparam("touched_at"))
)
_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d{1,19})-(\d{1,19})(?:/(?:\d{1,19}|\*))?$")


@dataclass(frozen=True, slots=True)
class UploadStatus:
    id: uuid.UUID
    repository: str
    size: int

    def headers(self) -> dict[str, str]:
        """The spec's progress headers, sent with every upload response, 416 included."""
        return {
            "Location": f"/v2/{self.repository}/blobs/uploads/{self.id}",
            "Range": f"0-{max(self.size - 1, 0)}",
            "Docker-Upload-UUID": str(self.id),
        }


@dataclass(frozen=True, slots=True)
class ContentRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_content_range(value: str) -> ContentRange:
    """Parse a PATCH ``Content-Range`` (``start-end``, inclusive). Raises ``RANGE_INVALID``."""
    match = _CONTENT_RANGE.match(value.strip())
    if not match or int(match[2]) < int(match[1]):
        raise RegistryError(ErrorCode.RANGE_INVALID, f"invalid Content-Range {value[:80]!r}")
    return ContentRange(int(match[1]), int(match[2]))


def _check_chunk_range(
    current: UploadStatus, content_range: ContentRange, content_length: int | None
) -> None:
    """A chunk must start where the upload ends (else ``RANGE_INVALID``, 416, with the progress
    headers so the client can resume) and be as long as its ``Content-Length`` says."""
    if content_range.start != current.size:
        raise RegistryError(
            ErrorCode.RANGE_INVALID,
            f"chunk must start at byte {current.size}",
            headers=current.headers(),
        )
    if content_length is not None and content_length != content_range.length:
        raise RegistryError(ErrorCode.SIZE_INVALID, "Content-Length does not match Content-Range")


@dataclass(slots=True)
class _Session:
    """This process's open state of one upload: the writer and the running hash."""

    writer: Writer
    hasher: Any
    hashed: int


class Uploads:
    def __init__(
        self, db: Database, storage: StorageDriver, blobs: Blobs, purge_age_seconds: float
    ) -> None:
        self._db = db
        self._storage = storage
        self._blobs = blobs
        self._repos = blobs.repositories
        self._quotas = blobs.quotas
        # Recording activity on every PATCH would cost a write per chunk; once per slice of the
        # purge age keeps an active upload safely young.
        self._touch_interval = min(60.0, purge_age_seconds / 4)
        self._touched: LRUCache[uuid.UUID, bool] = LRUCache(10_000, self._touch_interval)
        self._spare_buffers: list[mmap.mmap] = []
        self._sessions: OrderedDict[uuid.UUID, _Session] = OrderedDict()
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        # Which repository an upload belongs to never changes; remembered to skip a query.
        self._owners: LRUCache[uuid.UUID, str] = LRUCache(10_000, float("inf"))
        # Counts owners forgotten (uploads finished or discarded): a lookup that read an owner
        # while one was forgotten must not cache it, or a purged upload would live on here.
        self._owners_forgotten = 0
        # Rows of uploads that stored no bytes yet, oldest first (see the module docstring).
        self._defer_rows = not db.shared
        self._unsaved: OrderedDict[uuid.UUID, dict[str, Any]] = OrderedDict()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, repository: str) -> UploadStatus:
        upload_id = uuid.uuid4()
        stamp = now()
        row = {
            "id": str(upload_id),
            "repository": repository,
            "created_at": stamp,
            "updated_at": stamp,
        }
        self._owners.put(upload_id, repository)
        if not self._defer_rows:
            await self._db.write(lambda c: c.execute(_INSERT_UPLOAD, row))
            return UploadStatus(upload_id, repository, 0)
        self._unsaved[upload_id] = row
        if len(self._unsaved) > _MAX_UNSAVED:
            await self._save(next(iter(self._unsaved)))
        return UploadStatus(upload_id, repository, 0)

    async def status(self, repository: str, upload_id: uuid.UUID) -> UploadStatus:
        await self._require_row(repository, upload_id)
        async with self._lock(upload_id):
            # Storage, not this process's session: another replica may have appended since.
            size = await self._stored_size(upload_id)
        return UploadStatus(upload_id, repository, size)

    async def append(
        self,
        repository: str,
        upload_id: uuid.UUID,
        body: AsyncIterator[bytes],
        content_range: ContentRange | None,
        content_length: int | None,
    ) -> UploadStatus:
        """Append a PATCH body. With ``content_range`` it must start at the current size (else
        ``RANGE_INVALID``, 416) and match ``content_length`` when both are given."""
        await self._require_row(repository, upload_id)
        room = await self._quotas.room_for(repository)
        async with self._lock(upload_id):
            await self._save(upload_id)
            session = await self._session(upload_id)
            if content_range is not None:
                _check_chunk_range(
                    UploadStatus(upload_id, repository, session.writer.size),
                    content_range,
                    content_length,
                )
            try:
                await self._pump(upload_id, session, body, content_length, room)
            except QuotaExceeded:
                await self._discard(upload_id)
                raise
            size = session.writer.size
        await self._touch(upload_id)
        return UploadStatus(upload_id, repository, size)

    async def finish(
        self,
        repository: str,
        upload_id: uuid.UUID,
        digest: Digest,
        body: AsyncIterator[bytes],
        size_hint: int | None = None,
        content_range: ContentRange | None = None,
    ) -> int:
        """Append the closing PUT's body, verify ``digest`` and make the blob part of
        ``repository``. Returns the blob size. A digest mismatch discards the upload; a final
        chunk whose ``content_range`` does not start at the current size is refused as in
        :meth:`append` and leaves the upload as it was."""
        await self._require_row(repository, upload_id)
        # Only a blob new to the project needs room (None: no limit applies).
        room = await self._quotas.room_for(repository, str(digest))
        await self._repos.ids_of(repository)  # cached: the link then needs no lookup
        async with self._lock(upload_id):
            if content_range is not None:
                # Storage, not a session: checking must not open one (see _is_whole_small_body).
                current = UploadStatus(upload_id, repository, await self._stored_size(upload_id))
                _check_chunk_range(current, content_range, size_hint)

            try:
                if await self._is_whole_small_body(upload_id, size_hint):
                    size = await self._finish_small(upload_id, digest, body, room)
                else:
                    await self._save(upload_id)
                    size = await self._finish_streamed(upload_id, digest, body, size_hint, room)
                has_row = upload_id not in self._unsaved

                def store_rows(connection: Connection) -> None:
                    self._blobs.link(connection, repository, digest, size)
                    if has_row:
                        connection.execute(_DELETE_UPLOAD, {"id": str(upload_id)})

                await self._db.write(store_rows)
            except QuotaExceeded:
                # Refused before the bytes were kept or, when another push took the room
                # first, by the link: nothing is linked. Bytes already moved to their blob key
                # stay unreferenced, for garbage collection (another project may share them).
                await self._discard(upload_id)
                self._locks.pop(upload_id, None)
                raise
        self._forget_owner(upload_id)
        self._unsaved.pop(upload_id, None)
        self._locks.pop(upload_id, None)
        return size

    async def _is_whole_small_body(self, upload_id: uuid.UUID, size_hint: int | None) -> bool:
        """The closing PUT carries the whole blob, and a small one (the common case for
        configs and small layers): no upload key was ever stored."""
        return (
            size_hint is not None
            and size_hint <= _INLINE_HASH
            and upload_id not in self._sessions
            # An unsaved upload has stored nothing, here or anywhere else.
            and (
                upload_id in self._unsaved
                or await self._storage.stat(upload_path(upload_id)) is None
            )
        )

    async def _finish_small(
        self, upload_id: uuid.UUID, digest: Digest, body: AsyncIterator[bytes], room: Room | None
    ) -> int:
        """Verify and store a small whole blob in one durable ``put``, skipping the upload key."""
        data = b"".join([chunk async for chunk in body])
        if room is not None and len(data) > room.left:
            raise room.refuse(len(data), "this blob")
        await self._verify(upload_id, digest, Digest.of(data, digest.algorithm))
        await self._storage.put_new(blob_path(digest), data)
        return len(data)

    async def _finish_streamed(
        self,
        upload_id: uuid.UUID,
        digest: Digest,
        body: AsyncIterator[bytes],
        size_hint: int | None,
        room: Room | None,
    ) -> int:
        session = await self._session(upload_id)
        await self._pump(upload_id, session, body, size_hint, room)
        await self._verify(
            upload_id, digest, await self._digest_of(upload_id, session, digest.algorithm)
        )
        # No commit: move() makes the blob durable, and on S3 assembles it only once.
        await session.writer.close()
        self._sessions.pop(upload_id, None)
        await self._store_blob(upload_id, digest)
        return session.writer.size

    async def _verify(self, upload_id: uuid.UUID, expected: Digest, actual: Digest) -> None:
        """A blob that does not match its digest discards the whole upload."""
        if actual != expected:
            await self._discard(upload_id)
            raise RegistryError(
                ErrorCode.DIGEST_INVALID,
                detail={"expected": str(expected), "actual": str(actual)},
            )

    async def cancel(self, repository: str, upload_id: uuid.UUID) -> None:
        await self._require_row(repository, upload_id)
        async with self._lock(upload_id):
            await self._discard(upload_id)
        self._locks.pop(upload_id, None)

    async def mount(self, repository: str, digest: Digest, source: str) -> int | None:
        """Link a blob of ``source`` into ``repository``. Returns its size, or None when
        ``source`` does not hold it. The caller has checked that pulling ``source`` is allowed."""
        size = await self._blobs.size_in(source, digest)
        if size is None:
            return None
        room = await self._quotas.room_for(repository, str(digest))
        if room is not None and size > room.left:
            raise room.refuse(size, "this blob")
        await self._repos.ids_of(repository)  # cached: the link then needs no lookup
        await self._db.write(lambda c: self._blobs.link(c, repository, digest, size))
        return size

    async def purge_abandoned(self, max_age: dt.timedelta) -> int:
        """Delete uploads untouched for ``max_age``. Returns how many were removed."""
        cutoff = now() - max_age
        while self._unsaved:  # oldest first; none of them has stored anything
            upload_id, row = next(iter(self._unsaved.items()))
            if row["updated_at"] >= cutoff:
                break
            del self._unsaved[upload_id]
            self._forget_owner(upload_id)
        query = select(uploads.c.id).where(uploads.c.updated_at < cutoff)
        stale = await self._db.read(lambda c: list(c.scalars(query)))
        for raw_id in stale:
            upload_id = uuid.UUID(raw_id)
            async with self._lock(upload_id):
                await self._discard(upload_id)
            self._locks.pop(upload_id, None)
        if stale:
            log.info("purged abandoned uploads", count=len(stale))
        return len(stale)

    async def close(self) -> None:
        """Close open writers, keeping their bytes so the uploads stay resumable, and save
        the rows of open uploads kept in memory, so that they can be continued after a restart."""
        for session in self._sessions.values():
            await session.writer.flush()
            await session.writer.close()
        self._sessions.clear()
        rows = list(self._unsaved.values())
        if rows:
            await self._db.write(lambda c: c.execute(_INSERT_UPLOAD, rows))
            self._unsaved.clear()

    # -- internals --------------------------------------------------------------------------

    def _lock(self, upload_id: uuid.UUID) -> asyncio.Lock:
        lock = self._locks.get(upload_id)
        if lock is None:
            lock = self._locks[upload_id] = asyncio.Lock()
        return lock

    async def _require_row(self, repository: str, upload_id: uuid.UUID) -> None:
        unsaved = self._unsaved.get(upload_id)
        owner = unsaved["repository"] if unsaved else self._owners.get(upload_id)
        if owner is None:
            params = {"id": str(upload_id)}
            forgotten = self._owners_forgotten
            owner = await self._db.read(lambda c: c.scalar(_UPLOAD_OWNER, params))
            if owner is not None and forgotten == self._owners_forgotten:
                self._owners.put(upload_id, owner)
        if owner != repository:
            raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, detail={"uuid": str(upload_id)})

    def _forget_owner(self, upload_id: uuid.UUID) -> None:
        self._owners.discard(upload_id)
        self._owners_forgotten += 1

    async def _save(self, upload_id: uuid.UUID) -> None:
        """Write the upload's row if it is still only in memory: bytes are about to be stored,
        and stored bytes must always have a row (the purge finds abandoned ones by it)."""
        unsaved = self._unsaved.pop(upload_id, None)
        if unsaved is None:
            return
        row = {**unsaved, "updated_at": now()}  # it is active now, whenever it started
        try:
            await self._db.write(lambda c: c.execute(_INSERT_UPLOAD, row))
        except BaseException:
            self._unsaved[upload_id] = unsaved
            raise
        self._touched.put(upload_id, True)

    async def _stored_size(self, upload_id: uuid.UUID) -> int:
        return await self._storage.stat(upload_path(upload_id)) or 0

    async def _session(self, upload_id: uuid.UUID) -> _Session:
        """The open session, reopened from storage when this process has none or when the
        stored size moved on without it (another replica served a chunk)."""
        session = self._sessions.get(upload_id)
        if session is not None:
            if await self._stored_size(upload_id) == session.writer.size:
                self._sessions.move_to_end(upload_id)
                return session
            await session.writer.close()
            del self._sessions[upload_id]
        writer = await self._storage.writer(upload_path(upload_id), append=True)
        session = _Session(writer, new_hasher("sha256"), 0)
        if writer.size:
            await self._rehash(upload_id, session, "sha256")
        self._sessions[upload_id] = session
        while len(self._sessions) > _MAX_SESSIONS:
            _, evicted = self._sessions.popitem(last=False)
            await evicted.writer.close()
        return session

    async def _rehash(self, upload_id: uuid.UUID, session: _Session, algorithm: str) -> None:
        hasher = new_hasher(algorithm)
        async for chunk in self._storage.reader(upload_path(upload_id), 0, session.writer.size):
            await asyncio.to_thread(hasher.update, chunk)
        session.hasher, session.hashed = hasher, session.writer.size

    async def _digest_of(self, upload_id: uuid.UUID, session: _Session, algorithm: str) -> Digest:
        if session.hasher.name != algorithm or session.hashed != session.writer.size:
            await self._rehash(upload_id, session, algorithm)
        return Digest(algorithm, session.hasher.copy().hexdigest())

    async def _pump(
        self,
        upload_id: uuid.UUID,
        session: _Session,
        body: AsyncIterator[bytes],
        size_hint: int | None = None,
        room: Room | None = None,
    ) -> None:
        """Stream ``body`` into the upload, hashing and writing each batch in worker threads
        while the next batch is received. Of a large body cut off by a client disconnect, the
        batches received are kept; a small one (up to 256 KiB) is stored whole or not at all.

        With ``room`` (a project quota applies), raises ``QuotaExceeded`` as soon as the upload's
        size, counting ``size_hint`` up front, would pass what the project has left; the caller
        discards the upload.

        Two batch buffers take turns, so receiving copies each byte once and never regrows a
        buffer: one is filled while the other is hashed and written. ``size_hint`` (the
        Content-Length) keeps them small for small bodies.
        """
        start = session.writer.size
        if room is not None and size_hint is not None and start + size_hint > room.left:
            raise room.refuse(start + size_hint, "this upload")
        size = min(_BATCH, size_hint) if size_hint else _BATCH
        buffers: list[mmap.mmap] = []
        current, filled = 0, 0
        pending: asyncio.Future[None] | None = None

        async def consume(batch: memoryview) -> None:
            if len(batch) <= _INLINE_HASH:
                session.hasher.update(batch)  # cheaper than a thread hop
                await session.writer.write(batch)
            else:
                await asyncio.gather(
                    asyncio.to_thread(session.hasher.update, batch), session.writer.write(batch)
                )
            session.hashed += len(batch)

        try:
            if size_hint is not None and size_hint <= _INLINE_HASH:
                # A small body (its length is enforced by the server): one write, no batching.
                small = b"".join([chunk async for chunk in body])
                if small:
                    await consume(memoryview(small))
                return
            received = 0
            async for chunk in body:
                received += len(chunk)
                if room is not None and start + received > room.left:
                    raise room.refuse(start + received, "this upload")
                view = memoryview(chunk)
                while view:
                    if len(buffers) <= current:
                        buffers.append(self._take_buffer(size))
                    take = min(len(view), size - filled)
                    buffers[current][filled : filled + take] = view[:take]
                    filled += take
                    view = view[take:]
                    if filled == size:
                        if pending is not None:
                            await pending  # the other buffer is free again
                        pending = asyncio.ensure_future(consume(memoryview(buffers[current])))
                        current, filled = 1 - current, 0
        finally:
            try:
                if pending is not None:
                    await pending
                if filled:
                    await consume(memoryview(buffers[current])[:filled])
                await session.writer.flush()
            except BaseException:
                # The writer's and the hasher's state may disagree now; start afresh next time.
                self._sessions.pop(upload_id, None)
                with contextlib.suppress(Exception):
                    await session.writer.close()
                raise
        # Only after success: a failed batch may still be read by a worker thread.
        for buffer in buffers:
            if len(buffer) == _BATCH and len(self._spare_buffers) < _SPARE_BUFFERS:
                self._spare_buffers.append(buffer)

    def _take_buffer(self, size: int) -> mmap.mmap:
        """A batch buffer: page-aligned (mmap) so the filesystem driver can use O_DIRECT, and
        reused between uploads, since touching fresh memory is what VMs are slowest at."""
        if size == _BATCH and self._spare_buffers:
            return self._spare_buffers.pop()
        return mmap.mmap(-1, size)

    async def _touch(self, upload_id: uuid.UUID) -> None:
        """Record activity, so the purge leaves the upload alone; at most once an interval."""
        if self._touched.get(upload_id):
            return
        params = {"upload_id": str(upload_id), "touched_at": now()}
        await self._db.write(lambda c: c.execute(_TOUCH_UPLOAD, params))
        self._touched.put(upload_id, True)

    async def _store_blob(self, upload_id: uuid.UUID, digest: Digest) -> None:
        if await self._storage.stat(blob_path(digest)) is not None:
            await self._storage.delete(upload_path(upload_id))  # content already stored once
        else:
            await self._storage.move(upload_path(upload_id), blob_path(digest))

    async def _discard(self, upload_id: uuid.UUID) -> None:
        self._forget_owner(upload_id)
        if self._unsaved.pop(upload_id, None) is not None:
            return  # nothing stored, no row
        session = self._sessions.pop(upload_id, None)
        if session is not None:
            await session.writer.close()
        await self._storage.delete(upload_path(upload_id))
        await self._db.write(lambda c: c.execute(_DELETE_UPLOAD, {"id": str(upload_id)}))
