"""S3 storage driver: one object per key in a bucket, under an optional key prefix.

Uploads in progress (:meth:`S3Driver.writer`)
---------------------------------------------
S3 objects cannot be appended to, and a multipart upload cannot carry state between stateless
replicas or across a restart without extra bookkeeping. So a writer stores each flushed run of
bytes as its own *segment* object::

    <key>.parts/<start offset, 20 zero-padded digits>

Segments are contiguous and ordered by name, so the stored state *is* the upload state: any
process can reopen the key with ``append=True`` and continue at the sum of the segment sizes.
Re-storing a segment at the same offset overwrites it, so a retried flush is harmless. A writer
buffers at most :attr:`S3Limits.segment_size` bytes (8 MiB) and stores a segment whenever the
buffer fills, on :meth:`Writer.flush` and on :meth:`Writer.close`. Opening a new upload stores
an empty segment at offset 0 so that ``stat`` reports 0, as the other drivers do.

Before commit, ``stat``, ``reader``, ``get``, ``move`` and ``list`` see the key as the
concatenation of its segments (``list`` yields the key itself, never its segments).
:meth:`Writer.commit` assembles the segments into one ordinary object with a multipart upload:
runs of at least 5 MiB are copied server side (UploadPartCopy, by byte range), shorter runs are
downloaded and re-uploaded in groups of exactly 5 MiB, so every part but the last meets S3's
minimum. If that would exceed 10,000 parts the segments are first merged into intermediate
objects. Then the segments are deleted. A crash in between leaves the object and its segments,
which hold the same bytes; reads prefer the object, a later writer or delete cleans up.

The names ``*.parts`` are reserved: paths with a segment ending in ``.parts`` are refused.
Multipart uploads that a crash leaves unfinished are not tracked here; give the bucket a
lifecycle rule that aborts incomplete multipart uploads after a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, ParamSpec, TypeVar, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from portside.config import S3StorageSettings
from portside.storage.base import PathNotFound, StorageDriver, StorageError, Writer

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ListObjectsV2RequestTypeDef

__all__ = ["S3Driver", "S3Limits"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")

_MIB = 1 << 20
_GIB = 1 << 30
_READ_CHUNK = _MIB
_DELETE_BATCH = 1000  # the most keys DeleteObjects accepts
_PARTS = ".parts/"
_OFFSET_DIGITS = 20
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_RANGE_CODES = frozenset({"InvalidRange", "416"})


class _RangeNotSatisfiable(StorageError):
    """S3 answered 416: the object exists but is shorter than the requested start."""

    def __init__(self, path: str) -> None:
        super().__init__(f"range not satisfiable in {path!r}")


@dataclass(frozen=True, slots=True)
class S3Limits:
    """Sizes and concurrency of the driver. The defaults follow S3's own rules; tests shrink
    ``max_parts`` to exercise the merge path without writing gigabytes."""

    segment_size: int = 8 * _MIB  # writer buffer and largest segment object
    min_part_size: int = 5 * _MIB  # S3: every multipart part but the last
    max_copy_size: int = 5 * _GIB  # S3: largest CopyObject and UploadPartCopy
    max_parts: int = 10_000  # S3: parts per multipart upload
    copy_concurrency: int = 8  # parallel server-side part copies
    upload_concurrency: int = 2  # parallel re-uploaded parts; each holds min_part_size in memory
    list_page_size: int = 1000  # keys per LIST request (S3's maximum); one DELETE per page

    def __post_init__(self) -> None:
        if not 0 < self.min_part_size <= self.max_copy_size:
            raise ValueError("need 0 < min_part_size <= max_copy_size")
        if self.segment_size < 1 or self.max_parts < 2:
            raise ValueError("need segment_size >= 1 and max_parts >= 2")
        if not 0 < self.list_page_size <= _DELETE_BATCH:
            raise ValueError(f"list_page_size must be in 1..{_DELETE_BATCH}")
        if self.copy_concurrency < 1 or self.upload_concurrency < 1:
            raise ValueError("concurrency must be at least 1")


@dataclass(frozen=True, slots=True)
class _Segment:
    """A stored object holding bytes ``[offset, offset + size)`` of a logical key. ``whole`` is
    False when only the object's first ``size`` bytes are meant (it holds more)."""

    key: str
    offset: int
    size: int
    whole: bool = True


def _clip(view: Sequence[_Segment], length: int) -> list[_Segment]:
    """The segments holding the first ``length`` bytes of ``view``."""
    clipped: list[_Segment] = []
    for segment in view:
        left = length - segment.offset
        if left <= 0:
            break
        if segment.size <= left:
            clipped.append(segment)
        else:
            clipped.append(_Segment(segment.key, segment.offset, left, whole=False))
    return clipped


@dataclass(frozen=True, slots=True)
class _Piece:
    """Bytes ``[start, end)`` of one stored object."""

    key: str
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class _Part:
    """One multipart part: copied server side (one piece) or downloaded and re-uploaded."""

    pieces: tuple[_Piece, ...]
    copy: bool


def _plan_parts(sources: Sequence[_Segment], min_part: int, max_copy: int) -> list[_Part]:
    """Split the concatenation of ``sources`` into parts S3 accepts.

    A run of at least ``min_part`` bytes inside one source is copied (at most ``max_copy`` per
    part). Shorter runs are gathered, topped up from the following source if needed, into
    re-uploaded parts of exactly ``min_part`` bytes; only the last part may be smaller.
    """
    parts: list[_Part] = []
    pending: list[_Piece] = []
    pending_size = 0
    for source in sources:
        position = 0
        while position < source.size:
            left = source.size - position
            if not pending and left >= min_part:
                taken = min(left, max_copy)
                parts.append(_Part((_Piece(source.key, position, position + taken),), True))
            else:
                taken = min(left, min_part - pending_size)
                pending.append(_Piece(source.key, position, position + taken))
                pending_size += taken
                if pending_size >= min_part:
                    parts.append(_Part(tuple(pending), False))
                    pending, pending_size = [], 0
            position += taken
    if pending:
        # The last part may be any size, so a single range needs no download.
        parts.append(_Part(tuple(pending), len(pending) == 1))
    return parts


def _segment_name(offset: int) -> str:
    return f"{offset:0{_OFFSET_DIGITS}d}"


def _logical_key(relative: str) -> str:
    """Map a segment's key back to the key it belongs to; other keys are unchanged."""
    cut = relative.find(_PARTS)
    return relative if cut < 0 else relative[:cut]


def _check_path(path: str) -> None:
    segments = path.split("/")
    if (
        not path
        or path.startswith("/")
        or any(s in ("", ".", "..") or s.endswith(_PARTS[:-1]) for s in segments)
    ):
        raise StorageError(f"refusing unsafe storage path {path!r}")


def _range_header(start: int, end: int | None) -> str:
    return f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"


def _make_client(
    settings: S3StorageSettings, limits: S3Limits, session: boto3.session.Session | None
) -> S3Client:
    config = Config(
        region_name=settings.region,
        # Part copies and readers run in parallel threads; each needs its own connection.
        max_pool_connections=max(32, limits.copy_concurrency * 2),
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,  # UploadPartCopy of a 5 GiB range can be slow to answer
    )
    if settings.endpoint_url:
        # S3-compatible stores (MinIO, Ceph, ...) rarely support virtual-host addressing, and
        # several reject the CRC checksums botocore sends by default since 1.36.
        config = config.merge(
            Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
        )
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    # Not boto3's default session, which is global state; the client itself is thread-safe.
    session = session or boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=settings.endpoint_url or None,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=secret,
        config=config,
    )


async def _run_bounded(jobs: Sequence[Callable[[], Awaitable[_T]]], limit: int) -> list[_T]:
    """Run ``jobs`` with at most ``limit`` in flight; results in job order. The first failure
    stops the remaining jobs from starting and is re-raised as is."""
    results: dict[int, _T] = {}
    queue = iter(enumerate(jobs))

    async def worker() -> None:
        for index, job in queue:  # the iterator is shared, so each job runs once
            results[index] = await job()

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(limit, len(jobs))):
                group.create_task(worker())
    except ExceptionGroup as errors:
        raise errors.exceptions[0] from None
    return [results[index] for index in range(len(jobs))]


class _S3Writer(Writer):
    """Appends to a key by storing segments; see the module docstring."""

    def __init__(self, driver: S3Driver, path: str, key: str, flushed: int) -> None:
        self._driver = driver
        self._path = path
        self._key = key
        self._flushed = flushed  # bytes stored as segments: the next segment's offset
        self._buffer = bytearray()
        self._state: Literal["open", "closed", "committed", "cancelled"] = "open"

    @property
    def size(self) -> int:
        return self._flushed + len(self._buffer)

    def _require_open(self) -> None:
        if self._state != "open":
            raise StorageError(f"writer for {self._path!r} is {self._state}")

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._require_open()
        limit = self._driver.limits.segment_size
        # Views released on the way out, even on error, so the caller may resize its bytearray.
        with memoryview(data) as whole, whole.cast("B") as view:
            position = 0
            while position < len(view):
                room = limit - len(self._buffer)
                self._buffer += view[position : position + room]
                position += room
                if len(self._buffer) >= limit:
                    await self._store_buffer()

    async def _store_buffer(self) -> None:
        """Store the buffer as the segment at ``_flushed``. On failure the buffer is kept, and
        a retry overwrites whatever partial state the failed attempt left."""
        if not self._buffer:
            return
        await self._driver._put_segment(self._key, self._flushed, self._buffer)
        self._flushed += len(self._buffer)
        self._buffer = bytearray()

    async def flush(self) -> None:
        self._require_open()
        await self._store_buffer()

    async def commit(self) -> None:
        """Assemble the segments into one object and delete them. Also works after
        :meth:`close`, from whatever was stored."""
        if self._state == "committed":
            return
        if self._state == "cancelled":
            raise StorageError(f"writer for {self._path!r} is cancelled")
        if self._state == "open":
            await self._store_buffer()
        await self._driver._commit_segments(self._path, self._key, self._flushed)
        self._state = "committed"

    async def cancel(self) -> None:
        self._buffer = bytearray()
        self._state = "cancelled"
        await self._driver._delete_key(self._key)

    async def close(self) -> None:
        """Store buffered bytes too, as the filesystem driver keeps written bytes on close."""
        if self._state != "open":
            return
        try:
            await self._store_buffer()
        finally:
            self._buffer = bytearray()
            self._state = "closed"


class S3Driver(StorageDriver):
    """Blob storage in an S3 bucket (AWS or compatible).

    Every boto3 call runs in a worker thread through one shared, thread-safe client. A missing
    key raises :class:`PathNotFound`; every other S3 or network failure raises
    :class:`StorageError` naming the operation, key and S3 error code.
    """

    name = "s3"

    def __init__(
        self,
        settings: S3StorageSettings,
        *,
        limits: S3Limits | None = None,
        session: boto3.session.Session | None = None,
    ) -> None:
        """``session`` lends its credential chain and loaded service models (parsing them
        takes ~0.1 s per client); by default the driver makes its own."""
        if not settings.bucket:
            raise StorageError("the S3 driver needs a bucket")
        self.limits = limits or S3Limits()
        self._bucket = settings.bucket
        prefix = settings.prefix.strip("/")
        # Always a whole path segment, so prefix "reg" cannot see keys of "registry/".
        self._root = f"{prefix}/" if prefix else ""
        self._client = _make_client(settings, self.limits, session)

    # -- plumbing -------------------------------------------------------------------------

    def _key(self, path: str) -> str:
        _check_path(path)
        return self._root + path

    def _prefix_key(self, prefix: str) -> str:
        """Object-key prefix for a directory-like ``prefix``; "" means the whole root."""
        if not prefix:
            return self._root
        directory = prefix.removesuffix("/")
        _check_path(directory)
        return f"{self._root}{directory}/"

    def _relative(self, key: str) -> str:
        return key[len(self._root) :]

    async def _call(
        self,
        action: str,
        key: str,
        function: Callable[_P, _R],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _R:
        """Run one blocking boto3 call in a thread and translate its errors."""
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except ClientError as exc:
            raise self._translate(exc, action, key) from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 {action} of {self._relative(key)!r} failed: {exc}") from exc

    def _translate(self, exc: ClientError, action: str, key: str) -> StorageError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        path = self._relative(key)
        if code in _NOT_FOUND_CODES:
            return PathNotFound(path)
        if code in _RANGE_CODES:
            return _RangeNotSatisfiable(path)
        message = error.get("Message", "") or str(exc)
        return StorageError(
            f"S3 {action} of {path!r} in bucket {self._bucket!r} failed: {code}: {message}"
        )

    async def _list_pages(self, prefix: str) -> AsyncIterator[list[tuple[str, int]]]:
        """Yield pages of ``(key, size)`` under an object-key prefix."""
        request: ListObjectsV2RequestTypeDef = {
            "Bucket": self._bucket,
            "Prefix": prefix,
            "MaxKeys": self.limits.list_page_size,
        }
        while True:
            page = await self._call("LIST", prefix, self._client.list_objects_v2, **request)
            yield [(item["Key"], item["Size"]) for item in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            request["ContinuationToken"] = token

    async def _head(self, key: str) -> int | None:
        try:
            response = await self._call(
                "HEAD", key, self._client.head_object, Bucket=self._bucket, Key=key
            )
        except PathNotFound:
            return None
        return response["ContentLength"]

    async def _segments(self, key: str) -> list[_Segment] | None:
        """The stored segments of an upload, in order, or None when there are none.

        Raises :class:`StorageError` when they are not contiguous, which only concurrent
        writers to one key could cause.
        """
        found: list[_Segment] = []
        async for page in self._list_pages(key + _PARTS):
            for object_key, size in page:
                name = object_key[len(key) + len(_PARTS) :]
                if name.isdigit():  # skips intermediate merge objects
                    found.append(_Segment(object_key, int(name), size))
        if not found:
            return None
        found.sort(key=lambda segment: segment.offset)
        expected = 0
        for segment in found:
            if segment.offset != expected:
                raise StorageError(
                    f"upload {self._relative(key)!r} is inconsistent: a segment starts at "
                    f"{segment.offset}, expected {expected}"
                )
            expected += segment.size
        return found

    async def _view(self, key: str) -> list[_Segment] | None:
        """Where the bytes of ``key`` live: the object itself, else its upload segments."""
        size = await self._head(key)
        if size is not None:
            return [_Segment(key, 0, size)]
        return await self._segments(key)

    async def _delete_prefix(self, prefix: str) -> None:
        async for page in self._list_pages(prefix):
            # A page holds at most list_page_size <= 1000 keys: one DeleteObjects call. Deleting
            # it does not disturb the continuation token, which names a position in key order.
            await self._delete_keys([key for key, _ in page])

    async def _delete_keys(self, keys: list[str]) -> None:
        if not keys:
            return
        response = await self._call(
            "DELETE",
            keys[0],
            self._client.delete_objects,
            Bucket=self._bucket,
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            raise StorageError(
                f"S3 DELETE of {len(errors)} keys failed, first "
                f"{self._relative(first.get('Key', ''))!r}: {first.get('Code')}: "
                f"{first.get('Message')}"
            )

    async def _delete_key(self, key: str) -> None:
        """Delete an object and any upload segments of it."""
        await self._call("DELETE", key, self._client.delete_object, Bucket=self._bucket, Key=key)
        await self._delete_prefix(key + _PARTS)

    # -- reading ----------------------------------------------------------------------------

    async def _open_range(self, key: str, start: int, end: int | None) -> StreamingBody | None:
        """GET bytes ``[start, end)`` of an object; None when the range is empty because the
        object is shorter than ``start`` (S3 answers 416)."""
        try:
            response = await self._call(
                "GET",
                key,
                self._client.get_object,
                Bucket=self._bucket,
                Key=key,
                Range=_range_header(start, end),
            )
        except _RangeNotSatisfiable:
            return None
        return response["Body"]

    async def _drain(self, key: str, body: StreamingBody) -> AsyncGenerator[bytes, None]:
        try:
            while True:
                try:
                    chunk = await asyncio.to_thread(body.read, _READ_CHUNK)
                except (BotoCoreError, OSError) as exc:
                    raise StorageError(
                        f"S3 GET of {self._relative(key)!r} broke off: {exc}"
                    ) from exc
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def _read_view(
        self, view: Sequence[_Segment], offset: int, end: int | None
    ) -> AsyncGenerator[bytes, None]:
        """Stream bytes ``[offset, end)`` of the concatenation of ``view``."""
        for segment in view:
            start = max(offset, segment.offset)
            stop = segment.offset + segment.size
            if end is not None:
                stop = min(stop, end)
            if start >= stop:
                continue
            body = await self._open_range(
                segment.key, start - segment.offset, stop - segment.offset
            )
            if body is not None:
                async with contextlib.aclosing(self._drain(segment.key, body)) as chunks:
                    async for chunk in chunks:
                        yield chunk

    async def _read_piece(self, piece: _Piece) -> bytes:
        body = await self._open_range(piece.key, piece.start, piece.end)
        data = b"" if body is None else b"".join([c async for c in self._drain(piece.key, body)])
        if len(data) != piece.size:
            raise StorageError(f"S3 object {self._relative(piece.key)!r} changed while copied")
        return data

    async def _read_pieces(self, pieces: Sequence[_Piece]) -> bytes:
        """Download and join pieces (at most one part, so bounded), several at a time because
        a part re-uploaded from many tiny segments would otherwise cost a round trip each."""
        jobs = [functools.partial(self._read_piece, piece) for piece in pieces]
        return b"".join(await _run_bounded(jobs, self.limits.copy_concurrency))

    # -- composing objects ------------------------------------------------------------------

    async def _compose(self, dest: str, sources: Sequence[_Segment], scratch: str) -> None:
        """Make ``dest`` one object holding the concatenation of ``sources``.

        ``scratch`` is an object-key prefix for intermediate objects when one multipart
        upload cannot hold every part; the caller deletes it.
        """
        sources = [source for source in sources if source.size]
        parts = _plan_parts(sources, self.limits.min_part_size, self.limits.max_copy_size)
        if len(parts) > self.limits.max_parts:
            await self._compose_in_halves(dest, sources, scratch)
        elif not parts:
            await self._put(dest, b"")
        elif len(parts) == 1 and parts[0].copy and sources[0].whole:
            # The plan copies a single whole source only when it fits one CopyObject.
            await self._copy_object(parts[0].pieces[0].key, dest)
        elif len(parts) == 1:
            await self._put(dest, await self._read_pieces(parts[0].pieces))
        else:
            await self._multipart(dest, parts)

    async def _compose_in_halves(self, dest: str, sources: list[_Segment], scratch: str) -> None:
        """Too many parts for one upload: merge each half into an intermediate object, then
        compose those (each level copies the bytes once more, server side)."""
        if len(sources) < 2:
            raise StorageError(f"S3 object {self._relative(dest)!r} would be too large")
        middle = len(sources) // 2
        merged: list[_Segment] = []
        for half in (sources[:middle], sources[middle:]):
            key = f"{scratch}merge-{uuid.uuid4().hex}"
            await self._compose(key, half, scratch)
            merged.append(_Segment(key, 0, sum(source.size for source in half)))
        await self._compose(dest, merged, scratch)
        await self._delete_keys([segment.key for segment in merged])

    async def _copy_object(self, source: str, dest: str) -> None:
        await self._call(
            "COPY",
            source,
            self._client.copy_object,
            Bucket=self._bucket,
            Key=dest,
            CopySource={"Bucket": self._bucket, "Key": source},
        )

    async def _multipart(self, dest: str, parts: Sequence[_Part]) -> None:
        created = await self._call(
            "CREATE-MULTIPART",
            dest,
            self._client.create_multipart_upload,
            Bucket=self._bucket,
            Key=dest,
        )
        upload_id = created["UploadId"]
        uploads = asyncio.Semaphore(self.limits.upload_concurrency)

        def job(number: int, part: _Part) -> Callable[[], Awaitable[str]]:
            return lambda: self._send_part(dest, upload_id, number, part, uploads)

        try:
            etags = await _run_bounded(
                [job(number, part) for number, part in enumerate(parts, start=1)],
                self.limits.copy_concurrency,
            )
            await self._call(
                "COMPLETE-MULTIPART",
                dest,
                self._client.complete_multipart_upload,
                Bucket=self._bucket,
                Key=dest,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [
                        {"PartNumber": number, "ETag": etag}
                        for number, etag in enumerate(etags, start=1)
                    ]
                },
            )
        except BaseException:
            await self._abort_multipart(dest, upload_id)
            raise

    async def _send_part(
        self, dest: str, upload_id: str, number: int, part: _Part, uploads: asyncio.Semaphore
    ) -> str:
        """Copy or upload one part; returns its ETag."""
        if part.copy:
            piece = part.pieces[0]
            copied = await self._call(
                "UPLOAD-PART-COPY",
                piece.key,
                self._client.upload_part_copy,
                Bucket=self._bucket,
                Key=dest,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self._bucket, "Key": piece.key},
                CopySourceRange=_range_header(piece.start, piece.end),
            )
            return copied["CopyPartResult"]["ETag"]
        async with uploads:  # bounds memory: each holds one part of min_part_size bytes
            data = await self._read_pieces(part.pieces)
            uploaded = await self._call(
                "UPLOAD-PART",
                dest,
                self._client.upload_part,
                Bucket=self._bucket,
                Key=dest,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
            )
        return uploaded["ETag"]

    async def _abort_multipart(self, dest: str, upload_id: str) -> None:
        """Best effort: the original error matters more than a failed abort."""
        with contextlib.suppress(StorageError):
            await self._call(
                "ABORT-MULTIPART",
                dest,
                self._client.abort_multipart_upload,
                Bucket=self._bucket,
                Key=dest,
                UploadId=upload_id,
            )

    # -- writer support -----------------------------------------------------------------------

    async def _put(self, key: str, data: bytes | bytearray) -> None:
        # botocore sends a bytearray as is, only the stubs insist on bytes; the cast saves
        # copying every 8 MiB segment once more.
        body = cast(bytes, data)
        await self._call(
            "PUT", key, self._client.put_object, Bucket=self._bucket, Key=key, Body=body
        )

    async def _put_segment(self, key: str, offset: int, data: bytearray) -> None:
        await self._put(f"{key}{_PARTS}{_segment_name(offset)}", data)

    async def _reopen(self, key: str) -> int:
        """Prepare ``key`` for appending; returns the bytes already stored."""
        segments = await self._segments(key)
        size = await self._head(key)
        if segments is not None:
            if size is not None:
                # A commit stopped before deleting the segments; they hold the same bytes.
                await self._call(
                    "DELETE", key, self._client.delete_object, Bucket=self._bucket, Key=key
                )
            last = segments[-1]
            return last.offset + last.size
        if size is None:
            await self._put(f"{key}{_PARTS}{_segment_name(0)}", b"")
            return 0
        # Appending to a finished object: it becomes the first segment.
        first = f"{key}{_PARTS}{_segment_name(0)}"
        await self._compose(first, [_Segment(key, 0, size)], key + _PARTS)
        await self._call("DELETE", key, self._client.delete_object, Bucket=self._bucket, Key=key)
        return size

    async def _commit_segments(self, path: str, key: str, expected: int) -> None:
        segments = await self._segments(key)
        if segments is None:
            if await self._head(key) == expected:
                return  # another process committed it already
            raise PathNotFound(path)
        stored = segments[-1].offset + segments[-1].size
        if stored != expected:
            raise StorageError(
                f"upload {path!r} holds {stored} bytes, the writer expected {expected}; "
                "was it written by two writers at once?"
            )
        await self._compose(key, segments, key + _PARTS)
        await self._delete_prefix(key + _PARTS)

    # -- the StorageDriver interface ------------------------------------------------------

    async def get(self, path: str) -> bytes:
        return b"".join([chunk async for chunk in self.reader(path)])

    async def put(self, path: str, data: bytes) -> None:
        """A single PutObject, which S3 applies atomically."""
        await self._put(self._key(path), data)

    async def reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes | memoryview]:
        """Ranged GETs, streamed in 1 MiB chunks. An upload in progress reads as its flushed
        bytes; if it is committed while being read, the read may fail with PathNotFound."""
        key = self._key(path)
        end = None if length is None else offset + length
        if end is not None and end <= offset:
            if await self.stat(path) is None:
                raise PathNotFound(path)
            return
        try:
            body = await self._open_range(key, offset, end)
        except PathNotFound:
            segments = await self._segments(key)
            if segments is None:
                raise PathNotFound(path) from None
            async with contextlib.aclosing(self._read_view(segments, offset, end)) as chunks:
                async for chunk in chunks:
                    yield chunk
            return
        if body is None:
            return
        # aclosing: a reader abandoned half-way releases its connection now, not at GC time.
        async with contextlib.aclosing(self._drain(key, body)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def stat(self, path: str) -> int | None:
        """Size of the object, or the flushed bytes of an upload in progress."""
        view = await self._view(self._key(path))
        if view is None:
            return None
        return sum(segment.size for segment in view)

    async def writer(self, path: str, append: bool = False) -> Writer:
        key = self._key(path)
        if append:
            flushed = await self._reopen(key)
        else:
            await self._delete_key(key)
            await self._put(f"{key}{_PARTS}{_segment_name(0)}", b"")
            flushed = 0
        return _S3Writer(self, path, key, flushed)

    async def move(self, source: str, dest: str) -> None:
        """Server-side copy (multipart above 5 GiB, or straight from an upload's segments),
        then delete the source. Not atomic: a reader may briefly see both keys."""
        source_key, dest_key = self._key(source), self._key(dest)
        view = await self._view(source_key)
        if view is None:
            raise PathNotFound(source)
        if source_key == dest_key:
            return
        await self._compose(dest_key, view, source_key + _PARTS)
        await self._delete_key(source_key)

    async def assemble(self, dest: str, sources: Sequence[tuple[str, int]]) -> None:
        """One server-side compose of every source's first bytes (see :meth:`move`)."""
        dest_key = self._key(dest)
        pieces: list[_Segment] = []
        for path, length in sources:
            view = await self._view(self._key(path))
            if view is None:
                raise PathNotFound(path)
            if sum(segment.size for segment in view) < length:
                raise StorageError(f"{path!r} holds fewer than the {length} bytes expected")
            pieces.extend(_clip(view, length))
        # Intermediate objects go under the first source's segments, which the caller deletes.
        scratch = self._key(sources[0][0]) + _PARTS if sources else dest_key + _PARTS
        await self._compose(dest_key, pieces, scratch)

    async def delete(self, path: str) -> None:
        if path.endswith("/"):
            await self._delete_prefix(self._prefix_key(path))
        else:
            await self._delete_key(self._key(path))

    async def list(self, prefix: str) -> AsyncIterator[str]:
        """Keys under ``prefix`` taken as a directory. An upload in progress is listed once,
        under its own key; while a commit is finishing it may be listed twice."""
        last: str | None = None
        async for page in self._list_pages(self._prefix_key(prefix)):
            for key, _ in page:
                # Segments of one key are adjacent in key order, so remembering the last
                # key yielded is enough to list each upload once.
                logical = _logical_key(self._relative(key))
                if logical != last:
                    last = logical
                    yield logical

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
