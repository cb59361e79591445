"""Running a real ``portside serve`` process on loopback for tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

__all__ = ["PortsideServer", "free_port"]

ADMIN_PASSWORD = "Portside-Test-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _structured(log: str) -> list[dict[str, Any]]:
    """The JSON lines of a log; plain lines (start-up messages, uvicorn's) are left out."""
    entries = []
    for line in log.splitlines():
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


@dataclass
class PortsideServer:
    """A ``portside serve`` subprocess. ``env`` holds PORTSIDE_* settings for it."""

    data_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    username: str = "admin"
    password: str = ADMIN_PASSWORD
    process: subprocess.Popen[bytes] | None = None
    scheme: str = "http"
    verify: ssl.SSLContext | bool = True  # trust for https

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def log_entries(
        self, wanted: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> list[dict[str, Any]]:
        """The structured (JSON) lines of the server's log that ``wanted`` accepts, once at
        least one is there; fails after ``timeout`` seconds without one.

        Read the log of a running server only through this: its lines are written by a thread
        that gathers them for a moment (``portside.api.logging``), so a line shows up shortly
        after the request that caused it, and a read may end in a line half written. (A
        stopped server has written every line: it flushes its log before it exits.)
        """
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_path.read_text()
            complete = text[: text.rfind("\n") + 1]  # not a line still being written
            found = [entry for entry in _structured(complete) if wanted(entry)]
            if found:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no wanted line in the log within {timeout} s:\n{complete[-4000:]}"
                )
            time.sleep(0.1)

    @property
    def process_env(self) -> dict[str, str]:
        """The environment ``portside`` runs with here: server-side commands (``portside
        vulndb import``, ``db upgrade`` …) given it work on this server's database."""
        return {
            **os.environ,
            "PORTSIDE_ADMIN_PASSWORD": self.password,
            "PORTSIDE_DATA_DIR": str(self.data_dir),
            "PORTSIDE_SERVER__HOST": "127.0.0.1",
            "PORTSIDE_SERVER__PORT": str(self.port),
            "PORTSIDE_SERVER__SHUTDOWN_GRACE_SECONDS": "5",
            **self.env,
        }

    def run_command(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``portside ARGS`` against this server's configuration; output captured."""
        return subprocess.run(
            [sys.executable, "-m", "portside.cli.main", *args],
            env=self.process_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, timeout: float = 30) -> None:
        env = self.process_env
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "portside.cli.main", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"portside exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                httpx.get(f"{self.url}/v2/", timeout=1, verify=self.verify)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"portside did not start:\n{self.log_path.read_text()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, **kwargs: object) -> httpx.Client:
        """An HTTP client sending the admin's basic credentials."""
        return httpx.Client(
            base_url=self.url,
            auth=(self.username, self.password),
            timeout=30,
            verify=self.verify,
            **kwargs,  # type: ignore[arg-type]
        )
