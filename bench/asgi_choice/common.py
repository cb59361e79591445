"""Shared pieces of the ASGI benchmark micro-apps (no third-party imports).

Everything here is deliberately small and self-contained so that app_raw.py and
app_starlette.py measure the *server* and the *I/O pattern*, not Portside code.

Environment:
  BENCH_DATA   directory holding blob.bin (256 MiB) and receiving uploads
               (default /work/asgi_bench_data)
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import hashlib
import itertools
import json
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

DATA_DIR = os.environ.get("BENCH_DATA", "/work/asgi_bench_data")
BLOB = os.path.join(DATA_DIR, "blob.bin")
UPLOAD_DIR = os.path.join(DATA_DIR, "uploads")
MiB = 1 << 20

# A private pool so the benchmark does not depend on the server's default executor size.
POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="bench-io")

# ---------------------------------------------------------------- small responses
SMALL_BODY = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + "a" * 64,
            "size": 1469,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + "b" * 64,
                "size": 3_370_628,
            }
        ],
        "annotations": {"pad": ""},
    },
    separators=(",", ":"),
)
# pad to exactly 1024 bytes
SMALL_BODY = SMALL_BODY.replace('"pad":""', '"pad":"' + "x" * (1024 - len(SMALL_BODY)) + '"')
SMALL_BODY_B = SMALL_BODY.encode()
assert len(SMALL_BODY_B) == 1024, len(SMALL_BODY_B)
SMALL_DIGEST = "sha256:" + hashlib.sha256(SMALL_BODY_B).hexdigest()
# 3 headers + content-length (the server adds date/server)
SMALL_HEADERS = [
    (b"content-type", b"application/vnd.oci.image.manifest.v1+json"),
    (b"docker-content-digest", SMALL_DIGEST.encode()),
    (b"docker-distribution-api-version", b"registry/2.0"),
    (b"content-length", b"1024"),
]
# blob HEAD: headers only, Content-Length of a (pretend) 256 MiB blob, no body
HEAD_HEADERS = [
    (b"content-type", b"application/octet-stream"),
    (b"docker-content-digest", b"sha256:" + b"c" * 64),
    (b"docker-distribution-api-version", b"registry/2.0"),
    (b"content-length", str(256 * MiB).encode()),
]


# ---------------------------------------------------------------- downloads
def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """'bytes=a-b' -> (start, end_exclusive); only the single-range form."""
    if not value or not value.startswith("bytes="):
        return None
    a, _, b = value[6:].partition("-")
    if "," in b:
        return None
    if a == "":
        n = int(b)
        return size - n, size
    start = int(a)
    end = int(b) + 1 if b else size
    return start, min(end, size)


async def pread_chunks(path: str, start: int, end: int, chunk: int) -> AsyncIterator[bytes]:
    """Read [start, end) in `chunk`-sized pieces in a worker thread, one read ahead
    (the next pread runs while the current chunk is being sent)."""
    loop = asyncio.get_running_loop()
    fd = os.open(path, os.O_RDONLY)
    try:
        off = start
        nxt = (
            loop.run_in_executor(POOL, os.pread, fd, min(chunk, end - off), off)
            if off < end
            else None
        )
        while nxt is not None:
            data = await nxt
            off += len(data)
            if not data:
                break
            nxt = (
                loop.run_in_executor(POOL, os.pread, fd, min(chunk, end - off), off)
                if off < end
                else None
            )
            yield data
    finally:
        os.close(fd)


# ---------------------------------------------------------------- uploads
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_sfr = _libc.sync_file_range
_sfr.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
_sfr.restype = ctypes.c_int
SYNC_FILE_RANGE_WRITE = 2


def sync_file_range_write(fd: int, off: int, n: int) -> None:
    """Start (do not wait for) writeback of [off, off+n). ctypes drops the GIL."""
    if _sfr(fd, off, n, SYNC_FILE_RANGE_WRITE) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _write_all(fd: int, data) -> None:
    mv = memoryview(data)
    while mv:
        n = os.write(fd, mv)
        mv = mv[n:]


class _Sink:
    """Hash + write + optional early writeback; used from one thread at a time."""

    def __init__(self, path: str, writeback_every: int) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.h = hashlib.sha256()
        self.off = 0
        self.wb_every = writeback_every
        self.wb_from = 0

    def put(self, data) -> None:
        self.h.update(data)  # releases the GIL for buffers > 2 KiB
        _write_all(self.fd, data)  # os.write releases the GIL too
        self.off += len(data)
        if self.wb_every and self.off - self.wb_from >= self.wb_every:
            sync_file_range_write(self.fd, self.wb_from, self.off - self.wb_from)
            self.wb_from = self.off

    def finish(self) -> str:
        os.fdatasync(self.fd)
        os.close(self.fd)
        return "sha256:" + self.h.hexdigest()


_seq = itertools.count()


async def receive_upload(
    chunks: AsyncIterator[bytes],
    mode: str,
    name: str,
    buf_size: int = 8 * MiB,
    writeback_every: int = 32 * MiB,
) -> dict:
    """Consume an upload body and make it durable.  Modes:

    naive        hash + write every received message inline on the event loop
    naive_thread one executor hop per received message (aiofiles-style)
    batched      copy messages into 2 preallocated `buf_size` buffers; a worker
                 thread hashes+writes one while the loop fills the other
    batched_wb   batched + sync_file_range(WRITE) every `writeback_every` bytes
    naive_wb     naive + sync_file_range(WRITE) every `writeback_every` bytes

    The final fdatasync runs in a thread; the response is sent only after it.
    """
    loop = asyncio.get_running_loop()
    os.makedirs(UPLOAD_DIR, exist_ok=True)
    path = os.path.join(UPLOAD_DIR, f"{name}.{os.getpid()}.{next(_seq)}")
    wb = writeback_every if mode.endswith("_wb") else 0
    sink = _Sink(path, wb)
    t0 = time.perf_counter()
    nmsg = 0
    total = 0
    if mode in ("naive", "naive_wb"):
        async for c in chunks:
            nmsg += 1
            total += len(c)
            sink.put(c)
    elif mode == "naive_thread":
        async for c in chunks:
            nmsg += 1
            total += len(c)
            await loop.run_in_executor(POOL, sink.put, c)
    elif mode in ("batched", "batched_wb"):
        bufs = [bytearray(buf_size), bytearray(buf_size)]
        views = [memoryview(b) for b in bufs]
        cur = 0
        pos = 0
        pending: asyncio.Future | None = None
        async for c in chunks:
            nmsg += 1
            n = len(c)
            total += n
            cv = memoryview(c)
            while n:
                take = min(n, buf_size - pos)
                views[cur][pos : pos + take] = cv[:take]
                pos += take
                cv = cv[take:]
                n -= take
                if pos == buf_size:
                    if pending is not None:
                        await pending  # frees the other buffer
                    pending = loop.run_in_executor(POOL, sink.put, views[cur])
                    cur ^= 1
                    pos = 0
        if pending is not None:
            await pending
        if pos:
            await loop.run_in_executor(POOL, sink.put, views[cur][:pos])
    else:
        raise ValueError(mode)
    t1 = time.perf_counter()
    digest = await loop.run_in_executor(POOL, sink.finish)
    t2 = time.perf_counter()
    POOL.submit(os.unlink, path)  # keep the disk clean, off the timed path
    return {
        "digest": digest,
        "size": total,
        "messages": nmsg,
        "avg_msg": total // max(nmsg, 1),
        "recv_s": round(t1 - t0, 4),
        "fsync_s": round(t2 - t1, 4),
    }
