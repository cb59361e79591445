"""A client that goes away in the middle of an upload body leaves one info line, not a traceback.

The client here is a raw socket: it sends the request head and half the body it announced, waits
until the server has read that half, and closes the connection.
"""

from __future__ import annotations

import base64
import secrets
import socket
import time
from typing import Any

import httpx
import pytest

from tests.support.oci import digest_of, start_upload
from tests.support.server import PortsideServer

ANNOUNCED = 1 << 20
SENT = 256 << 10


def _send_half_and_close(server: PortsideServer, method: str, target: str) -> None:
    credentials = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: {server.host}\r\n"
        f"Authorization: Basic {credentials}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {ANNOUNCED}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + secrets.token_bytes(SENT))
        time.sleep(1.5)  # the server reads what arrived, then waits for the rest


def _lines_about(server: PortsideServer, method: str, path: str) -> list[dict[str, Any]]:
    """The log lines of the request, once its access line is written (it comes last)."""

    def about(entry: dict[str, Any]) -> bool:
        return entry.get("method") == method and entry.get("path") == path

    server.log_entries(lambda e: about(e) and e.get("event") == "request")
    return server.log_entries(about)


@pytest.mark.parametrize("kind", ["PATCH", "PUT", "monolithic POST"])
def test_a_client_gone_mid_upload_leaves_one_info_line(registry: PortsideServer, kind: str) -> None:
    repo = f"library/cut-{secrets.token_hex(4)}"
    location = ""
    if kind != "monolithic POST":
        with registry.client() as client:
            location = start_upload(client, repo).headers["Location"]
    digest = digest_of(b"never sent in full")
    method, target = {
        "PATCH": ("PATCH", location),
        "PUT": ("PUT", f"{location}?digest={digest}"),
        "monolithic POST": ("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}"),
    }[kind]
    path = target.split("?", 1)[0]
    _send_half_and_close(registry, method, target)

    lines = _lines_about(registry, method, path)
    cut = [e for e in lines if e.get("event") == "client went away before the end of the body"]
    assert len(cut) == 1, lines
    assert cut[0]["level"] == "info" and 0 < cut[0]["bytes_received"] <= SENT, cut
    access = [e for e in lines if e.get("event") == "request"]
    assert [e["status"] for e in access] == [499], access
    assert all(e["level"] not in ("error", "critical") for e in lines), lines
    log = registry.log_path.read_text()
    assert "ClientDisconnect" not in log and "Exception in ASGI application" not in log
    # The server is fine, and so is the upload: it can be asked about and finished.
    if kind == "PATCH":
        with registry.client() as client:
            assert client.get(location).status_code == 204
            assert httpx.get(f"{registry.url}/v2/", timeout=10).status_code == 401
