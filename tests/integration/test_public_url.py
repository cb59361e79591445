"""The URL Portside hands out (token realm, ``external_url``) never follows a forged ``Host``.

A client sends its credentials to the realm of a Bearer challenge. Without ``server.public_url``
the realm names a ``Host`` (or a trusted proxy's ``X-Forwarded-Host``) only if
``server.public_hosts`` lists it, and otherwise the address the request arrived on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import PortsideServer

API = "/api/v2.0"


def _realm(server: PortsideServer, headers: dict[str, str]) -> str:
    response = httpx.get(f"{server.url}/v2/", headers=headers, timeout=10)
    assert response.status_code == 401, response.text
    challenge = response.headers["WWW-Authenticate"]
    return challenge.split('realm="', 1)[1].split('"', 1)[0]


def _external_url(server: PortsideServer, headers: dict[str, str]) -> str:
    with server.client() as admin:
        info = admin.get(f"{API}/systeminfo", headers=headers).json()
    assert info["registry_url"] == info["external_url"].split("://", 1)[1], info
    url: str = info["external_url"]
    return url


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[PortsideServer]:
    """A server that lists one public host and trusts the loopback proxy."""
    env = {
        "PORTSIDE_SERVER__PUBLIC_HOSTS": json.dumps(["registry.test", "pinned.test:8443"]),
        "PORTSIDE_SERVER__TRUSTED_PROXIES": json.dumps(["127.0.0.1"]),
    }
    server = PortsideServer(tmp_path / "portside", env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_forged_host_does_not_move_the_realm(fresh_registry: PortsideServer) -> None:
    server = fresh_registry
    server.start()
    own = f"http://127.0.0.1:{server.port}"
    for headers in ({"Host": "evil.test"}, {"Host": "evil.test", "X-Forwarded-Host": "evil.test"}):
        assert _realm(server, headers) == f"{own}/service/token"
        assert _external_url(server, headers) == own
    # The honest request names the address it arrived on, as before.
    assert _realm(server, {}) == f"{own}/service/token"
    server.stop()
    warnings = server.log_entries(lambda e: "public_url is not set" in e.get("event", ""))
    assert len(warnings) == 1 and warnings[0]["level"] == "warning", warnings


def test_a_listed_host_names_the_realm(configured: PortsideServer) -> None:
    server = configured
    own = f"http://127.0.0.1:{server.port}"
    assert (
        _realm(server, {"Host": "registry.test:5000"}) == "http://registry.test:5000/service/token"
    )
    assert _realm(server, {"Host": "REGISTRY.test"}) == "http://registry.test/service/token"
    assert _external_url(server, {"Host": "registry.test"}) == "http://registry.test"
    # A port pinned in the list is the only one allowed for that host.
    assert _realm(server, {"Host": "pinned.test:8443"}) == "http://pinned.test:8443/service/token"
    assert _realm(server, {"Host": "pinned.test:9999"}) == f"{own}/service/token"
    assert _realm(server, {"Host": "evil.test"}) == f"{own}/service/token"
    assert _realm(server, {"Host": "registry.test.evil.test"}) == f"{own}/service/token"
    # From a trusted proxy, a listed X-Forwarded-Host wins over Host; an unlisted one is ignored.
    forwarded = {"Host": "127.0.0.1", "X-Forwarded-Host": "registry.test"}
    assert _realm(server, forwarded) == "http://registry.test/service/token"
    forged = {"Host": "registry.test", "X-Forwarded-Host": "evil.test"}
    assert _realm(server, forged) == "http://registry.test/service/token"
    proto = {"X-Forwarded-Host": "registry.test", "X-Forwarded-Proto": "https"}
    assert _realm(server, {**proto, "X-Forwarded-For": "10.0.0.9"}) == (
        "https://registry.test/service/token"
    )
