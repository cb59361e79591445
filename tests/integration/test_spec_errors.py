"""OCI distribution spec v1.1, errors: every refusal is a 4xx with the spec's
``{"errors": [{"code", "message"}]}`` envelope, never a 5xx. Malformed names, digests and
manifests, manifests referring to content the repository lacks, size limits, hostile headers."""

from __future__ import annotations

from urllib.parse import unquote

import httpx
import pytest

from tests.support.oci import (
    DOCKER_SCHEMA1,
    OCI_MANIFEST,
    assert_error,
    blob_path,
    digest_of,
    image_manifest,
    manifest_path,
    push_blob,
    push_content,
    random_blob,
    raw_request,
    start_upload,
    to_json,
    upload_url,
)
from tests.support.server import PortsideServer


def _raw(registry: PortsideServer, method: str, target: str, **kwargs: object) -> httpx.Response:
    auth = (registry.username, registry.password)
    return raw_request(registry.url, method, target, auth=auth, **kwargs)  # type: ignore[arg-type]


def _put_manifest(
    client: httpx.Client, repo: str, raw: bytes, reference: str = "v1", content_type: str = ""
) -> httpx.Response:
    headers = {"Content-Type": content_type or OCI_MANIFEST}
    return client.put(manifest_path(repo, reference), content=raw, headers=headers)


# -- repository names ---------------------------------------------------------------------------

BAD_NAMES = {
    "uppercase": "Library/Foo",
    "dot-dot": "library/../foo",
    "trailing-slash": "library/foo/",
    "empty-component": "library//foo",
    "300-chars": "a" * 300,
    "256-chars": "/".join(["a" * 127, "b" * 128]),
    "leading-separator": "-library/foo",
    "triple-underscore": "library/foo___bar",
    "colon": "library/foo:bar",
}
ENDPOINTS = {
    "manifest-get": ("GET", "/v2/{name}/manifests/latest"),
    "manifest-put": ("PUT", "/v2/{name}/manifests/latest"),
    "blob-get": ("GET", "/v2/{name}/blobs/" + digest_of(b"x")),
    "upload-post": ("POST", "/v2/{name}/blobs/uploads/"),
    "tags-list": ("GET", "/v2/{name}/tags/list"),
    "referrers": ("GET", "/v2/{name}/referrers/" + digest_of(b"x")),
}


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@pytest.mark.parametrize("name", sorted(BAD_NAMES))
def test_malformed_repository_name_is_400(
    registry: PortsideServer, name: str, endpoint: str
) -> None:
    method, template = ENDPOINTS[endpoint]
    body = b"{}" if method == "PUT" else None
    response = _raw(registry, method, template.format(name=BAD_NAMES[name]), body=body)
    assert_error(response, 400, "NAME_INVALID")


def test_longest_valid_name_is_accepted(client: httpx.Client, repo: str) -> None:
    name = f"{repo}/" + "x" * (255 - len(repo) - 1)
    assert len(name) == 255
    push_blob(client, name, random_blob())


# -- digests ------------------------------------------------------------------------------------

BAD_DIGESTS = [
    "sha256:xyz",
    "sha256:totallywrong",
    "sha256:" + "A" * 64,
    "sha256:" + "a" * 63,
    "sha512:" + "a" * 64,
    "md5:d41d8cd98f00b204e9800998ecf8427e",
    "sha256",
    "notadigest:",
    ":" + "a" * 64,
]


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_malformed_digest_is_4xx(client: httpx.Client, repo: str, digest: str) -> None:
    push_content(client, repo, image_manifest(), "v1")
    responses = [
        client.get(blob_path(repo, digest)),
        client.delete(blob_path(repo, digest)),
        client.get(manifest_path(repo, digest)),
        client.put(manifest_path(repo, digest), content=b"{}"),
        client.delete(manifest_path(repo, digest)),
        client.get(f"/v2/{repo}/referrers/{digest}"),
        client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=b"x"),
        client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": repo}),
        client.put(upload_url(start_upload(client, repo)), params={"digest": digest}),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500, (response.request.url, response.text)
        assert_error(response, response.status_code)


@pytest.mark.parametrize("digest", ["sha256:" + "A" * 64, "md5:d41d8cd98f00b204e9800998ecf8427e"])
def test_pushing_blob_with_invalid_or_unsupported_digest_is_400(
    client: httpx.Client, repo: str, digest: str
) -> None:
    """spec "Pushing blobs": an invalid digest or unsupported algorithm SHOULD get 400."""
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=b"x")
    assert_error(response, 400)
    url = upload_url(start_upload(client, repo))
    assert_error(client.put(url, params={"digest": digest}, content=b"x"), 400)


# -- manifests ----------------------------------------------------------------------------------


def _oci(**fields: object) -> bytes:
    return to_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, **fields})


CONFIG = {"mediaType": "a/b", "digest": digest_of(b"c"), "size": 1}
MALFORMED_MANIFESTS = {
    "not-json": b"this is not json",
    "truncated": b'{"schemaVersion": 2, "config": {',
    "array": b"[]",
    "empty-object": b"{}",
    "invalid-utf8": b'{"schemaVersion": 2, "mediaType": "\xff\xfe"}',
    "schema-3": to_json({"schemaVersion": 3, "mediaType": OCI_MANIFEST, "config": CONFIG}),
    "no-config": _oci(layers=[]),
    "config-string": _oci(config="x"),
    "bad-descriptor-digest": _oci(config={**CONFIG, "digest": "sha256:xyz"}),
    "negative-size": _oci(config={**CONFIG, "size": -1}),
    "layers-object": _oci(config=CONFIG, layers={"a": 1}),
    "annotation-number": _oci(config=CONFIG, annotations={"org.example.count": 3}),
    "media-type-mismatch": to_json({**image_manifest().body, "mediaType": "application/x-foo"}),
    "deeply-nested": b'{"schemaVersion": 2, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize("kind", sorted(MALFORMED_MANIFESTS))
def test_malformed_manifest_is_manifest_invalid(client: httpx.Client, repo: str, kind: str) -> None:
    response = _put_manifest(client, repo, MALFORMED_MANIFESTS[kind])
    assert_error(response, 400, "MANIFEST_INVALID")
    assert client.get(manifest_path(repo, "v1")).status_code == 404


@pytest.mark.parametrize(
    "content_type", [DOCKER_SCHEMA1, "application/vnd.docker.distribution.manifest.v1+json"]
)
def test_docker_schema1_is_refused(client: httpx.Client, repo: str, content_type: str) -> None:
    layer = random_blob()
    push_blob(client, repo, layer)
    schema1 = {
        "schemaVersion": 1,
        "name": repo,
        "tag": "v1",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": layer.digest}],
        "history": [{"v1Compatibility": "{}"}],
    }
    response = _put_manifest(client, repo, to_json(schema1), content_type=content_type)
    assert_error(response, 400, "MANIFEST_INVALID")


def test_content_type_parameters_are_ignored(client: httpx.Client, repo: str) -> None:
    manifest = image_manifest()
    for blob in manifest.blobs:
        push_blob(client, repo, blob)
    response = _put_manifest(
        client, repo, manifest.raw, content_type=f"{OCI_MANIFEST}; charset=utf-8"
    )
    assert response.status_code == 201, response.text
    assert client.get(manifest_path(repo, "v1")).headers["Content-Type"] == OCI_MANIFEST


@pytest.mark.parametrize("tag", ["-leading-dash", ".leading-dot", "t" * 129, "tag!", "tag%20x"])
def test_invalid_tag_is_400(client: httpx.Client, repo: str, tag: str) -> None:
    manifest = image_manifest()
    for blob in manifest.blobs:
        push_blob(client, repo, blob)
    assert_error(_put_manifest(client, repo, manifest.raw, tag), 400, "TAG_INVALID")
    push_manifest_ok = _put_manifest(client, repo, manifest.raw, "t" * 128)
    assert push_manifest_ok.status_code == 201, push_manifest_ok.text


def _padded_manifest(client: httpx.Client, repo: str, size: int) -> bytes:
    base = image_manifest()
    for blob in base.blobs:
        push_blob(client, repo, blob)
    raw = to_json({**base.body, "annotations": {"pad": ""}})
    padded = to_json({**base.body, "annotations": {"pad": "p" * (size - len(raw))}})
    assert len(padded) == size
    return padded


def test_manifest_size_limit_is_4_mib(client: httpx.Client, repo: str) -> None:
    too_big = _padded_manifest(client, repo, (4 << 20) + 1)
    assert_error(_put_manifest(client, repo, too_big), 413, "SIZE_INVALID")
    assert client.get(manifest_path(repo, "v1")).status_code == 404
    largest = _padded_manifest(client, repo, 4 << 20)
    assert _put_manifest(client, repo, largest).status_code == 201
    assert client.get(manifest_path(repo, "v1")).content == largest


def test_manifest_with_huge_declared_length_is_413(registry: PortsideServer, repo: str) -> None:
    headers = {"Content-Type": OCI_MANIFEST, "Content-Length": str(1 << 40)}
    response = _raw(registry, "PUT", manifest_path(repo, "v1"), headers=headers)
    assert_error(response, 413, "SIZE_INVALID")


# -- hostile headers and parameters -------------------------------------------------------------


@pytest.mark.parametrize(
    "content_range",
    [
        "99999999999999999999-999999999999999999999",
        "-5-10",
        "garbage",
        "5-2",
        "bytes=abc-def",
        "0-",
        "1-0/0",
        "0--1",
    ],
)
def test_hostile_content_range_is_refused(
    client: httpx.Client, repo: str, content_range: str
) -> None:
    url = upload_url(start_upload(client, repo))
    response = client.patch(url, content=b"0123456789", headers={"Content-Range": content_range})
    assert_error(response, 416, "RANGE_INVALID")
    # nothing was appended: the first chunk still starts at 0
    response = client.patch(url, content=b"0123456789", headers={"Content-Range": "0-9"})
    assert response.status_code == 202
    assert response.headers["Range"] == "0-9"


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked-encoding"])
@pytest.mark.parametrize("content_range", ["0-9223372036854775806", "0-4", "0-19"])
def test_content_range_not_matching_the_body_is_400(
    client: httpx.Client, repo: str, content_range: str, streamed: bool
) -> None:
    """With Content-Length the mismatch shows up front; without (chunked transfer encoding)
    only once the body is read, and the upload must not take the bytes either way."""
    url = upload_url(start_upload(client, repo))
    body = b"0123456789"
    content = iter([body]) if streamed else body
    response = client.patch(url, content=content, headers={"Content-Range": content_range})
    assert_error(response, 400, "SIZE_INVALID")
    assert client.get(url).headers["Range"] != "0-9"


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("bytes=99999999999999999999-", 200),
        ("bytes=-99999999999999999999", 200),
        ("bytes=0-99999999999999999999", 200),
        ("bytes=9223372036854775807-", 416),
        ("bytes=9223372036854775806-9223372036854775807", 416),
    ],
)
def test_hostile_range_header(client: httpx.Client, repo: str, header: str, status: int) -> None:
    blob = random_blob(100)
    push_blob(client, repo, blob)
    response = client.get(blob_path(repo, blob.digest), headers={"Range": header})
    if status == 200:
        assert response.status_code == 200
        assert response.content == blob.data
    else:
        assert_error(response, 416, "RANGE_INVALID")


@pytest.mark.parametrize(
    "upload_id", ["not-a-uuid", "0" * 36, "../../../../etc/passwd", "%2e%2e%2f" * 4]
)
@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_unknown_upload_id_is_404(
    registry: PortsideServer, repo: str, upload_id: str, method: str
) -> None:
    target = f"/v2/{repo}/blobs/uploads/{upload_id}"
    if method == "PUT":
        target += "?digest=" + digest_of(b"")
    response = _raw(registry, method, target, body=b"")
    assert_error(response, 404)
    if "/" not in unquote(upload_id):  # else no route matches: 404 all the same
        assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_nul_in_an_upload_id_is_refused_at_the_boundary(
    registry: PortsideServer, repo: str, method: str
) -> None:
    """A NUL anywhere in a path is refused before routing, whatever the path names."""
    response = _raw(registry, method, f"/v2/{repo}/blobs/uploads/%00", body=b"")
    assert "control character" in assert_error(response, 400, "NAME_INVALID")["message"]


def test_unknown_endpoint_and_method(client: httpx.Client, repo: str) -> None:
    assert_error(client.get("/v2/_nothing_here"), 404)
    assert_error(client.patch(manifest_path(repo, "v1")), 405)
    assert_error(client.get("/v3/"), 404)


@pytest.mark.parametrize("params", [{"n": "1" * 30}, {"last": "x" * 600}])
def test_hostile_pagination_parameters(
    client: httpx.Client, repo: str, params: dict[str, str]
) -> None:
    push_content(client, repo, image_manifest(), "v1")
    assert_error(client.get(f"/v2/{repo}/tags/list", params=params), 400)
    assert_error(client.get("/v2/_catalog", params=params), 400)
