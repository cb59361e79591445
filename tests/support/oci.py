"""Helpers for the OCI distribution-spec tests: content, manifests, pushes over HTTP, assertions.

Content is random (``os.urandom``) so every test pushes blobs and manifests no other test has
pushed, and a test cannot pass on content left behind by another. Manifests are serialised once
(:attr:`Manifest.raw`) and their digests are computed here, independently of the server.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_SCHEMA1",
    "EMPTY_JSON",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "SPEC_ERROR_CODES",
    "Blob",
    "Manifest",
    "artifact_manifest",
    "assert_error",
    "blob_path",
    "digest_of",
    "docker_manifest",
    "docker_manifest_list",
    "image_manifest",
    "index_manifest",
    "jwt_claims",
    "manifest_path",
    "next_link",
    "patch_chunk",
    "push_blob",
    "push_content",
    "push_manifest",
    "random_blob",
    "raw_request",
    "start_upload",
    "to_json",
    "upload_url",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
EMPTY_JSON = b"{}"

# The spec's error codes (spec.md "Error Codes"), plus those distribution and clients use.
SPEC_ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
        "RANGE_INVALID",
        "PAGINATION_NUMBER_INVALID",
        "TAG_INVALID",
    }
)


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """``<algorithm>:<hex>`` of ``data``."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def to_json(value: Any) -> bytes:
    """Compact, key-sorted JSON bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str = OCI_LAYER
    algorithm: str = "sha256"

    @property
    def digest(self) -> str:
        return digest_of(self.data, self.algorithm)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


def random_blob(size: int = 1024, media_type: str = OCI_LAYER, algorithm: str = "sha256") -> Blob:
    return Blob(os.urandom(size), media_type, algorithm)


@dataclass(frozen=True)
class Manifest:
    """A serialised manifest or index, with the blobs and child manifests it references."""

    raw: bytes
    media_type: str
    blobs: tuple[Blob, ...] = ()
    children: tuple[Manifest, ...] = ()
    algorithm: str = "sha256"
    subject: str | None = None
    body: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def digest(self) -> str:
        return digest_of(self.raw, self.algorithm)

    @property
    def size(self) -> int:
        return len(self.raw)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


def _random_config(media_type: str, algorithm: str) -> Blob:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Labels": {"nonce": os.urandom(8).hex()}},
    }
    return Blob(to_json(config), media_type, algorithm)


def _with_optional(body: dict[str, Any], **optional: Any) -> dict[str, Any]:
    body.update({key: value for key, value in optional.items() if value is not None})
    return body


def image_manifest(
    *,
    media_type: str = OCI_MANIFEST,
    config: Blob | None = None,
    layers: Iterable[Blob] | None = None,
    layer_count: int = 1,
    artifact_type: str | None = None,
    subject: Manifest | None = None,
    annotations: dict[str, str] | None = None,
    algorithm: str = "sha256",
    extra: dict[str, Any] | None = None,
) -> Manifest:
    """An image manifest (OCI by default) over random layers and a random config."""
    docker = media_type == DOCKER_MANIFEST
    if config is None:
        config = _random_config(DOCKER_CONFIG if docker else OCI_CONFIG, algorithm)
    layer_type = DOCKER_LAYER if docker else OCI_LAYER
    if layers is None:
        layers = [random_blob(512, layer_type, algorithm) for _ in range(layer_count)]
    layers = tuple(layers)
    body = _with_optional(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": config.descriptor(),
            "layers": [layer.descriptor() for layer in layers],
        },
        artifactType=artifact_type,
        subject=subject.descriptor() if subject is not None else None,
        annotations=annotations,
    )
    body.update(extra or {})
    return Manifest(
        to_json(body),
        media_type,
        (config, *layers),
        algorithm=algorithm,
        subject=subject.digest if subject is not None else None,
        body=body,
    )


def artifact_manifest(
    artifact_type: str,
    *,
    subject: Manifest | None = None,
    annotations: dict[str, str] | None = None,
    config_media_type: str | None = None,
) -> Manifest:
    """An OCI artifact: with ``config_media_type`` a custom config carries the type (no
    ``artifactType`` field); otherwise the config is the empty descriptor and ``artifactType``
    is set."""
    if config_media_type is not None:
        config = Blob(to_json({"nonce": os.urandom(8).hex()}), config_media_type)
        return image_manifest(config=config, subject=subject, annotations=annotations)
    return image_manifest(
        config=Blob(EMPTY_JSON, OCI_EMPTY),
        layers=[random_blob(256, "application/vnd.portside.test.payload")],
        artifact_type=artifact_type,
        subject=subject,
        annotations=annotations,
    )


def docker_manifest(layer_count: int = 1) -> Manifest:
    return image_manifest(media_type=DOCKER_MANIFEST, layer_count=layer_count)


def index_manifest(
    children: Iterable[Manifest],
    *,
    media_type: str = OCI_INDEX,
    artifact_type: str | None = None,
    subject: Manifest | None = None,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    """An OCI index (or Docker manifest list) over ``children``, each with a platform."""
    children = tuple(children)
    architectures = ["amd64", "arm64", "ppc64le", "s390x", "riscv64"]
    entries = [
        child.descriptor(platform={"os": "linux", "architecture": architectures[i % 5]})
        for i, child in enumerate(children)
    ]
    body = _with_optional(
        {"schemaVersion": 2, "mediaType": media_type, "manifests": entries},
        artifactType=artifact_type,
        subject=subject.descriptor() if subject is not None else None,
        annotations=annotations,
    )
    return Manifest(
        to_json(body),
        media_type,
        children=children,
        subject=subject.digest if subject is not None else None,
        body=body,
    )


def docker_manifest_list(children: Iterable[Manifest]) -> Manifest:
    return index_manifest(children, media_type=DOCKER_MANIFEST_LIST)


# -- HTTP ---------------------------------------------------------------------------------------


def blob_path(repo: str, digest: str) -> str:
    return f"/v2/{repo}/blobs/{digest}"


def manifest_path(repo: str, reference: str) -> str:
    return f"/v2/{repo}/manifests/{reference}"


def upload_url(response: httpx.Response) -> str:
    """The upload session URL from a POST/PATCH response, made absolute against the request."""
    location = response.headers.get("Location")
    assert location, f"no Location header in {response.status_code} response"
    return urljoin(str(response.request.url), location)


def start_upload(client: httpx.Client, repo: str, **params: str) -> httpx.Response:
    """POST /v2/<repo>/blobs/uploads/; asserts 202 with a Location under the repository."""
    response = client.post(
        f"/v2/{repo}/blobs/uploads/", params=params, headers={"Content-Length": "0"}
    )
    assert response.status_code == 202, response.text
    assert response.headers["Location"].startswith(f"/v2/{repo}/blobs/uploads/")
    return response


def patch_chunk(client: httpx.Client, url: str, data: bytes, start: int | None) -> httpx.Response:
    """PATCH ``data`` to an upload, with ``Content-Range: start-end`` unless ``start`` is None."""
    headers = {"Content-Type": "application/octet-stream"}
    if start is not None:
        headers["Content-Range"] = f"{start}-{start + len(data) - 1}"
    return client.patch(url, content=data, headers=headers)


def push_blob(client: httpx.Client, repo: str, blob: Blob | bytes) -> httpx.Response:
    """Single-POST monolithic upload; asserts 201."""
    if isinstance(blob, bytes):
        blob = Blob(blob)
    response = client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": blob.digest},
        content=blob.data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    return response


def push_manifest(
    client: httpx.Client,
    repo: str,
    manifest: Manifest,
    reference: str | None = None,
    content_type: str | None = None,
) -> httpx.Response:
    """PUT a manifest by ``reference`` (default: its digest); asserts 201 and the headers."""
    reference = reference or manifest.digest
    response = client.put(
        manifest_path(repo, reference),
        content=manifest.raw,
        headers={"Content-Type": content_type or manifest.media_type},
    )
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == manifest.digest
    assert response.headers["Location"] == manifest_path(repo, manifest.digest)
    return response


def push_content(
    client: httpx.Client, repo: str, manifest: Manifest, reference: str | None = None
) -> httpx.Response:
    """Push everything ``manifest`` references (recursively), then the manifest itself."""
    for blob in manifest.blobs:
        push_blob(client, repo, blob)
    for child in manifest.children:
        push_content(client, repo, child)
    return push_manifest(client, repo, manifest, reference)


def raw_request(
    base_url: str,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    auth: tuple[str, str] | None = None,
) -> httpx.Response:
    """Send ``target`` byte for byte (httpx would normalise ``..`` and empty segments away),
    returning the answer as an :class:`httpx.Response`."""
    url = httpx.URL(base_url)
    headers = dict(headers or {})
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    connection = http.client.HTTPConnection(url.host, url.port, timeout=30)
    try:
        connection.request(method, target, body=body, headers=headers)
        answer = connection.getresponse()
        content = answer.read()
        return httpx.Response(
            answer.status,
            headers=answer.getheaders(),
            content=content,
            request=httpx.Request(method, f"{base_url}/"),
        )
    finally:
        connection.close()


# -- assertions ---------------------------------------------------------------------------------


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert ``status`` and the spec's ``{"errors": [{"code", "message"}]}`` envelope; with
    ``code``, that the first error has it. Returns the first error."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict)
    assert isinstance(body.get("errors"), list)
    assert body["errors"], body
    for error in body["errors"]:
        assert isinstance(error.get("code"), str), error
        assert re.fullmatch(r"[A-Z_]+", error["code"]), error
        assert error["code"] in SPEC_ERROR_CODES, error
        assert isinstance(error.get("message"), str), error
    if code is not None:
        assert body["errors"][0]["code"] == code, body
    first: dict[str, Any] = body["errors"][0]
    return first


def next_link(response: httpx.Response) -> str | None:
    """The target of a ``Link: <url>; rel="next"`` header, or None."""
    header = response.headers.get("Link")
    if header is None:
        return None
    match = re.fullmatch(r'\s*<([^>]+)>\s*;\s*rel="?next"?\s*', header)
    assert match, f"malformed Link header {header!r}"
    return match[1]


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, decoded without verifying the signature."""
    parts = token.split(".")
    assert len(parts) == 3, token
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload))
    return claims
