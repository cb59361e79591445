"""OCI distribution spec v1.1, "Pull" workflow (conformance: pull, blob range requests,
manifest data types): manifests and blobs by tag and by digest, HEAD, Range, and 404s."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.support.oci import (
    OCI_CONFIG,
    OCI_MANIFEST,
    Blob,
    Manifest,
    artifact_manifest,
    assert_error,
    blob_path,
    digest_of,
    docker_manifest,
    docker_manifest_list,
    image_manifest,
    index_manifest,
    manifest_path,
    push_blob,
    push_content,
    random_blob,
)

MISSING_DIGEST = digest_of(b"portside: content nobody pushed")


def _assert_manifest_response(
    response: httpx.Response, manifest: Manifest, *, head: bool = False
) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == manifest.media_type
    assert response.headers["Docker-Content-Digest"] == manifest.digest
    assert response.headers["Content-Length"] == str(manifest.size)
    assert response.headers["ETag"] == f'"{manifest.digest}"'
    assert response.content == (b"" if head else manifest.raw)


# -- manifests ----------------------------------------------------------------------------------


def test_get_manifest_by_tag_and_digest(client: httpx.Client, repo: str) -> None:
    manifest = image_manifest(layer_count=2)
    push_content(client, repo, manifest, "v1")
    for reference in ("v1", manifest.digest):
        response = client.get(manifest_path(repo, reference), headers={"Accept": OCI_MANIFEST})
        _assert_manifest_response(response, manifest)


def test_head_manifest_by_tag_and_digest(client: httpx.Client, repo: str) -> None:
    manifest = image_manifest()
    push_content(client, repo, manifest, "latest")
    for reference in ("latest", manifest.digest):
        response = client.head(manifest_path(repo, reference))
        _assert_manifest_response(response, manifest, head=True)


def test_manifest_bytes_are_kept_exactly(client: httpx.Client, repo: str) -> None:
    """The registry MUST store the manifest in the exact byte representation provided."""
    base = image_manifest()
    for blob in base.blobs:
        push_blob(client, repo, blob)
    config = json.dumps(base.body["config"], indent=3).encode()
    layer = json.dumps(base.body["layers"][0]).encode()
    pretty = b'{\n   "schemaVersion" : 2,\n\t"mediaType": "' + OCI_MANIFEST.encode() + b'",\n'
    pretty += b'  "config": ' + config + b',\n  "layers": [' + layer
    pretty += b'],\n  "annotations": {"note": "caf\\u00e9 \xe2\x98\x95"}\n}\n\n'
    manifest = Manifest(pretty, OCI_MANIFEST, base.blobs)
    push_content(client, repo, manifest, "pretty")
    response = client.get(manifest_path(repo, "pretty"))
    _assert_manifest_response(response, manifest)


def test_tag_moves_to_the_newest_manifest(client: httpx.Client, repo: str) -> None:
    first, second = image_manifest(), image_manifest()
    push_content(client, repo, first, "moving")
    push_content(client, repo, second, "moving")
    _assert_manifest_response(client.get(manifest_path(repo, "moving")), second)
    _assert_manifest_response(client.get(manifest_path(repo, first.digest)), first)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
# ".INVALID_MANIFEST_NAME" is the conformance suite's: no manifest can have it, so it is 404.
@pytest.mark.parametrize("reference", ["nosuchtag", MISSING_DIGEST, ".INVALID_MANIFEST_NAME"])
def test_unknown_manifest_is_404(
    client: httpx.Client, repo: str, method: str, reference: str
) -> None:
    push_content(client, repo, image_manifest(), "present")
    response = client.request(method, manifest_path(repo, reference))
    if method == "HEAD":
        assert response.status_code == 404
        assert response.content == b""
    else:
        assert_error(response, 404, "MANIFEST_UNKNOWN")


def test_manifest_of_unknown_repository_is_404(client: httpx.Client, repo: str) -> None:
    assert_error(client.get(manifest_path(repo, "latest")), 404, "MANIFEST_UNKNOWN")


def test_manifest_of_another_repository_is_404(client: httpx.Client, repo: str) -> None:
    manifest = image_manifest()
    push_content(client, repo, manifest, "v1")
    other = f"{repo}-other"
    push_content(client, other, image_manifest(), "v1")
    assert_error(client.get(manifest_path(other, manifest.digest)), 404, "MANIFEST_UNKNOWN")


# -- manifest media types -----------------------------------------------------------------------


def _oci_index() -> Manifest:
    return index_manifest([image_manifest(), image_manifest()])


def _docker_list() -> Manifest:
    return docker_manifest_list([docker_manifest(), docker_manifest()])


def _nested_index() -> Manifest:
    return index_manifest([_oci_index(), image_manifest()])


def _with_data_field() -> Manifest:
    """A descriptor carrying its content in ``data`` (image-spec descriptor.md)."""
    layer = Blob(b"inline layer content")
    data = base64.b64encode(layer.data).decode()
    return image_manifest(layers=[layer], extra={"layers": [layer.descriptor(data=data)]})


MANIFEST_KINDS = {
    "oci-manifest": lambda: image_manifest(layer_count=3),
    "oci-manifest-no-layers": lambda: image_manifest(layer_count=0),
    "oci-index": _oci_index,
    "oci-index-of-index": _nested_index,
    "docker-v2s2": lambda: docker_manifest(2),
    "docker-manifest-list": _docker_list,
    "artifact-with-artifact-type": lambda: artifact_manifest("application/vnd.portside.test"),
    "artifact-with-custom-config": lambda: artifact_manifest(
        "", config_media_type="application/vnd.portside.config.v1+json"
    ),
    "index-with-artifact-type": lambda: index_manifest(
        [image_manifest()], artifact_type="application/vnd.portside.bundle"
    ),
    "custom-fields": lambda: image_manifest(extra={"x-portside": {"nested": [1, 2, 3]}}),
    "data-field": _with_data_field,
    "empty-blob-layer": lambda: image_manifest(layers=[Blob(b"")]),
}


@pytest.mark.parametrize("kind", sorted(MANIFEST_KINDS))
def test_manifest_kinds_round_trip(client: httpx.Client, repo: str, kind: str) -> None:
    manifest = MANIFEST_KINDS[kind]()
    push_content(client, repo, manifest, "t")
    for reference in ("t", manifest.digest):
        _assert_manifest_response(client.get(manifest_path(repo, reference)), manifest)
        _assert_manifest_response(client.head(manifest_path(repo, reference)), manifest, head=True)
    for child in manifest.children:
        _assert_manifest_response(client.get(manifest_path(repo, child.digest)), child)


def test_sha512_content(client: httpx.Client, repo: str) -> None:
    """Blobs and a manifest addressed by sha512 digests (conformance data "sha512")."""
    manifest = image_manifest(algorithm="sha512", layer_count=2)
    assert manifest.digest.startswith("sha512:")
    for blob in manifest.blobs:
        assert blob.digest.startswith("sha512:")
        response = push_blob(client, repo, blob)
        assert response.headers["Docker-Content-Digest"] == blob.digest
        got = client.get(blob_path(repo, blob.digest))
        assert got.status_code == 200
        assert got.content == blob.data
        assert got.headers["Docker-Content-Digest"] == blob.digest
    response = client.put(
        manifest_path(repo, manifest.digest),
        content=manifest.raw,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == manifest.digest
    _assert_manifest_response(client.get(manifest_path(repo, manifest.digest)), manifest)
    _assert_manifest_response(
        client.head(manifest_path(repo, manifest.digest)), manifest, head=True
    )


# -- blobs --------------------------------------------------------------------------------------


def _assert_blob_response(response: httpx.Response, blob: Blob, *, head: bool = False) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["Docker-Content-Digest"] == blob.digest
    assert response.headers["Content-Length"] == str(blob.size)
    assert response.headers["ETag"] == f'"{blob.digest}"'
    assert response.content == (b"" if head else blob.data)


@pytest.mark.parametrize("size", [0, 1, 4096, 5 << 20])
def test_get_and_head_blob(client: httpx.Client, repo: str, size: int) -> None:
    blob = random_blob(size, OCI_CONFIG)
    push_blob(client, repo, blob)
    _assert_blob_response(client.get(blob_path(repo, blob.digest)), blob)
    _assert_blob_response(client.head(blob_path(repo, blob.digest)), blob, head=True)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_unknown_blob_is_404(client: httpx.Client, repo: str, method: str) -> None:
    push_blob(client, repo, random_blob())
    response = client.request(method, blob_path(repo, MISSING_DIGEST))
    if method == "HEAD":
        assert response.status_code == 404
        assert response.content == b""
    else:
        assert_error(response, 404, "BLOB_UNKNOWN")


def test_blob_of_another_repository_is_404(client: httpx.Client, repo: str) -> None:
    blob = random_blob()
    push_blob(client, repo, blob)
    assert_error(client.get(blob_path(f"{repo}-other", blob.digest)), 404, "BLOB_UNKNOWN")


BLOB_SIZE = 2048
RANGES = {
    "bytes=500-1499": (500, 1499),
    "bytes=500-": (500, BLOB_SIZE - 1),
    "bytes=-500": (BLOB_SIZE - 500, BLOB_SIZE - 1),
    "bytes=2000-5000": (2000, BLOB_SIZE - 1),
    "bytes=0-0": (0, 0),
    "bytes=-5000": (0, BLOB_SIZE - 1),
    "bytes=2047-2047": (2047, 2047),
}


@pytest.fixture
def range_blob(client: httpx.Client, repo: str) -> Blob:
    blob = random_blob(BLOB_SIZE)
    push_blob(client, repo, blob)
    return blob


@pytest.mark.parametrize("header", list(RANGES))
def test_blob_range(client: httpx.Client, repo: str, range_blob: Blob, header: str) -> None:
    start, end = RANGES[header]
    response = client.get(blob_path(repo, range_blob.digest), headers={"Range": header})
    assert response.status_code == 206, response.text
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{BLOB_SIZE}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["Docker-Content-Digest"] == range_blob.digest
    assert response.content == range_blob.data[start : end + 1]


@pytest.mark.parametrize(
    "header", ["bytes=500-0", "bytes=5000-10000", "bytes=2048-", "bytes=-0", "bytes=2048-2048"]
)
def test_unsatisfiable_range_is_416(
    client: httpx.Client, repo: str, range_blob: Blob, header: str
) -> None:
    response = client.get(blob_path(repo, range_blob.digest), headers={"Range": header})
    assert_error(response, 416, "RANGE_INVALID")
    assert response.headers["Content-Range"] == f"bytes */{BLOB_SIZE}"


@pytest.mark.parametrize(
    "header",
    ["bytes=abc", "pages=0-10", "bytes=0-1,5-9", "bytes=-", "bytes 0-10", "garbage", "bytes=1-2-3"],
)
def test_unparseable_range_is_ignored(
    client: httpx.Client, repo: str, range_blob: Blob, header: str
) -> None:
    response = client.get(blob_path(repo, range_blob.digest), headers={"Range": header})
    _assert_blob_response(response, range_blob)
    assert "Content-Range" not in response.headers


def test_head_blob_ignores_range(client: httpx.Client, repo: str, range_blob: Blob) -> None:
    """RFC 9110: Range is defined for GET only, so HEAD describes the whole blob."""
    response = client.head(blob_path(repo, range_blob.digest), headers={"Range": "bytes=0-9"})
    _assert_blob_response(response, range_blob, head=True)


def test_get_blob_after_manifest_push_serves_config(client: httpx.Client, repo: str) -> None:
    manifest = image_manifest()
    push_content(client, repo, manifest, "v1")
    config = manifest.blobs[0]
    _assert_blob_response(client.get(blob_path(repo, config.digest)), config)
