"""The request boundary's text check: a request whose text breaks :mod:`portside.text`'s rule is
answered 400 before any handler, in the protocol's own error format.

Text comes in the path, the query string, basic credentials, and JSON or form bodies. Each is
checked in the form it arrives in, so nothing is decoded twice on the hot path:

- the path is already decoded by the server; the query string is checked as bytes for raw or
  percent-escaped control characters (one regex search);
- basic credentials are decoded from base64 and checked as bytes;
- JSON and form bodies are read (bounded by :data:`MAX_BODY_BYTES`, as the management API bounds
  them anyway) everywhere but under ``/v2/``, whose bodies are blobs and manifests: blobs must
  stream, and the manifest handler checks manifests itself (:func:`portside.text.unsafe_json`).
"""

from __future__ import annotations

import binascii

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portside.api.harbor.bodylimit import MAX_BODY_BYTES
from portside.api.harbor.errors import error_response
from portside.oci.errors import ErrorCode, RegistryError
from portside.scanner.adapter_api import ERROR_MIME
from portside.text import UNSAFE_BYTES, UNSAFE_URLENCODED, unsafe_json, unsafe_text

__all__ = ["TextInputCheck"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_FORM = b"application/x-www-form-urlencoded"
_OCI_PREFIXES = ("/v2/", "/service/token")
_SCANNER_ADAPTER = "/scanner-adapter/"


def _unsafe_credentials(value: bytes) -> bool:
    if value[:6].lower() != b"basic ":
        return False
    try:  # leniently: what this lets through, authentication refuses as malformed
        decoded = binascii.a2b_base64(value[6:])
    except binascii.Error:
        return False
    return UNSAFE_BYTES.search(decoded) is not None


def _text_body(scope: Scope) -> bytes | None:
    """The body's kind when it carries text to check (``b"form"`` or ``b"json"``), else None.
    A body declared larger than the limit is not read here: the handler refuses it unread."""
    if scope["method"] not in _BODY_METHODS or scope["path"].startswith("/v2/"):
        return None
    kind = b""
    for name, value in scope["headers"]:
        if name == b"content-type":
            kind = bytes(value).split(b";", 1)[0].strip().lower()
        elif name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY_BYTES):
            return None
    if kind == _FORM:
        return b"form"
    # FastAPI parses a body without a content type as JSON too.
    if not kind or kind == b"application/json" or kind.endswith(b"+json"):
        return b"json"
    return None


def _refusal(path: str, where: str) -> JSONResponse:
    message = (
        f"the {where} holds a NUL, another control character or an unpaired surrogate, "
        "which no text here may hold"
    )
    if path.startswith(_OCI_PREFIXES) or path == "/v2":
        code = ErrorCode.NAME_INVALID if where == "path" else ErrorCode.UNSUPPORTED
        return JSONResponse(RegistryError(code, message).to_json(), status_code=400)
    if path.startswith(_SCANNER_ADAPTER):
        return JSONResponse({"error": {"message": message}}, 400, media_type=ERROR_MIME)
    return error_response(400, message)  # Harbor's BAD_REQUEST, also for /c/


class TextInputCheck:
    """ASGI middleware: see the module's description."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = self._head_problem(scope)
        if where is not None:
            await _refusal(scope["path"], where)(scope, receive, send)
            return
        kind = _text_body(scope)
        if kind is None:
            await self.app(scope, receive, send)
            return
        received, complete = await self._read_body(receive)
        body = b"".join(message.get("body", b"") for message in received)
        if complete and (UNSAFE_URLENCODED.search(body) if kind == b"form" else unsafe_json(body)):
            await _refusal(scope["path"], "request body")(scope, receive, send)
            return

        async def replay() -> Message:
            return received.pop(0) if received else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def _head_problem(scope: Scope) -> str | None:
        """Where the path, query string or credentials break the rule, or None."""
        if unsafe_text(scope["path"]):
            return "path"
        query: bytes = scope["query_string"]
        if query and UNSAFE_URLENCODED.search(query):
            return "query string"
        for name, value in scope["headers"]:
            if name == b"authorization" and _unsafe_credentials(value):
                return "credentials"
        return None

    @staticmethod
    async def _read_body(receive: Receive) -> tuple[list[Message], bool]:
        """The messages of the body, up to :data:`MAX_BODY_BYTES`, and whether that was all of
        it. A longer body is passed on unchecked: the handler below refuses it as too large."""
        received: list[Message] = []
        size = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                return received, False  # the client went away; the handler sees that too
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                return received, True
            if size > MAX_BODY_BYTES:
                return received, False
