"""Outages below the API, made for real: PostgreSQL refusing connections, an SQLite file that
cannot be written, a full disk, a dead S3 endpoint, and SIGTERM past its grace period.

Through each, what needs nothing new from the database keeps working from the caches, the rest
answers 503 (507 when storage is full) in the protocol's format with ``Retry-After``, health
names the failed component, the access log has the real status, and nothing logs a traceback.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest

from tests.integration.test_permissions import PASSWORD, add_member, create_user
from tests.support.backends import POSTGRES_DSN, postgres_database
from tests.support.oci import Blob, blob_path, image_manifest, manifest_path, push_content
from tests.support.server import PortsideServer

API = "/api/v2.0"


def _start(data_dir: Path, **env: str) -> PortsideServer:
    server = PortsideServer(data_dir, {"PORTSIDE_REGISTRY__CACHE_TTL_SECONDS": "1", **env})
    server.start()
    return server


def _member(server: PortsideServer, username: str) -> None:
    """A non-admin account with the developer role in ``library``: its pulls go through the
    account, project and permission caches, which an admin's skip."""
    with server.client() as admin:
        create_user(admin, username)
        add_member(admin, "library", username, role_id=2)


def _token(server: PortsideServer, username: str, repo: str) -> httpx.Response:
    return httpx.get(
        f"{server.url}/service/token",
        params={"service": "portside", "scope": f"repository:{repo}:pull"},
        auth=(username, PASSWORD),
        timeout=30,
    )


def _assert_harbor_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.json()["errors"][0]["code"] == code, response.text


def _assert_oci_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["errors"][0]
    assert error["code"] == code, response.text
    return str(error["message"])


def _components(server: PortsideServer) -> tuple[float, dict[str, dict[str, Any]]]:
    """How long /health took, and its components by name."""
    started = time.monotonic()
    response = httpx.get(f"{server.url}{API}/health", timeout=30)
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    return took, {c["name"]: c for c in response.json()["components"]}


def _assert_clean_log(server: PortsideServer) -> list[dict[str, Any]]:
    """No traceback anywhere in the log, and every access line has a real status. Returns
    the access lines."""
    text = server.log_path.read_text()
    assert "Traceback" not in text, text[-6000:]
    assert "Exception in ASGI application" not in text, text[-6000:]
    access = server.log_entries(lambda e: e.get("event") == "request")
    assert all(entry["status"] >= 100 for entry in access), [e for e in access if e["status"] < 100]
    return access


def _pushed(server: PortsideServer, repo: str) -> tuple[str, str]:
    """Push a one-layer image tagged 1.0 into ``repo``; its manifest and layer paths."""
    layer = Blob(os.urandom(4096))
    manifest = image_manifest(layers=[layer])
    with server.client() as admin:
        push_content(admin, repo, manifest, "1.0")
    return manifest_path(repo, "1.0"), blob_path(repo, layer.digest)


# -- PostgreSQL refusing connections --------------------------------------------------------------


@contextlib.contextmanager
def _postgres_cut(database: str) -> Iterator[None]:
    """The database refuses new connections (even the superuser's, which ``CONNECTION LIMIT
    0`` would not stop) and its open ones are terminated; restored on leaving."""
    admin = psycopg2.connect(POSTGRES_DSN)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )
        yield
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        admin.close()


@pytest.mark.slow
def test_a_postgres_outage_serves_cached_pulls_and_answers_the_rest_with_503(
    tmp_path: Path,
) -> None:
    with postgres_database() as url:
        server = _start(tmp_path / "data", PORTSIDE_DATABASE__URL=url)
        try:
            _run_postgres_outage(server, url.rsplit("/", 1)[1])
        finally:
            server.stop()
        access = _assert_clean_log(server)
    assert any(entry["status"] == 503 for entry in access)


def _run_postgres_outage(server: PortsideServer, database: str) -> None:
    repo = "library/outage"
    manifest, layer = _pushed(server, repo)
    _member(server, "puller")
    token = _token(server, "puller", repo).json()["token"]
    pulls = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    basic = httpx.Client(base_url=server.url, auth=("puller", PASSWORD), timeout=30)
    with pulls, basic, server.client() as admin:
        for client in (pulls, basic):  # warm every cache a pull goes through
            assert client.get(manifest).status_code == 200
            assert client.get(layer).status_code == 200
        with _postgres_cut(database):
            time.sleep(1.5)  # every cached entry (1 s) has expired: what follows is stale
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                for client in (pulls, basic):
                    assert client.get(manifest).status_code == 200
                    assert client.get(layer).status_code == 200
                assert _token(server, "puller", repo).status_code == 200
            _assert_harbor_error(
                admin.post(f"{API}/projects", json={"project_name": "during-outage"}),
                503,
                "SERVICE_UNAVAILABLE",
            )
            refused = admin.post(f"/v2/{repo}/blobs/uploads/")
            assert "database" in _assert_oci_error(refused, 503, "UNAVAILABLE")
            assert refused.headers["retry-after"].isdigit()
            _assert_oci_error(pulls.get(manifest_path(repo, "never")), 503, "UNAVAILABLE")
            took, components = _components(server)
            assert took < 3.5
            assert components["database"]["status"] == "unhealthy", components
            assert components["storage"]["status"] == "healthy", components
        # Back: nothing fails on the way, and writes succeed again within a few seconds.
        statuses: list[int] = []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            statuses.append(pulls.get(manifest).status_code)
            name = f"after-{secrets.token_hex(3)}"
            statuses.append(admin.post(f"{API}/projects", json={"project_name": name}).status_code)
        assert 500 not in statuses, statuses
        assert statuses[-1] == 201 and statuses[-2] == 200, statuses
        assert _components(server)[1]["database"]["status"] == "healthy"


# -- an SQLite file that cannot be written -------------------------------------------------------


@contextlib.contextmanager
def _immutable(*files: Path) -> Iterator[None]:
    """Writes to ``files`` fail, even through descriptors already open (``chattr +i``: the
    tests run as root, for whom permissions would change nothing)."""
    present = [str(f) for f in files if f.exists()]
    subprocess.run(["chattr", "+i", *present], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *present], check=True)


def test_an_unwritable_sqlite_file_keeps_reads_and_answers_writes_with_503(
    tmp_path: Path,
) -> None:
    if shutil.which("chattr") is None:
        pytest.skip("needs chattr")
    server = _start(tmp_path / "data")
    try:
        repo = "library/readonly-db"
        manifest, layer = _pushed(server, repo)
        database = server.data_dir / "portside.db"
        with server.client() as admin:
            with _immutable(database, Path(f"{database}-wal")):
                time.sleep(1.5)
                assert admin.get(manifest).status_code == 200
                assert admin.get(layer).status_code == 200
                assert admin.get(f"{API}/projects/library").status_code == 200
                _assert_harbor_error(
                    admin.post(f"{API}/projects", json={"project_name": "during-outage"}),
                    503,
                    "SERVICE_UNAVAILABLE",
                )
                blob = Blob(os.urandom(1024))
                push = admin.post(
                    f"/v2/{repo}/blobs/uploads/", params={"digest": blob.digest}, content=blob.data
                )
                _assert_oci_error(push, 503, "UNAVAILABLE")
                assert push.headers["retry-after"].isdigit()
                components = _components(server)[1]
                assert components["database"]["status"] == "unhealthy", components
            created = admin.post(f"{API}/projects", json={"project_name": "after-outage"})
            assert created.status_code == 201, created.text
    finally:
        server.stop()
    _assert_clean_log(server)


# -- a full disk ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _small_filesystem(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs to mount a tmpfs (root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(folder: Path) -> Path:
    """Fill ``folder``'s filesystem to the last byte; returns the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):  # then smaller writes for the last bytes
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_answers_507_and_health_says_so(tmp_path: Path) -> None:
    """Blob storage and the SQLite database on small filesystems of their own, filled one
    after the other."""
    with (
        _small_filesystem(tmp_path / "blobs", "16m") as blobs,
        _small_filesystem(tmp_path / "db", "16m") as db,
    ):
        server = _start(
            tmp_path / "data",
            PORTSIDE_DATABASE__URL=f"sqlite:///{db}/portside.db",
            PORTSIDE_STORAGE__FILESYSTEM__ROOT=str(blobs),
            PORTSIDE_STORAGE__MIN_FREE_BYTES=str(4 << 20),
        )
        try:
            _run_full_disks(server, blobs, db)
        finally:
            server.stop()
        access = _assert_clean_log(server)
    assert [e["status"] for e in access if e["status"] >= 500] == [507] * 3, access


def _run_full_disks(server: PortsideServer, blobs: Path, db: Path) -> None:
    repo = "library/full"
    manifest, _ = _pushed(server, repo)
    assert _components(server)[1]["storage"]["status"] == "healthy"
    blob = Blob(os.urandom(2 << 20))
    with server.client() as admin:
        # The blob folder is full: pushes of new bytes are refused, everything else works.
        storage_filler = _fill(blobs)
        push = admin.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": blob.digest}, content=blob.data
        )
        assert "storage is full" in _assert_oci_error(push, 507, "UNKNOWN")
        started = admin.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        chunk = admin.patch(started.headers["location"], content=blob.data)
        assert "storage is full" in _assert_oci_error(chunk, 507, "UNKNOWN")
        assert admin.get(manifest).status_code == 200
        created = admin.post(f"{API}/projects", json={"project_name": "room-in-the-db"})
        assert created.status_code == 201, created.text
        time.sleep(1.1)  # past the health cache
        components = _components(server)[1]
        assert components["storage"]["status"] == "unhealthy", components
        assert components["database"]["status"] == "healthy", components
        # The database's folder is full too: a project cannot be created.
        db_filler = _fill(db)
        refused = admin.post(f"{API}/projects", json={"project_name": "no-room"})
        _assert_harbor_error(refused, 507, "INSUFFICIENT_STORAGE")
        assert "storage is full" in refused.json()["errors"][0]["message"]
        assert admin.get(manifest).status_code == 200  # reads go on
        time.sleep(1.1)
        assert _components(server)[1]["database"]["status"] == "unhealthy"
        storage_filler.unlink()
        db_filler.unlink()
        time.sleep(1.1)
        components = _components(server)[1]
        assert components["storage"]["status"] == "healthy", components
        again = admin.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": blob.digest}, content=blob.data
        )
        assert again.status_code == 201, again.text
        created = admin.post(f"{API}/projects", json={"project_name": "no-room"})
        assert created.status_code == 201, created.text


# -- a dead S3 endpoint --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_dead_s3_endpoint_answers_503(tmp_path: Path) -> None:
    from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY, start_s3_server

    s3 = start_s3_server(bucket=f"outage-{secrets.token_hex(4)}")
    server = _start(
        tmp_path / "data",
        PORTSIDE_STORAGE__DRIVER="s3",
        PORTSIDE_STORAGE__S3__BUCKET=s3.bucket,
        PORTSIDE_STORAGE__S3__ENDPOINT_URL=s3.endpoint,
        PORTSIDE_STORAGE__S3__REGION=REGION,
        PORTSIDE_STORAGE__S3__ACCESS_KEY=ACCESS_KEY,
        PORTSIDE_STORAGE__S3__SECRET_KEY=SECRET_KEY,
    )
    try:
        repo = "library/s3-gone"
        manifest, layer = _pushed(server, repo)
        with server.client() as admin:
            assert admin.get(manifest).status_code == 200  # its small body is now cached
            s3.stop()
            assert admin.get(manifest).status_code == 200
            _assert_oci_error(admin.get(layer), 503, "UNAVAILABLE")
            blob = Blob(os.urandom(1024))
            push = admin.post(
                f"/v2/{repo}/blobs/uploads/", params={"digest": blob.digest}, content=blob.data
            )
            assert "storage" in _assert_oci_error(push, 503, "UNAVAILABLE")
            assert push.headers["retry-after"].isdigit()
            storage = _components(server)[1]["storage"]
            assert storage["status"] == "unhealthy", storage
    finally:
        server.stop()
        s3.stop()
    _assert_clean_log(server)


# -- SIGTERM past the grace period ---------------------------------------------------------------


def test_requests_cut_off_by_shutdown_log_one_line_each(tmp_path: Path) -> None:
    """An upload still receiving its body and a download still sending one, when the grace
    period ends."""
    server = _start(tmp_path / "data", PORTSIDE_SERVER__SHUTDOWN_GRACE_SECONDS="1")
    receiving, sending = threading.Event(), threading.Event()
    big = Blob(os.urandom(48 << 20))  # more than the socket buffers hold

    def endless() -> Iterator[bytes]:
        while True:
            yield os.urandom(16 << 10)
            receiving.set()
            time.sleep(0.1)

    with server.client() as client:
        push = client.post(
            "/v2/library/cut/blobs/uploads/", params={"digest": big.digest}, content=big.data
        )
        assert push.status_code == 201, push.text
        location = client.post("/v2/library/cut/blobs/uploads/").headers["location"]

        def upload() -> None:
            with contextlib.suppress(httpx.HTTPError):
                client.patch(location, content=endless(), timeout=20)

        def download() -> None:
            path = blob_path("library/cut", big.digest)
            with (
                contextlib.suppress(httpx.HTTPError),
                server.client() as reader,
                reader.stream("GET", path) as response,
            ):
                for _ in response.iter_bytes(1 << 16):
                    sending.set()
                    time.sleep(0.5)

        threads = [threading.Thread(target=t, daemon=True) for t in (upload, download)]
        for thread in threads:
            thread.start()
        assert receiving.wait(10) and sending.wait(10)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(15) in (0, -signal.SIGTERM)
        server.process = None
    text = server.log_path.read_text()
    assert "CancelledError" not in text and "Traceback" not in text, text[-6000:]
    assert "without completing response" not in text, text[-6000:]
    cut = server.log_entries(lambda e: e.get("event") == "request cut off by shutdown")
    assert sorted((entry["path"], entry["response_cut_off"]) for entry in cut) == sorted(
        [(httpx.URL(location).path, False), (blob_path("library/cut", big.digest), True)]
    ), cut
