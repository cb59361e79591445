"""One contract suite for every storage driver: filesystem, memory and S3 (a real moto_server).

The S3 server is the session-wide ``s3_server`` fixture of ``tests/conftest.py``; each test
works under its own key prefix in its bucket. Each test cleans up exactly the keys it created,
by their names. The ``backend`` fixture then lists the whole store and fails the test if
anything is left, which catches what a driver hides behind a key: S3 upload segments,
filesystem temp files, unfinished multipart uploads.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from pydantic import SecretStr

from portside.config import S3StorageSettings
from portside.storage.base import PathNotFound, StorageDriver, StorageError, Writer
from portside.storage.filesystem import FilesystemDriver
from portside.storage.layout import LAYOUT_KEY
from portside.storage.memory import MemoryDriver
from portside.storage.s3 import S3Driver, S3Limits, _plan_parts, _Segment
from portside.storage.upgrade import upgrade_layout
from tests.s3server import ACCESS_KEY, SECRET_KEY, S3Server

MIB = 1 << 20
# Shared so each test's drivers skip re-parsing botocore's service models.
_BOTO_SESSION = boto3.session.Session()
DRIVERS = ["filesystem", "memory", "s3"]


# -- fixtures ----------------------------------------------------------------------------------


@dataclass
class Backend:
    """One driver kind over one private store. :meth:`reopen` gives a new driver instance over
    the same bytes, as a restarted (or another) server process would have."""

    kind: str
    factory: Callable[[], StorageDriver]
    drivers: list[StorageDriver] = field(default_factory=list)
    s3: S3Server | None = None
    s3_prefix: str = ""

    def reopen(self) -> StorageDriver:
        driver = self.factory()
        self.drivers.append(driver)
        return driver

    @property
    def driver(self) -> StorageDriver:
        return self.drivers[0]

    def assert_settled(self, path: str) -> None:
        """After a commit the key is one plain object: on S3 no segments or merge objects
        remain behind it (the driver's own listing would hide them)."""
        if self.s3 is None:
            return
        key = f"{self.s3_prefix}/{path}"
        found = self.s3.client.list_objects_v2(Bucket=self.s3.bucket, Prefix=key)
        assert [o["Key"] for o in found.get("Contents", [])] == [key]


def _s3_backend(server: S3Server, limits: S3Limits | None = None) -> Backend:
    prefix = f"test-{uuid.uuid4().hex}"  # one bucket, a private prefix per test
    settings = server.settings(prefix)
    return Backend(
        "s3",
        lambda: S3Driver(settings, limits=limits, session=_BOTO_SESSION),
        s3=server,
        s3_prefix=prefix,
    )


def _make_backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if kind == "filesystem":
        return Backend(kind, lambda: FilesystemDriver(tmp_path / "store"))
    if kind == "memory":
        shared = MemoryDriver()  # nothing survives a restart, so "reopen" is the same store
        return Backend(kind, lambda: shared)
    return _s3_backend(request.getfixturevalue("s3_server"))


async def _leftovers(backend: Backend) -> list[str]:
    """Everything still stored, removing it so one sloppy test does not fail the next."""
    driver = backend.driver
    left = sorted({key async for key in driver.list("")})
    for key in left:
        await driver.delete(key)
    if backend.s3 is not None:
        left += _raw_s3_leftovers(backend.s3, backend.s3_prefix)
    return left


def _raw_s3_leftovers(server: S3Server, prefix: str) -> list[str]:
    """Objects and unfinished multipart uploads under the test's prefix, seen without the
    driver (which maps upload segments to their key)."""
    client = server.client
    listed = client.list_objects_v2(Bucket=server.bucket, Prefix=prefix)
    left = [f"object {o['Key']}" for o in listed.get("Contents", [])]
    for obj in listed.get("Contents", []):
        client.delete_object(Bucket=server.bucket, Key=obj["Key"])
    uploads = client.list_multipart_uploads(Bucket=server.bucket, Prefix=prefix)
    for upload in uploads.get("Uploads", []):
        left.append(f"multipart upload {upload['Key']}")
        client.abort_multipart_upload(
            Bucket=server.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
    return left


async def _finish(backend: Backend) -> None:
    try:
        left = await _leftovers(backend)
    finally:
        for driver in {id(d): d for d in backend.drivers}.values():
            await driver.close()
    if left:
        pytest.fail(f"{backend.kind} store not empty after the test: {left}")


@pytest.fixture(params=DRIVERS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made = _make_backend(request.param, request, tmp_path)
    made.reopen()
    yield made
    await _finish(made)


@pytest.fixture
def driver(backend: Backend) -> StorageDriver:
    return backend.driver


@pytest.fixture
async def s3(s3_server: S3Server) -> AsyncIterator[Backend]:
    """An S3-only backend, for behaviour the other drivers do not have."""
    made = _s3_backend(s3_server)
    made.reopen()
    yield made
    await _finish(made)


# -- helpers -----------------------------------------------------------------------------------


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def read_all(
    driver: StorageDriver, path: str, offset: int = 0, length: int | None = None
) -> bytes:
    return b"".join([chunk async for chunk in driver.reader(path, offset, length)])


async def stream_sha256(driver: StorageDriver, path: str) -> tuple[str, int]:
    """Hash a key through the reader without holding it whole; also the largest chunk seen."""
    digest, biggest = hashlib.sha256(), 0
    async for chunk in driver.reader(path):
        digest.update(chunk)
        biggest = max(biggest, len(chunk))
    return digest.hexdigest(), biggest


async def listed(driver: StorageDriver, prefix: str) -> list[str]:
    return sorted([key async for key in driver.list(prefix)])


async def expect_missing(driver: StorageDriver, path: str) -> None:
    assert await driver.stat(path) is None
    with pytest.raises(PathNotFound) as raised:
        await driver.get(path)
    assert raised.value.path == path


async def append(writer: Writer, *chunks: bytes) -> None:
    """Write and flush each chunk, as one PATCH request per chunk would."""
    for chunk in chunks:
        await writer.write(chunk)
        await writer.flush()


# -- put / get / stat ----------------------------------------------------------------------------


async def test_put_get_stat(driver: StorageDriver) -> None:
    await driver.put("a/b/c", b"hello")
    assert await driver.get("a/b/c") == b"hello"
    assert await driver.stat("a/b/c") == 5

    await driver.put("a/b/c", b"")  # replaces, down to empty
    assert await driver.get("a/b/c") == b""
    assert await driver.stat("a/b/c") == 0
    assert await read_all(driver, "a/b/c") == b""

    await driver.put("a/b/c", b"again")
    assert await driver.get("a/b/c") == b"again"
    await driver.delete("a/b/c")
    await expect_missing(driver, "a/b/c")


async def test_put_new_keeps_an_existing_key(driver: StorageDriver) -> None:
    assert await driver.put_new("blobs/x", b"first") is True
    assert await driver.put_new("blobs/x", b"second") is False
    assert await driver.get("blobs/x") == b"first"
    await driver.delete("blobs/x")


# -- the layout upgrade (storage.upgrade) works through this interface alone ---------------------


async def _plant_layout_1(driver: StorageDriver) -> None:
    await driver.put("blobs/sha256/ab/ab01/data", b"one")  # a layout-1 blob
    await driver.put("blobs/sha256/cd/cd02/.data.1f.tmp", b"junk")  # a write that crashed
    await driver.put("blobs/sha512/ef/.ef03.moving", b"three")  # an upgrade cut off half-way


async def _expect_layout_2(driver: StorageDriver) -> None:
    assert await listed(driver, "blobs/") == ["blobs/sha256/ab/ab01", "blobs/sha512/ef/ef03"]
    assert await driver.get("blobs/sha256/ab/ab01") == b"one"
    assert await driver.get("blobs/sha512/ef/ef03") == b"three"
    assert await driver.get(LAYOUT_KEY) == b"2"


async def test_upgrade_moves_layout_1_blobs_once(backend: Backend) -> None:
    driver = backend.driver
    await _plant_layout_1(driver)
    assert await upgrade_layout(driver) == 2
    await _expect_layout_2(driver)
    # The version is recorded: a later start reads it and touches nothing else.
    await driver.put("blobs/sha256/aa/aa04/data", b"left alone")
    assert await upgrade_layout(backend.reopen()) == 0
    assert await driver.get("blobs/sha256/aa/aa04/data") == b"left alone"
    for key in ("blobs/sha256/aa/aa04/data", "blobs/sha256/ab/ab01", "blobs/sha512/ef/ef03"):
        await driver.delete(key)
    await driver.delete(LAYOUT_KEY)


async def test_upgrade_by_two_replicas_at_once(backend: Backend) -> None:
    await _plant_layout_1(backend.driver)
    await asyncio.gather(upgrade_layout(backend.reopen()), upgrade_layout(backend.reopen()))
    await _expect_layout_2(backend.driver)
    for key in ("blobs/sha256/ab/ab01", "blobs/sha512/ef/ef03", LAYOUT_KEY):
        await backend.driver.delete(key)


async def test_upgrade_after_another_replica_finished_it(backend: Backend) -> None:
    """The interleaving that failed CI once: a replica that listed the layout-1 tree goes on
    after another one has already moved every blob."""
    driver = backend.driver
    await _plant_layout_1(driver)
    late = backend.reopen()
    listing = [key async for key in late.list("blobs/")]
    await upgrade_layout(backend.reopen())
    # What the late replica now does with its stale listing: each step finds nothing to do.
    with pytest.raises(PathNotFound):
        await late.move("blobs/sha256/ab/ab01/data", "blobs/sha256/ab/.ab01.moving")
    await late.delete("blobs/sha256/ab/ab01/")
    assert "blobs/sha256/ab/ab01/data" in listing
    await _expect_layout_2(driver)
    for key in ("blobs/sha256/ab/ab01", "blobs/sha512/ef/ef03", LAYOUT_KEY):
        await driver.delete(key)


async def test_keys_under_a_file_are_missing(driver: StorageDriver) -> None:
    await driver.put("a/file", b"kept")
    await expect_missing(driver, "a/file/below")
    with pytest.raises(PathNotFound):
        await anext(driver.reader("a/file/below"))
    with pytest.raises(PathNotFound):
        await driver.move("a/file/below", "a/elsewhere")
    await driver.delete("a/file/below")  # no-op
    await driver.delete("a/file/")  # a prefix: the file itself is not under it
    assert await driver.get("a/file") == b"kept"
    await driver.delete("a/file")


async def test_missing_keys(driver: StorageDriver) -> None:
    await expect_missing(driver, "nope/x")
    reader = driver.reader("nope/x")
    with pytest.raises(PathNotFound):
        await anext(reader)
    with pytest.raises(PathNotFound):
        await anext(driver.reader("nope/x", 3, 0))
    await driver.delete("nope/x")  # no-op
    await driver.delete("nope/")  # no-op
    assert await listed(driver, "nope/") == []


async def test_move_missing_names_the_source(driver: StorageDriver) -> None:
    with pytest.raises(PathNotFound) as raised:
        await driver.move("nope/x", "nope/y")
    assert raised.value.path == "nope/x"
    assert await listed(driver, "") == []


# -- reader ------------------------------------------------------------------------------------


async def test_reader_offsets_and_lengths(driver: StorageDriver) -> None:
    data = payload(2 * MIB + MIB // 2 + 17)
    size = len(data)
    await driver.put("blob", data)
    cases = [
        (0, None),
        (1, None),
        (0, 10),
        (MIB - 3, MIB + 10),  # across the drivers' 1 MiB chunk boundaries
        (size - 5, None),
        (size - 5, 100),  # length past the end is cut short
        (size, None),
        (size + 10, None),
        (5, 0),
    ]
    for offset, length in cases:
        end = None if length is None else offset + length
        assert await read_all(driver, "blob", offset, length) == data[offset:end], (offset, length)

    digest, biggest = await stream_sha256(driver, "blob")
    assert digest == sha256(data)
    assert biggest < size  # streamed, not loaded whole
    await driver.delete("blob")


# -- writers -----------------------------------------------------------------------------------


async def test_writer_appends_across_restart(backend: Backend) -> None:
    path = "uploads/u1/data"
    writer = await backend.driver.writer(path)
    assert writer.size == 0
    assert await backend.driver.stat(path) == 0  # a new upload exists, empty
    await append(writer, b"abc")
    assert writer.size == 3
    assert await backend.driver.stat(path) == 3
    await writer.close()
    await writer.close()  # idempotent

    restarted = backend.reopen()
    writer = await restarted.writer(path, append=True)
    assert writer.size == 3
    await append(writer, b"defg")
    await writer.close()

    other = backend.reopen()  # another replica picks up the next request
    writer = await other.writer(path, append=True)
    assert writer.size == 7
    # Before commit, flushed bytes are readable too (across S3 segments here).
    assert await other.stat(path) == 7
    assert await other.get(path) == b"abcdefg"
    assert await read_all(other, path, 2, 3) == b"cde"
    await writer.write(b"h")
    assert writer.size == 8
    await writer.commit()
    await writer.commit()  # idempotent
    backend.assert_settled(path)

    assert await backend.driver.get(path) == b"abcdefgh"
    assert await backend.driver.stat(path) == 8
    assert await listed(backend.driver, "uploads/") == [path]
    await backend.driver.delete(path)


async def test_writer_without_append_discards(driver: StorageDriver) -> None:
    await driver.put("k", b"old content")
    writer = await driver.writer("k")
    assert writer.size == 0
    assert await driver.stat("k") == 0
    await append(writer, b"new")
    await writer.commit()
    assert await driver.get("k") == b"new"
    await driver.delete("k")


async def test_append_to_missing_key_creates_it(driver: StorageDriver) -> None:
    writer = await driver.writer("fresh", append=True)
    assert writer.size == 0
    assert await driver.stat("fresh") == 0
    await writer.cancel()
    await expect_missing(driver, "fresh")


async def test_append_after_commit_continues(backend: Backend) -> None:
    writer = await backend.driver.writer("k")
    await append(writer, b"abc")
    await writer.commit()
    writer = await backend.reopen().writer("k", append=True)
    assert writer.size == 3
    await append(writer, b"def")
    await writer.commit()
    backend.assert_settled("k")
    assert await backend.driver.get("k") == b"abcdef"
    await backend.driver.delete("k")


async def test_many_small_chunks(backend: Backend) -> None:
    rng = random.Random(7)
    chunks = [rng.randbytes(rng.randint(1, 200)) for _ in range(100)]
    path = "uploads/many/data"
    writer = await backend.driver.writer(path)
    for index, chunk in enumerate(chunks, start=1):
        await append(writer, chunk)
        if index % 40 == 0:  # a restart now and then
            await writer.close()
            writer = await backend.reopen().writer(path, append=True)
    expected = b"".join(chunks)
    assert writer.size == len(expected)
    await writer.commit()
    backend.assert_settled(path)
    assert await backend.driver.get(path) == expected
    await backend.driver.delete(path)


async def test_large_upload_of_mixed_chunk_sizes(backend: Backend) -> None:
    sizes = [1, 3 * MIB, 7 * MIB, 1, 6 * MIB, 2 * MIB + 3]
    chunks = [payload(size, seed) for seed, size in enumerate(sizes)]
    expected = b"".join(chunks)
    path = "uploads/big/data"
    writer = await backend.driver.writer(path)
    await append(writer, *chunks[:3])
    await writer.close()
    writer = await backend.reopen().writer(path, append=True)
    assert writer.size == sum(sizes[:3])
    await append(writer, *chunks[3:])
    assert await backend.driver.stat(path) == len(expected)
    await writer.commit()
    backend.assert_settled(path)

    assert await backend.driver.stat(path) == len(expected)
    digest, _ = await stream_sha256(backend.driver, path)
    assert digest == sha256(expected)
    edge = 3 * MIB + 1  # the boundary between the 3 MiB and 7 MiB chunks
    assert await read_all(backend.driver, path, edge - 10, 20) == expected[edge - 10 : edge + 10]
    await backend.driver.delete(path)


async def test_one_large_write_then_commit(backend: Backend) -> None:
    driver = backend.driver
    data = payload(17 * MIB + 5, seed=3)
    writer = await driver.writer("one")
    await writer.write(memoryview(data))
    assert writer.size == len(data)
    await writer.commit()
    backend.assert_settled("one")
    digest, _ = await stream_sha256(driver, "one")
    assert digest == sha256(data)
    await driver.delete("one")


async def test_cancel_removes_everything(backend: Backend) -> None:
    path = "uploads/gone/data"
    writer = await backend.driver.writer(path)
    await append(writer, b"x" * 1000, b"y")
    await writer.close()
    writer = await backend.reopen().writer(path, append=True)
    await writer.write(b"unflushed")
    await writer.cancel()
    await writer.cancel()  # idempotent
    await expect_missing(backend.driver, path)
    assert await listed(backend.driver, "") == []


async def test_writer_refuses_writes_when_finished(driver: StorageDriver) -> None:
    try:
        committed = await driver.writer("done")
        await append(committed, b"abc")
        await committed.commit()
        with pytest.raises(StorageError):
            await committed.write(b"more")
        cancelled = await driver.writer("dropped")
        await cancelled.cancel()
        with pytest.raises(StorageError):
            await cancelled.write(b"more")
        assert await driver.get("done") == b"abc"
    finally:  # clean up even when failing as expected, so teardown stays quiet
        await driver.delete("done")
        await driver.delete("dropped")


# -- assemble --------------------------------------------------------------------------------


async def _flushed_writer(driver: StorageDriver, path: str, *chunks: bytes) -> Writer:
    writer = await driver.writer(path)
    await append(writer, *chunks)
    return writer


async def test_assemble_one_flushed_source(driver: StorageDriver) -> None:
    writer = await _flushed_writer(driver, "uploads/u/one", b"only", b"-chunk")
    await writer.close()
    await driver.assemble("blobs/b", [("uploads/u/one", 10)])
    assert await driver.get("blobs/b") == b"only-chunk"
    await driver.delete("uploads/u/")
    assert await listed(driver, "") == ["blobs/b"]
    await driver.delete("blobs/b")


async def test_assemble_takes_each_source_s_committed_prefix_only(backend: Backend) -> None:
    """A source may hold bytes past the length given (a writer that lost the race to commit
    them): they are never part of the result, whichever driver and however many sources."""
    driver = backend.driver
    first = payload(3 * MIB + 17, seed=1)
    second = payload(MIB, seed=2)
    one = await _flushed_writer(driver, "uploads/u/a", first, b"garbage past the prefix")
    two = await _flushed_writer(driver, "uploads/u/b", second)
    await one.close()
    await two.close()
    await driver.assemble("blobs/two", [("uploads/u/a", len(first)), ("uploads/u/b", len(second))])
    assert sha256(await driver.get("blobs/two")) == sha256(first + second)
    backend.assert_settled("blobs/two")

    lone = await _flushed_writer(driver, "uploads/v/a", b"kept", b"dropped")
    await lone.close()
    await driver.assemble("blobs/one", [("uploads/v/a", 4)])
    assert await driver.get("blobs/one") == b"kept"
    backend.assert_settled("blobs/one")
    for prefix in ("uploads/u/", "uploads/v/"):
        await driver.delete(prefix)
    assert await listed(driver, "") == ["blobs/one", "blobs/two"]
    for key in ("blobs/one", "blobs/two"):
        await driver.delete(key)


async def test_assemble_of_nothing_is_empty(driver: StorageDriver) -> None:
    await driver.assemble("blobs/empty", [])
    assert await driver.get("blobs/empty") == b""
    await driver.delete("blobs/empty")


async def test_assemble_refuses_a_short_or_missing_source(driver: StorageDriver) -> None:
    await driver.put("blobs/dest", b"as it was")
    await driver.put("uploads/u/short", b"abc")
    with pytest.raises(StorageError) as short:
        await driver.assemble("blobs/dest", [("uploads/u/short", 4)])
    assert not isinstance(short.value, PathNotFound)
    with pytest.raises(PathNotFound):
        await driver.assemble("blobs/dest", [("uploads/u/short", 3), ("uploads/u/gone", 1)])
    assert await driver.get("blobs/dest") == b"as it was"
    await driver.delete("uploads/u/")
    await driver.delete("blobs/dest")


# -- move / delete / list ----------------------------------------------------------------------


async def test_move(driver: StorageDriver) -> None:
    await driver.put("a/src", b"payload")
    await driver.move("a/src", "b/dest")
    await expect_missing(driver, "a/src")
    assert await driver.get("b/dest") == b"payload"

    await driver.put("a/other", b"newer")
    await driver.move("a/other", "b/dest")  # replaces
    assert await driver.get("b/dest") == b"newer"
    assert await listed(driver, "") == ["b/dest"]
    await driver.delete("b/dest")


async def test_move_upload_committed_or_not(driver: StorageDriver) -> None:
    committed = await driver.writer("uploads/1/data")
    await append(committed, b"first", b"-chunk")
    await committed.commit()
    await driver.move("uploads/1/data", "blobs/1")

    pending = await driver.writer("uploads/2/data")
    await append(pending, b"flushed", b"-bytes")
    await pending.close()
    await driver.move("uploads/2/data", "blobs/2")

    assert await driver.get("blobs/1") == b"first-chunk"
    assert await driver.get("blobs/2") == b"flushed-bytes"
    assert await listed(driver, "") == ["blobs/1", "blobs/2"]
    await driver.delete("blobs/1")
    await driver.delete("blobs/2")


async def test_delete_prefix(driver: StorageDriver) -> None:
    for key in ["p/a", "p/b/c", "p/b/d", "pp/x", "q/y"]:
        await driver.put(key, key.encode())
    writer = await driver.writer("p/u/data")  # an upload in progress goes too
    await append(writer, b"1", b"2")
    await writer.close()

    await driver.delete("p/")
    assert await listed(driver, "") == ["pp/x", "q/y"]
    await expect_missing(driver, "p/u/data")
    await driver.delete("q/y")
    await driver.delete("pp/")
    assert await listed(driver, "") == []


async def test_list(driver: StorageDriver) -> None:
    keys = ["a/1", "a/b/2", "a/b/c/3", "ab/4"]
    for key in keys:
        await driver.put(key, b"x")
    writer = await driver.writer("a/u/data")
    await append(writer, b"one", b"two")  # several S3 segments, listed once

    assert await listed(driver, "a/") == ["a/1", "a/b/2", "a/b/c/3", "a/u/data"]
    assert await listed(driver, "a/b/") == ["a/b/2", "a/b/c/3"]
    assert await listed(driver, "") == sorted([*keys, "a/u/data"])
    assert await listed(driver, "zzz/") == []

    await writer.cancel()
    for key in keys:
        await driver.delete(key)


# -- unsafe paths --------------------------------------------------------------------------------

UNSAFE = ["../x", "/abs", "a//b", "a/./b", "a/..", ""]


def _path_operations(
    driver: StorageDriver, path: str
) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "get": lambda: driver.get(path),
        "put": lambda: driver.put(path, b"x"),
        "stat": lambda: driver.stat(path),
        "reader": lambda: anext(driver.reader(path)),
        "writer": lambda: driver.writer(path),
        "move from": lambda: driver.move(path, "ok"),
        "move to": lambda: driver.move("ok", path),
        "delete": lambda: driver.delete(path),
        "delete prefix": lambda: driver.delete(path + "/"),
    }


async def test_unsafe_paths_are_refused(backend: Backend) -> None:
    if backend.kind == "memory":
        pytest.skip("the memory driver has no root to escape")
    driver = backend.driver
    await driver.put("ok", b"x")
    for path in UNSAFE:
        for name, attempt in _path_operations(driver, path).items():
            with pytest.raises(StorageError) as raised:
                await attempt()
            assert not isinstance(raised.value, PathNotFound), (name, path)
    assert await driver.get("ok") == b"x"
    await driver.delete("ok")


# -- S3 only -----------------------------------------------------------------------------------


def test_plan_parts_meets_s3_rules() -> None:
    rng = random.Random(11)
    min_part, max_copy = 7, 20
    for _ in range(300):
        sources = [
            _Segment(f"s{i}", 0, rng.choice([0, 1, 3, 6, 7, 8, 19, 20, 21, 45]))
            for i in range(rng.randint(0, 12))
        ]
        parts = _plan_parts([s for s in sources if s.size], min_part, max_copy)
        pieces = [piece for part in parts for piece in part.pieces]
        # The pieces cover every source, in order, exactly once.
        covered = [(p.key, b) for p in pieces for b in range(p.start, p.end)]
        assert covered == [(s.key, b) for s in sources for b in range(s.size)]
        for index, part in enumerate(parts):
            size = sum(piece.size for piece in part.pieces)
            assert size <= max(max_copy, min_part)
            if index < len(parts) - 1:
                assert size >= min_part
            if part.copy:
                assert len(part.pieces) == 1


async def test_s3_keys_live_under_the_prefix(s3: Backend) -> None:
    assert s3.s3 is not None
    await s3.driver.put("blobs/x", b"1")
    obj = s3.s3.client.get_object(Bucket=s3.s3.bucket, Key=f"{s3.s3_prefix}/blobs/x")
    assert obj["Body"].read() == b"1"
    neighbour = _s3_backend(s3.s3).reopen()  # another prefix in the same bucket
    try:
        assert await listed(neighbour, "") == []
        assert await neighbour.stat("blobs/x") is None
    finally:
        await neighbour.close()
    await s3.driver.delete("blobs/x")


async def test_s3_commit_merges_when_parts_exceed_the_limit(s3_server: S3Server) -> None:
    backend = _s3_backend(s3_server, S3Limits(segment_size=5 * MIB, max_parts=2))
    driver = backend.reopen()
    try:
        data = payload(4 * 5 * MIB + 1, seed=5)  # five segments: too many parts for one upload
        writer = await driver.writer("merged")
        await writer.write(data)
        await writer.commit()
        backend.assert_settled("merged")
        digest, _ = await stream_sha256(driver, "merged")
        assert digest == sha256(data)
        await driver.delete("merged")
    finally:
        await _finish(backend)


async def test_s3_writer_buffers_at_most_one_segment(s3: Backend) -> None:
    assert isinstance(s3.driver, S3Driver)
    writer = await s3.driver.writer("big")
    await writer.write(payload(20 * MIB))
    stored = await s3.driver.stat("big")
    assert stored is not None
    assert writer.size - stored < s3.driver.limits.segment_size
    await writer.cancel()


async def test_s3_reopen_after_interrupted_commit(s3: Backend) -> None:
    """A commit that wrote the object but died before deleting the segments."""
    assert s3.s3 is not None
    writer = await s3.driver.writer("up")
    await append(writer, b"abc")
    await writer.close()
    s3.s3.client.put_object(Bucket=s3.s3.bucket, Key=f"{s3.s3_prefix}/up", Body=b"abc")
    assert await s3.driver.stat("up") == 3
    assert await listed(s3.driver, "") == ["up"]
    writer = await s3.reopen().writer("up", append=True)
    assert writer.size == 3
    await append(writer, b"d")
    await writer.commit()
    s3.assert_settled("up")
    assert await s3.driver.get("up") == b"abcd"
    await s3.driver.delete("up")


async def test_s3_list_and_delete_page_through(s3_server: S3Server) -> None:
    backend = _s3_backend(s3_server, S3Limits(list_page_size=7))
    driver = backend.reopen()
    try:
        keys = [f"many/{i:02d}" for i in range(30)]
        await asyncio.gather(*(driver.put(key, b"") for key in keys))
        writer = await driver.writer("many/upload")  # its segments straddle pages
        await append(writer, *[b"x"] * 12)
        await writer.close()
        assert await listed(driver, "many/") == [*keys, "many/upload"]
        assert await driver.stat("many/upload") == 12
        await driver.delete("many/")
        assert await listed(driver, "") == []
    finally:
        await _finish(backend)


async def test_s3_failed_commit_aborts_its_multipart_upload(
    s3: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(s3.driver, S3Driver)
    real_send_part = S3Driver._send_part

    async def failing_send_part(
        self: S3Driver, dest: str, upload_id: str, number: int, *rest: object
    ) -> str:
        if number == 2:
            raise StorageError("injected failure")
        return await real_send_part(self, dest, upload_id, number, *rest)  # type: ignore[arg-type]

    data = payload(11 * MIB, seed=9)  # an 8 MiB and a 3 MiB segment: two parts
    writer = await s3.driver.writer("up")
    await writer.write(data)
    monkeypatch.setattr(S3Driver, "_send_part", failing_send_part)
    with pytest.raises(StorageError, match="injected"):
        await writer.commit()
    monkeypatch.undo()
    # Nothing was lost: the upload is intact and commits on a second try.
    assert await s3.driver.stat("up") == len(data)
    await writer.commit()
    digest, _ = await stream_sha256(s3.driver, "up")
    assert digest == sha256(data)
    await s3.driver.delete("up")
    # The fixture then fails the test if the aborted multipart upload were still open.


async def test_s3_reserved_segment_names_are_refused(s3: Backend) -> None:
    with pytest.raises(StorageError):
        await s3.driver.put("x.parts/0", b"")


async def test_s3_missing_bucket_is_a_storage_error(s3_server: S3Server) -> None:
    settings = S3StorageSettings(
        bucket="no-such-bucket",
        endpoint_url=s3_server.endpoint,
        access_key=ACCESS_KEY,
        secret_key=SecretStr(SECRET_KEY),
    )
    driver = S3Driver(settings)
    try:
        with pytest.raises(StorageError, match="NoSuchBucket") as raised:
            await driver.get("k")
        assert not isinstance(raised.value, PathNotFound)
        with pytest.raises(StorageError, match="NoSuchBucket"):
            await driver.put("k", b"x")
    finally:
        await driver.close()
