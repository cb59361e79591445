"""Turning exceptions into the distribution error envelope, and the boundary that makes sure
every request ends in an answer. Nothing else builds error JSON for ``/v2/``.

:class:`ErrorBoundary` wraps the application (and the management API inside it) below the
access log. Whatever a handler or middleware raises that no exception handler took, the client
gets an answer in its protocol's format (Harbor's on ``/api/v2.0``, distribution's elsewhere)
and the access log its real status:

- an outage (:mod:`portside.system.failures`): 503 with ``Retry-After``, or 507 when storage
  is full, logged as one warning line without a traceback;
- anything else: 500, logged once with its traceback;
- a request cut off by shutdown (cancelled after the grace period): 503 if nothing was sent
  yet, and one log line either way;
- a client that went away: one info line, nothing sent.

Nothing is re-raised to the ASGI server, which would log another traceback and close the
connection.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portside.api.harbor.errors import error_response
from portside.oci.errors import ErrorCode, RegistryError
from portside.system.failures import RETRY_AFTER_SECONDS, outage_of

__all__ = ["CUT_OFF_LOGGED", "ErrorBoundary", "exception_handlers"]

log = structlog.get_logger("portside.errors")

_HARBOR_PREFIX = "/api/v2.0/"
# Distribution has no code for a full disk; it answers UNKNOWN itself.
_OCI_CODES = {500: ErrorCode.UNKNOWN, 503: ErrorCode.UNAVAILABLE, 507: ErrorCode.UNKNOWN}
_INTERNAL = "internal error; see the server log"
_SHUTTING_DOWN = "the server is shutting down; try again"

# Set in a request's task when the boundary has logged that its response was cut off after it
# started, so the ASGI server's own line about the incomplete response can be left out.
CUT_OFF_LOGGED: ContextVar[bool] = ContextVar("cut_off_logged", default=False)


def _respond(error: RegistryError) -> Response:
    return JSONResponse(error.to_json(), status_code=error.status, headers=error.headers)


async def _registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return _respond(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return _respond(RegistryError(ErrorCode.UNSUPPORTED, "method not allowed", status=405))
    if exc.status_code == 404:
        return _respond(RegistryError(ErrorCode.UNSUPPORTED, "no such endpoint", status=404))
    return _respond(RegistryError(ErrorCode.UNSUPPORTED, str(exc.detail), status=exc.status_code))


exception_handlers = {
    RegistryError: _registry_error,
    HTTPException: _http_error,
}


def _error_response(path: str, status: int, message: str) -> Response:
    """An error in ``path``'s protocol: Harbor's on the management API, else distribution's."""
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    if path.startswith(_HARBOR_PREFIX):
        return error_response(status, message, headers=headers)
    code = _OCI_CODES.get(status, ErrorCode.UNKNOWN)
    return _respond(RegistryError(code, message, status=status, headers=headers))


class ErrorBoundary:
    """``inflight``, when given, holds the task of every request under way, so that shutdown
    can wait for those it cut off to finish their cleanup (and log their line)."""

    def __init__(self, app: ASGIApp, inflight: set[asyncio.Task[Any]] | None = None) -> None:
        self.app = app
        self._inflight = inflight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        if self._inflight is None or task is None:
            await self._guarded(scope, receive, send)
            return
        self._inflight.add(task)
        try:
            await self._guarded(scope, receive, send)
        finally:
            self._inflight.discard(task)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            # Only shutdown cancels a request (uvicorn, after server.shutdown_grace_seconds).
            # The task ends here instead of unwinding into uvicorn, which would log the
            # cancellation as a traceback.
            log.warning("request cut off by shutdown", **_where(scope), response_cut_off=started)
            if started:
                CUT_OFF_LOGGED.set(True)
            else:
                await _error_response(scope["path"], 503, _SHUTTING_DOWN)(scope, receive, send)
        except ClientDisconnect:
            log.info("client disconnected before the request was read", **_where(scope))
        except Exception as exc:
            outage = outage_of(exc)
            status, message = (outage.status, outage.message) if outage else (500, _INTERNAL)
            fields = {**_where(scope), "status": status, "response_cut_off": started}
            if outage is not None:
                log.warning(f"request failed: {outage.reason}", **fields, error=_summary(exc))
            else:
                log.error("request failed", **fields, exc_info=exc)
            if started:
                CUT_OFF_LOGGED.set(True)
            else:
                await _error_response(scope["path"], status, message)(scope, receive, send)


def _where(scope: Scope) -> dict[str, str]:
    return {"method": scope["method"], "path": scope["path"]}


def _summary(exc: BaseException) -> str:
    """The exception and what it was raised from, in one short line for the log."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 3:
        text = str(current).splitlines()[0][:200] if str(current) else ""
        if not any(text in part for part in parts):  # wrappers repeat what they wrap
            parts.append(f"{type(current).__name__}: {text}" if text else type(current).__name__)
        current = current.__cause__
    return " <- ".join(parts)
