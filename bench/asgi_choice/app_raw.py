"""Raw ASGI micro-app (no framework).

GET  /small                  1 KiB JSON, 3 headers (+content-length)
HEAD /small, HEAD /blobhead  headers only (blobhead: Content-Length 256 MiB)
GET  /blob/stream?chunk=N    256 MiB blob, N-byte preads in a thread (1 read-ahead)
     (a Range: bytes=a-b header is honoured -> 206, same streaming path)
GET  /blob/pathsend          http.response.pathsend if the server offers it, else 501
PUT  /upload/<mode>?buf=N    see common.receive_upload; responds 201 + JSON timings
GET  /scope                  repr of the scope (server capability check)
"""

from __future__ import annotations

import json
import os
from urllib.parse import parse_qs

from common import (
    BLOB,
    HEAD_HEADERS,
    SMALL_BODY_B,
    SMALL_HEADERS,
    MiB,
    parse_range,
    pread_chunks,
    receive_upload,
)


async def _lifespan(receive, send):
    while True:
        m = await receive()
        if m["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif m["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _simple(send, status, body=b"", headers=()):
    hdrs = [(b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


async def _body_chunks(receive):
    while True:
        m = await receive()
        if m["type"] == "http.disconnect":
            raise ConnectionError("client disconnected")
        body = m.get("body", b"")
        if body:
            yield body
        if not m.get("more_body", False):
            return


async def app(scope, receive, send):
    t = scope["type"]
    if t == "lifespan":
        return await _lifespan(receive, send)
    if t != "http":
        return
    path = scope["path"]
    method = scope["method"]
    qs = parse_qs(scope["query_string"].decode())

    if path == "/small":
        if method == "HEAD":
            await send({"type": "http.response.start", "status": 200, "headers": SMALL_HEADERS})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": SMALL_HEADERS})
            await send({"type": "http.response.body", "body": SMALL_BODY_B})
        return
    if path == "/blobhead":
        await send({"type": "http.response.start", "status": 200, "headers": HEAD_HEADERS})
        await send({"type": "http.response.body", "body": b""})
        return

    if path == "/blob/stream":
        chunk = int(qs.get("chunk", [str(MiB)])[0])
        size = os.stat(BLOB).st_size
        rng = None
        for k, v in scope["headers"]:
            if k == b"range":
                rng = parse_range(v.decode(), size)
        start, end = rng if rng else (0, size)
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(end - start).encode()),
        ]
        if rng:
            headers.append((b"content-range", f"bytes {start}-{end - 1}/{size}".encode()))
        await send(
            {"type": "http.response.start", "status": 206 if rng else 200, "headers": headers}
        )
        async for data in pread_chunks(BLOB, start, end, chunk):
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return

    if path == "/blob/pathsend":
        if "http.response.pathsend" not in scope.get("extensions", {}):
            return await _simple(send, 501, b"pathsend not supported by this server")
        size = os.stat(BLOB).st_size
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", str(size).encode()),
                ],
            }
        )
        await send({"type": "http.response.pathsend", "path": BLOB})
        return

    if path.startswith("/upload/") and method in ("PUT", "POST"):
        mode = path.rsplit("/", 1)[1]
        buf = int(qs.get("buf", [str(8 * MiB)])[0])
        res = await receive_upload(_body_chunks(receive), mode, "raw-" + mode, buf_size=buf)
        return await _simple(
            send, 201, json.dumps(res).encode(), [(b"content-type", b"application/json")]
        )

    if path == "/scope":
        s = {k: v for k, v in scope.items() if k not in ("headers", "app", "state")}
        return await _simple(send, 200, repr(s).encode())

    await _simple(send, 404, b"not found")
