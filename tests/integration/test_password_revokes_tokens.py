"""A new password revokes the account's earlier Bearer tokens, however it was set: by the user
(``PUT /users/{id}/password`` with the old one), by an admin, or by ``portside admin
reset-password`` on the database while the server runs.

Tokens carry a fingerprint of the password hash (as robots' tokens carry the secret version),
so the server refuses a token whose fingerprint is no longer the account's. The server's caches
live :data:`TTL` seconds here, which bounds how long a change made outside it goes unseen.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import PortsideServer

pytestmark = pytest.mark.slow

API = "/api/v2.0"
TTL = 1.0
OLD, NEW = "Before-Change-1", "After-Change-2"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PortsideServer]:
    server = PortsideServer(
        tmp_path / "portside",
        {"PORTSIDE_REGISTRY__CACHE_TTL_SECONDS": str(TTL), "PORTSIDE_LOG__ACCESS_LOG": "false"},
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _user(server: PortsideServer) -> int:
    body = {"username": "alice", "password": OLD, "email": "alice@example.com", "realname": "A"}
    with server.client() as admin:
        response = admin.post(f"{API}/users", json=body)
    assert response.status_code == 201, response.text
    return int(response.headers["Location"].rsplit("/", 1)[1])


def _token(server: PortsideServer, password: str) -> str:
    response = httpx.get(
        f"{server.url}/service/token",
        params={"service": "portside", "scope": "repository:library/app:pull"},
        auth=("alice", password),
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def _v2(server: PortsideServer, token: str) -> httpx.Response:
    return httpx.get(f"{server.url}/v2/", headers={"Authorization": f"Bearer {token}"})


def _assert_revoked(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def _change_own(server: PortsideServer, user_id: int) -> None:
    response = httpx.put(
        f"{server.url}{API}/users/{user_id}/password",
        json={"old_password": OLD, "new_password": NEW},
        auth=("alice", OLD),
    )
    assert response.status_code == 200, response.text


def _reset_by_admin(server: PortsideServer, user_id: int) -> None:
    with server.client() as admin:
        response = admin.put(f"{API}/users/{user_id}/password", json={"new_password": NEW})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("change", [_change_own, _reset_by_admin], ids=["own", "admin"])
def test_a_password_change_revokes_earlier_tokens(
    server: PortsideServer, change: Callable[[PortsideServer, int], None]
) -> None:
    user_id = _user(server)
    before = _token(server, OLD)
    assert _v2(server, before).status_code == 200  # a working token, remembered by the server
    change(server, user_id)
    _assert_revoked(_v2(server, before))  # at once: the change was made on this server
    assert _v2(server, _token(server, NEW)).status_code == 200


def test_the_cli_reset_revokes_tokens_and_sessions(server: PortsideServer) -> None:
    _user(server)
    before = _token(server, OLD)
    assert _v2(server, before).status_code == 200
    with httpx.Client(base_url=server.url) as browser:
        login = browser.post("/c/login", data={"principal": "alice", "password": OLD})
        assert login.status_code == 200, login.text
        assert browser.get(f"{API}/users/current").status_code == 200

        command = ["admin", "reset-password", "--user", "alice", "--password-stdin"]
        reset = subprocess.run(
            [sys.executable, "-m", "portside.cli.main", *command],
            env=server.process_env,
            input=f"{NEW}\n",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert reset.returncode == 0, reset.stderr
        time.sleep(TTL + 0.5)  # the running server sees the database's change by now

        assert browser.get(f"{API}/users/current").status_code == 401
    _assert_revoked(_v2(server, before))
    assert _v2(server, _token(server, NEW)).status_code == 200
