"""Bring a storage tree written by an older Portside to the current layout (storage.layout).

Layout 1 kept each blob in a directory of its own, ``blobs/<alg>/<ab>/<hex>/data``; layout 2
keeps it as the file ``blobs/<alg>/<ab>/<hex>``. On the filesystem the new name is the old
directory's, so each blob moves in three steps: out to ``blobs/<alg>/<ab>/.<hex>.moving``, the
directory (with anything an interrupted write left in it) is deleted, and the file moves to its
new name. A start interrupted half-way finishes the job on the next start, and replicas starting
together may run it at the same time: a step someone else did already is skipped.

The tree's version is kept under ``layout.LAYOUT_KEY``, so later starts read one key and are done.
"""

from __future__ import annotations

import contextlib

import structlog

from portside.storage.base import PathNotFound, StorageDriver
from portside.storage.layout import BLOBS_PREFIX, LAYOUT_KEY, LAYOUT_VERSION

__all__ = ["upgrade_layout"]

log = structlog.get_logger(__name__)

_MOVING = ".moving"


async def _version(storage: StorageDriver) -> int:
    """The tree's recorded layout; a tree without (a readable) one predates the key: layout 1."""
    try:
        return int((await storage.get(LAYOUT_KEY)).decode().strip())
    except (PathNotFound, ValueError):
        return 1


def _old_blob_dirs(keys: set[str]) -> tuple[set[str], set[str]]:
    """From every key under ``blobs/``: the layout-1 blob directories (``blobs/a/ab/hex``)
    and the blobs caught half-way (``blobs/a/ab/.hex.moving``)."""
    directories, moving = set(), set()
    for key in keys:
        parts = key.split("/")
        if len(parts) == 5:  # blobs/<alg>/<ab>/<hex>/<file>
            directories.add("/".join(parts[:4]))
        elif len(parts) == 4 and parts[3].startswith(".") and parts[3].endswith(_MOVING):
            moving.add(key)
    return directories, moving


async def _move_if_there(storage: StorageDriver, source: str, dest: str) -> None:
    # Gone already: moved by an earlier, interrupted run or by another replica.
    with contextlib.suppress(PathNotFound):
        await storage.move(source, dest)


async def upgrade_layout(storage: StorageDriver) -> int:
    """Move layout-1 blobs to their layout-2 keys. Returns how many blobs were moved."""
    if await _version(storage) >= LAYOUT_VERSION:
        return 0
    keys = {key async for key in storage.list(BLOBS_PREFIX)}  # a set: looked up per directory
    directories, moving = _old_blob_dirs(keys)
    for directory in sorted(directories):
        parent, name = directory.rsplit("/", 1)
        staged = f"{parent}/.{name}{_MOVING}"
        # Only a directory that holds the blob has one to move; one a crashed write left
        # without it is just deleted.
        if f"{directory}/data" in keys:
            await _move_if_there(storage, f"{directory}/data", staged)
            moving.add(staged)
        await storage.delete(directory + "/")
    for staged in sorted(moving):
        parent, name = staged.rsplit("/", 1)
        await _move_if_there(storage, staged, f"{parent}/{name[1 : -len(_MOVING)]}")
    await storage.put(LAYOUT_KEY, str(LAYOUT_VERSION).encode())
    if moving:
        log.info("moved blobs to storage layout 2", count=len(moving))
    return len(moving)
