"""Tiny HTTP/1.1 keep-alive load generator for HEAD (and GET, to calibrate against wrk).

Why: wrk cannot do HEAD (it waits for Content-Length bytes of body that never come),
h2load --h1 has the same problem, and ab speaks HTTP/1.0 -- uvicorn answers HTTP/1.0
keep-alive requests with `connection: close`, so ab measures a new TCP connection per
request on uvicorn only.  Docker/containerd clients use HTTP/1.1 keep-alive.

  python loadgen.py URL [-m HEAD|GET] [-c 32] [-d 10]

One uvloop event loop, C connections, one outstanding request per connection.
Bounded by duration (-d) and by a request cap.  Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

import uvloop

MAX_REQUESTS = 5_000_000


class Conn(asyncio.Protocol):
    def __init__(self, req: bytes, head: bool, st: dict, deadline: float, done: asyncio.Future):
        self.req, self.head, self.st, self.deadline, self.done = req, head, st, deadline, done
        self.buf = bytearray()
        self.need = -1

    def connection_made(self, t):
        self.t = t
        t.write(self.req)

    def data_received(self, data):
        buf = self.buf
        buf += data
        while True:
            if self.need < 0:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    return
                if buf[9:12] != b"200":
                    self.st["non200"] += 1
                blen = 0
                if not self.head:
                    h = bytes(buf[: i + 2]).lower()
                    j = h.find(b"content-length:")
                    blen = int(h[j + 15 : h.find(b"\r\n", j)]) if j >= 0 else 0
                self.need = i + 4 + blen
            if len(buf) < self.need:
                return
            del buf[: self.need]
            self.need = -1
            self.st["n"] += 1
            if time.monotonic() < self.deadline and self.st["n"] < MAX_REQUESTS:
                self.t.write(self.req)
            else:
                self.t.close()
                return

    def connection_lost(self, exc):
        self.st["closed"] += 1
        if exc is not None:
            self.st["errors"] += 1
        if not self.done.done():
            self.done.set_result(None)


async def main(url: str, method: str, conns: int, dur: float) -> dict:
    u = urlsplit(url)
    assert u.hostname in ("127.0.0.1", "localhost"), "loopback only"
    path = u.path + (("?" + u.query) if u.query else "")
    host = f"{u.hostname}:{u.port}"
    req = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: loadgen\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    st = {"n": 0, "non200": 0, "errors": 0, "closed": 0}
    t0 = time.monotonic()
    deadline = t0 + dur
    dones = []
    for _ in range(conns):
        d = loop.create_future()
        await loop.create_connection(
            lambda d=d: Conn(req, method == "HEAD", st, deadline, d), u.hostname, u.port
        )
        dones.append(d)
    await asyncio.wait_for(asyncio.gather(*dones), timeout=dur + 10)
    el = time.monotonic() - t0
    return {
        "method": method,
        "url": url,
        "conns": conns,
        "seconds": round(el, 2),
        "requests": st["n"],
        "rps": round(st["n"] / el, 1),
        "non200": st["non200"],
        "errors": st["errors"],
        "server_closed_early": st["closed"] - conns if st["closed"] > conns else 0,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("-m", default="HEAD", choices=["HEAD", "GET"])
    ap.add_argument("-c", type=int, default=32)
    ap.add_argument("-d", type=float, default=10)
    a = ap.parse_args()
    assert 1 <= a.c <= 256 and 0 < a.d <= 60
    print(json.dumps(uvloop.run(main(a.url, a.m, a.c, a.d))))
