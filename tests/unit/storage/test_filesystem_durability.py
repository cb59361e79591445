"""The filesystem driver makes a new blob's directories durable, not only the file: a blob
renamed into a directory whose own entry was never synced can vanish in a power cut."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portside.storage.filesystem import FilesystemDriver


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
