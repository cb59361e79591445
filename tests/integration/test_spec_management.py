"""OCI distribution spec v1.1, "Content management" workflow (conformance: manifest, tag and
blob delete, and their atomicity): what a DELETE removes, and what it leaves in place; and the
life of upload sessions: resumable across a restart, purged when abandoned."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest

from tests.support.oci import (
    artifact_manifest,
    assert_error,
    blob_path,
    digest_of,
    image_manifest,
    index_manifest,
    manifest_path,
    patch_chunk,
    push_blob,
    push_content,
    random_blob,
    start_upload,
    upload_url,
)
from tests.support.server import PortsideServer


def _tags(client: httpx.Client, repo: str) -> list[str]:
    response = client.get(f"/v2/{repo}/tags/list")
    assert response.status_code == 200, response.text
    tags: list[str] = response.json()["tags"]
    return tags


# -- manifests and tags -------------------------------------------------------------------------


def test_delete_manifest_by_digest(client: httpx.Client, repo: str) -> None:
    manifest, keep = image_manifest(), image_manifest()
    push_content(client, repo, manifest, "gone")
    push_content(client, repo, manifest, "gone-too")
    push_content(client, repo, keep, "kept")
    assert sorted(_tags(client, repo)) == ["gone", "gone-too", "kept"]

    response = client.delete(manifest_path(repo, manifest.digest))
    assert response.status_code == 202, response.text

    for reference in (manifest.digest, "gone", "gone-too"):
        assert_error(client.get(manifest_path(repo, reference)), 404, "MANIFEST_UNKNOWN")
        assert client.head(manifest_path(repo, reference)).status_code == 404
    assert _tags(client, repo) == ["kept"]
    assert client.get(manifest_path(repo, "kept")).content == keep.raw
    # the blobs it referenced are still there (garbage collection is another matter)
    for blob in manifest.blobs:
        assert client.head(blob_path(repo, blob.digest)).status_code == 200


def test_delete_tag_keeps_the_manifest(client: httpx.Client, repo: str) -> None:
    manifest = image_manifest()
    push_content(client, repo, manifest, "one")
    push_content(client, repo, manifest, "two")

    response = client.delete(manifest_path(repo, "one"))
    assert response.status_code == 202, response.text

    assert_error(client.get(manifest_path(repo, "one")), 404, "MANIFEST_UNKNOWN")
    for reference in (manifest.digest, "two"):
        response = client.get(manifest_path(repo, reference))
        assert response.status_code == 200
        assert response.content == manifest.raw
    assert _tags(client, repo) == ["two"]
    assert_error(client.delete(manifest_path(repo, "one")), 404, "MANIFEST_UNKNOWN")


def test_deleting_last_tag_leaves_an_empty_list(client: httpx.Client, repo: str) -> None:
    manifest = image_manifest()
    push_content(client, repo, manifest, "only")
    assert client.delete(manifest_path(repo, "only")).status_code == 202
    assert _tags(client, repo) == []
    assert client.get(manifest_path(repo, manifest.digest)).status_code == 200


@pytest.mark.parametrize("reference", ["nosuchtag", digest_of(b"portside: no such manifest")])
def test_delete_unknown_manifest_is_404(client: httpx.Client, repo: str, reference: str) -> None:
    push_content(client, repo, image_manifest(), "present")
    assert_error(client.delete(manifest_path(repo, reference)), 404, "MANIFEST_UNKNOWN")
    never = f"{repo}-never-pushed"
    assert_error(client.delete(manifest_path(never, reference)), 404, "MANIFEST_UNKNOWN")


def test_delete_manifest_twice(client: httpx.Client, repo: str) -> None:
    manifest = image_manifest()
    push_content(client, repo, manifest, "v1")
    assert client.delete(manifest_path(repo, manifest.digest)).status_code == 202
    assert_error(client.delete(manifest_path(repo, manifest.digest)), 404, "MANIFEST_UNKNOWN")


def test_delete_manifest_in_one_repository_only(client: httpx.Client, repo: str) -> None:
    manifest = image_manifest()
    other = f"{repo}-other"
    push_content(client, repo, manifest, "v1")
    push_content(client, other, manifest, "v1")
    assert client.delete(manifest_path(repo, manifest.digest)).status_code == 202
    assert client.get(manifest_path(other, "v1")).content == manifest.raw
    assert client.get(manifest_path(other, manifest.digest)).status_code == 200


def test_repush_after_delete(client: httpx.Client, repo: str) -> None:
    manifest = image_manifest()
    push_content(client, repo, manifest, "v1")
    assert client.delete(manifest_path(repo, manifest.digest)).status_code == 202
    push_content(client, repo, manifest, "v1")
    response = client.get(manifest_path(repo, "v1"))
    assert response.status_code == 200
    assert response.content == manifest.raw


def test_deleted_referrer_leaves_the_referrers_list(client: httpx.Client, repo: str) -> None:
    subject = image_manifest()
    push_content(client, repo, subject, "v1")
    kept = artifact_manifest("application/vnd.portside.kept", subject=subject)
    dropped = artifact_manifest("application/vnd.portside.dropped", subject=subject)
    push_content(client, repo, kept)
    push_content(client, repo, dropped)
    assert client.delete(manifest_path(repo, dropped.digest)).status_code == 202
    response = client.get(f"/v2/{repo}/referrers/{subject.digest}")
    assert response.status_code == 200
    assert [d["digest"] for d in response.json()["manifests"]] == [kept.digest]


def test_delete_index_keeps_its_children(client: httpx.Client, repo: str) -> None:
    children = [image_manifest(), image_manifest()]
    index = index_manifest(children)
    push_content(client, repo, index, "multi")
    assert client.delete(manifest_path(repo, index.digest)).status_code == 202
    assert_error(client.get(manifest_path(repo, "multi")), 404, "MANIFEST_UNKNOWN")
    for child in children:
        assert client.get(manifest_path(repo, child.digest)).content == child.raw


# -- blobs --------------------------------------------------------------------------------------


def test_delete_blob(client: httpx.Client, repo: str) -> None:
    blob, keep = random_blob(), random_blob()
    push_blob(client, repo, blob)
    push_blob(client, repo, keep)

    response = client.delete(blob_path(repo, blob.digest))
    assert response.status_code == 202, response.text

    assert_error(client.get(blob_path(repo, blob.digest)), 404, "BLOB_UNKNOWN")
    assert client.head(blob_path(repo, blob.digest)).status_code == 404
    assert client.get(blob_path(repo, keep.digest)).content == keep.data
    assert_error(client.delete(blob_path(repo, blob.digest)), 404, "BLOB_UNKNOWN")


def test_delete_unknown_blob_is_404(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, random_blob())
    missing = digest_of(b"portside: no such blob")
    assert_error(client.delete(blob_path(repo, missing)), 404, "BLOB_UNKNOWN")
    assert_error(client.delete(blob_path(f"{repo}-never", missing)), 404, "BLOB_UNKNOWN")


def test_delete_mounted_blob_in_one_repository_only(client: httpx.Client, repo: str) -> None:
    blob = random_blob()
    target = f"{repo}-target"
    push_blob(client, repo, blob)
    mounted = client.post(
        f"/v2/{target}/blobs/uploads/", params={"mount": blob.digest, "from": repo}
    )
    assert mounted.status_code == 201, mounted.text
    assert client.delete(blob_path(target, blob.digest)).status_code == 202
    assert client.head(blob_path(target, blob.digest)).status_code == 404
    assert client.get(blob_path(repo, blob.digest)).content == blob.data


def test_blob_can_be_pushed_again_after_delete(client: httpx.Client, repo: str) -> None:
    blob = random_blob()
    push_blob(client, repo, blob)
    assert client.delete(blob_path(repo, blob.digest)).status_code == 202
    push_blob(client, repo, blob)
    assert client.get(blob_path(repo, blob.digest)).content == blob.data


# -- manifests may refer only to content their repository holds ---------------------------------


def _put(client: httpx.Client, repo: str, raw: bytes, reference: str = "v1") -> httpx.Response:
    media_type = json.loads(raw)["mediaType"]
    return client.put(
        manifest_path(repo, reference), content=raw, headers={"Content-Type": media_type}
    )


@pytest.mark.parametrize("missing", ["config", "layer", "both"])
def test_manifest_with_missing_blob(client: httpx.Client, repo: str, missing: str) -> None:
    manifest = image_manifest()
    config, layer = manifest.blobs
    pushed = {"config": [layer], "layer": [config], "both": []}[missing]
    for blob in pushed:
        push_blob(client, repo, blob)
    error = assert_error(_put(client, repo, manifest.raw), 400, "MANIFEST_BLOB_UNKNOWN")
    for blob in manifest.blobs:
        assert (blob.digest in str(error.get("detail"))) == (blob not in pushed)
    assert client.get(manifest_path(repo, manifest.digest)).status_code == 404


def test_index_with_missing_child(client: httpx.Client, repo: str) -> None:
    present, absent = image_manifest(), image_manifest()
    push_content(client, repo, present)
    for blob in absent.blobs:  # its blobs are here, the child manifest itself is not
        push_blob(client, repo, blob)
    index = index_manifest([present, absent])
    error = assert_error(_put(client, repo, index.raw, "multi"), 400)
    assert error["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert absent.digest in str(error.get("detail"))


def test_blobs_of_another_repository_do_not_count(client: httpx.Client, repo: str) -> None:
    manifest = image_manifest()
    for blob in manifest.blobs:
        push_blob(client, f"{repo}-other", blob)
    assert_error(_put(client, repo, manifest.raw), 400, "MANIFEST_BLOB_UNKNOWN")


def test_manifest_pushed_by_wrong_digest(client: httpx.Client, repo: str) -> None:
    manifest, other = image_manifest(), image_manifest()
    for blob in manifest.blobs:
        push_blob(client, repo, blob)
    response = _put(client, repo, manifest.raw, other.digest)
    assert_error(response, 400, "DIGEST_INVALID")
    assert client.get(manifest_path(repo, other.digest)).status_code == 404
    assert client.get(manifest_path(repo, manifest.digest)).status_code == 404


def test_deleted_blob_is_no_longer_usable_by_manifests(client: httpx.Client, repo: str) -> None:
    manifest = image_manifest()
    for blob in manifest.blobs:
        push_blob(client, repo, blob)
    layer = manifest.blobs[1]
    assert client.delete(blob_path(repo, layer.digest)).status_code == 202
    error = assert_error(_put(client, repo, manifest.raw), 400, "MANIFEST_BLOB_UNKNOWN")
    assert layer.digest in str(error.get("detail"))


# -- upload sessions: across restarts, and abandoned ---------------------------------------------


def test_upload_survives_restart(fresh_registry: PortsideServer, repo: str) -> None:
    blob = random_blob(6000)
    fresh_registry.start()
    with fresh_registry.client() as client:
        url = upload_url(start_upload(client, repo))
        assert patch_chunk(client, url, blob.data[:2500], 0).status_code == 202
    fresh_registry.restart()
    with fresh_registry.client() as client:
        status = client.get(url)
        assert status.status_code == 204, status.text
        assert status.headers["Range"] == "0-2499"
        response = patch_chunk(client, upload_url(status), blob.data[2500:], 2500)
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{blob.size - 1}"
        response = client.put(upload_url(response), params={"digest": blob.digest})
        assert response.status_code == 201, response.text
        assert response.headers["Docker-Content-Digest"] == blob.digest
        assert client.get(blob_path(repo, blob.digest)).content == blob.data


def test_storage_of_an_older_layout_is_upgraded_on_start(
    fresh_registry: PortsideServer, repo: str
) -> None:
    """A data folder written with layout 1 (each blob in a directory of its own) is moved to
    the current layout when the server starts, and everything in it can still be pulled."""
    manifest = image_manifest()
    fresh_registry.start()
    with fresh_registry.client() as client:
        for blob in manifest.blobs:
            push_blob(client, repo, blob)
        assert _put(client, repo, manifest.raw).status_code == 201
    fresh_registry.stop()
    storage = fresh_registry.data_dir / "storage"
    blob_files = [path for path in (storage / "blobs").rglob("*") if path.is_file()]
    assert len(blob_files) == len(manifest.blobs) + 1
    for path in blob_files:  # back to layout 1
        moved = path.with_name(path.name + ".old")
        path.rename(moved)
        path.mkdir()
        moved.rename(path / "data")
    (storage / "layout-version").unlink()
    fresh_registry.start()
    with fresh_registry.client() as client:
        pulled = client.get(manifest_path(repo, "v1"), headers={"Accept": manifest.media_type})
        assert pulled.content == manifest.raw
        for blob in manifest.blobs:
            assert client.get(blob_path(repo, blob.digest)).content == blob.data
    assert all(path.is_file() for path in blob_files)
    assert (storage / "layout-version").read_text() == "2"


def _upload_rows(registry: PortsideServer) -> list[str]:
    with sqlite3.connect(registry.data_dir / "portside.db") as db:
        return [row[0] for row in db.execute("SELECT id FROM uploads")]


def test_upload_without_bytes_survives_restart(fresh_registry: PortsideServer, repo: str) -> None:
    """On SQLite an upload keeps its row in memory until it stores bytes; a restart (SIGTERM)
    saves it, so the client can still finish the upload, whole or in chunks."""
    blob, chunked = random_blob(3000), random_blob(4000)
    fresh_registry.start()
    with fresh_registry.client() as client:
        whole_url = upload_url(start_upload(client, repo))
        chunked_url = upload_url(start_upload(client, repo))
        assert _upload_rows(fresh_registry) == []  # nothing written yet
    fresh_registry.restart()
    assert sorted(_upload_rows(fresh_registry)) == sorted(
        url.rsplit("/", 1)[1] for url in (whole_url, chunked_url)
    )
    with fresh_registry.client() as client:
        response = client.put(
            whole_url,
            params={"digest": blob.digest},
            content=blob.data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 201, response.text
        status = client.get(chunked_url)
        assert status.status_code == 204, status.text
        assert status.headers["Range"] == "0-0"
        response = patch_chunk(client, chunked_url, chunked.data, 0)
        assert response.status_code == 202, response.text
        response = client.put(upload_url(response), params={"digest": chunked.digest})
        assert response.status_code == 201, response.text
        for done in (blob, chunked):
            assert client.get(blob_path(repo, done.digest)).content == done.data
        assert _upload_rows(fresh_registry) == []  # finished uploads leave no row behind


def _expect_purged_within(client: httpx.Client, upload: str, seconds: float) -> None:
    """Poll the upload until the purge loop has removed it, for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while client.get(upload).status_code == 204 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert_error(client.get(upload), 404, "BLOB_UPLOAD_UNKNOWN")


def test_upload_without_bytes_is_purged(fresh_registry: PortsideServer, repo: str) -> None:
    fresh_registry.env = {
        "PORTSIDE_REGISTRY__UPLOAD_PURGE_AGE_SECONDS": "2",
        "PORTSIDE_REGISTRY__UPLOAD_PURGE_INTERVAL_SECONDS": "1",
    }
    fresh_registry.start()
    with fresh_registry.client() as client:
        url = upload_url(start_upload(client, repo))
        assert client.get(url).status_code == 204
        _expect_purged_within(client, url, 8)


def test_abandoned_upload_is_purged(fresh_registry: PortsideServer, repo: str) -> None:
    """Ages one upload by moving its ``updated_at`` back in the database, so a 1 s purge loop
    finds it deterministically while a fresh upload, younger than the 60 s age, survives."""
    fresh_registry.env = {
        "PORTSIDE_REGISTRY__UPLOAD_PURGE_AGE_SECONDS": "60",
        "PORTSIDE_REGISTRY__UPLOAD_PURGE_INTERVAL_SECONDS": "1",
    }
    fresh_registry.start()
    with fresh_registry.client() as client:
        stale = upload_url(start_upload(client, repo))
        assert patch_chunk(client, stale, b"abandoned bytes", 0).status_code == 202
        live = upload_url(start_upload(client, repo))
        stale_id = stale.rsplit("/", 1)[1]
        with sqlite3.connect(fresh_registry.data_dir / "portside.db") as db:
            db.execute(
                "UPDATE uploads SET updated_at = ? WHERE id = ?",
                ("2000-01-01 00:00:00.000000", stale_id),
            )
        _expect_purged_within(client, stale, 5)
        assert not (fresh_registry.data_dir / "storage" / "uploads" / stale_id).exists()
        assert client.get(live).status_code == 204


@pytest.mark.parametrize("repository_exists", [True, False])
def test_a_refused_manifest_leaves_no_bytes_behind(
    fresh_registry: PortsideServer, repo: str, repository_exists: bool
) -> None:
    fresh_registry.start()
    manifest = image_manifest(layer_count=2)
    with fresh_registry.client() as client:
        if repository_exists:
            push_blob(client, repo, manifest.blobs[0])  # the config, but not the layers
        response = client.put(
            manifest_path(repo, "v1"),
            content=manifest.raw,
            headers={"Content-Type": manifest.media_type},
        )
        assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
        assert_error(client.get(manifest_path(repo, manifest.digest)), 404, "MANIFEST_UNKNOWN")
    algorithm, hexdigest = manifest.digest.split(":")
    stored = fresh_registry.data_dir / "storage" / "blobs" / algorithm / hexdigest[:2] / hexdigest
    assert not stored.exists()
