"""Harbor's error format for ``/api/v2.0``: ``{"errors": [{"code": ..., "message": ...}]}``.

Handlers raise :class:`HarborError`; request validation failures, unknown routes and registry
errors raised by shared code (rate limiting, for example) are converted to the same shape, so a
client never sees another format or a traceback.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from portside.oci.errors import ErrorCode, RegistryError

__all__ = ["HarborError", "error_response", "exception_handlers"]

_CODES_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    412: "PRECONDITION",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "TOO_MANY_REQUESTS",
}


class HarborError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES_BY_STATUS.get(status, "UNKNOWN")
        self.headers = headers or {}


def error_response(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "errors": [{"code": code or _CODES_BY_STATUS.get(status, "UNKNOWN"), "message": message}]
    }
    return JSONResponse(body, status_code=status, headers=headers)


async def _harbor(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HarborError)
    return error_response(exc.status, exc.message, exc.code, exc.headers)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors()[:10]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return error_response(400, "; ".join(problems) or "invalid request")


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))


async def _registry(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RegistryError)
    status = exc.status
    code = "TOO_MANY_REQUESTS" if exc.code is ErrorCode.TOOMANYREQUESTS else None
    return error_response(status, exc.message, code, exc.headers)


exception_handlers: dict[Any, Any] = {
    HarborError: _harbor,
    RequestValidationError: _validation,
    HTTPException: _http,
    RegistryError: _registry,
}
