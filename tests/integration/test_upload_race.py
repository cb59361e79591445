"""The two-replica upload race of issue 13, replayed against real servers, 50 times a setup.

Two replicas share PostgreSQL and one store: S3 (moto) or a filesystem folder. Two PATCHes to
one upload at offset 0, with different 3 MiB bodies, arrive together: X at replica A, Y at
replica B. Then a PUT on A names X's digest. Every trial must end with one PATCH refused (416),
or with the PUT refused for a digest mismatch; none may end with a blob whose bytes are not
its digest's, on either replica.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.s3server import S3Server
from tests.support.backends import postgres_database
from tests.support.server import PortsideServer

pytestmark = pytest.mark.slow

TRIALS = 50
SIZE = 3 << 20


def _storage_env(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    if kind == "shared-folder":
        return {
            "PORTSIDE_STORAGE__DRIVER": "filesystem",
            "PORTSIDE_STORAGE__FILESYSTEM__ROOT": str(tmp_path / "shared-folder"),
        }
    s3: S3Server = request.getfixturevalue("s3_server")
    return s3.env(f"race-{secrets.token_hex(4)}/")


@pytest.fixture(params=["s3", "shared-folder"])
def replicas(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[PortsideServer, PortsideServer]]:
    with postgres_database() as url:
        env = {
            "PORTSIDE_DATABASE__URL": url,
            **_storage_env(request.param, tmp_path, request),
            "PORTSIDE_REGISTRY__CACHE_TTL_SECONDS": "0",
        }
        one, two = (PortsideServer(tmp_path / f"replica{i}", env) for i in range(2))
        try:
            one.start()
            two.start()
            yield one, two
        finally:
            one.stop()
            two.stop()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _patch_together(
    clients: tuple[httpx.Client, httpx.Client], location: str, bodies: tuple[bytes, bytes]
) -> list[int]:
    """Send both PATCHes at once (a barrier releases both threads together)."""
    barrier = threading.Barrier(2)

    def patch(client: httpx.Client, body: bytes) -> int:
        barrier.wait(timeout=30)
        headers = {
            "Content-Range": f"0-{len(body) - 1}",
            "Content-Type": "application/octet-stream",
        }
        return client.patch(location, content=body, headers=headers).status_code

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(patch, c, b) for c, b in zip(clients, bodies, strict=True)]
        return [future.result(timeout=120) for future in futures]


def test_two_appends_at_one_offset_never_store_a_blob_under_a_wrong_digest(
    replicas: tuple[PortsideServer, PortsideServer],
) -> None:
    a, b = (server.client() for server in replicas)
    repo = f"library/race{secrets.token_hex(3)}"
    outcomes: dict[str, int] = {}
    for trial in range(TRIALS):
        x, y = os.urandom(SIZE), os.urandom(SIZE)
        location = a.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
        statuses = _patch_together((a, b), location, (x, y))
        # Exactly one writer wins the offset (the issue saw both accepted in 12 of 30 trials).
        assert sorted(statuses) == [202, 416], f"trial {trial}: {statuses}"
        done = a.put(location, params={"digest": _digest(x)}, headers={"Content-Length": "0"})
        if statuses[0] == 202:  # X won: it is the upload
            assert done.status_code == 201, done.text
            # Read through B, which never received X: the bytes every replica serves.
            assert b.get(f"/v2/{repo}/blobs/{_digest(x)}").content == x
            outcome = "X won, PUT stored X"
        else:
            assert done.status_code == 400, done.text
            assert done.json()["errors"][0]["code"] == "DIGEST_INVALID"
            for client in (a, b):
                assert client.head(f"/v2/{repo}/blobs/{_digest(x)}").status_code == 404
            outcome = "Y won, PUT refused"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"{TRIALS} trials: {outcomes}")


def test_the_genuine_content_pushed_later_is_what_every_project_pulls(
    replicas: tuple[PortsideServer, PortsideServer],
) -> None:
    """After a lost race, another project pushes X for real (monolithic, then chunked across
    both replicas): both pushes succeed, and every pull returns X."""
    a, b = (server.client() for server in replicas)
    x, y = os.urandom(SIZE), os.urandom(SIZE)
    location = a.post("/v2/library/poison/blobs/uploads/").headers["location"]
    _patch_together((a, b), location, (x, y))
    a.put(location, params={"digest": _digest(x)}, headers={"Content-Length": "0"})

    assert a.post("/api/v2.0/projects", json={"project_name": "other"}).status_code == 201
    pushed = b.post("/v2/other/mono/blobs/uploads/", params={"digest": _digest(x)}, content=x)
    assert pushed.status_code == 201, pushed.text
    chunked = a.post("/v2/other/chunked/blobs/uploads/").headers["location"]
    half = len(x) // 2
    for client, start, part in ((a, 0, x[:half]), (b, half, x[half:])):
        headers = {"Content-Range": f"{start}-{start + len(part) - 1}"}
        answer = client.patch(chunked, content=part, headers=headers)
        assert answer.status_code == 202, answer.text
        chunked = answer.headers["location"]
    closed = b.put(chunked, params={"digest": _digest(x)}, headers={"Content-Length": "0"})
    assert closed.status_code == 201, closed.text
    for client in (a, b):
        for repository in ("other/mono", "other/chunked"):
            assert client.get(f"/v2/{repository}/blobs/{_digest(x)}").content == x
