"""Blob GET/HEAD (with ``Range``) and DELETE. A blob delete is audited; downloads are not
(a pull is audited once, at its manifest GET, as Harbor does)."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from portside.api.v2.manifests import audit_artifact
from portside.oci.digest import parse_digest
from portside.oci.errors import ErrorCode, RegistryError
from portside.registry.blobs import BlobContent, Blobs
from portside.storage.base import PathNotFound

__all__ = ["delete", "get", "parse_range"]

_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single byte range asked for, as (start, end inclusive), or None for the whole blob.

    A header we do not understand (several ranges, other units) is ignored, as RFC 9110 allows.
    A well-formed range that lies outside the blob raises ``RANGE_INVALID`` (416).
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:  # suffix range: the last N bytes
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(size - suffix, 0), size - 1
    start = int(match[1])
    end = int(match[2]) if match[2] else size - 1
    if start >= size or end < start:
        raise _unsatisfiable(size)
    return start, min(end, size - 1)


def _unsatisfiable(size: int) -> RegistryError:
    return RegistryError(ErrorCode.RANGE_INVALID, headers={"Content-Range": f"bytes */{size}"})


class BlobResponse(Response):
    """Streams a blob (or its range) from storage in large reads on a worker thread.

    Not ``http.response.pathsend``: uvicorn does not offer it, and where granian does, it reads
    and writes in a thread just the same (bench/asgi_choice)."""

    def __init__(
        self,
        blobs: Blobs,
        content: BlobContent,
        byte_range: tuple[int, int] | None,
        head: bool,
    ) -> None:
        super().__init__(status_code=206 if byte_range else 200)
        self._blobs = blobs
        self._content = content
        self._range = byte_range
        self._head = head
        start, end = byte_range or (0, content.size - 1)
        self.raw_headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(end - start + 1).encode()),
            (b"docker-content-digest", str(content.digest).encode()),
            (b"etag", f'"{content.digest}"'.encode()),
            (b"accept-ranges", b"bytes"),
        ]
        if byte_range:
            self.raw_headers.append(
                (b"content-range", f"bytes {start}-{end}/{content.size}".encode())
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        if self._head or self._content.size == 0:
            await send({**start, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": b""})
            return
        offset, length = 0, None
        if self._range is not None:
            offset, length = self._range[0], self._range[1] - self._range[0] + 1
        chunks = aiter(self._blobs.stream(self._content, offset, length))
        # Read before the status line is sent: a storage backend that fails then gets its
        # answer (503), and bytes missing from storage (a blob quarantined by fsck while a
        # replica still caches its link) a 404, instead of a body cut off after a 200.
        try:
            first = await anext(chunks, b"")
        except PathNotFound:
            raise RegistryError(
                ErrorCode.BLOB_UNKNOWN,
                "blob content is missing from storage",
                detail={"digest": str(self._content.digest)},
            ) from None
        await send({**start, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": first, "more_body": True})
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


async def get(request: Request, name: str) -> Response:
    services = request.app.state.services
    digest = parse_digest(request.path_params["digest"])
    content = await services.blobs.open(name, digest)
    head = request.method == "HEAD"
    byte_range = None if head else parse_range(request.headers.get("range"), content.size)
    return BlobResponse(services.blobs, content, byte_range, head)


async def delete(request: Request, name: str) -> Response:
    digest = parse_digest(request.path_params["digest"])
    await request.app.state.services.blobs.unlink(name, digest)
    audit_artifact(request, name, "delete", "blob", f"{name}@{digest}")
    return Response(status_code=202, headers={"Docker-Content-Digest": str(digest)})
