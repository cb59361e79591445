"""Running the application under an ASGI server, with TLS and graceful shutdown."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from types import FrameType

import structlog
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from portside.api.app import create_app
from portside.api.errors import CUT_OFF_LOGGED
from portside.api.logging import configure_logging, flush_logs
from portside.config import Settings

__all__ = ["run"]

log = structlog.get_logger("portside")


class _KeepAliveHttp10Protocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, except that an HTTP/1.0 request asking for keep-alive gets it.

    uvicorn closes every HTTP/1.0 connection after one response. Tools that speak HTTP/1.0 with
    ``Connection: keep-alive`` (ApacheBench, some proxies' health checks) then pay a new TCP
    connection per request, which costs more than a cached HEAD itself. Relies on uvicorn's
    ``cycle``/``parser`` attributes; the version is pinned and a test covers the behaviour.
    """

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if (
            cycle is not None
            and cycle.scope is self.scope
            and self.scope.get("http_version") == "1.0"
            and self.parser.should_keep_alive()
        ):
            cycle.keep_alive = True


class _AnnounceKeepAlive:
    """Adds ``Connection: keep-alive`` to responses on a kept-alive HTTP/1.0 connection, which an
    HTTP/1.0 client needs to see before it reuses the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("http_version") != "1.0":
            await self.app(scope, receive, send)
            return
        asked = any(
            name == b"connection" and b"keep-alive" in value.lower()
            for name, value in scope["headers"]
        )

        async def announce(message: Message) -> None:
            if asked and message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"connection", b"keep-alive")]
            await send(message)

        await self.app(scope, receive, announce)


def _migrate(url: str) -> None:
    """Run the migrations in a child process: Alembic and Mako then never load into the
    long-running server, which keeps its idle memory about 11 MB smaller."""
    code = "import sys; from portside.db.migrate import upgrade; upgrade(sys.argv[1])"
    result = subprocess.run([sys.executable, "-c", code, url], check=False)
    if result.returncode != 0:
        raise SystemExit("database migration failed; see the messages above")


class _UnlessCutOffLogged(logging.Filter):
    """Leaves out uvicorn's "returned without completing response" line for a request whose
    cut-off response the application has logged already (with its method and path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (CUT_OFF_LOGGED.get() and "without completing response" in str(record.msg))


def _flush_logs_then_terminate(signum: int, _frame: FrameType | None) -> None:
    """Ends the process by ``signum`` as the default action would, after the queued log lines
    are written. uvicorn re-raises a SIGTERM it shut down for once it is done; with the default
    action the process would die there without running ``atexit``, and the log lines of the last
    moments (shutdown included) would be lost."""
    flush_logs()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def run(settings: Settings) -> None:
    """Migrate, then serve until SIGTERM/SIGINT.

    On SIGTERM the server stops accepting connections and gives in-flight requests
    ``server.shutdown_grace_seconds`` to finish. An upload cut off then keeps the bytes that
    arrived, so the client can resume it against the next process.
    """
    configure_logging(settings.log.level, settings.log.format)
    logging.getLogger("uvicorn.error").addFilter(_UnlessCutOffLogged())
    signal.signal(signal.SIGTERM, _flush_logs_then_terminate)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _migrate(settings.database_url)
    if not settings.server.public_url:
        log.warning(
            "server.public_url is not set: token realms name a Host listed in "
            "server.public_hosts, or else the address each request arrived on; set public_url "
            "to the URL clients use (docs/configuration.md)",
            public_hosts=settings.server.public_hosts,
        )
    app = create_app(settings)
    server = settings.server
    scheme = "https" if server.tls_cert else "http"
    shown_host = "127.0.0.1" if server.host in ("0.0.0.0", "::") else server.host
    print(
        f"Portside listening on {scheme}://{server.host}:{server.port}\n"
        f"  log in with:  docker login {shown_host}:{server.port} -u admin"
        + ("" if server.tls_cert else "   (podman/skopeo: add --tls-verify=false)"),
        flush=True,
    )
    uvicorn.run(
        _AnnounceKeepAlive(app),
        host=server.host,
        port=server.port,
        ssl_certfile=str(server.tls_cert) if server.tls_cert else None,
        ssl_keyfile=str(server.tls_key) if server.tls_key else None,
        timeout_graceful_shutdown=int(server.shutdown_grace_seconds),
        log_config=None,
        access_log=False,
        server_header=False,
        loop="uvloop",
        http=_KeepAliveHttp10Protocol,
        lifespan="on",
        # Client addresses feed the audit log and the failed-login limits, so X-Forwarded-For
        # is believed only from proxies named in server.trusted_proxies.
        proxy_headers=bool(server.trusted_proxies),
        forwarded_allow_ips=server.trusted_proxies or None,
    )
