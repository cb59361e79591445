"""Reading one image layer: which packages its files hold, what it deletes, which OS it is.

A layer is untrusted (anyone with push rights chooses its bytes) and may be gigabytes, so it is
streamed, never written to disk and never held whole in memory:

- the event loop reads the blob from storage and hands it over one chunk at a time (one chunk
  ahead) to a worker thread, which does all decompression and tar parsing, so the loop stays
  responsive and memory is bounded by a chunk, the decompressor's window and one wanted file;
- the compression is chosen from the media type and checked against the first bytes (gzip and
  zstd are recognised by their magic, as Docker and containerd recognise them, so a layer
  mislabelled ``tar`` still reads);
- :mod:`tarfile` reads the result in stream mode (no seeking). Its lenient corners are closed
  (:class:`_CheckedTarInfo`): a corrupt or cut header is an error instead of a silent end of
  the archive, and a pax or GNU long-name header, which tarfile reads into memory whole, is
  capped;
- limits on entries and on decompressed bytes stop archive bombs; every failure of the layer's
  content is one :class:`LayerError`, while failures reading storage are raised as themselves.

Whiteouts follow the OCI image spec's layer changeset rules
(https://github.com/opencontainers/image-spec/blob/main/layer.md#whiteouts): ``.wh.<name>``
deletes ``<name>`` from lower layers, ``.wh..wh..opq`` hides a directory's lower content.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import posixpath
import queue
import tarfile
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import IO, Protocol, Self, cast

from portside.scanner.analyzers.dpkg import FILE_LIST_MAX_BYTES, is_file_list, owned_files
from portside.scanner.analyzers.osrelease import MAX_BYTES as OS_RELEASE_MAX_BYTES
from portside.scanner.analyzers.osrelease import OS_RELEASE_PATHS, parse_os_release
from portside.scanner.model import Analyzer, LayerError, LayerResult, OSRelease, Package

__all__ = ["DEFAULT_MAX_ENTRIES", "DEFAULT_MAX_UNPACKED_BYTES", "LayerError", "analyze_layer"]

log = logging.getLogger(__name__)

DEFAULT_MAX_ENTRIES = 1_000_000
DEFAULT_MAX_UNPACKED_BYTES = 8 << 30
MAX_TAR_HEADER_BYTES = 1 << 20  # one pax or GNU long-name header; real ones are < 4 KiB
# zstd's own default limit, stated: a frame asking for a larger window is refused rather than
# given that much memory.
ZSTD_MAX_WINDOW_BYTES = 1 << 27
_ZSTD_READ_BYTES = 1 << 16
_WAIT_SECONDS = 0.5  # how often a waiting worker checks whether the reading was abandoned

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_META_TYPES = frozenset(
    {
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
    }
)
# What tarfile's header parser raises for the zero block that ends an archive.
_END_OF_ARCHIVE: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]


class _Stopped(Exception):
    """The caller abandoned the reading (cancelled); the worker thread unwinds."""


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


# -- from the event loop to the worker thread ---------------------------------------------------


class _Pump:
    """Moves the blob's chunks from the event loop to the worker thread. The loop fetches one
    chunk ahead of what the thread asked for, so storage reads overlap parsing and at most two
    chunks are held."""

    def __init__(self, chunks: AsyncIterator[bytes | memoryview]) -> None:
        self._chunks = chunks
        self._loop = asyncio.get_running_loop()
        self._wanted = asyncio.Event()
        self._handoff: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.stopped = threading.Event()
        self.failure: Exception | None = None

    async def run(self) -> None:
        try:
            async for chunk in self._chunks:
                data = bytes(chunk)  # a copy: chunks may be views of a memory map
                if data:
                    await self._wanted.wait()
                    self._wanted.clear()
                    self._handoff.put(data)
        except Exception as error:  # storage failed: the caller gets this, not a LayerError
            self.failure = error
        finally:
            self._handoff.put(None)
            close = getattr(self._chunks, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    def pull(self) -> bytes | None:
        """The next chunk, None at the end. Called from the worker thread."""
        self._loop.call_soon_threadsafe(self._wanted.set)
        while True:
            if self.stopped.is_set():
                raise _Stopped
            with contextlib.suppress(queue.Empty):
                return self._handoff.get(timeout=_WAIT_SECONDS)


class _Blob:
    """The raw blob as a read-only file for the decompressors and tarfile."""

    def __init__(self, pull: Callable[[], bytes | None]) -> None:
        self._pull = pull
        self._chunk = b""
        self._offset = 0
        self._ended = False

    def _next_chunk(self) -> bool:
        if not self._ended:
            chunk = self._pull()
            if chunk is None:
                self._ended = True
            else:
                self._chunk = self._chunk[self._offset :] + chunk
                self._offset = 0
        return not self._ended

    def peek(self, size: int) -> bytes:
        while len(self._chunk) - self._offset < size and self._next_chunk():
            pass
        return self._chunk[self._offset : self._offset + size]

    def read(self, size: int = -1) -> bytes:
        while self._offset >= len(self._chunk):
            if not self._next_chunk():
                return b""
        end = len(self._chunk) if size < 0 else self._offset + size
        data = self._chunk[self._offset : end]
        self._offset += len(data)
        return data


class _Capped:
    """Decompressed bytes, refused past ``limit``: a small archive bomb cannot make the
    reader inflate without end."""

    def __init__(self, inner: _Readable, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self._produced = 0

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size if size >= 0 else 1 << 16)
        self._produced += len(data)
        if self._produced > self._limit:
            raise LayerError(f"the layer unpacks to more than {self._limit} bytes")
        return data


# -- tar ----------------------------------------------------------------------------------------


class _CheckedTarInfo(tarfile.TarInfo):
    """tarfile's header reading, stricter: tarfile takes a corrupt, cut or missing header after
    the first as the end of the archive (so a damaged layer would read as a shorter one), and
    reads a pax or long-name header of any declared size into memory."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Self:
        block = tarfile_.fileobj.read(tarfile.BLOCKSIZE)
        if len(block) < tarfile.BLOCKSIZE:
            # Every tar writer ends the archive with zero blocks; a stream that stops before
            # them was cut short (zstd and plain tar cannot tell otherwise).
            raise LayerError("the layer ends before the end of its tar archive")
        try:
            member = cls.frombuf(block, tarfile_.encoding, tarfile_.errors)
        except _END_OF_ARCHIVE:
            raise
        except tarfile.HeaderError:
            raise LayerError("the layer has a corrupt tar header") from None
        if member.size < 0:
            raise LayerError("the layer has a tar entry of negative size")
        if member.type in _META_TYPES and member.size > MAX_TAR_HEADER_BYTES:
            raise LayerError(f"the layer has a tar header over {MAX_TAR_HEADER_BYTES} bytes")
        member.offset = tarfile_.fileobj.tell() - tarfile.BLOCKSIZE
        try:  # pax records, long names, sparse maps: tarfile would end the archive here too
            return cast(Self, member._proc_member(tarfile_))  # type: ignore[attr-defined]
        except tarfile.HeaderError:
            raise LayerError("the layer has a corrupt tar header") from None


def _normalise(name: str) -> str | None:
    """``./usr//lib/./x`` -> ``usr/lib/x``; None for the root and for names that climb with
    ``..`` (no runtime would put them anywhere sensible)."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or ".." in parts or "\x00" in name:
        return None
    return "/".join(parts)


def _link_target(path: str, linkname: str) -> str:
    """Where a symlink at ``path`` points, resolved inside the image root (``..`` stops at
    the root, as it does in a container)."""
    base = "/" if linkname.startswith("/") else "/" + posixpath.dirname(path)
    return posixpath.normpath(posixpath.join(base, linkname)).lstrip("/")


class _LayerWalk:
    """One pass over the members of a layer's tar stream."""

    def __init__(self, analyzers: Sequence[Analyzer], max_entries: int) -> None:
        self._analyzers = analyzers
        self._max_entries = max_entries
        self.result = LayerResult()
        self._os_releases: dict[str, OSRelease | None] = {}
        self._os_links: dict[str, str] = {}

    def walk(self, stream: _Readable) -> LayerResult:
        with tarfile.open(
            fileobj=cast(IO[bytes], stream),
            mode="r|",
            tarinfo=_CheckedTarInfo,
            encoding="utf-8",
            errors="surrogateescape",
        ) as tar:
            entries = 0
            while (member := tar.next()) is not None:
                tar.members.clear()  # type: ignore[attr-defined]  # it keeps every member read
                entries += 1
                if entries > self._max_entries:
                    raise LayerError(f"the layer has more than {self._max_entries} entries")
                path = _normalise(member.name)
                if path is None:
                    log.debug("layer entry skipped: unsafe name %r", member.name)
                    continue
                self._entry(tar, member, path)
        # Read what follows the archive (tar padding, normally under 10 KiB) so the gzip
        # checksum and length at the very end are checked too.
        while stream.read(1 << 16):
            pass
        self._pick_os_release()
        return self.result

    def _entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        self.result.packages.pop(path, None)  # a later entry for a path replaces an earlier one
        self.result.owned.pop(path, None)
        directory, _, base = path.rpartition("/")
        if base.startswith(_WHITEOUT):
            self._whiteout(directory, base)
            return
        release = path in OS_RELEASE_PATHS or path in self._os_links.values()
        if release:
            self._os_links.pop(path, None)
            self._os_releases.pop(path, None)
            if member.issym():
                self._os_links[path] = _link_target(path, member.linkname)
        if not member.isfile() or member.issparse():
            return
        if is_file_list(path) and member.size <= FILE_LIST_MAX_BYTES:
            self.result.owned[path] = owned_files(path, _read(tar, member))
            return
        wanting = [a for a in self._analyzers if _wants(a, path, member)]
        release = release and member.size <= OS_RELEASE_MAX_BYTES
        if wanting or release:
            data = _read(tar, member)
            if release:
                self._os_releases[path] = parse_os_release(data)
            if wanting:
                self.result.packages[path] = _parse(wanting, path, data)

    def _whiteout(self, directory: str, base: str) -> None:
        if base == _OPAQUE:
            self.result.opaque_dirs.append(directory)  # "" is the root
            return
        name = base[len(_WHITEOUT) :]
        # Other ``.wh..wh.`` names are aufs bookkeeping, not deletions.
        if name not in ("", ".", "..") and not base.startswith(_WHITEOUT + _WHITEOUT):
            self.result.whiteouts.append(f"{directory}/{name}" if directory else name)

    def _pick_os_release(self) -> None:
        """``etc/os-release`` first, then ``usr/lib/os-release``, as the spec says; a symlink
        counts when its target is in this layer."""
        for path in OS_RELEASE_PATHS:
            target = self._os_links.get(path, path)
            release = self._os_releases.get(target)
            if release is not None:
                self.result.os_release = release
                self.result.os_release_path = target
                return


def _parse(analyzers: Sequence[Analyzer], path: str, data: bytes) -> list[Package]:
    found: list[Package] = []
    for analyzer in analyzers:
        try:
            found.extend(analyzer.parse(path, data))
        except Exception:  # an analyzer's bug or a file it cannot read: skip that file
            log.debug("analyzer %s failed on %s", analyzer.name, path, exc_info=True)
    return found


def _wants(analyzer: Analyzer, path: str, member: tarfile.TarInfo) -> bool:
    try:
        return member.size <= analyzer.max_bytes and analyzer.wants(path, member.size, member.mode)
    except Exception:
        log.debug("analyzer %s failed on %s", analyzer.name, path, exc_info=True)
        return False


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    extracted = tar.extractfile(member)
    return extracted.read() if extracted is not None else b""


# -- putting it together ------------------------------------------------------------------------


def _declared_compression(media_type: str) -> str:
    base = media_type.split(";")[0].strip().lower()
    for suffix, kind in (("gzip", "gzip"), ("zstd", "zstd"), ("tar", "tar")):
        if base.endswith(("+" + suffix, "." + suffix)):
            return kind
    raise LayerError(f"media type {media_type!r} is not a tar layer")


def _decompressed(blob: _Blob, declared: str) -> _Readable:
    head = blob.peek(len(_ZSTD_MAGIC))
    raw = cast(IO[bytes], blob)  # it has the one method both decompressors call: read
    if head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if head.startswith(_ZSTD_MAGIC):
        import zstandard  # only for zstd layers: the server starts without it

        decompressor = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW_BYTES)
        return decompressor.stream_reader(
            raw, read_size=_ZSTD_READ_BYTES, read_across_frames=True, closefd=False
        )
    if declared != "tar":
        raise LayerError(f"the layer is not {declared}-compressed as its media type says")
    return blob


def _read_layer(
    pull: Callable[[], bytes | None],
    media_type: str,
    analyzers: Sequence[Analyzer],
    max_entries: int,
    max_unpacked_bytes: int,
) -> LayerResult:
    declared = _declared_compression(media_type)
    blob = _Blob(pull)
    try:
        if not blob.peek(1):
            return LayerResult()  # an empty blob: nothing in it
        stream = _decompressed(blob, declared)
        return _LayerWalk(analyzers, max_entries).walk(_Capped(stream, max_unpacked_bytes))
    except (LayerError, _Stopped):
        raise
    except tarfile.TarError as error:
        raise LayerError(f"the layer is not a valid tar archive ({error})") from None
    except Exception as error:  # gzip, zlib, zstd and tarfile raise many types on bad input
        log.debug("layer unreadable", exc_info=True)
        raise LayerError(f"the layer's data is corrupt or truncated ({error})") from None


async def analyze_layer(
    chunks: AsyncIterator[bytes | memoryview],
    media_type: str,
    analyzers: Sequence[Analyzer],
    *,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES,
) -> LayerResult:
    """What the layer streamed by ``chunks`` (a blob of ``media_type``) holds, as the
    ``analyzers`` see it. Raises :class:`LayerError` for content that cannot be read, and
    whatever ``chunks`` raises for storage failures."""
    pump = _Pump(chunks)
    pumping = asyncio.create_task(pump.run())
    reading = asyncio.create_task(
        asyncio.to_thread(
            _read_layer, pump.pull, media_type, tuple(analyzers), max_entries, max_unpacked_bytes
        )
    )
    try:
        result = await asyncio.shield(reading)
    except LayerError:
        if pump.failure is not None:  # the layer looked cut short because storage failed
            raise pump.failure from None
        raise
    finally:
        pump.stopped.set()
        # The thread stops at its next chunk; it must not outlive the stream it reads.
        await asyncio.wait({reading})
        if not reading.cancelled():
            reading.exception()  # retrieved, so an abandoned reading's error is not logged
        pumping.cancel()
        await asyncio.wait({pumping})
    if pump.failure is not None:  # the tar ended just where storage failed: not the whole layer
        raise pump.failure
    return result
