"""Starlette variant of the micro-app (same routes as app_raw.py, plus FileResponse).

GET  /small, HEAD /small     Response with 1 KiB JSON + 3 headers
HEAD /blobhead               Response, headers only (Content-Length 256 MiB)
GET  /blob/stream?chunk=N    StreamingResponse over threaded preads (Range honoured)
GET  /blob/file              FileResponse (pathsend if offered, else 64 KiB reads;
                             Range -> Starlette's own 206 path, 64 KiB reads)
GET  /blob/file4m            FileResponse subclass with chunk_size = 4 MiB
PUT  /upload/<mode>?buf=N    request.stream() -> common.receive_upload
"""

from __future__ import annotations

import os

from common import (
    BLOB,
    HEAD_HEADERS,
    SMALL_BODY_B,
    SMALL_DIGEST,
    MiB,
    parse_range,
    pread_chunks,
    receive_upload,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

SMALL_HDRS = {
    "docker-content-digest": SMALL_DIGEST,
    "docker-distribution-api-version": "registry/2.0",
}


class BigFileResponse(FileResponse):
    chunk_size = 4 * MiB


async def small(request: Request) -> Response:
    return Response(
        SMALL_BODY_B, media_type="application/vnd.oci.image.manifest.v1+json", headers=SMALL_HDRS
    )


class _HeadOnly(Response):
    """Headers-only response whose Content-Length is not len(body)."""

    def __init__(self) -> None:
        super().__init__(b"", status_code=200)
        self.raw_headers = list(HEAD_HEADERS)


async def blobhead(request: Request) -> Response:
    return _HeadOnly()


async def blob_stream(request: Request) -> Response:
    chunk = int(request.query_params.get("chunk", MiB))
    size = os.stat(BLOB).st_size
    rng = parse_range(request.headers.get("range"), size)
    start, end = rng if rng else (0, size)
    headers = {"content-length": str(end - start)}
    if rng:
        headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
    return StreamingResponse(
        pread_chunks(BLOB, start, end, chunk),
        status_code=206 if rng else 200,
        media_type="application/octet-stream",
        headers=headers,
    )


async def blob_file(request: Request) -> Response:
    return FileResponse(BLOB, media_type="application/octet-stream")


async def blob_file4m(request: Request) -> Response:
    return BigFileResponse(BLOB, media_type="application/octet-stream")


async def upload(request: Request) -> Response:
    mode = request.path_params["mode"]
    buf = int(request.query_params.get("buf", 8 * MiB))
    res = await receive_upload(request.stream(), mode, "st-" + mode, buf_size=buf)
    return JSONResponse(res, status_code=201)


app = Starlette(
    routes=[
        Route("/small", small, methods=["GET", "HEAD"]),
        Route("/blobhead", blobhead, methods=["HEAD", "GET"]),
        Route("/blob/stream", blob_stream),
        Route("/blob/file", blob_file),
        Route("/blob/file4m", blob_file4m),
        Route("/upload/{mode}", upload, methods=["PUT", "POST"]),
    ]
)
