"""The `portside serve` process itself: first start, configuration errors, logs, TLS, SIGTERM."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portside.config import Settings
from tests.support.server import PortsideServer
from tests.unit.test_config import _keys

PORTSIDE = [sys.executable, "-m", "portside.cli.main"]


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        PORTSIDE + args,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_serve_help_names_every_setting() -> None:
    result = _run(["serve", "--help"])
    assert result.returncode == 0
    for key in _keys(Settings):
        assert key.rsplit(".", 1)[-1] in result.stdout, key


def test_a_bad_setting_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "portside.yaml"
    config.write_text("server:\n  port: 99999\n")
    result = _run(["serve", "--config", str(config), "--data-dir", str(tmp_path / "d")])
    assert result.returncode != 0
    assert "server.port" in result.stderr
    assert "Traceback" not in result.stderr
    result = _run(["serve", "--data-dir", str(tmp_path / "d")], {"PORTSIDE_STORAGE__DRIVER": "x"})
    assert result.returncode != 0 and "storage.driver" in result.stderr


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    result = _run(["db", "upgrade"], {"PORTSIDE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "portside.db").stat().st_size > 0


def test_first_start_generates_and_prints_the_admin_password_once(tmp_path: Path) -> None:
    server = PortsideServer(tmp_path / "data", env={"PORTSIDE_ADMIN_PASSWORD": ""})
    server.start()
    server.stop()
    printed = re.findall(r"with password: (\S+)", server.log_path.read_text())
    assert len(printed) == 1
    server.password = printed[0]
    server.start()
    try:
        assert len(re.findall(r"with password: ", server.log_path.read_text())) == 1
        assert "docker login 127.0.0.1" in server.log_path.read_text()
        with server.client() as client:
            assert client.get("/v2/").status_code == 200
        bad = httpx.get(f"{server.url}/v2/", auth=("admin", "wrong"), timeout=10)
        assert bad.status_code == 401
    finally:
        server.stop()


def test_access_log_has_one_structured_line_per_request(fresh_registry: PortsideServer) -> None:
    fresh_registry.start()
    with fresh_registry.client() as client:
        client.get("/v2/library/none/tags/list")
    # Read while the server runs: the line is written a moment after the request.
    (entry,) = fresh_registry.log_entries(
        lambda x: x.get("event") == "request" and x.get("path") == "/v2/library/none/tags/list"
    )
    assert entry["method"] == "GET" and entry["status"] == 404 and entry["user"] == "admin"
    assert entry["bytes"] > 0 and entry["duration_ms"] >= 0


def test_a_stopped_server_has_written_its_last_log_lines(fresh_registry: PortsideServer) -> None:
    fresh_registry.start()
    with fresh_registry.client() as client:
        client.get("/v2/library/last/tags/list")
    assert fresh_registry.stop() == -signal.SIGTERM  # ends by the signal, as a service should
    entries = fresh_registry.log_entries(lambda _: True)  # all of them: the server has stopped
    assert any(x.get("path") == "/v2/library/last/tags/list" for x in entries)
    # Logged by the application's shutdown itself, moments before the process ends.
    assert entries[-1]["event"] == "stopped"


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls(tmp_path: Path, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    env = {"PORTSIDE_SERVER__TLS_CERT": str(cert), "PORTSIDE_SERVER__TLS_KEY": str(key)}
    trust = ssl.create_default_context(cafile=str(cert))
    server = PortsideServer(tmp_path / "data", env=env, scheme="https", verify=trust)
    server.start()
    try:
        response = httpx.get(f"{server.url}/v2/", verify=trust)
        assert response.status_code == 401
        assert 'realm="https://127.0.0.1' in response.headers["www-authenticate"]
        with server.client() as client:
            assert client.get("/v2/").status_code == 200
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://{server.host}/v2/", timeout=3)
    finally:
        server.stop()


def _slow_body(chunks: list[bytes], pause: float, started: threading.Event) -> Iterator[bytes]:
    for i, chunk in enumerate(chunks):
        if i == 1:
            started.set()
        yield chunk
        time.sleep(pause)


def test_sigterm_lets_an_inflight_upload_finish(fresh_registry: PortsideServer) -> None:
    fresh_registry.start()
    chunks = [os.urandom(64 << 10) for _ in range(8)]
    with fresh_registry.client() as client:
        location = client.post("/v2/library/term/blobs/uploads/").headers["location"]
        started = threading.Event()
        result: dict[str, httpx.Response] = {}

        def patch() -> None:
            result["r"] = client.patch(location, content=_slow_body(chunks, 0.2, started))

        thread = threading.Thread(target=patch)
        thread.start()
        assert started.wait(10)
        assert fresh_registry.process is not None
        fresh_registry.process.send_signal(signal.SIGTERM)
        thread.join(20)
    assert result["r"].status_code == 202
    assert result["r"].headers["range"] == f"0-{8 * (64 << 10) - 1}"
    # It exits by itself once the request is done (uvicorn re-raises SIGTERM on the way out).
    assert fresh_registry.process.wait(10) in (0, -signal.SIGTERM)


def test_upload_cut_off_by_shutdown_resumes_after_restart(tmp_path: Path) -> None:
    server = PortsideServer(
        tmp_path / "data", env={"PORTSIDE_SERVER__SHUTDOWN_GRACE_SECONDS": "0.5"}
    )
    server.start()
    chunks = [os.urandom(256 << 10) for _ in range(12)]
    blob = b"".join(chunks)
    try:
        client = server.client()
        location = client.post("/v2/library/cut/blobs/uploads/").headers["location"]
        started = threading.Event()

        def patch() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the server goes away mid-request
                client.patch(location, content=_slow_body(chunks, 0.3, started))

        thread = threading.Thread(target=patch)
        thread.start()
        assert started.wait(10)
        time.sleep(0.5)
        server.stop()
        thread.join(20)
        server.start()
        with server.client() as fresh:
            status = fresh.get(location)
            assert status.status_code == 204
            received = int(status.headers["range"].split("-")[1]) + 1
            assert 0 < received < len(blob)
            rest = blob[received:]
            resumed = fresh.patch(
                location,
                content=rest,
                headers={"Content-Range": f"{received}-{len(blob) - 1}"},
            )
            assert resumed.status_code == 202, (received, resumed.headers, resumed.text)
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            done = fresh.put(resumed.headers["location"], params={"digest": digest})
            assert done.status_code == 201, done.text
            assert fresh.get(f"/v2/library/cut/blobs/{digest}").content == blob
    finally:
        server.stop()


def test_http10_keep_alive_is_honoured(registry: PortsideServer) -> None:
    """ApacheBench-style clients reuse one HTTP/1.0 connection when the server agrees."""

    def receive(sock: socket.socket) -> bytes:
        data = sock.recv(4096)
        assert data, "the server closed the HTTP/1.0 keep-alive connection"
        return data

    request = b"GET /v2/ HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
    with socket.create_connection(("127.0.0.1", registry.port), timeout=5) as sock:
        answers = []
        for _ in range(2):
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                head += receive(sock)
            header, _, body = head.partition(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", header, re.I)[1])  # type: ignore[index]
            while len(body) < length:
                body += receive(sock)
            answers.append(header.lower())
    assert all(a.startswith(b"http/1.1 401") for a in answers)
    assert all(b"connection: keep-alive" in a for a in answers)


def _resident_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB$", status, re.M)[1])  # type: ignore[index]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_idle_memory_is_under_100_mb(tmp_path: Path) -> None:
    """Issue 2: an idle ``portside serve`` (embedded defaults: SQLite, filesystem) stays under
    100 MB resident. Read after start-up has settled, before anyone logs in."""
    server = PortsideServer(tmp_path / "data")
    server.start()
    try:
        assert server.process is not None
        time.sleep(3)
        resident_mb = _resident_kib(server.process.pid) / 1024
        assert resident_mb < 100, f"idle RSS is {resident_mb:.1f} MB"
    finally:
        server.stop()
