"""Small pieces shared by the /v2/ handlers: digests from paths, pagination, body limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

from starlette.requests import ClientDisconnect, Request

from portside.oci.errors import ErrorCode, RegistryError

__all__ = [
    "API_VERSION_HEADER",
    "Page",
    "body_cut_off",
    "content_length",
    "read_limited",
    "request_body",
]

API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


def content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit() or len(value) > 19:
        raise RegistryError(ErrorCode.SIZE_INVALID, "invalid Content-Length")
    return int(value)


async def request_body(request: Request) -> AsyncIterator[bytes]:
    """The body as it arrives. A client that goes away in the middle leaves the count of bytes
    that did arrive in ``request.state``, for :func:`body_cut_off` to report."""
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            yield chunk
    except ClientDisconnect:
        request.state.body_cut_off_after = received
        raise


def body_cut_off(request: Request) -> int | None:
    """How many bytes of the body arrived before the client went away, or None if it did not."""
    received: int | None = getattr(request.state, "body_cut_off_after", None)
    return received


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) anything over ``limit`` bytes before reading it all."""
    declared = content_length(request)
    too_big = RegistryError(
        ErrorCode.SIZE_INVALID, f"body is larger than the limit of {limit} bytes", status=413
    )
    if declared is not None and declared > limit:
        raise too_big
    body = bytearray()
    async for chunk in request_body(request):
        body += chunk
        if len(body) > limit:
            raise too_big
    return bytes(body)


class Page:
    """``n`` and ``last`` query parameters, and the ``Link`` header for the next page."""

    def __init__(self, request: Request, maximum: int, default: int | None) -> None:
        raw_n = request.query_params.get("n")
        self.last = request.query_params.get("last") or None
        if self.last is not None and len(self.last) > 512:
            raise RegistryError(ErrorCode.PAGINATION_NUMBER_INVALID, "last is too long")
        if raw_n is None or raw_n == "":
            self.n = default
        elif not raw_n.isdigit() or len(raw_n) > 9:
            raise RegistryError(ErrorCode.PAGINATION_NUMBER_INVALID, detail={"n": raw_n[:20]})
        else:
            self.n = min(int(raw_n), maximum)
        self._path = request.url.path

    @property
    def empty(self) -> bool:
        """``n=0``: the answer is an empty list without a ``Link`` header."""
        return self.n == 0

    @property
    def fetch(self) -> int | None:
        """How many rows to ask for: one more than a page tells whether another page exists."""
        return None if self.n is None else self.n + 1

    def trim(self, items: list[str]) -> tuple[list[str], dict[str, str]]:
        """The page's items and, when more exist, a ``Link`` header to the next page."""
        if self.n is None or self.n == 0 or len(items) <= self.n:
            return items, {}
        page = items[: self.n]
        query = urlencode({"n": self.n, "last": page[-1]}) if page else urlencode({"n": self.n})
        return page, {"Link": f'<{self._path}?{query}>; rel="next"'}
