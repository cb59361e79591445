"""The distribution error catalogue (OCI distribution-spec, "Error Codes").

Each code is registered once with its HTTP status and default message. Code raises
:class:`RegistryError` with a code and, optionally, a more specific message and detail; only the
API layer turns it into the ``{"errors": [...]}`` envelope.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["ErrorCode", "RegistryError"]


@dataclass(frozen=True)
class _Spec:
    status: int
    message: str


class ErrorCode(Enum):
    BLOB_UNKNOWN = _Spec(404, "blob unknown to registry")
    BLOB_UPLOAD_INVALID = _Spec(400, "blob upload invalid")
    BLOB_UPLOAD_UNKNOWN = _Spec(404, "blob upload unknown to registry")
    DIGEST_INVALID = _Spec(400, "provided digest did not match uploaded content")
    MANIFEST_BLOB_UNKNOWN = _Spec(400, "manifest references a manifest or blob unknown to registry")
    MANIFEST_INVALID = _Spec(400, "manifest invalid")
    MANIFEST_UNKNOWN = _Spec(404, "manifest unknown to registry")
    NAME_INVALID = _Spec(400, "invalid repository name")
    NAME_UNKNOWN = _Spec(404, "repository name not known to registry")
    SIZE_INVALID = _Spec(400, "provided length did not match content length")
    UNAUTHORIZED = _Spec(401, "authentication required")
    DENIED = _Spec(403, "requested access to the resource is denied")
    UNSUPPORTED = _Spec(415, "the operation is unsupported")
    TOOMANYREQUESTS = _Spec(429, "too many requests")
    # Not in the spec's table, but used by distribution and expected by clients.
    RANGE_INVALID = _Spec(416, "requested range not satisfiable")
    PAGINATION_NUMBER_INVALID = _Spec(400, "invalid number of results requested")
    TAG_INVALID = _Spec(400, "manifest tag did not match URI")
    UNAVAILABLE = _Spec(503, "service unavailable")  # clients retry it (distribution's code)
    UNKNOWN = _Spec(500, "unknown error")

    @property
    def status(self) -> int:
        return self.value.status

    @property
    def message(self) -> str:
        return self.value.message


class RegistryError(Exception):
    """A request failed in a way the client should be told about, in the spec's envelope."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        *,
        detail: Any = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or code.message)
        self.code = code
        self.message = message or code.message
        self.detail = detail
        self.status = status or code.status
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code.name, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return {"errors": [error]}
