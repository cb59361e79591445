"""Harbor's error format for ``/api/v2.0``: ``{"errors": [{"code": ..., "message": ...}]}``.

Handlers raise :class:`HarborError`; request validation failures, unknown routes and registry
errors raised by shared code (rate limiting, for example) are converted to the same shape, so a
client never sees another format or a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from portside.oci.errors import ErrorCode, RegistryError

__all__ = [
    "HARBOR_ERROR_STATUSES",
    "Error",
    "Errors",
    "HarborError",
    "document_errors",
    "error_response",
    "exception_handlers",
]

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
    503: "SERVICE_UNAVAILABLE",
    507: "INSUFFICIENT_STORAGE",
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


class Error(BaseModel):
    """One entry of Harbor's error body."""

    code: str
    message: str


class Errors(BaseModel):
    """Harbor's error body, the only error format of ``/api/v2.0``."""

    errors: list[Error]


# The error statuses any route may answer with: validation (400), the gate (401/403), missing
# resources (404), conflicts (409), preconditions (412), the body limit (413), non-JSON bodies
# (415), rate limits (429), internal errors (500), outages of the database or the storage (503)
# and a full disk (507).
HARBOR_ERROR_STATUSES: dict[int, str] = {
    400: "Bad request.",
    401: "Authentication required, or the credentials are invalid.",
    403: "The caller may not do this.",
    404: "Not found.",
    409: "Conflict with the current state.",
    412: "A precondition failed.",
    413: "The request body is too large.",
    415: "The request body is not JSON.",
    429: "Too many requests.",
    500: "Internal error.",
    503: "The database or the storage is unavailable; retry after Retry-After seconds.",
    507: "Storage is full.",
}

_ERRORS_REF = "#/components/schemas/Errors"


def document_errors(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document tell the truth about errors.

    FastAPI documents a 422 validation body that this API never sends (validation errors are
    400 in Harbor's envelope), leaves error responses without a schema, and claims a JSON body
    for handlers that answer with an empty response. Every operation gets
    :data:`HARBOR_ERROR_STATUSES` with the :class:`Errors` body instead, and success responses
    without a model document no body, whichever module defines them, so clients (and
    schemathesis) can rely on the document.
    """
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        components = document.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        errors_schema = Errors.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(errors_schema.pop("$defs", {}))
        schemas["Errors"] = errors_schema
        for path_item in document.get("paths", {}).values():
            for operation in path_item.values():
                if isinstance(operation, dict) and "responses" in operation:
                    _document_operation_errors(operation["responses"])
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        components.setdefault("securitySchemes", {})["basic"] = {
            "type": "http",
            "scheme": "basic",
        }
        document.setdefault("security", [{"basic": []}, {}])
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _document_operation_errors(responses: dict[str, Any]) -> None:
    responses.pop("422", None)
    for code, response in responses.items():
        # A handler that returns a bare Response (an empty 200, say) gets ``schema: {}`` under
        # application/json from FastAPI: a JSON body that is never sent. Document no body.
        if code.startswith("2") and response.get("content") == {"application/json": {"schema": {}}}:
            del response["content"]
    for status, description in HARBOR_ERROR_STATUSES.items():
        response = responses.setdefault(str(status), {})
        if not response.get("description"):
            response["description"] = description
        content = response.setdefault("content", {}).setdefault("application/json", {})
        if not content.get("schema"):
            content["schema"] = {"$ref": _ERRORS_REF}
