"""Two stateless replicas on one PostgreSQL database and one S3 bucket behave as one registry."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY, S3Server
from tests.support.backends import postgres_database
from tests.support.server import PortsideServer

pytestmark = pytest.mark.slow


@pytest.fixture
def replicas(tmp_path: Path, s3_server: S3Server) -> Iterator[tuple[PortsideServer, ...]]:
    with postgres_database() as url:
        env = {
            "PORTSIDE_DATABASE__URL": url,
            "PORTSIDE_STORAGE__DRIVER": "s3",
            "PORTSIDE_STORAGE__S3__BUCKET": s3_server.bucket,
            "PORTSIDE_STORAGE__S3__ENDPOINT_URL": s3_server.endpoint,
            "PORTSIDE_STORAGE__S3__REGION": REGION,
            "PORTSIDE_STORAGE__S3__ACCESS_KEY": ACCESS_KEY,
            "PORTSIDE_STORAGE__S3__SECRET_KEY": SECRET_KEY,
            "PORTSIDE_STORAGE__S3__PREFIX": f"replicas-{secrets.token_hex(4)}/",
            "PORTSIDE_REGISTRY__CACHE_TTL_SECONDS": "0",
        }
        servers = tuple(PortsideServer(tmp_path / f"replica{i}", env) for i in range(2))
        try:
            for server in servers:
                server.start()
            yield servers
        finally:
            for server in servers:
                server.stop()


def test_chunked_upload_alternating_between_replicas(
    replicas: tuple[PortsideServer, PortsideServer],
) -> None:
    one, two = (server.client() for server in replicas)
    chunks = [os.urandom(300_000) for _ in range(5)]
    blob = b"".join(chunks)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    location = one.post("/v2/library/ha/blobs/uploads/").headers["location"]
    offset = 0
    for i, chunk in enumerate(chunks):
        client = (one, two)[i % 2]
        response = client.patch(
            location,
            content=chunk,
            headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
        )
        assert response.status_code == 202, response.text
        offset += len(chunk)
        assert response.headers["range"] == f"0-{offset - 1}"
        location = response.headers["location"]
    assert two.get(location).headers["range"] == f"0-{len(blob) - 1}"
    done = one.put(location, params={"digest": digest})
    assert done.status_code == 201, done.text
    assert two.get(f"/v2/library/ha/blobs/{digest}").content == blob


def test_a_push_through_one_replica_is_pulled_through_the_other(
    replicas: tuple[PortsideServer, PortsideServer],
) -> None:
    one, two = (server.client() for server in replicas)
    config = b"{}"
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    assert (
        one.post(
            "/v2/library/ha2/blobs/uploads/", params={"digest": config_digest}, content=config
        ).status_code
        == 201
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    assert one.put("/v2/library/ha2/manifests/v1", content=manifest, headers=headers).is_success
    pulled = two.get("/v2/library/ha2/manifests/v1")
    assert pulled.status_code == 200 and pulled.content == manifest
    # A tag deleted through one replica is gone through the other (cache TTL 0 here).
    assert two.get("/v2/library/ha2/tags/list").json()["tags"] == ["v1"]
    assert one.delete("/v2/library/ha2/manifests/v1").status_code == 202
    assert two.get("/v2/library/ha2/manifests/v1").status_code == 404
    # Both replicas verify tokens signed by either: the key is shared through the database.
    token = one.get(
        "/service/token", params={"service": "portside", "scope": "repository:library/ha2:pull"}
    ).json()["token"]
    with replicas[1].client() as anonymous:
        anonymous.auth = None  # type: ignore[assignment]
        response = anonymous.get(
            f"/v2/library/ha2/blobs/{config_digest}",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200 and response.content == config
