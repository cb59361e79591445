"""OCI distribution spec v1.1, "Push" workflow (conformance: blob push APIs, mounts, manifest
push): monolithic and chunked uploads, upload status and cancel, cross-repository mount.
Upload sessions across restarts and their purge are in test_spec_management.py."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.oci import (
    Blob,
    assert_error,
    blob_path,
    digest_of,
    image_manifest,
    manifest_path,
    patch_chunk,
    push_blob,
    push_content,
    random_blob,
    start_upload,
    upload_url,
)


def _assert_created(response: httpx.Response, repo: str, blob: Blob) -> None:
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == blob_path(repo, blob.digest)
    assert response.headers["Docker-Content-Digest"] == blob.digest


def _assert_stored(client: httpx.Client, repo: str, blob: Blob) -> None:
    response = client.get(blob_path(repo, blob.digest))
    assert response.status_code == 200, response.text
    assert response.content == blob.data
    assert response.headers["Docker-Content-Digest"] == blob.digest


def _assert_absent(client: httpx.Client, repo: str, digest: str) -> None:
    assert client.head(blob_path(repo, digest)).status_code == 404


def _chunks(data: bytes, count: int) -> list[bytes]:
    size = -(-len(data) // count)
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- monolithic ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_single_post_upload(client: httpx.Client, repo: str, algorithm: str) -> None:
    blob = random_blob(3000, algorithm=algorithm)
    _assert_absent(client, repo, blob.digest)
    _assert_created(push_blob(client, repo, blob), repo, blob)
    _assert_stored(client, repo, blob)


def test_post_then_put(client: httpx.Client, repo: str) -> None:
    blob = random_blob(4096)
    started = start_upload(client, repo)
    assert started.headers["Docker-Upload-UUID"] in started.headers["Location"]
    response = client.put(
        upload_url(started),
        params={"digest": blob.digest},
        content=blob.data,
        headers={"Content-Type": "application/octet-stream"},
    )
    _assert_created(response, repo, blob)
    _assert_stored(client, repo, blob)
    # the session is closed once the blob exists
    assert_error(client.get(upload_url(started)), 404, "BLOB_UPLOAD_UNKNOWN")


def test_each_post_starts_a_new_session(client: httpx.Client, repo: str) -> None:
    first, second = start_upload(client, repo), start_upload(client, repo)
    assert first.headers["Location"] != second.headers["Location"]


def test_pushing_an_existing_blob_again(client: httpx.Client, repo: str) -> None:
    blob = random_blob()
    push_blob(client, repo, blob)
    _assert_created(push_blob(client, repo, blob), repo, blob)
    _assert_stored(client, repo, blob)


# -- chunked ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_chunked_upload_in_order(client: httpx.Client, repo: str, algorithm: str) -> None:
    blob = random_blob(10_000, algorithm=algorithm)
    params = {"digest-algorithm": algorithm} if algorithm != "sha256" else {}
    url = upload_url(start_upload(client, repo, **params))
    offset = 0
    for chunk in _chunks(blob.data, 3):
        response = patch_chunk(client, url, chunk, offset)
        offset += len(chunk)
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{offset - 1}"
        assert response.headers["Location"].startswith(f"/v2/{repo}/blobs/uploads/")
        url = upload_url(response)
        status = client.get(url)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{offset - 1}"
        assert status.headers["Location"] == response.headers["Location"]
    response = client.put(url, params={"digest": blob.digest}, headers={"Content-Length": "0"})
    _assert_created(response, repo, blob)
    _assert_stored(client, repo, blob)


def test_chunked_upload_with_last_chunk_in_put(client: httpx.Client, repo: str) -> None:
    blob = random_blob(3000)
    first, last = blob.data[:2000], blob.data[2000:]
    url = upload_url(start_upload(client, repo))
    response = patch_chunk(client, url, first, 0)
    assert response.status_code == 202
    response = client.put(
        upload_url(response),
        params={"digest": blob.digest},
        content=last,
        headers={"Content-Range": f"2000-{blob.size - 1}"},
    )
    _assert_created(response, repo, blob)
    _assert_stored(client, repo, blob)


def test_out_of_order_chunk_is_416(client: httpx.Client, repo: str) -> None:
    blob = random_blob(3000)
    chunks = _chunks(blob.data, 3)
    url = upload_url(start_upload(client, repo))
    # a chunk not starting at 0 on a fresh session
    response = patch_chunk(client, url, chunks[1], 1000)
    assert_error(response, 416, "RANGE_INVALID")
    assert response.headers["Location"].startswith(f"/v2/{repo}/blobs/uploads/")
    assert patch_chunk(client, url, chunks[0], 0).status_code == 202
    # skipping ahead, and repeating the previous chunk
    for data, start in ((chunks[2], 2000), (chunks[0], 0)):
        response = patch_chunk(client, url, data, start)
        assert_error(response, 416, "RANGE_INVALID")
        assert response.headers["Range"] == "0-999"
        status = client.get(upload_url(response))
        assert status.status_code == 204
        assert status.headers["Range"] == "0-999"
    for data, start in ((chunks[1], 1000), (chunks[2], 2000)):
        assert patch_chunk(client, url, data, start).status_code == 202
    response = client.put(url, params={"digest": blob.digest})
    _assert_created(response, repo, blob)
    _assert_stored(client, repo, blob)


def test_out_of_order_last_chunk_in_put_is_416(client: httpx.Client, repo: str) -> None:
    """The spec's "if the final chunk is uploaded out of order" (the conformance suite's
    "chunked out-of-order and put chunk"): 416, and the upload can still be finished."""
    blob = random_blob(3000)
    chunks = _chunks(blob.data, 3)
    url = upload_url(start_upload(client, repo))

    def put_last(start: int, data: bytes) -> httpx.Response:
        headers = {"Content-Range": f"{start}-{start + len(data) - 1}"}
        return client.put(url, params={"digest": blob.digest}, content=data, headers=headers)

    # on a fresh session (no bytes stored yet), then skipping a chunk
    assert_error(put_last(2000, chunks[2]), 416, "RANGE_INVALID")
    assert patch_chunk(client, url, chunks[0], 0).status_code == 202
    response = put_last(2000, chunks[2])
    assert_error(response, 416, "RANGE_INVALID")
    assert response.headers["Range"] == "0-999"
    assert upload_url(response) == url
    status = client.get(url)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-999"
    assert patch_chunk(client, url, chunks[1], 1000).status_code == 202
    _assert_created(put_last(2000, chunks[2]), repo, blob)
    _assert_stored(client, repo, blob)


def test_streamed_patch_without_content_range(client: httpx.Client, repo: str) -> None:
    blob = random_blob(3 << 20)
    pieces = _chunks(blob.data, 2)
    url = upload_url(start_upload(client, repo))

    def stream(data: bytes) -> Iterator[bytes]:
        step = 64 << 10
        for i in range(0, len(data), step):
            yield data[i : i + step]

    size = 0
    for piece in pieces:
        response = client.patch(url, content=stream(piece))
        size += len(piece)
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{size - 1}"
        url = upload_url(response)
    response = client.put(url, params={"digest": blob.digest})
    _assert_created(response, repo, blob)
    _assert_stored(client, repo, blob)


def test_cancel_upload(client: httpx.Client, repo: str) -> None:
    blob = random_blob(1000)
    url = upload_url(start_upload(client, repo))
    assert patch_chunk(client, url, blob.data, 0).status_code == 202
    response = client.delete(url)
    assert response.status_code == 204
    assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch_chunk(client, url, blob.data, 0), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.put(url, params={"digest": blob.digest}), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(url), 404, "BLOB_UPLOAD_UNKNOWN")
    _assert_absent(client, repo, blob.digest)


@pytest.mark.parametrize("style", ["post", "put", "chunked"])
def test_digest_mismatch_leaves_nothing(client: httpx.Client, repo: str, style: str) -> None:
    blob = random_blob(2000)
    claimed = digest_of(b"something else entirely")
    if style == "post":
        response = client.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": claimed}, content=blob.data
        )
        url = None
    else:
        url = upload_url(start_upload(client, repo))
        body = blob.data
        if style == "chunked":
            assert patch_chunk(client, url, blob.data, 0).status_code == 202
            body = b""
        response = client.put(url, params={"digest": claimed}, content=body)
    assert_error(response, 400, "DIGEST_INVALID")
    _assert_absent(client, repo, claimed)
    _assert_absent(client, repo, blob.digest)
    if url is not None:
        assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")


def test_put_without_digest_is_400(client: httpx.Client, repo: str) -> None:
    url = upload_url(start_upload(client, repo))
    assert_error(client.put(url, content=b"data"), 400, "DIGEST_INVALID")


def test_upload_of_another_repository_is_404(client: httpx.Client, repo: str) -> None:
    blob = random_blob(100)
    started = start_upload(client, repo)
    other = f"{repo}-other"
    foreign = f"/v2/{other}/blobs/uploads/{started.headers['Docker-Upload-UUID']}"
    assert_error(client.get(foreign), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch_chunk(client, foreign, blob.data, 0), 404, "BLOB_UPLOAD_UNKNOWN")
    response = client.put(foreign, params={"digest": blob.digest}, content=blob.data)
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(foreign), 404, "BLOB_UPLOAD_UNKNOWN")
    _assert_absent(client, other, blob.digest)
    # the session still works where it was started
    response = client.put(upload_url(started), params={"digest": blob.digest}, content=blob.data)
    _assert_created(response, repo, blob)


# -- cross-repository mount ---------------------------------------------------------------------


def test_mount_from_another_repository(client: httpx.Client, repo: str) -> None:
    blob = random_blob()
    source, target = f"{repo}-source", f"{repo}-target"
    push_blob(client, source, blob)
    _assert_absent(client, target, blob.digest)
    response = client.post(
        f"/v2/{target}/blobs/uploads/", params={"mount": blob.digest, "from": source}
    )
    _assert_created(response, target, blob)
    _assert_stored(client, target, blob)
    assert client.head(blob_path(target, blob.digest)).status_code == 200


def test_mount_from_repository_without_the_blob_starts_upload(
    client: httpx.Client, repo: str
) -> None:
    blob = random_blob()
    source, target = f"{repo}-source", f"{repo}-target"
    push_blob(client, source, random_blob())  # the source exists, but holds another blob
    response = client.post(
        f"/v2/{target}/blobs/uploads/", params={"mount": blob.digest, "from": source}
    )
    assert response.status_code == 202, response.text
    assert response.headers["Location"].startswith(f"/v2/{target}/blobs/uploads/")
    _assert_absent(client, target, blob.digest)
    put = client.put(upload_url(response), params={"digest": blob.digest}, content=blob.data)
    _assert_created(put, target, blob)


def test_mount_of_unknown_digest_without_from_starts_upload(
    client: httpx.Client, repo: str
) -> None:
    missing = digest_of(b"portside: never pushed anywhere")
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": missing})
    assert response.status_code == 202, response.text
    assert response.headers["Location"].startswith(f"/v2/{repo}/blobs/uploads/")


def test_automatic_mount_without_from(client: httpx.Client, repo: str) -> None:
    blob = random_blob()
    push_blob(client, f"{repo}-elsewhere", blob)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": blob.digest})
    _assert_created(response, repo, blob)
    _assert_stored(client, repo, blob)


def test_push_manifest_then_pull_by_location(client: httpx.Client, repo: str) -> None:
    manifest = image_manifest()
    response = push_content(client, repo, manifest, "v1")
    pulled = client.get(response.headers["Location"])
    assert pulled.status_code == 200
    assert pulled.content == manifest.raw
    for tag in ("test0", "test1", "test2"):  # one manifest under several tags
        push_content(client, repo, manifest, tag)
        assert client.get(manifest_path(repo, tag)).content == manifest.raw
