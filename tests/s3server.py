"""A real ``moto_server`` on loopback, for tests that talk S3 over HTTP.

Running moto as a separate process (rather than ``mock_aws`` in-process) exercises botocore's
real HTTP path: connection pooling, ranged GETs, streaming bodies and error responses.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from pydantic import SecretStr

from portside.config import S3StorageSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["ACCESS_KEY", "REGION", "SECRET_KEY", "S3Server", "start_s3_server"]

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"
_HOST = "127.0.0.1"

# moto_server's main(), with Nagle's algorithm off: werkzeug writes a response in several small
# sends, and on a kept-alive connection Nagle plus delayed ACKs stall each request ~20 ms.
_LAUNCH = """
import sys
from moto import server
server.MotoRequestHandler.disable_nagle_algorithm = True
server.main(sys.argv[1:])
"""


@dataclass
class S3Server:
    """A running moto_server with one bucket. Call :meth:`stop` when done."""

    endpoint: str
    bucket: str
    pid: int
    _process: subprocess.Popen[bytes] = field(repr=False)
    _log: Path = field(repr=False)

    @functools.cached_property
    def client(self) -> S3Client:
        """A plain boto3 client on the server, for looking behind a driver's back. Shared
        (boto3 clients are thread-safe) because creating one costs about 0.1 s."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}),
        )

    def settings(self, prefix: str) -> S3StorageSettings:
        """Driver settings for this server's bucket, under its own key ``prefix``."""
        return S3StorageSettings(
            bucket=self.bucket,
            endpoint_url=self.endpoint,
            region=REGION,
            access_key=ACCESS_KEY,
            secret_key=SecretStr(SECRET_KEY),
            prefix=prefix,
        )

    def env(self, prefix: str) -> dict[str, str]:
        """The same as ``PORTSIDE_*`` environment variables, for a ``portside serve``."""
        return {
            "PORTSIDE_STORAGE__DRIVER": "s3",
            "PORTSIDE_STORAGE__S3__BUCKET": self.bucket,
            "PORTSIDE_STORAGE__S3__ENDPOINT_URL": self.endpoint,
            "PORTSIDE_STORAGE__S3__REGION": REGION,
            "PORTSIDE_STORAGE__S3__ACCESS_KEY": ACCESS_KEY,
            "PORTSIDE_STORAGE__S3__SECRET_KEY": SECRET_KEY,
            "PORTSIDE_STORAGE__S3__PREFIX": prefix,
        }

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the server by its PID, killing it if it does not exit in time."""
        if "client" in self.__dict__:
            self.client.close()
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self._process.wait(timeout)
        self._log.unlink(missing_ok=True)


def _free_port() -> int:
    # The port could be taken again before moto binds it; start_s3_server retries if so.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(process: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((_HOST, port)) == 0:
                return True
        time.sleep(0.05)
    return False


def _launch(log: Path, timeout: float) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, "-H", _HOST, "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    if _wait_listening(process, port, time.monotonic() + timeout):
        return process, port
    if process.poll() is None:
        process.kill()
    process.wait()
    raise RuntimeError(f"moto_server did not start on port {port}:\n{log.read_text()[-2000:]}")


def start_s3_server(bucket: str = "portside-test", timeout: float = 20.0) -> S3Server:
    """Start moto_server on a free loopback port, create ``bucket``, return the server."""
    fd, name = tempfile.mkstemp(prefix="moto-", suffix=".log")
    os.close(fd)
    log = Path(name)
    error: RuntimeError | None = None
    for _ in range(3):
        try:
            process, port = _launch(log, timeout)
        except RuntimeError as exc:  # most likely lost the race for the port
            error = exc
            continue
        server = S3Server(f"http://{_HOST}:{port}", bucket, process.pid, process, log)
        try:
            server.client.create_bucket(Bucket=bucket)
        except BaseException:
            server.stop()
            raise
        return server
    log.unlink(missing_ok=True)
    assert error is not None
    raise error
