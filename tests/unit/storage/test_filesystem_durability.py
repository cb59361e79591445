"""The filesystem driver makes a new blob's directories durable, not only the file: a blob
renamed into a directory whose own entry was never synced can vanish in a power cut."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portside.oci.digest import Digest
from portside.storage.filesystem import FilesystemDriver
from portside.storage.layout import blob_path


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path the process fsyncs, in order (the real fsync still runs)."""
    paths: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return paths


async def test_a_put_into_new_directories_syncs_each_parent(
    tmp_path: Path, synced: list[str]
) -> None:
    driver = FilesystemDriver(tmp_path / "root")
    await driver.put("blobs/sha256/ab/abcdef/data", b"content")
    root = (tmp_path / "root").resolve()
    assert synced == [
        str(root),
        str(root / "blobs"),
        str(root / "blobs/sha256"),
        str(root / "blobs/sha256/ab"),
        str(root / "blobs/sha256/ab/abcdef"),  # the file's own directory, after the rename
    ]
    synced.clear()
    await driver.put("blobs/sha256/ab/abcdef/data", b"content")  # nothing new to create
    assert synced == [str(root / "blobs/sha256/ab/abcdef")]


async def test_a_move_into_a_new_directory_syncs_its_parent(
    tmp_path: Path, synced: list[str]
) -> None:
    driver = FilesystemDriver(tmp_path / "root")
    writer = await driver.writer("uploads/one")
    await writer.write(b"chunk")
    await writer.flush()
    await writer.close()
    synced.clear()
    await driver.move("uploads/one", "blobs/sha256/cd/cdef/data")
    root = (tmp_path / "root").resolve()
    assert str(root / "blobs/sha256/cd") in synced
    assert synced[-1] == str(root / "blobs/sha256/cd/cdef")


async def test_a_blob_next_to_others_costs_one_directory_sync(
    tmp_path: Path, synced: list[str]
) -> None:
    """Blobs are files in their digest prefix's directory (storage.layout): once that directory
    exists, a new blob creates no directory and syncs only that one."""
    driver = FilesystemDriver(tmp_path / "root")
    digest = Digest.of(b"first")
    await driver.put_new(blob_path(digest), b"first")
    candidates = (Digest.of(n.to_bytes(2, "big")) for n in range(1 << 16))
    other = next(d for d in candidates if d.hex[:2] == digest.hex[:2])
    synced.clear()
    assert await driver.put_new(blob_path(other), b"second") is True
    assert synced == [str((tmp_path / "root" / blob_path(other)).parent.resolve())]
