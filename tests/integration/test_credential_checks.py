"""Checking basic credentials costs one argon2 run per credential, not one per request.

The server logs each slow check at debug level (``credential checked``, with ``background``),
so the tests count argon2 runs instead of timing them: a timing bound would be either loose or
flaky on a loaded machine. The credential cache lives for :data:`TTL` seconds here.

- 64 requests arriving together after the cache entry expired share one check (single flight).
- A client that keeps using its credential is re-checked in the background before the entry
  expires, so none of its requests waits for argon2 (refresh ahead).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import PortsideServer

pytestmark = pytest.mark.slow

TTL = 2.0
CONCURRENT = 64


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PortsideServer]:
    server = PortsideServer(
        tmp_path / "portside",
        {
            "PORTSIDE_REGISTRY__CACHE_TTL_SECONDS": str(TTL),
            "PORTSIDE_LOG__LEVEL": "debug",
            "PORTSIDE_LOG__ACCESS_LOG": "false",
        },
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _checks(server: PortsideServer, at_least: int) -> list[dict[str, Any]]:
    """The ``credential checked`` log lines, once at least ``at_least`` are written."""
    deadline = time.monotonic() + 10
    while True:
        found = server.log_entries(lambda e: e.get("event") == "credential checked")
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _robot(server: PortsideServer) -> tuple[str, str]:
    body = {
        "name": "burst",
        "level": "system",
        "description": "",
        "duration": -1,
        "permissions": [
            {
                "kind": "project",
                "namespace": "*",
                "access": [{"resource": "repository", "action": "pull"}],
            }
        ],
    }
    with server.client() as admin:
        response = admin.post("/api/v2.0/robots", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    return created["name"], created["secret"]


def _burst(server: PortsideServer, auth: tuple[str, str]) -> float:
    """Send :data:`CONCURRENT` basic-auth GETs at once, on connections opened beforehand; all
    must succeed. Returns the seconds they took."""
    limits = httpx.Limits(max_connections=CONCURRENT)
    together = threading.Barrier(CONCURRENT)
    with (
        httpx.Client(base_url=server.url, limits=limits, timeout=60) as client,
        ThreadPoolExecutor(CONCURRENT) as pool,
    ):

        def at_once(credentials: tuple[str, str] | None) -> int:
            together.wait()
            return client.get("/v2/", auth=credentials).status_code

        # Anonymous requests at once first, so that each thread has an open connection.
        assert set(pool.map(lambda _: at_once(None), range(CONCURRENT))) == {401}
        started = time.monotonic()
        statuses = list(pool.map(lambda _: at_once(auth), range(CONCURRENT)))
        elapsed = time.monotonic() - started
    assert statuses == [200] * CONCURRENT
    return elapsed


@pytest.mark.parametrize("account", ["user", "robot"])
def test_concurrent_requests_after_expiry_share_one_check(
    server: PortsideServer, account: str
) -> None:
    auth = (server.username, server.password) if account == "user" else _robot(server)
    with httpx.Client(base_url=server.url, auth=auth) as client:
        assert client.get("/v2/").status_code == 200  # remembered now
    time.sleep(TTL + 0.5)  # the entry has expired; no refresh can be under way
    before = len(_checks(server, 1))  # the log has every line of the warm-up by now

    elapsed = _burst(server, auth)

    # Every check since the warm-up, the burst's and any late refresh of it.
    checks = _checks(server, before + 1)[before:]
    foreground = [c for c in checks if not c["background"]]
    print(f"{CONCURRENT} requests after expiry: {elapsed:.2f} s, {len(checks)} argon2 checks")
    assert len(foreground) == 1, checks
    assert all(c["valid"] for c in checks)


def test_a_steady_client_is_rechecked_in_the_background(server: PortsideServer) -> None:
    with httpx.Client(base_url=server.url, auth=(server.username, server.password)) as client:
        deadline = time.monotonic() + 3 * TTL
        while time.monotonic() < deadline:
            assert client.get("/v2/").status_code == 200
            time.sleep(TTL / 8)
    checks = _checks(server, 3)
    # The first request checked in the open; every later check ran behind the requests, and
    # there were some, since the run outlived the cache entry's lifetime three times.
    assert not checks[0]["background"]
    assert len(checks) >= 3 and all(c["background"] for c in checks[1:]), checks


def test_a_wrong_password_is_not_remembered(server: PortsideServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        for _ in range(3):
            assert client.get("/v2/", auth=(server.username, "Wrong-Password-1")).status_code == 401
    checks = _checks(server, 3)
    assert len(checks) == 3 and not any(c["valid"] for c in checks)
