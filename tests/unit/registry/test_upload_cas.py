"""Appends race as compare-and-set: two replicas never store a blob under a digest it lacks.

Two ``Uploads`` on one PostgreSQL database and one store are two replicas. Each race is forced,
not left to chance: both appends are inside their bodies (bytes written, nothing committed)
before either may finish, and the test chooses which one finishes first. Run on every driver:
a shared filesystem folder (two driver instances on one root), S3 (moto) and memory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import boto3
import pytest

from portside.db.engine import Database
from portside.db.migrate import upgrade
from portside.oci.digest import Digest
from portside.oci.errors import ErrorCode, RegistryError
from portside.projects.projects import Projects
from portside.projects.quotas import ProjectQuotas
from portside.registry.blobs import Blobs
from portside.registry.repositories import Repositories
from portside.registry.uploads import ContentRange, Uploads
from portside.storage.base import StorageDriver
from portside.storage.filesystem import FilesystemDriver
from portside.storage.layout import UPLOADS_PREFIX, blob_path
from portside.storage.memory import MemoryDriver
from portside.storage.s3 import S3Driver
from tests.s3server import S3Server
from tests.support.backends import postgres_database

pytestmark = pytest.mark.slow  # replicas share a PostgreSQL database (SQLite has one process)

REPO = "library/app"
_BOTO_SESSION = boto3.session.Session()


@pytest.fixture(params=["filesystem", "s3", "memory"])
def storages(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], StorageDriver]:
    """A factory of drivers over one store, one per replica."""
    if request.param == "filesystem":
        return lambda: FilesystemDriver(tmp_path / "shared-folder")
    if request.param == "memory":
        shared = MemoryDriver()
        return lambda: shared
    server: S3Server = request.getfixturevalue("s3_server")
    settings = server.settings(f"cas-{uuid.uuid4().hex}")
    return lambda: S3Driver(settings, session=_BOTO_SESSION)


def _replica(db: Database, storage: StorageDriver) -> Uploads:
    repositories = Repositories(db, 0)
    quotas = ProjectQuotas(db, Projects(db, 0), 0)
    blobs = Blobs(db, storage, repositories, 0, quotas=quotas)
    return Uploads(db, storage, blobs, purge_age_seconds=3600)


@pytest.fixture
async def replicas(
    storages: Callable[[], StorageDriver],
) -> AsyncIterator[tuple[Uploads, Uploads, StorageDriver]]:
    with postgres_database() as url:
        await asyncio.to_thread(upgrade, url)
        db = Database(url)
        await Projects(db, 0).ensure_library(-1, None)
        storage_a, storage_b = storages(), storages()
        yield _replica(db, storage_a), _replica(db, storage_b), storage_a
        for storage in {id(s): s for s in (storage_a, storage_b)}.values():
            await storage.close()
        await db.close()


class Held:
    """A request body that sends its first half, then waits until released."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.inside = asyncio.Event()
        self.release = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        half = len(self.data) // 2
        yield self.data[:half]
        self.inside.set()
        await self.release.wait()
        yield self.data[half:]


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _digest(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


async def _race(
    first: tuple[Uploads, Held], second: tuple[Uploads, Held], upload_id: uuid.UUID, at: int
) -> tuple[object, object]:
    """Both appends at offset ``at`` get inside their bodies; then ``first`` may finish, and
    only when it has, ``second``. Returns each one's result or exception."""

    async def append(uploads: Uploads, body: Held) -> object:
        length = len(body.data)
        chunk = ContentRange(at, at + length - 1)
        try:
            return await uploads.append(REPO, upload_id, body.__aiter__(), chunk, length)
        except RegistryError as refused:
            return refused

    tasks = [asyncio.create_task(append(uploads, body)) for uploads, body in (first, second)]
    await asyncio.wait_for(asyncio.gather(first[1].inside.wait(), second[1].inside.wait()), 30)
    first[1].release.set()
    done = await tasks[0]
    second[1].release.set()
    return done, await tasks[1]


def _refused_with_416(outcome: object) -> bool:
    return isinstance(outcome, RegistryError) and outcome.code is ErrorCode.RANGE_INVALID


async def _stored(storage: StorageDriver, digest: Digest) -> bytes:
    return await storage.get(blob_path(digest))


@pytest.mark.parametrize("loser", ["holder of the losing hash", "holder of the winning hash"])
async def test_one_of_two_appends_at_one_offset_wins(
    replicas: tuple[Uploads, Uploads, StorageDriver], loser: str
) -> None:
    a, b, storage = replicas
    x, y = os.urandom(3 << 20), os.urandom(3 << 20)
    upload_id = (await a.start(REPO)).id
    # B commits first: A's append must lose, though its own bytes and hash are ready.
    b_result, a_result = await _race((b, Held(y)), (a, Held(x)), upload_id, 0)
    assert not isinstance(b_result, Exception), b_result
    assert _refused_with_416(a_result), a_result
    assert a_result.headers["Range"] == f"0-{len(y) - 1}"  # type: ignore[attr-defined]
    assert (await a.status(REPO, upload_id)).size == len(y)

    if loser == "holder of the losing hash":
        # A PUT on A with X's digest: A's hash of X must not be trusted; the bytes are Y.
        with pytest.raises(RegistryError) as refused:
            await a.finish(REPO, upload_id, _digest(x), _body(b""), 0)
        assert refused.value.code is ErrorCode.DIGEST_INVALID
        assert await storage.stat(blob_path(_digest(x))) is None
        assert await storage.stat(blob_path(_digest(y))) is None
    else:
        # A never saw Y's bytes arrive, yet finishing with Y's digest there stores exactly Y.
        assert await a.finish(REPO, upload_id, _digest(y), _body(b""), 0) == len(y)
        assert await _stored(storage, _digest(y)) == y
    assert [key async for key in storage.list(UPLOADS_PREFIX)] == []


async def test_a_writer_extending_its_own_chunk_loses_to_another_replica(
    replicas: tuple[Uploads, Uploads, StorageDriver],
) -> None:
    """A extends the chunk it committed; B appends at the same offset and commits first. A's
    extra bytes stay in A's chunk, past its committed length, and never reach the blob."""
    a, b, storage = replicas
    head, x, y = os.urandom(1 << 20), os.urandom(1 << 20), os.urandom(1 << 20)
    upload_id = (await a.start(REPO)).id
    await a.append(REPO, upload_id, _body(head), ContentRange(0, len(head) - 1), len(head))
    b_result, a_result = await _race((b, Held(y)), (a, Held(x)), upload_id, len(head))
    assert not isinstance(b_result, Exception), b_result
    assert _refused_with_416(a_result)

    blob = head + y
    assert await a.finish(REPO, upload_id, _digest(blob), _body(b""), 0) == len(blob)
    assert await _stored(storage, _digest(blob)) == blob


async def test_a_closing_put_with_a_body_races_an_append(
    replicas: tuple[Uploads, Uploads, StorageDriver],
) -> None:
    """A PUT carrying the last chunk and a PATCH at the same offset: the PATCH commits first,
    so the PUT is refused with 416, and the blob it had verified is not linked."""
    a, b, storage = replicas
    x, y = os.urandom(1 << 20), os.urandom(1 << 20)
    upload_id = (await a.start(REPO)).id
    put_body = Held(x)
    finishing = asyncio.create_task(
        a.finish(
            REPO, upload_id, _digest(x), put_body.__aiter__(), len(x), ContentRange(0, len(x) - 1)
        )
    )
    await asyncio.wait_for(put_body.inside.wait(), 30)
    await b.append(REPO, upload_id, _body(y), ContentRange(0, len(y) - 1), len(y))
    put_body.release.set()
    with pytest.raises(RegistryError) as refused:
        await finishing
    assert refused.value.code is ErrorCode.RANGE_INVALID
    assert (await b.status(REPO, upload_id)).size == len(y)
    assert await b.finish(REPO, upload_id, _digest(y), _body(b""), 0) == len(y)
    assert await _stored(storage, _digest(y)) == y
    # X's bytes were verified and stored, but nothing links them (garbage collection's job).
    assert await _stored(storage, _digest(x)) == x
    await storage.delete(blob_path(_digest(x)))


async def test_chunks_of_uploads_without_a_row_are_swept(
    replicas: tuple[Uploads, Uploads, StorageDriver],
) -> None:
    """What a crash between the last commit and the cleanup leaves behind: chunks no row lists.
    The purge deletes them, and leaves live uploads alone."""
    a, b, storage = replicas
    live = (await a.start(REPO)).id
    await a.append(REPO, live, _body(b"live bytes"), None, 10)
    orphan = uuid.uuid4()
    await storage.put(f"{UPLOADS_PREFIX}{orphan}/{uuid.uuid4().hex}", b"left by a crash")
    await storage.put(f"{UPLOADS_PREFIX}{uuid.uuid4()}", b"an upload of layout 2")
    assert await b.purge_abandoned(dt.timedelta(hours=1)) == 0
    left = [key async for key in storage.list(UPLOADS_PREFIX)]
    assert len(left) == 1 and left[0].startswith(f"{UPLOADS_PREFIX}{live}/")
    assert (await b.status(REPO, live)).size == 10
    await a.cancel(REPO, live)
    assert [key async for key in storage.list(UPLOADS_PREFIX)] == []


async def test_a_stored_blob_of_another_size_is_replaced_by_the_verified_bytes(
    replicas: tuple[Uploads, Uploads, StorageDriver],
) -> None:
    """Bytes an earlier version stored under a wrong digest are kept by a later push of the
    genuine content, as a rule (they cannot be told apart without reading them), unless their
    size gives them away: then the push stores the bytes it verified."""
    a, _, storage = replicas
    blob = os.urandom(1 << 20)
    await storage.put(blob_path(_digest(blob)), b"bytes of another length")
    upload_id = (await a.start(REPO)).id
    await a.append(REPO, upload_id, _body(blob), None, len(blob))
    assert await a.finish(REPO, upload_id, _digest(blob), _body(b""), 0) == len(blob)
    assert await _stored(storage, _digest(blob)) == blob
