"""The filesystem writer's O_DIRECT path, mixed with ordinary writes, reads back exactly."""

from __future__ import annotations

import hashlib
import mmap
import os
from pathlib import Path

from portside.storage.filesystem import FilesystemDriver, _direct_capable


def _aligned(data: bytes) -> mmap.mmap:
    buffer = mmap.mmap(-1, len(data))
    buffer[:] = data
    return buffer


def test_only_page_aligned_whole_blocks_qualify() -> None:
    assert _direct_capable(memoryview(_aligned(os.urandom(8192))))
    assert not _direct_capable(memoryview(_aligned(os.urandom(8192)))[1:4097])
    assert not _direct_capable(memoryview(_aligned(os.urandom(8192)))[:4000])
    assert not _direct_capable(os.urandom(8192))  # read-only bytes


async def test_direct_and_buffered_writes_mix(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)
    parts = [os.urandom(1 << 20), os.urandom(1000), os.urandom(1 << 20), os.urandom(3 << 20)]
    writer = await driver.writer("uploads/x/data")
    for part in parts:
        # aligned memory each time; after the 1000-byte part the offset is unaligned, so the
        # next block must go through the page cache, and the one after that as well
        await writer.write(memoryview(_aligned(part)))
    await writer.close()
    await driver.move("uploads/x/data", "blobs/x")
    stored = (tmp_path / "blobs" / "x").read_bytes()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(b"".join(parts)).digest()
    writer = await driver.writer("blobs/x", append=True)
    assert writer.size == len(stored)
    await writer.close()
