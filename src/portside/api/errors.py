"""Turning exceptions into the distribution error envelope. Nothing else builds error JSON."""

from __future__ import annotations

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portside.oci.errors import ErrorCode, RegistryError

__all__ = ["exception_handlers"]

log = structlog.get_logger("portside.errors")


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


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("request failed", method=request.method, path=request.url.path, exc_info=exc)
    return _respond(RegistryError(ErrorCode.UNKNOWN, "internal error; see the server log"))


exception_handlers = {
    RegistryError: _registry_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
