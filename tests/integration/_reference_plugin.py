"""Dev-only pytest plugin: the ``registry`` fixture, backed by the reference registry instead.

Load it explicitly (it is never picked up on its own)::

    cd /work/main && .venv/bin/python -m pytest -p tests.integration._reference_plugin \
        tests/integration/test_clients.py --run-slow -x

(``python -m`` puts the repo on sys.path so ``-p`` can import the plugin; ``--run-slow`` is
tests/conftest.py's switch for slow tests.)  Every test that uses ``registry`` then runs once,
with id ``reference``, instead of against Portside's backends.

It starts Debian's ``docker-registry`` (CNCF distribution 2.8.2) with filesystem storage and token
auth, plus the bench token server (``shared/bench/token_fixture.py``) that grants every scope to
one admin user.  This lets the real-client tests be developed and sanity-checked before Portside
serves, and tells a client or test bug from a Portside bug.  distribution 2.8.2 has no referrers
API, so the oras referrers assertion fails against it (404).

Contract of the fixture object (the same one Portside's fixture honours): ``host``, ``url``,
``username``, ``password`` and ``restart()`` (restarts the server, keeping its data).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REGISTRY_BIN = "/usr/bin/docker-registry"
PORT_RANGE = range(17100, 17200, 2)  # the registry takes an even port, the token server the next
SERVICE = "portside-reference"
ISSUER = "portside-reference-issuer"
STARTUP_TIMEOUT = 15.0


def _token_fixture_path() -> Path | None:
    """Where token_fixture.py lives: $PORTSIDE_TOKEN_FIXTURE, shared/ beside the repo, /work."""
    repo = Path(__file__).resolve().parents[2]
    candidates = [
        os.environ.get("PORTSIDE_TOKEN_FIXTURE", ""),
        str(repo.parent / "shared" / "bench" / "token_fixture.py"),
        "/work/shared/bench/token_fixture.py",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _port_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port and we could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_ports() -> tuple[int, int]:
    """A (registry, token server) pair of free ports from PORT_RANGE."""
    for port in PORT_RANGE:
        if _port_free(port) and _port_free(port + 1):
            return port, port + 1
    raise RuntimeError(f"no free port pair in {PORT_RANGE}")


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Block until ``url`` answers any HTTP status; raise with the log if ``proc`` dies."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # 401 from /v2/ or 404 from the token server: it is serving
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not up after {STARTUP_TIMEOUT}s:\n{log.read_text()}")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the process by its PID, SIGKILL after 10 s, and reap it."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class ReferenceRegistry:
    """distribution 2.8.2 + token server in ``workdir``; see the module docstring."""

    workdir: Path
    token_fixture: Path
    port: int = 0
    token_port: int = 0
    username: str = "admin"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    _registry: subprocess.Popen[bytes] | None = None
    _tokens: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> None:
        """Write keys and config, then start the token server and the registry."""
        self.port, self.token_port = _pick_ports()
        key, cert = self.workdir / "key.pem", self.workdir / "cert.pem"
        openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        subject = ["-subj", "/CN=portside-reference-token"]
        subprocess.run(
            [*openssl, *subject, "-keyout", str(key), "-out", str(cert)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self._write_config(cert)
        log = self.workdir / "tokens.log"
        with log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self._tokens = subprocess.Popen(
                [
                    *(sys.executable, str(self.token_fixture), "--port", str(self.token_port)),
                    *("--key", str(key), "--cert", str(cert), "--issuer", ISSUER),
                    *("--service", SERVICE, "--user", f"{self.username}:{self.password}"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        _wait_http(f"http://127.0.0.1:{self.token_port}/", self._tokens, log)
        self._start_registry()

    def _write_config(self, cert: Path) -> None:
        (self.workdir / "config.yml").write_text(
            f"""\
version: 0.1
log: {{level: warn, accesslog: {{disabled: true}}}}
storage:
  filesystem: {{rootdirectory: {self.workdir / "data"}}}
  delete: {{enabled: true}}
  cache: {{blobdescriptor: inmemory}}
http: {{addr: "{self.host}"}}
auth:
  token:
    realm: http://127.0.0.1:{self.token_port}/token
    service: {SERVICE}
    issuer: {ISSUER}
    rootcertbundle: {cert}
"""
        )

    def _start_registry(self) -> None:
        log = self.workdir / "registry.log"
        with log.open("ab") as out:
            self._registry = subprocess.Popen(
                [REGISTRY_BIN, "serve", str(self.workdir / "config.yml")],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_http(f"{self.url}/v2/", self._registry, log)

    def restart(self) -> None:
        """Stop the registry process and start it again on the same port and data."""
        _stop(self._registry)
        self._start_registry()

    def stop(self) -> None:
        _stop(self._registry)
        _stop(self._tokens)


class LazyReference:
    """What tests receive as ``registry``: starts the reference registry on first use.

    Lazy because the value must exist at collection time (see :func:`pytest_generate_tests`)
    while only a run that actually executes a test should start servers.  Stopped, and its
    directory removed, when pytest unconfigures.
    """

    def __init__(self) -> None:
        self._server: ReferenceRegistry | None = None

    def _started(self) -> ReferenceRegistry:
        if self._server is not None:
            return self._server
        token_fixture = _token_fixture_path()
        if token_fixture is None:
            pytest.skip("token_fixture.py not found (set PORTSIDE_TOKEN_FIXTURE)")
        for tool in (REGISTRY_BIN, "openssl"):
            if shutil.which(tool) is None:
                pytest.skip(f"{tool} not installed (run .ci/install-system-deps.sh)")
        server = ReferenceRegistry(
            Path(tempfile.mkdtemp(prefix="portside-reference-")), token_fixture
        )
        try:
            server.start()
        except BaseException:
            server.stop()
            raise
        self._server = server
        return server

    @property
    def host(self) -> str:
        return self._started().host

    @property
    def url(self) -> str:
        return self._started().url

    @property
    def username(self) -> str:
        return self._started().username

    @property
    def password(self) -> str:
        return self._started().password

    def restart(self) -> None:
        self._started().restart()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            shutil.rmtree(self._server.workdir, ignore_errors=True)
            self._server = None


_REFERENCE = pytest.StashKey[LazyReference]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_REFERENCE] = LazyReference()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _REFERENCE in config.stash:
        config.stash[_REFERENCE].stop()


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give every test that uses ``registry`` the reference registry instead.

    A plain plugin fixture would lose to the ``registry`` fixture of tests/conftest.py (conftest
    fixtures take precedence over plugin ones).  A parametrize mark on the test itself wins over
    any fixture of that name, including a parametrized one, so we add that mark here, before
    pytest's own hooks read the marks.
    """
    if "registry" in metafunc.fixturenames:
        reference = metafunc.config.stash[_REFERENCE]
        mark = pytest.mark.parametrize("registry", [reference], ids=["reference"], scope="session")
        metafunc.definition.add_marker(mark)
