"""The storage driver interface: a small, flat key/value store of byte streams.

Drivers know nothing about registries. Keys are slash-separated relative paths built only by
:mod:`portside.storage.layout`; a driver may assume they are already validated (no ``..``, no
leading ``/``, no empty segments) but must still refuse anything that would escape its root.

Every method is a coroutine. A driver that does blocking I/O runs it in a worker thread so the
event loop is never blocked.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence

__all__ = ["PathNotFound", "StorageDriver", "StorageError", "Writer"]


class StorageError(Exception):
    """A driver failed for a reason other than a missing key."""


class PathNotFound(StorageError):
    """The key does not exist."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no such storage path: {path}")
        self.path = path


class Writer(ABC):
    """An append-only stream into one key, used for uploads in progress.

    Two levels of safety: after :meth:`flush` the bytes are visible to ``stat``, ``reader`` and
    a new ``writer(path, append=True)`` (in this or another process) and survive a crash of this
    process; after :meth:`commit` they are also durable on the medium (fsync on the filesystem
    driver). A failure before :meth:`flush` may lose unflushed bytes, never reorder or corrupt
    earlier flushed ones.
    """

    @property
    @abstractmethod
    def size(self) -> int:
        """Bytes accepted so far, including those not yet flushed."""

    @abstractmethod
    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``. The driver may buffer a copy, but must not keep a reference to
        ``data`` itself after returning: the caller reuses that buffer."""

    @abstractmethod
    async def flush(self) -> None:
        """Make every byte written so far visible and resumable (not necessarily fsynced)."""

    @abstractmethod
    async def commit(self) -> None:
        """Make every byte durable and finish the key: no more writes. Idempotent."""

    @abstractmethod
    async def cancel(self) -> None:
        """Discard the key and everything written to it. Idempotent."""

    @abstractmethod
    async def close(self) -> None:
        """Release resources, keeping flushed bytes so a later :meth:`StorageDriver.writer`
        call with ``append=True`` can continue. Idempotent."""


class StorageDriver(ABC):
    """Byte storage for blobs, manifests and uploads in progress."""

    name: str = "abstract"

    @abstractmethod
    async def get(self, path: str) -> bytes:
        """Return the whole content of a small key. Raises :class:`PathNotFound`."""

    @abstractmethod
    async def put(self, path: str, data: bytes) -> None:
        """Atomically write ``data`` to ``path``, replacing any content; durable on return."""

    async def put_new(self, path: str, data: bytes) -> bool:
        """Write ``data`` to ``path`` unless the key already exists; durable on return.
        Returns whether it was written. For content-addressed keys (blobs), whose content never
        changes: an existing key already holds these bytes. Drivers may do both steps at once."""
        if await self.stat(path) is not None:
            return False
        await self.put(path, data)
        return True

    @abstractmethod
    def reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes | memoryview]:
        """Stream ``length`` bytes (to the end when None) starting at ``offset``.

        Raises :class:`PathNotFound` on the first iteration if the key does not exist.
        Chunks are of driver-chosen size and may be read-only views (the filesystem driver
        yields slices of a memory map); memory use is bounded by one chunk.
        """

    @abstractmethod
    async def stat(self, path: str) -> int | None:
        """Size in bytes of the key, or None when it does not exist."""

    @abstractmethod
    async def writer(self, path: str, append: bool = False) -> Writer:
        """Open an append writer. With ``append`` it continues an existing key (after the bytes
        that were flushed); without it any existing content is discarded."""

    @abstractmethod
    async def move(self, source: str, dest: str) -> None:
        """Move ``source`` to ``dest``, replacing ``dest``; ``dest`` is durable on return.
        Atomic on the filesystem driver. ``source`` may be an upload key that was flushed but
        never committed (the S3 driver then assembles the object once, straight at ``dest``).

        Raises :class:`PathNotFound` when ``source`` does not exist.
        """

    @abstractmethod
    async def assemble(self, dest: str, sources: Sequence[tuple[str, int]]) -> None:
        """Make ``dest`` hold the first ``length`` bytes of each ``(path, length)`` source, in
        order, replacing ``dest``; durable on return. A source may be a writer's key that was
        flushed but never committed, and may hold more than ``length`` bytes (the rest is
        ignored). Sources are consumed: afterwards each may be gone or hold anything, and the
        caller deletes what is left of them.

        Raises :class:`PathNotFound` when a source does not exist, and :class:`StorageError`
        when one holds fewer than ``length`` bytes; ``dest`` is then left as it was.
        """

    @abstractmethod
    async def delete(self, path: str) -> None:
        """Delete a key, or every key under a prefix ending in ``/``. Missing keys are a no-op."""

    @abstractmethod
    def list(self, prefix: str) -> AsyncIterator[str]:
        """Yield every key under ``prefix`` (recursively), in no particular order."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and pools. Called once at shutdown."""
