"""The scrub (registry.scrub) on every storage driver: it finds blobs whose bytes do not have
their digest, quarantines them on repair, and the next push of the genuine content stores it.

Blobs are pushed through the real upload and manifest services, then their stored bytes are
replaced behind the registry's back, as the HA upload race did (issue 13).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from portside.audit.log import AuditLog
from portside.config import S3StorageSettings
from portside.db.engine import Database
from portside.db.tables import audit_logs, blobs, project_blobs
from portside.oci.digest import Digest
from portside.oci.errors import ErrorCode, RegistryError
from portside.projects.projects import Projects
from portside.projects.quotas import ProjectQuotas
from portside.registry.blobs import Blobs
from portside.registry.manifests import Manifests, parse_reference
from portside.registry.repositories import Repositories
from portside.registry.scrub import Scrubber, UnknownRepository, take_turn
from portside.registry.uploads import Uploads
from portside.storage.base import StorageDriver
from portside.storage.filesystem import FilesystemDriver
from portside.storage.layout import QUARANTINE_PREFIX, blob_path, digest_of_blob_path
from portside.storage.memory import MemoryDriver
from portside.storage.s3 import S3Driver
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY

APP, OTHER = "library/app", "library/other"
GENUINE = b"the genuine layer " * 20_000  # 360 KB: a streamed push, not the small-put path
# As long as GENUINE, as in the race (two 3 MiB bodies): a push of the genuine content then
# cannot tell the stored bytes are wrong without reading them (one of another size it replaces).
WRONG = b"a wrong one layer " * 20_000
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(params=["filesystem", "memory", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageDriver]:
    driver: StorageDriver
    if request.param == "filesystem":
        driver = FilesystemDriver(tmp_path / "store")
    elif request.param == "memory":
        driver = MemoryDriver()
    else:
        server = request.getfixturevalue("s3_server")
        driver = S3Driver(
            S3StorageSettings(
                bucket=server.bucket,
                endpoint_url=server.endpoint,
                region=REGION,
                access_key=ACCESS_KEY,
                secret_key=SecretStr(SECRET_KEY),
                prefix=f"test-{uuid.uuid4().hex}",
            )
        )
    yield driver
    await driver.close()


@dataclass
class Registry:
    """The services a push goes through, over one database and one store."""

    db: Database
    storage: StorageDriver
    audit: AuditLog

    def blobs(self) -> Blobs:
        """Fresh, so no cached answer of an earlier call hides what the database says now."""
        repositories = Repositories(self.db, 60)
        quotas = ProjectQuotas(self.db, Projects(self.db, 60), 60)
        return Blobs(self.db, self.storage, repositories, 60, quotas=quotas)

    def manifests(self) -> Manifests:
        blobs = self.blobs()
        return Manifests(
            self.db, self.storage, blobs.repositories, 4 << 20, 60, quotas=blobs.quotas
        )

    async def push_blob(self, repository: str, data: bytes, *, chunked: bool = True) -> Digest:
        """Push ``data``: chunked (a PATCH, then a PUT without a body) or monolithic."""
        uploads = Uploads(self.db, self.storage, self.blobs(), purge_age_seconds=3600)
        digest = Digest.of(data)
        started = await uploads.start(repository)
        if chunked:
            await uploads.append(repository, started.id, _body(data), None, len(data))
            await uploads.finish(repository, started.id, digest, _body(b""), 0)
        else:
            await uploads.finish(repository, started.id, digest, _body(data), len(data))
        return digest

    async def push_manifest(self, repository: str, raw: bytes) -> Digest:
        reference = parse_reference("v1")
        pushed = await self.manifests().put(repository, reference, raw, MANIFEST_MEDIA_TYPE)
        return pushed.digest

    def scrubber(self) -> Scrubber:
        return Scrubber(self.db, self.storage, self.audit)


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def registry(db: Database, storage: StorageDriver) -> AsyncIterator[Registry]:
    await Projects(db, 60).ensure_library(-1, None)
    audit = AuditLog(db)
    yield Registry(db, storage, audit)
    await audit.close()


def _manifest(config: bytes, layer: bytes) -> bytes:
    def descriptor(data: bytes, media_type: str) -> dict[str, Any]:
        return {"mediaType": media_type, "digest": str(Digest.of(data)), "size": len(data)}

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": descriptor(config, "application/vnd.oci.image.config.v1+json"),
            "layers": [descriptor(layer, "application/vnd.oci.image.layer.v1.tar")],
        }
    ).encode()


async def test_a_wrong_blob_is_reported_quarantined_and_stored_again_by_the_next_push(
    registry: Registry,
) -> None:
    storage = registry.storage
    digest = await registry.push_blob(APP, GENUINE)
    assert await registry.push_blob(OTHER, GENUINE, chunked=False) == digest
    good = await registry.push_blob(APP, b"a layer that stays right")
    await storage.put(blob_path(digest), WRONG)  # what the race left behind

    report = await registry.scrubber().run(workers=2)
    assert report.checked == 2
    assert report.bytes == len(WRONG) + len(b"a layer that stays right")
    [found] = report.mismatches
    assert (found.digest, found.actual, found.size) == (digest, Digest.of(WRONG), len(WRONG))
    assert found.repositories == (APP, OTHER)
    assert found.quarantined_to is None and report.left_broken
    assert await storage.get(blob_path(digest)) == WRONG  # no repair: nothing moved

    # The wrong bytes are what a push of the genuine content would keep, without a repair.
    await registry.push_blob(APP, GENUINE)
    assert await storage.get(blob_path(digest)) == WRONG

    repaired = await registry.scrubber().run(repository=APP, repair=True)
    [found] = repaired.mismatches
    assert found.quarantined_to is not None
    assert found.quarantined_to.startswith(f"{QUARANTINE_PREFIX}sha256/{digest.hex}.")
    assert await storage.get(found.quarantined_to) == WRONG
    assert await storage.stat(blob_path(digest)) is None
    assert not repaired.left_broken and not repaired.clean
    # Nothing claims the digest any more: a HEAD answers 404, and a mount finds no source.
    links = registry.blobs()
    assert await links.size_in(APP, digest) is None
    assert await links.size_in(OTHER, digest) is None
    assert await links.size_in(APP, good) is not None
    rows = await registry.db.read(lambda c: list(c.scalars(select(blobs.c.digest))))
    assert str(digest) not in rows and str(good) in rows
    counted = await registry.db.read(lambda c: list(c.scalars(select(project_blobs.c.digest))))
    assert str(digest) not in counted and str(good) in counted
    await registry.audit.flush()
    entries = await registry.db.read(
        lambda c: c.execute(
            select(audit_logs.c.operation, audit_logs.c.resource, audit_logs.c.detail)
        ).all()
    )
    [entry] = [e for e in entries if e.operation == "quarantine"]
    assert entry.resource == str(digest)
    assert str(Digest.of(WRONG)) in entry.detail and found.quarantined_to in entry.detail

    # Pushing the genuine content again stores it, monolithic into one repository and
    # chunked into the other.
    await registry.push_blob(OTHER, GENUINE, chunked=False)
    assert await storage.get(blob_path(digest)) == GENUINE
    await registry.push_blob(APP, GENUINE)
    assert await storage.get(blob_path(digest)) == GENUINE
    assert await registry.blobs().size_in(APP, digest) == len(GENUINE)
    assert (await registry.scrubber().run()).clean


async def test_a_chunked_push_after_the_repair_stores_the_genuine_bytes(
    registry: Registry,
) -> None:
    digest = await registry.push_blob(APP, GENUINE, chunked=False)
    await registry.storage.put(blob_path(digest), WRONG)
    await registry.scrubber().run(repair=True)
    await registry.push_blob(APP, GENUINE)  # the streamed path keeps an existing blob
    assert await registry.storage.get(blob_path(digest)) == GENUINE


async def test_a_wrong_manifest_is_never_served_and_is_stored_again_when_pushed(
    registry: Registry,
) -> None:
    config, layer = b'{"architecture":"amd64"}', b"layer bytes"
    await registry.push_blob(APP, config, chunked=False)
    await registry.push_blob(APP, layer, chunked=False)
    raw = _manifest(config, layer)
    digest = await registry.push_manifest(APP, raw)
    wrong = _manifest(config, b"another layer")
    await registry.storage.put(blob_path(digest), wrong)

    with pytest.raises(RegistryError) as refused:
        await registry.manifests().content(digest)
    assert refused.value.code is ErrorCode.MANIFEST_UNKNOWN

    report = await registry.scrubber().run(repository=APP, repair=True)
    [found] = report.mismatches
    assert (found.digest, found.actual, found.repositories) == (digest, Digest.of(wrong), (APP,))
    with pytest.raises(RegistryError) as missing:
        await registry.manifests().content(digest)
    assert missing.value.code is ErrorCode.MANIFEST_UNKNOWN

    assert await registry.push_manifest(APP, raw) == digest
    assert await registry.manifests().content(digest) == raw
    assert (await registry.scrubber().run(repository=APP)).clean


async def test_linked_blobs_without_bytes_are_reported_and_unlinked_on_repair(
    registry: Registry,
) -> None:
    digest = await registry.push_blob(APP, b"soon gone", chunked=False)
    await registry.storage.delete(blob_path(digest))  # a repair that died half-way

    assert (await registry.scrubber().run()).clean  # storage holds nothing to check
    report = await registry.scrubber().run(repository=APP)
    assert report.missing == [digest] and report.left_broken
    repaired = await registry.scrubber().run(repository=APP, repair=True)
    assert repaired.missing == [digest] and not repaired.left_broken
    assert await registry.blobs().size_in(APP, digest) is None
    assert (await registry.scrubber().run(repository=APP)).clean


async def test_no_more_blobs_than_workers_are_read_at_once(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(12):
        await registry.push_blob(APP, f"blob {number}".encode() * 1000, chunked=False)
    reading, most = 0, 0
    original = registry.storage.reader

    async def counting_reader(path: str, offset: int = 0, length: int | None = None) -> Any:
        nonlocal reading, most
        reading += 1
        most = max(most, reading)
        try:
            async for chunk in original(path, offset, length):
                yield chunk
        finally:
            reading -= 1

    monkeypatch.setattr(registry.storage, "reader", counting_reader)
    report = await registry.scrubber().run(workers=3)
    assert report.checked == 12 and report.clean
    assert 1 < most <= 3


async def test_an_unknown_repository_is_refused(registry: Registry) -> None:
    with pytest.raises(UnknownRepository):
        await registry.scrubber().run(repository="library/nothing")


@pytest.mark.parametrize(
    "key",
    [
        "blobs/sha256/ab/" + "c" * 64,  # in the wrong two-character folder
        "blobs/sha256/cc/." + "c" * 64 + ".0123.tmp",  # a filesystem put in progress
        "blobs/sha256/cc/" + "c" * 64 + "/data",  # layout 1
        "blobs/md5/cc/" + "c" * 32,
        "uploads/" + "c" * 64,
    ],
)
def test_only_blob_keys_name_a_digest(key: str) -> None:
    assert digest_of_blob_path(key) is None


def test_a_blob_key_names_its_digest() -> None:
    digest = Digest.of(b"x")
    assert digest_of_blob_path(blob_path(digest)) == digest


async def test_one_replica_takes_each_turn_of_the_background_scrub(db: Database) -> None:
    hour = dt.timedelta(hours=1)
    start = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    assert not await take_turn(db, hour, start)  # switched on: the first pass is an hour away
    assert not await take_turn(db, hour, start + hour / 2)  # a restart does not put it off...
    assert await take_turn(db, hour, start + hour)  # ...nor bring it forward
    assert not await take_turn(db, hour, start + hour)  # the other replica, at the same time
    assert not await take_turn(db, hour, start + hour * 1.5)
    assert await take_turn(db, hour, start + hour * 2.5)
