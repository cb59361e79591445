"""An upload purged while a request was reading it must stay gone.

Nothing about an upload may outlive its row in a cache: an earlier version cached upload owners,
and a purge between the read and the caching kept a dead upload alive for every later request.
The test forces that interleaving: the purge runs inside the lookup, after the row was read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from portside.db.engine import Database
from portside.oci.errors import ErrorCode, RegistryError
from portside.projects.projects import Projects
from portside.projects.quotas import ProjectQuotas
from portside.registry.blobs import Blobs
from portside.registry.repositories import Repositories
from portside.registry.uploads import Uploads
from portside.storage.filesystem import FilesystemDriver

T = TypeVar("T")


def _uploads(db: Database, root: Path) -> Uploads:
    repositories = Repositories(db, 60)
    quotas = ProjectQuotas(db, Projects(db, 60), 60)
    storage = FilesystemDriver(root)
    blobs = Blobs(db, storage, repositories, 60, quotas=quotas)
    return Uploads(db, storage, blobs, purge_age_seconds=3600)


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _restart_with_upload(db: Database, root: Path, size: int) -> tuple[uuid.UUID, Uploads]:
    """An upload that stored bytes, so its row is in the database, left by a process that
    stopped; and the fresh ``Uploads`` of the next process (a restart, or another replica),
    which has nothing cached."""
    first = _uploads(db, root)
    started = await first.start("library/app")
    await first.append("library/app", started.id, _body(b"x" * size), None, size)
    await first.close()
    return started.id, _uploads(db, root)


def _after_each_read(
    db: Database, monkeypatch: pytest.MonkeyPatch, then: Callable[[int], Awaitable[None]]
) -> None:
    """Make ``db.read`` and ``db.lookup`` await ``then(n)`` after the n-th of them, before the
    caller sees the row."""
    count = 0

    def wrapped(original: Callable[[Callable[[Any], T]], Awaitable[T]]) -> Any:
        async def read(query: Callable[[Any], T]) -> T:
            nonlocal count
            count += 1
            number = count  # a lookup may read through db.read, which counts too
            result = await original(query)
            await then(number)
            return result

        return read

    monkeypatch.setattr(db, "lookup", wrapped(db.lookup))
    monkeypatch.setattr(db, "read", wrapped(db.read))


async def test_upload_purged_during_owner_lookup_is_not_cached(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id, uploads = await _restart_with_upload(db, tmp_path / "storage", 1000)
    purged: list[int] = []

    async def purge_after_owner_lookup(read_number: int) -> None:
        if read_number == 1:  # the owner lookup; the purge's own reads pass straight through
            purged.append(await uploads.purge_abandoned(dt.timedelta(0)))

    _after_each_read(db, monkeypatch, purge_after_owner_lookup)
    with contextlib.suppress(RegistryError):  # the racing request may see the upload or not
        await uploads.status("library/app", upload_id)
    assert purged == [1]

    for _ in range(2):
        with pytest.raises(RegistryError) as refused:
            await uploads.status("library/app", upload_id)
        assert refused.value.code is ErrorCode.BLOB_UPLOAD_UNKNOWN
