"""``portside fsck --verify-digests`` against a real server whose stored bytes were replaced
behind its back (on disk, or in the S3 bucket), as the HA upload race of issue 13 left them: the
mismatch is reported, ``--repair`` quarantines it, pulls answer 404 meanwhile, and real pushes
of the genuine content (monolithic and chunked) store it again, so pulls get the right bytes.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.oci import (
    Blob,
    assert_error,
    blob_path,
    image_manifest,
    manifest_path,
    patch_chunk,
    push_blob,
    push_content,
    push_manifest,
    random_blob,
    start_upload,
    upload_url,
)
from tests.support.server import PortsideServer

pytestmark = pytest.mark.slow

APP, OTHER = "library/app", "library/other"
CACHE_TTL = 1.0  # seconds a link stays cached: the tests wait it out


@dataclass
class Store:
    """The server's storage seen directly: its data folder, or its prefix in an S3 bucket."""

    folder: Path | None = None
    s3: Any = None
    prefix: str = ""

    def write(self, key: str, data: bytes) -> None:
        if self.folder is not None:
            (self.folder / key).write_bytes(data)
        else:
            self.s3.client.put_object(Bucket=self.s3.bucket, Key=self.prefix + key, Body=data)

    def delete(self, key: str) -> None:
        if self.folder is not None:
            (self.folder / key).unlink()
        else:
            self.s3.client.delete_object(Bucket=self.s3.bucket, Key=self.prefix + key)

    def read(self, key: str) -> bytes:
        if self.folder is not None:
            return (self.folder / key).read_bytes()
        found = self.s3.client.get_object(Bucket=self.s3.bucket, Key=self.prefix + key)
        data: bytes = found["Body"].read()
        return data

    def keys(self, under: str) -> list[str]:
        if self.folder is not None:
            return sorted(
                str(path.relative_to(self.folder))
                for path in (self.folder / under).rglob("*")
                if path.is_file()
            )
        listed = self.s3.client.list_objects_v2(Bucket=self.s3.bucket, Prefix=self.prefix + under)
        return sorted(o["Key"][len(self.prefix) :] for o in listed.get("Contents", []))


@dataclass
class Setup:
    server: PortsideServer
    store: Store


def _blob_key(digest: str) -> str:
    """The blob's key in storage, as docs/operations.md ("Storage layout") gives it."""
    algorithm, hex_digest = digest.split(":")
    return f"blobs/{algorithm}/{hex_digest[:2]}/{hex_digest}"


def _corrupt(store: Store, digest: str, size: int) -> bytes:
    """Replace a stored blob's bytes with others of the same size; returns them."""
    wrong = os.urandom(size)
    store.write(_blob_key(digest), wrong)
    return wrong


def _start(data_dir: Path, env: dict[str, str]) -> PortsideServer:
    server = PortsideServer(
        data_dir, {"PORTSIDE_REGISTRY__CACHE_TTL_SECONDS": str(CACHE_TTL), **env}
    )
    server.start()
    return server


@pytest.fixture(params=["sqlite-fs", "postgres-s3"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    data_dir = tmp_path / "portside"
    if request.param == "sqlite-fs":
        server = _start(data_dir, {})
        try:
            yield Setup(server, Store(folder=data_dir / "storage"))
        finally:
            server.stop()
        return
    from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY
    from tests.support.backends import postgres_database

    s3 = request.getfixturevalue("s3_server")
    prefix = f"fsck-{secrets.token_hex(4)}/"
    with postgres_database() as url:
        server = _start(
            data_dir,
            {
                "PORTSIDE_DATABASE__URL": url,
                "PORTSIDE_STORAGE__DRIVER": "s3",
                "PORTSIDE_STORAGE__S3__BUCKET": s3.bucket,
                "PORTSIDE_STORAGE__S3__ENDPOINT_URL": s3.endpoint,
                "PORTSIDE_STORAGE__S3__REGION": REGION,
                "PORTSIDE_STORAGE__S3__ACCESS_KEY": ACCESS_KEY,
                "PORTSIDE_STORAGE__S3__SECRET_KEY": SECRET_KEY,
                "PORTSIDE_STORAGE__S3__PREFIX": prefix,
            },
        )
        try:
            yield Setup(server, Store(s3=s3, prefix=prefix))
        finally:
            server.stop()


def _push_chunked(client: httpx.Client, repo: str, blob: Blob) -> None:
    url = upload_url(start_upload(client, repo))
    half = blob.size // 2
    first = patch_chunk(client, url, blob.data[:half], 0)
    assert first.status_code == 202, first.text
    second = patch_chunk(client, upload_url(first), blob.data[half:], half)
    assert second.status_code == 202, second.text
    done = client.put(upload_url(second), params={"digest": blob.digest})
    assert done.status_code == 201, done.text


def _pull(client: httpx.Client, repo: str, digest: str) -> httpx.Response:
    return client.get(blob_path(repo, digest))


def test_a_corrupted_layer_is_found_quarantined_and_pushed_again(setup: Setup) -> None:
    server, store = setup.server, setup.store
    layer = random_blob(300_000)
    manifest = image_manifest(layers=[layer])
    with server.client() as client:
        push_content(client, APP, manifest, "v1")
        push_blob(client, OTHER, layer)
        wrong = _corrupt(store, layer.digest, layer.size)
        assert _pull(client, APP, layer.digest).content == wrong  # what the race led to

        found = server.run_command("fsck", "--verify-digests")
        assert found.returncode == 4, found.stderr
        line = next(x for x in found.stdout.splitlines() if x.startswith("MISMATCH"))
        assert layer.digest in line and f"({layer.size} bytes)" in line
        assert f"used by {APP}, {OTHER}" in line
        assert "checked 3 blobs" in found.stdout and "1 mismatched" in found.stdout
        assert store.read(_blob_key(layer.digest)) == wrong  # reporting moves nothing

        repaired = server.run_command("fsck", "--verify-digests", "--repository", APP, "--repair")
        assert repaired.returncode == 1, repaired.stderr
        assert "quarantined to quarantine/sha256/" in repaired.stdout
        assert _blob_key(layer.digest) not in store.keys("blobs/")
        [kept] = store.keys("quarantine/")
        assert kept.startswith(f"quarantine/sha256/{layer.digest.split(':')[1]}.")
        assert store.read(kept) == wrong

        time.sleep(CACHE_TTL)  # the link the pull above cached has expired
        for repo in (APP, OTHER):  # nothing claims the digest: a client pushes it again
            assert client.head(blob_path(repo, layer.digest)).status_code == 404
            assert_error(_pull(client, repo, layer.digest), 404, "BLOB_UNKNOWN")
        mount = {"mount": layer.digest, "from": OTHER}  # no source holds it: an upload starts
        assert client.post(f"/v2/{APP}/blobs/uploads/", params=mount).status_code == 202

        push_blob(client, OTHER, layer)  # monolithic
        _push_chunked(client, APP, layer)
        for repo in (APP, OTHER):
            pulled = _pull(client, repo, layer.digest)
            assert pulled.status_code == 200 and pulled.content == layer.data
            assert pulled.headers["Docker-Content-Digest"] == layer.digest
        assert client.get(manifest_path(APP, "v1")).status_code == 200

        logs = client.get("/api/v2.0/audit-logs", params={"q": "operation=quarantine"})
        assert logs.status_code == 200, logs.text
        [entry] = logs.json()
        assert entry["resource"] == layer.digest and entry["username"] == "portside-cli"

    clean = server.run_command("fsck", "--verify-digests")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 mismatched, 0 missing, 0 unreadable" in clean.stdout


def test_a_corrupted_manifest_is_never_served_and_is_pushed_again(setup: Setup) -> None:
    server = setup.server
    manifest = image_manifest()
    with server.client() as client:
        push_content(client, APP, manifest, "v1")
        _corrupt(setup.store, manifest.digest, manifest.size)

        # Read from storage and checked before it is served: never the wrong bytes.
        assert_error(client.get(manifest_path(APP, "v1")), 404, "MANIFEST_UNKNOWN")

        report = server.run_command("fsck", "--verify-digests", "--repair", "--output", "json")
        assert report.returncode == 1, report.stderr
        [found] = json.loads(report.stdout)["mismatches"]
        assert found["digest"] == manifest.digest and found["repositories"] == [APP]
        assert_error(client.get(manifest_path(APP, manifest.digest)), 404, "MANIFEST_UNKNOWN")

        push_manifest(client, APP, manifest, "v1")
        pulled = client.get(manifest_path(APP, "v1"), headers={"Accept": manifest.media_type})
        assert pulled.status_code == 200 and pulled.content == manifest.raw


def test_a_linked_blob_without_bytes_answers_404_and_is_unlinked(setup: Setup) -> None:
    """As a replica that still caches a quarantined blob's link sees it, or a repair that died
    between moving the bytes and removing the links leaves it."""
    server = setup.server
    layer = random_blob(300_000)
    with server.client() as client:
        push_blob(client, APP, layer)
        setup.store.delete(_blob_key(layer.digest))
        for headers in ({}, {"Range": "bytes=10-99"}):
            missing = client.get(blob_path(APP, layer.digest), headers=headers)
            assert_error(missing, 404, "BLOB_UNKNOWN")

        report = server.run_command("fsck", "--verify-digests", "--repository", APP)
        assert report.returncode == 4, report.stderr
        assert f"MISSING {layer.digest}" in report.stdout
        repaired = server.run_command("fsck", "--verify-digests", "--repository", APP, "--repair")
        assert repaired.returncode == 1, repaired.stderr
        time.sleep(CACHE_TTL)
        assert client.head(blob_path(APP, layer.digest)).status_code == 404
        _push_chunked(client, APP, layer)
        assert _pull(client, APP, layer.digest).content == layer.data


def test_fsck_refuses_what_it_cannot_check(setup: Setup) -> None:
    server = setup.server
    assert server.run_command("fsck").returncode == 2  # a usage error: nothing asked for
    unknown = server.run_command("fsck", "--verify-digests", "--repository", "library/none")
    assert unknown.returncode == 8
    assert "repository library/none not found" in unknown.stderr


def test_the_background_scrub_quarantines_a_corrupted_blob(tmp_path: Path) -> None:
    data_dir = tmp_path / "portside"
    every_two_seconds = {"PORTSIDE_SCRUB__INTERVAL_HOURS": "0.0005", "PORTSIDE_SCRUB__REPAIR": "1"}
    server = _start(data_dir, every_two_seconds)
    layer = random_blob(300_000)
    try:
        with server.client() as client:
            push_blob(client, APP, layer)
            _corrupt(Store(folder=data_dir / "storage"), layer.digest, layer.size)
            [entry] = server.log_entries(lambda e: e.get("event") == "quarantined blob")
            assert entry["digest"] == layer.digest
            time.sleep(CACHE_TTL)
            assert client.head(blob_path(APP, layer.digest)).status_code == 404
            push_blob(client, APP, layer)
            assert _pull(client, APP, layer.digest).content == layer.data
            health = client.get("/api/v2.0/health").json()
            assert health["status"] == "healthy", health
    finally:
        server.stop()
