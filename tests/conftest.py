"""Shared fixtures: real Portside servers on loopback, on embedded and on scale-out backends.

``registry`` is a running ``portside serve``, parametrized over two setups:

- ``sqlite-fs``: the embedded default (SQLite and a data folder);
- ``postgres-s3``: PostgreSQL on 127.0.0.1:5432 (a fresh database per run) and a real S3 server
  (moto_server on loopback). It needs those services, so it is marked slow.

Slow tests (real clients, real services) run only with ``--run-slow``; CI passes it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import PortsideServer
from tests.support.vulndata import shared_vulndb


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[object]:
    from tests.s3server import start_s3_server

    server = start_s3_server(bucket=f"portside-{secrets.token_hex(4)}")
    try:
        yield server
    finally:
        server.stop()


def _backend_env(request: pytest.FixtureRequest, backend: str) -> Iterator[dict[str, str]]:
    if backend == "sqlite-fs":
        yield {}
        return
    from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY
    from tests.support.backends import postgres_database

    s3 = request.getfixturevalue("s3_server")
    with postgres_database() as url:
        yield {
            "PORTSIDE_DATABASE__URL": url,
            "PORTSIDE_STORAGE__DRIVER": "s3",
            "PORTSIDE_STORAGE__S3__BUCKET": s3.bucket,  # type: ignore[attr-defined]
            "PORTSIDE_STORAGE__S3__ENDPOINT_URL": s3.endpoint,  # type: ignore[attr-defined]
            "PORTSIDE_STORAGE__S3__REGION": REGION,
            "PORTSIDE_STORAGE__S3__ACCESS_KEY": ACCESS_KEY,
            "PORTSIDE_STORAGE__S3__SECRET_KEY": SECRET_KEY,
            "PORTSIDE_STORAGE__S3__PREFIX": f"run-{secrets.token_hex(4)}/",
        }


BACKENDS = [
    pytest.param("sqlite-fs", id="sqlite-fs"),
    pytest.param("postgres-s3", id="postgres-s3", marks=pytest.mark.slow),
]


@pytest.fixture(scope="session", params=BACKENDS)
def registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PortsideServer]:
    """A running Portside shared by the session's tests; use unique repository names."""
    for env in _backend_env(request, request.param):
        # Every test calls from 127.0.0.1, and many test wrong passwords on purpose: the
        # failed-login limits are tested on servers of their own (test_login_limits.py).
        env = {
            **env,
            "PORTSIDE_AUTH__LOGIN_FAILURES_PER_ACCOUNT": "100000 per 5 minutes",
            "PORTSIDE_AUTH__LOGIN_FAILURES_PER_ADDRESS": "100000 per 5 minutes",
        }
        server = PortsideServer(tmp_path_factory.mktemp(f"portside-{request.param}"), env)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[PortsideServer]:
    """A Portside of the test's own (embedded defaults), for tests that restart or reconfigure."""
    server = PortsideServer(tmp_path / "portside")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(registry: PortsideServer) -> Iterator[httpx.Client]:
    """An HTTP client on ``registry`` sending the admin's basic credentials."""
    with registry.client() as client:
        yield client


@pytest.fixture
def repo() -> str:
    """A repository name no other test uses."""
    return f"library/t{secrets.token_hex(5)}"


@pytest.fixture(scope="session")
def vulndb(registry: PortsideServer) -> PortsideServer:
    """The shared PyPA and Debian advisories, imported into ``registry`` with the CLI."""
    for data_set in ("pypa", "debian-bookworm"):
        done = registry.run_command("vulndb", "import", str(shared_vulndb() / data_set))
        assert done.returncode == 0, done.stderr
    return registry
