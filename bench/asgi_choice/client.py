"""Minimal raw-socket HTTP/1.1 throughput client (stdlib only), one connection per request.

  python client.py get  URL [--range a-b] [-n 5] [--warmup 1] [--label L]
  python client.py put  URL [-n 5] [--warmup 1] [--size 256] [--label L]

GET reads the body with recv_into() into a preallocated 4 MiB buffer (no allocation
per read).  PUT sends a preallocated random 256 MiB buffer with sendall() and
checks the digest the server returns.  Prints one JSON line: every run's MB/s and
the median (MB = 10^6 bytes, as curl/dd report).  Each run is bounded by a
socket timeout (60 s) and the run count.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import statistics
import sys
import time
from urllib.parse import urlsplit

MiB = 1 << 20
TIMEOUT = 60.0


def _connect(url: str) -> tuple[socket.socket, str, str]:
    u = urlsplit(url)
    assert u.hostname in ("127.0.0.1", "localhost"), "loopback only"
    s = socket.create_connection((u.hostname, u.port or 80), timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    path = u.path + (("?" + u.query) if u.query else "")
    return s, f"{u.hostname}:{u.port}", path


def _read_head(s: socket.socket, buf: bytearray, mv: memoryview) -> tuple[int, dict, int, int]:
    """Read until end of headers; return (status, headers, bytes_after_head, filled)."""
    filled = 0
    while True:
        n = s.recv_into(mv[filled:], len(buf) - filled)
        if n == 0:
            raise ConnectionError("eof in headers")
        filled += n
        end = buf.find(b"\r\n\r\n", 0, filled)
        if end >= 0:
            break
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    hdrs = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, filled - (end + 4), filled


def get_once(url: str, rng: str | None, buf: bytearray, mv: memoryview) -> tuple[float, int, int]:
    s, host, path = _connect(url)
    with s:
        req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
        if rng:
            req += f"Range: bytes={rng}\r\n"
        t0 = time.perf_counter()
        s.sendall((req + "\r\n").encode())
        status, hdrs, got, _ = _read_head(s, buf, mv)
        if "content-length" not in hdrs:
            raise RuntimeError(f"no content-length (status {status}): {hdrs}")
        want = int(hdrs["content-length"])
        recv_into = s.recv_into
        size = len(buf)
        while got < want:
            n = recv_into(mv, size)
            if n == 0:
                raise ConnectionError(f"eof after {got}/{want}")
            got += n
        dt = time.perf_counter() - t0
    if got != want:
        raise RuntimeError(f"got {got} want {want}")
    return dt, want, status


def put_once(url: str, payload: memoryview, digest: str) -> tuple[float, dict]:
    s, host, path = _connect(url)
    buf = bytearray(65536)
    mv = memoryview(buf)
    with s:
        head = (
            f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        t0 = time.perf_counter()
        s.sendall(head.encode())
        s.sendall(payload)
        status, hdrs, got, filled = _read_head(s, buf, mv)
        want = int(hdrs.get("content-length", "0"))
        while got < want:
            n = s.recv_into(mv[filled:], len(buf) - filled)
            if n == 0:
                break
            got += n
            filled += n
        dt = time.perf_counter() - t0
        body = bytes(buf[filled - got : filled])
    if status != 201:
        raise RuntimeError(f"status {status}: {body[:300]!r}")
    res = json.loads(body)
    if res["digest"] != digest:
        raise RuntimeError(f"digest mismatch {res['digest']} != {digest}")
    return dt, res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("op", choices=["get", "put"])
    ap.add_argument("url")
    ap.add_argument("--range")
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--size", type=int, default=256, help="PUT size in MiB")
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    assert 1 <= a.n <= 50 and 0 <= a.warmup <= 5
    rates, extra = [], []
    deadline = time.monotonic() + 300  # whole invocation bounded too
    if a.op == "get":
        buf = bytearray(4 * MiB)
        mv = memoryview(buf)
        for i in range(a.warmup + a.n):
            dt, nbytes, status = get_once(a.url, a.range, buf, mv)
            if i >= a.warmup:
                rates.append(nbytes / dt / 1e6)
                extra.append(status)
            if time.monotonic() > deadline:
                break
    else:
        payload = os.urandom(a.size * MiB)
        digest = "sha256:" + hashlib.sha256(payload).hexdigest()
        pv = memoryview(payload)
        for i in range(a.warmup + a.n):
            dt, res = put_once(a.url, pv, digest)
            if i >= a.warmup:
                rates.append(len(payload) / dt / 1e6)
                extra.append({k: res[k] for k in ("recv_s", "fsync_s", "messages", "avg_msg")})
            if time.monotonic() > deadline:
                break
    out = {
        "label": a.label,
        "op": a.op,
        "url": a.url,
        "range": a.range,
        "median_MBps": round(statistics.median(rates), 1),
        "runs_MBps": [round(r, 1) for r in rates],
        "extra": extra,
    }
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
