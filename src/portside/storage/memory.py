"""In-memory storage driver, for tests and throwaway instances. Nothing survives a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from portside.storage.base import PathNotFound, StorageDriver, StorageError, Writer

__all__ = ["MemoryDriver"]

_CHUNK = 1 << 20


class _MemoryWriter(Writer):
    def __init__(self, store: dict[str, bytearray], path: str) -> None:
        self._store = store
        self._path = path
        self._buffer = store[path]
        self._done = False

    @property
    def size(self) -> int:
        return len(self._buffer)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._done:
            # After commit the buffer may already be a blob's content: never change it.
            raise StorageError(f"writer for {self._path} is closed")
        self._buffer += data

    async def flush(self) -> None:
        return None

    async def commit(self) -> None:
        self._done = True

    async def cancel(self) -> None:
        self._done = True
        self._store.pop(self._path, None)

    async def close(self) -> None:
        self._done = True


class MemoryDriver(StorageDriver):
    name = "memory"

    def __init__(self) -> None:
        self._store: dict[str, bytearray] = {}

    async def get(self, path: str) -> bytes:
        try:
            return bytes(self._store[path])
        except KeyError:
            raise PathNotFound(path) from None

    async def put(self, path: str, data: bytes) -> None:
        self._store[path] = bytearray(data)

    async def reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes | memoryview]:
        try:
            content = self._store[path]
        except KeyError:
            raise PathNotFound(path) from None
        end = len(content) if length is None else min(len(content), offset + length)
        for start in range(offset, end, _CHUNK):
            yield bytes(content[start : min(start + _CHUNK, end)])

    async def stat(self, path: str) -> int | None:
        content = self._store.get(path)
        return None if content is None else len(content)

    async def writer(self, path: str, append: bool = False) -> Writer:
        if not append or path not in self._store:
            self._store[path] = bytearray()
        return _MemoryWriter(self._store, path)

    async def move(self, source: str, dest: str) -> None:
        try:
            self._store[dest] = self._store.pop(source)
        except KeyError:
            raise PathNotFound(source) from None

    async def assemble(self, dest: str, sources: Sequence[tuple[str, int]]) -> None:
        parts = []
        for path, length in sources:
            content = self._store.get(path)
            if content is None:
                raise PathNotFound(path)
            if len(content) < length:
                raise StorageError(f"{path!r} holds fewer than the {length} bytes expected")
            parts.append(bytes(content[:length]))
        self._store[dest] = bytearray(b"".join(parts))

    async def delete(self, path: str) -> None:
        if path.endswith("/"):
            for key in [k for k in self._store if k.startswith(path)]:
                del self._store[key]
        else:
            self._store.pop(path, None)

    async def list(self, prefix: str) -> AsyncIterator[str]:
        directory = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        for key in list(self._store):
            if key.startswith(directory):
                yield key
