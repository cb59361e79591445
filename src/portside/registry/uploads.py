"""Blob uploads: POST, PATCH, PUT, GET status, DELETE, and cross-repository mount.

An upload is a row in ``uploads`` (which repository it belongs to, when it was last touched,
how many bytes are committed and which *chunks* hold them) plus those chunks in storage under
``layout.upload_prefix``. The row is the truth about progress, whichever replica asks.

Appending is a compare-and-set on the committed size. A PATCH streams its body into a chunk
key no other writer uses (a random token), then commits it with ``UPDATE ... WHERE size =
<the size it started from>``. Of two appends at the same offset, on one replica or on two,
exactly one commits; the other gets ``416`` and its chunk is deleted. So no writer ever
overwrites bytes another one committed, and the committed chunks are immutable: a process may
extend the last chunk it wrote itself, past its committed length, but never rewrites a byte of
it. The closing PUT assembles exactly the committed chunks (each up to its committed length)
into the blob.

Hashing is incremental: each process keeps a hasher per upload it is serving, fed as the bytes
arrive, and the list of committed chunks that hash covers. The closing PUT uses it only when
that list is the committed one (or a prefix of it, and the rest is hashed from storage); after
a restart, or when another replica changed the upload, the committed chunks are hashed again.
Either way the digest checked is that of exactly the bytes the blob is assembled from.

When no other process can use the database (SQLite: one server process owns it), an upload
that has committed no bytes yet keeps its row in memory, unsaved: most uploads are a POST and
a PUT carrying the whole blob, which then costs no upload row at all. The row is saved with its
first committed chunk, and for every upload still open when the server shuts down, so a
restart loses none.

Quotas: in a project with a storage limit, an upload whose bytes (declared or received so far)
would not fit what the project has left is refused with ``DENIED`` and discarded, mid-push if need
be. The final decision is taken when the blob is linked (:mod:`portside.projects.quotas`); a push
refused there is discarded too, leaving no row behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
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
from portside.storage.base import PathNotFound, StorageDriver, StorageError, Writer
from portside.storage.layout import UPLOADS_PREFIX, blob_path, upload_chunk_path, upload_prefix

__all__ = ["ContentRange", "UploadStatus", "Uploads", "parse_content_range"]

log = structlog.get_logger(__name__)

_BATCH = 8 << 20  # bytes handed to the hashing/writing threads at a time
_SPARE_BUFFERS = 4  # idle batch buffers kept for reuse (32 MiB at most)
_INLINE_HASH = 256 << 10  # smaller batches are hashed on the event loop (about 0.15 ms)
_MAX_SESSIONS = 256  # open upload writers kept per process
_MAX_UNSAVED = 10_000  # upload rows kept in memory only; beyond this the oldest are saved
_CLOSE_WAIT_SECONDS = 10.0  # how long close() waits for appends cut off by a shutdown
_SWEEP_BATCH = 500  # upload ids looked up per query when sweeping orphaned chunks
# Built once (see db.queries).
_INSERT_UPLOAD = uploads.insert()
_DELETE_UPLOAD = delete(uploads).where(uploads.c.id == bindparam("id"))
_UPLOAD_STATE = select(uploads.c.repository, uploads.c.size, uploads.c.chunks).where(
    uploads.c.id == bindparam("id")
)
# The compare-and-set: only the writer that started from the committed size moves it on.
_COMMIT_CHUNKS = (
    update(uploads)
    .where(uploads.c.id == bindparam("upload_id"), uploads.c.size == bindparam("expected"))
    .values(size=bindparam("new_size"), chunks=bindparam("new_chunks"), updated_at=bindparam("at"))
)
_FINISH_UPLOAD = delete(uploads).where(
    uploads.c.id == bindparam("upload_id"), uploads.c.size == bindparam("expected")
)
_LIVE_UPLOADS = select(uploads.c.id).where(uploads.c.id.in_(bindparam("ids", expanding=True)))
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
        raise _range_refused(current)
    if content_length is not None and content_length != content_range.length:
        raise RegistryError(ErrorCode.SIZE_INVALID, "Content-Length does not match Content-Range")


def _range_refused(current: UploadStatus) -> RegistryError:
    return RegistryError(
        ErrorCode.RANGE_INVALID,
        f"chunk must start at byte {current.size}",
        headers=current.headers(),
    )


@dataclass(frozen=True, slots=True)
class _Chunk:
    """The first ``length`` bytes of the chunk key named ``token`` belong to the upload."""

    token: str
    length: int


def _encode(chunks: tuple[_Chunk, ...]) -> str:
    return " ".join(f"{chunk.token}:{chunk.length}" for chunk in chunks)


def _decode(text: str) -> tuple[_Chunk, ...]:
    chunks = []
    for item in text.split():
        token, _, length = item.partition(":")
        chunks.append(_Chunk(token, int(length)))
    return tuple(chunks)


@dataclass(frozen=True, slots=True)
class _State:
    """What the database says an upload holds. ``saved``: whether its row exists yet."""

    size: int
    chunks: tuple[_Chunk, ...]
    saved: bool


@dataclass(slots=True)
class _Session:
    """This process's running state of one upload.

    ``hasher`` has been fed exactly the bytes of ``chunks``, which are committed. ``writer``
    writes the chunk named ``token``, which this process created: when that is the last of
    ``chunks`` the next append extends it, otherwise it is a new chunk not committed yet.
    """

    chunks: tuple[_Chunk, ...]
    hasher: Any
    writer: Writer | None = None
    token: str = ""

    @property
    def extends_last(self) -> bool:
        return self.writer is not None and bool(self.chunks) and self.chunks[-1].token == self.token

    def written(self) -> tuple[_Chunk, ...]:
        """``chunks`` with what the writer holds now, as they would be committed."""
        assert self.writer is not None
        chunk = _Chunk(self.token, self.writer.size)
        return (*self.chunks[:-1], chunk) if self.extends_last else (*self.chunks, chunk)


class _UploadChanged(Exception):
    """The closing PUT's commit found the upload moved on by another writer."""


class Uploads:
    def __init__(
        self, db: Database, storage: StorageDriver, blobs: Blobs, purge_age_seconds: float
    ) -> None:
        self._db = db
        self._storage = storage
        self._blobs = blobs
        self._repos = blobs.repositories
        self._quotas = blobs.quotas
        self._spare_buffers: list[mmap.mmap] = []
        self._sessions: OrderedDict[uuid.UUID, _Session] = OrderedDict()
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        # Rows of uploads that committed no bytes yet, oldest first (see the module docstring).
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
            "size": 0,
            "chunks": "",
        }
        if not self._defer_rows:
            await self._db.write(lambda c: c.execute(_INSERT_UPLOAD, row))
            return UploadStatus(upload_id, repository, 0)
        self._unsaved[upload_id] = row
        if len(self._unsaved) > _MAX_UNSAVED:
            await self._save(next(iter(self._unsaved)))
        return UploadStatus(upload_id, repository, 0)

    async def status(self, repository: str, upload_id: uuid.UUID) -> UploadStatus:
        state = await self._state(repository, upload_id)
        return UploadStatus(upload_id, repository, state.size)

    async def append(
        self,
        repository: str,
        upload_id: uuid.UUID,
        body: AsyncIterator[bytes],
        content_range: ContentRange | None,
        content_length: int | None,
    ) -> UploadStatus:
        """Append a PATCH body. With ``content_range`` it must start at the committed size
        (else ``RANGE_INVALID``, 416) and match ``content_length`` when both are given. Of two
        appends at one offset, the one that commits first wins (the other gets 416). Of a
        large body cut off, the bytes received are committed before the error is raised."""
        room = await self._quotas.room_for(repository)
        async with self._lock(upload_id):
            state = await self._state(repository, upload_id)
            current = UploadStatus(upload_id, repository, state.size)
            if content_range is not None:
                _check_chunk_range(current, content_range, content_length)
            if content_length == 0:
                return current
            session = await self._session(upload_id, state)
            cut_off = await self._write(upload_id, session, body, content_length, room, state)
            size = await self._commit(upload_id, session, state, current)
        if cut_off is not None:
            raise cut_off
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
        chunk whose ``content_range`` does not start at the committed size is refused as in
        :meth:`append` and leaves the upload as it was."""
        # Only a blob new to the project needs room (None: no limit applies).
        room = await self._quotas.room_for(repository, str(digest))
        await self._repos.ids_of(repository)  # cached: the link then needs no lookup
        async with self._lock(upload_id):
            state = await self._state(repository, upload_id)
            current = UploadStatus(upload_id, repository, state.size)
            if content_range is not None:
                _check_chunk_range(current, content_range, size_hint)
            streamed = state.chunks or size_hint is None or size_hint > _INLINE_HASH
            try:
                if not streamed:
                    # The closing PUT carries the whole blob, and a small one (the common case
                    # for configs and small layers): stored in one durable put.
                    size = await self._finish_small(upload_id, digest, body, room)
                else:
                    size = await self._finish_streamed(
                        current, state, digest, body, size_hint, room
                    )

                def store_rows(connection: Connection) -> None:
                    self._blobs.link(connection, repository, digest, size)
                    if state.saved:
                        params = {"upload_id": str(upload_id), "expected": state.size}
                        if connection.execute(_FINISH_UPLOAD, params).rowcount != 1:
                            raise _UploadChanged  # rolls the link back too

                await self._db.write(store_rows)
            except QuotaExceeded:
                # Refused before the bytes were kept or, when another push took the room
                # first, by the link: nothing is linked. Bytes already assembled at their blob
                # key stay unreferenced, for garbage collection (another project may share them).
                await self._discard(upload_id)
                self._locks.pop(upload_id, None)
                raise
            except _UploadChanged:
                # Another writer committed a chunk meanwhile. The blob stored is exactly the
                # bytes verified, but this upload is not what the client finished.
                await self._drop_session(upload_id)
                raise await self._changed(upload_id, repository) from None
        self._unsaved.pop(upload_id, None)
        self._locks.pop(upload_id, None)
        if streamed:
            await self._storage.delete(upload_prefix(upload_id))
        return size

    async def _finish_small(
        self, upload_id: uuid.UUID, digest: Digest, body: AsyncIterator[bytes], room: Room | None
    ) -> int:
        """Verify and store a small whole blob in one durable ``put``, skipping chunk keys."""
        data = b"".join([chunk async for chunk in body])
        if room is not None and len(data) > room.left:
            raise room.refuse(len(data), "this blob")
        await self._verify(upload_id, digest, Digest.of(data, digest.algorithm))
        await self._drop_session(upload_id)
        await self._storage.put_new(blob_path(digest), data)
        return len(data)

    async def _finish_streamed(
        self,
        current: UploadStatus,
        state: _State,
        digest: Digest,
        body: AsyncIterator[bytes],
        size_hint: int | None,
        room: Room | None,
    ) -> int:
        upload_id = current.id
        session = await self._session(upload_id, state)
        chunks = session.chunks
        if size_hint != 0:  # usually 0: the blob came in PATCHes
            cut_off = await self._write(upload_id, session, body, size_hint, room, state)
            if cut_off is not None:
                # Kept as an append, so that the upload can be resumed from what arrived.
                await self._commit(upload_id, session, state, current)
                raise cut_off
            chunks = tuple(chunk for chunk in session.written() if chunk.length)
        actual = await self._digest_of(upload_id, session, chunks, digest.algorithm)
        await self._verify(upload_id, digest, actual)
        await self._drop_session(upload_id)  # closes the writer: its bytes are flushed
        size = sum(chunk.length for chunk in chunks)
        # Stored once already, as a rule; stored with another size only by an earlier version
        # that had a race between replicas, and then the verified bytes replace it.
        if await self._storage.stat(blob_path(digest)) != size:
            sources = [(upload_chunk_path(upload_id, c.token), c.length) for c in chunks]
            await self._assemble(upload_id, blob_path(digest), sources)
        return size

    async def _verify(self, upload_id: uuid.UUID, expected: Digest, actual: Digest) -> None:
        """A blob that does not match its digest discards the whole upload."""
        if actual != expected:
            await self._discard(upload_id)
            raise RegistryError(
                ErrorCode.DIGEST_INVALID,
                detail={"expected": str(expected), "actual": str(actual)},
            )

    async def cancel(self, repository: str, upload_id: uuid.UUID) -> None:
        async with self._lock(upload_id):
            await self._state(repository, upload_id)  # it must exist, and be this repository's
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
        """Delete uploads untouched for ``max_age``, and chunks no upload row lists any more.
        Returns how many uploads were removed."""
        cutoff = now() - max_age
        while self._unsaved:  # oldest first; none of them has committed anything
            upload_id, row = next(iter(self._unsaved.items()))
            if row["updated_at"] >= cutoff:
                break
            del self._unsaved[upload_id]
        query = select(uploads.c.id).where(uploads.c.updated_at < cutoff)
        stale = await self._db.read(lambda c: list(c.scalars(query)))
        for raw_id in stale:
            upload_id = uuid.UUID(raw_id)
            async with self._lock(upload_id):
                await self._discard(upload_id)
            self._locks.pop(upload_id, None)
        if stale:
            log.info("purged abandoned uploads", count=len(stale))
        swept = await self._sweep_orphaned_chunks()
        if swept:
            log.info("deleted chunks of uploads that no longer exist", uploads=swept)
        return len(stale)

    async def _sweep_orphaned_chunks(self) -> int:
        """Delete the chunks of uploads that have no row: left by a crash between an upload's
        last commit and its cleanup, or by an append that lost to a cancel or a purge. A row is
        always written before its upload's first chunk (or kept in ``_unsaved`` here), so a
        chunk without one belongs to no live upload."""
        found: set[uuid.UUID] = set()
        async for key in self._storage.list(UPLOADS_PREFIX):
            with contextlib.suppress(ValueError):
                found.add(uuid.UUID(key[len(UPLOADS_PREFIX) :].split("/", 1)[0]))
        found -= self._unsaved.keys() | self._locks.keys()
        ids = sorted(str(upload_id) for upload_id in found)
        orphaned = 0
        for start in range(0, len(ids), _SWEEP_BATCH):
            batch = ids[start : start + _SWEEP_BATCH]
            live = set(await self._db.read(functools.partial(_live_uploads, ids=batch)))
            for raw_id in batch:
                if raw_id not in live:
                    prefix = upload_prefix(uuid.UUID(raw_id))
                    await self._storage.delete(prefix)
                    # Before layout 3 an upload's bytes were one key named like the prefix.
                    await self._storage.delete(prefix.rstrip("/"))
                    orphaned += 1
        return orphaned

    async def close(self) -> None:
        """Close open writers (their committed bytes stay, so the uploads can be continued),
        and save the rows of open uploads kept in memory, so that they can be continued after a
        restart."""
        # Requests that the shutdown cut off commit what they received as they unwind (the
        # server cancels them just before closing the services): let them, for a while.
        in_flight = [lock for lock in self._locks.values() if lock.locked()]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_WAIT_SECONDS):
                for lock in in_flight:
                    async with lock:
                        pass
        for session in self._sessions.values():
            if session.writer is not None:
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

    async def _state(self, repository: str, upload_id: uuid.UUID) -> _State:
        """The committed state, read from the database (another replica may have moved it on).
        Raises ``BLOB_UPLOAD_UNKNOWN`` when there is no such upload in ``repository``."""
        unsaved = self._unsaved.get(upload_id)
        if unsaved is not None:
            if unsaved["repository"] != repository:
                raise _unknown(upload_id)
            return _State(0, (), saved=False)
        params = {"id": str(upload_id)}
        row = await self._db.lookup(lambda c: c.execute(_UPLOAD_STATE, params).one_or_none())
        if row is None or row.repository != repository:
            raise _unknown(upload_id)
        return _State(row.size, _decode(row.chunks), saved=True)

    async def _changed(self, upload_id: uuid.UUID, repository: str) -> RegistryError:
        """The error for a writer that lost the compare-and-set: 416 with the progress that
        won, or BLOB_UPLOAD_UNKNOWN when the upload is gone (finished, cancelled, purged)."""
        try:
            state = await self._state(repository, upload_id)
        except RegistryError as gone:
            return gone
        return _range_refused(UploadStatus(upload_id, repository, state.size))

    async def _save(self, upload_id: uuid.UUID) -> None:
        """Write the upload's row if it is still only in memory."""
        unsaved = self._unsaved.pop(upload_id, None)
        if unsaved is None:
            return
        row = {**unsaved, "updated_at": now()}  # it is active now, whenever it started
        try:
            await self._db.write(lambda c: c.execute(_INSERT_UPLOAD, row))
        except BaseException:
            self._unsaved[upload_id] = unsaved
            raise

    async def _session(self, upload_id: uuid.UUID, state: _State) -> _Session:
        """This process's session, brought up to the committed ``state``: when another replica
        committed chunks since, they are hashed from storage (or, if the session's chunks are
        not where the upload started, everything is hashed again)."""
        session = self._sessions.get(upload_id)
        if session is not None and session.chunks == state.chunks:
            self._sessions.move_to_end(upload_id)
            return session
        if session is not None and state.chunks[: len(session.chunks)] == session.chunks:
            hasher, covered = session.hasher, len(session.chunks)
        else:
            hasher, covered = new_hasher("sha256"), 0
        await self._drop_session(upload_id)
        for chunk in state.chunks[covered:]:
            await self._hash_chunk(upload_id, chunk, hasher)
        session = self._sessions[upload_id] = _Session(state.chunks, hasher)
        while len(self._sessions) > _MAX_SESSIONS:
            _, evicted = self._sessions.popitem(last=False)
            if evicted.writer is not None:
                await evicted.writer.close()
        return session

    async def _drop_session(self, upload_id: uuid.UUID) -> None:
        session = self._sessions.pop(upload_id, None)
        if session is not None and session.writer is not None:
            with contextlib.suppress(StorageError, OSError):
                await session.writer.close()

    async def _hash_chunk(self, upload_id: uuid.UUID, chunk: _Chunk, hasher: Any) -> None:
        """Feed exactly the committed bytes of ``chunk`` to ``hasher``."""
        path = upload_chunk_path(upload_id, chunk.token)
        read = 0
        try:
            async for data in self._storage.reader(path, 0, chunk.length):
                await asyncio.to_thread(hasher.update, data)
                read += len(data)
        except PathNotFound:
            pass
        if read != chunk.length:
            await self._discard(upload_id)
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_INVALID,
                "the upload's stored data is incomplete; start the upload again",
                detail={"uuid": str(upload_id)},
            )

    async def _digest_of(
        self, upload_id: uuid.UUID, session: _Session, chunks: tuple[_Chunk, ...], algorithm: str
    ) -> Digest:
        """The digest of exactly ``chunks``: from the session's hash, which covers them after
        :meth:`_write`, unless another algorithm is asked for."""
        if session.hasher.name == algorithm:
            return Digest(algorithm, session.hasher.copy().hexdigest())
        hasher = new_hasher(algorithm)
        for chunk in chunks:
            await self._hash_chunk(upload_id, chunk, hasher)
        return Digest(algorithm, hasher.hexdigest())

    async def _write(
        self,
        upload_id: uuid.UUID,
        session: _Session,
        body: AsyncIterator[bytes],
        size_hint: int | None,
        room: Room | None,
        state: _State,
    ) -> BaseException | None:
        """Stream ``body`` into the session's writer: the chunk it extends, or a new one.
        Returns what cut the body off, if anything (see :meth:`_pump`). Discards the upload
        when the quota refuses it, and drops the session on any other failure (its hash then
        holds bytes that are not committed)."""
        try:
            if session.writer is None:
                session.token = uuid.uuid4().hex
                session.writer = await self._storage.writer(
                    upload_chunk_path(upload_id, session.token)
                )
            return await self._pump(session, body, size_hint, room, state.size)
        except QuotaExceeded:
            await self._discard(upload_id)
            raise
        except BaseException:
            await self._drop_session(upload_id)
            raise

    async def _commit(
        self, upload_id: uuid.UUID, session: _Session, state: _State, current: UploadStatus
    ) -> int:
        """Commit what the session's writer took, by compare-and-set on the committed size.
        Returns the new size; raises 416 (or BLOB_UPLOAD_UNKNOWN) when another writer won."""
        chunks = session.written()
        size = sum(chunk.length for chunk in chunks)
        if size == state.size:
            return size  # an empty body: nothing to commit
        params = {
            "upload_id": str(upload_id),
            "expected": state.size,
            "new_size": size,
            "new_chunks": _encode(chunks),
            "at": now(),
        }
        unsaved = None if state.saved else self._unsaved.pop(upload_id, None)
        try:
            if unsaved is not None:
                # Only this process knows the upload: the row is new, and nobody can race it.
                row = {**unsaved, "updated_at": params["at"], "size": size}
                row["chunks"] = params["new_chunks"]
                await self._db.write(lambda c: c.execute(_INSERT_UPLOAD, row))
                won = True
            else:
                won = await self._db.write(
                    lambda c: c.execute(_COMMIT_CHUNKS, params).rowcount == 1
                )
        except BaseException:
            if unsaved is not None:
                self._unsaved[upload_id] = unsaved
            await self._drop_session(upload_id)
            raise
        if not won:
            extended = session.extends_last
            await self._drop_session(upload_id)
            if not extended:  # a new chunk nobody lists; an extended one keeps its prefix
                await self._storage.delete(upload_chunk_path(upload_id, session.token))
            raise await self._changed(upload_id, current.repository)
        session.chunks = chunks
        return size

    async def _assemble(
        self, upload_id: uuid.UUID, dest: str, sources: list[tuple[str, int]]
    ) -> None:
        try:
            await self._storage.assemble(dest, sources)
        except PathNotFound:
            await self._discard(upload_id)
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_INVALID,
                "the upload's stored data is incomplete; start the upload again",
                detail={"uuid": str(upload_id)},
            ) from None

    async def _pump(
        self,
        session: _Session,
        body: AsyncIterator[bytes],
        size_hint: int | None,
        room: Room | None,
        start: int,
    ) -> BaseException | None:
        """Stream ``body`` into the session's writer, hashing and writing each batch in worker
        threads while the next batch is received. The caller drops the session if this
        raises: its writer and hash then hold bytes that are not committed.

        A large body cut off (the client disconnected, or the server is stopping) is not an
        error here: the bytes received are written and hashed, and the exception that cut it
        off is returned, for the caller to commit those bytes (so the upload can be resumed
        from them) and raise it. A small body (up to 256 KiB) is kept whole or not at all.

        With ``room`` (a project quota applies), raises ``QuotaExceeded`` as soon as the upload's
        size (``start`` committed bytes, counting ``size_hint`` up front) would pass what the
        project has left; the caller discards the upload.

        Two batch buffers take turns, so receiving copies each byte once and never regrows a
        buffer: one is filled while the other is hashed and written. ``size_hint`` (the
        Content-Length) keeps them small for small bodies.
        """
        writer = session.writer
        assert writer is not None
        if room is not None and size_hint is not None and start + size_hint > room.left:
            raise room.refuse(start + size_hint, "this upload")
        size = min(_BATCH, size_hint) if size_hint else _BATCH
        buffers: list[mmap.mmap] = []
        current, filled = 0, 0
        pending: asyncio.Future[None] | None = None

        async def consume(batch: memoryview) -> None:
            if len(batch) <= _INLINE_HASH:
                session.hasher.update(batch)  # cheaper than a thread hop
                await writer.write(batch)
            else:
                await asyncio.gather(
                    asyncio.to_thread(session.hasher.update, batch), writer.write(batch)
                )

        if size_hint is not None and size_hint <= _INLINE_HASH:
            # A small body (its length is enforced by the server): one write, no batching.
            small = b"".join([chunk async for chunk in body])
            if small:
                await consume(memoryview(small))
            await writer.flush()  # committed bytes must be visible to every replica
            return None
        cut_off: BaseException | None = None
        chunks = aiter(body)
        try:
            received = 0
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except (Exception, asyncio.CancelledError) as exc:
                    # The client went away, or the server is stopping: what arrived is kept.
                    cut_off = exc
                    break
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
            if pending is not None:
                await pending
                pending = None
            if filled:
                await consume(memoryview(buffers[current])[:filled])
        finally:
            if pending is not None:
                # A failed body: the batch in flight must finish before its buffer is freed.
                with contextlib.suppress(BaseException):
                    await pending
        await writer.flush()  # committed bytes must be visible to every replica
        # Only after success: a failed batch may still be read by a worker thread.
        for buffer in buffers:
            if len(buffer) == _BATCH and len(self._spare_buffers) < _SPARE_BUFFERS:
                self._spare_buffers.append(buffer)
        return cut_off

    def _take_buffer(self, size: int) -> mmap.mmap:
        """A batch buffer: page-aligned (mmap) so the filesystem driver can use O_DIRECT, and
        reused between uploads, since touching fresh memory is what VMs are slowest at."""
        if size == _BATCH and self._spare_buffers:
            return self._spare_buffers.pop()
        return mmap.mmap(-1, size)

    async def _discard(self, upload_id: uuid.UUID) -> None:
        """Forget the upload: its row first, then its chunks (a crash between leaves chunks
        that the purge sweeps, never a row pointing at missing bytes)."""
        await self._drop_session(upload_id)
        if self._unsaved.pop(upload_id, None) is None:
            await self._db.write(lambda c: c.execute(_DELETE_UPLOAD, {"id": str(upload_id)}))
        await self._storage.delete(upload_prefix(upload_id))


def _live_uploads(connection: Connection, ids: list[str]) -> list[str]:
    return list(connection.scalars(_LIVE_UPLOADS, {"ids": ids}))


def _unknown(upload_id: uuid.UUID) -> RegistryError:
    return RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, detail={"uuid": str(upload_id)})
