"""Structured logs: one JSON (or console) line per event, and one access line per request."""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import threading
import time
from collections.abc import MutableMapping
from typing import IO, Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portside.system.failures import outage_of

__all__ = ["AccessLogMiddleware", "configure_logging", "flush_logs"]


_GATHER_SECONDS = 0.02  # how long a log line may wait for others to be written with it


class _QueuedWriter:
    """A structlog logger whose lines are written by a thread of its own.

    Writing to stderr is a blocking system call, and one access line per request made it a
    seventh of the event loop's busy time under push load (py-spy): requests no longer wait for
    it. Lines keep their order; whatever is queued at exit is still written (``atexit``, or
    :func:`flush_logs` where the process ends by a signal and ``atexit`` does not run).

    After the first line of a batch the thread waits a moment for more: woken per line, it
    would take the GIL from the request threads a thousand times a second under load, and
    each hand-over is a context switch (perf: the biggest kernel cost of a small push).
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def msg(self, message: str) -> None:
        self._lines.put(message)

    # structlog calls the method named after the level; every level is one line here.
    log = debug = info = warning = warn = error = err = critical = exception = fatal = msg

    def _run(self) -> None:
        while True:
            line = self._lines.get()
            time.sleep(_GATHER_SECONDS)
            batch = []
            while line is not None:
                batch.append(line)
                try:
                    line = self._lines.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self._stream.write("\n".join(batch) + "\n")
                    self._stream.flush()
                except (OSError, ValueError):
                    pass  # a closed or broken stderr must not stop the server
            if line is None:
                return

    def close(self) -> None:
        if self._thread.is_alive():
            self._lines.put(None)
            self._thread.join(timeout=5)


_writer: _QueuedWriter | None = None


def _queued_logger(*_args: Any) -> _QueuedWriter:
    global _writer
    if _writer is None:
        _writer = _QueuedWriter(sys.stderr)
    return _writer


def flush_logs() -> None:
    """Write every queued line and stop the writer: the last thing before the process ends."""
    if _writer is not None:
        _writer.close()


def _outages_in_one_line(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """An outage logged with its exception (a background loop's ``log.exception``) becomes one
    line naming it: during a database outage every retry would otherwise log a traceback."""
    exc_info = event.get("exc_info")
    if exc_info is True:
        exc_info = sys.exc_info()
    error = exc_info[1] if isinstance(exc_info, tuple) else exc_info
    if isinstance(error, BaseException):
        outage = outage_of(error)
        if outage is not None:
            del event["exc_info"]
            detail = str(error).splitlines()[0][:200] if str(error) else ""
            event["error"] = f"{outage.reason}: {type(error).__name__}: {detail}"
    return event


def configure_logging(level: str, fmt: str) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        # No merge_contextvars: nothing binds context variables, and copying the context cost
        # every access line 7 of its 18 microseconds.
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _outages_in_one_line,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=_queued_logger,
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=getattr(logging, level.upper()), stream=sys.stderr, format="%(message)s"
    )


class AccessLogMiddleware:
    """Logs method, path, status, bytes sent, duration and user for every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = structlog.get_logger("portside.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        sent = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                bytes=sent,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                user=scope.get("state", {}).get("user") or None,
                client=scope["client"][0] if scope.get("client") else None,
            )
