"""Raw limits of this machine, without any HTTP server.

  python limits.py disk  DIR [-n 5]   write 256 MiB (random, 4 MiB writes) + fdatasync;
                                      plain vs. sync_file_range(WRITE) every 32 MiB
  python limits.py hash  [-n 5]       hashlib.sha256 MB/s at 64 KiB / 1 MiB / 8 MiB updates
  python limits.py loopback [-n 5]    one TCP connection over 127.0.0.1: sendall() of
                                      256 MiB vs recv_into() a 4 MiB buffer (client ceiling)
Prints JSON lines (MB = 10^6 bytes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import statistics
import threading
import time

from common import MiB, sync_file_range_write

SIZE = 256 * MiB


def emit(**kw) -> None:
    print(json.dumps(kw), flush=True)


def disk(d: str, n: int) -> None:
    data = os.urandom(4 * MiB)
    for mode in ("write+fdatasync", "write+sfr32M+fdatasync"):
        rates, fsyncs = [], []
        for _ in range(n + 1):  # first is warm-up (first-touch of page-cache pages)
            p = os.path.join(d, f"_limits_{os.getpid()}")
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            t0 = time.perf_counter()
            last = 0
            for i in range(SIZE // len(data)):
                os.write(fd, data)
                off = (i + 1) * len(data)
                if mode.startswith("write+sfr") and off - last >= 32 * MiB:
                    sync_file_range_write(fd, last, off - last)
                    last = off
            t1 = time.perf_counter()
            os.fdatasync(fd)
            t2 = time.perf_counter()
            os.close(fd)
            os.unlink(p)
            rates.append(SIZE / (t2 - t0) / 1e6)
            fsyncs.append(t2 - t1)
        emit(
            kind="disk",
            dir=d,
            mode=mode,
            warmup_MBps=round(rates[0], 1),
            median_MBps=round(statistics.median(rates[1:]), 1),
            runs_MBps=[round(r, 1) for r in rates[1:]],
            fdatasync_s=[round(f, 3) for f in fsyncs[1:]],
        )


def hashspeed(n: int) -> None:
    buf = os.urandom(8 * MiB)
    for blk in (64 * 1024, MiB, 8 * MiB):
        mv = memoryview(buf)[:blk]
        rates = []
        for _ in range(n):
            h = hashlib.sha256()
            t0 = time.perf_counter()
            done = 0
            while done < SIZE:
                h.update(mv)
                done += blk
            rates.append(done / (time.perf_counter() - t0) / 1e6)
        emit(
            kind="sha256",
            block=blk,
            median_MBps=round(statistics.median(rates), 1),
            runs_MBps=[round(r, 1) for r in rates],
        )


def loopback(n: int) -> None:
    payload = memoryview(os.urandom(SIZE))
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    rates = []
    for _ in range(n + 1):

        def serve() -> None:
            c, _ = srv.accept()
            with c:
                c.sendall(payload)

        th = threading.Thread(target=serve)
        th.start()
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        buf = bytearray(4 * MiB)
        mv = memoryview(buf)
        t0 = time.perf_counter()
        got = 0
        while got < SIZE:
            k = s.recv_into(mv, len(buf))
            if not k:
                break
            got += k
        rates.append(got / (time.perf_counter() - t0) / 1e6)
        s.close()
        th.join(30)
    srv.close()
    emit(
        kind="loopback",
        median_MBps=round(statistics.median(rates[1:]), 1),
        runs_MBps=[round(r, 1) for r in rates[1:]],
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["disk", "hash", "loopback"])
    ap.add_argument("dir", nargs="?", default="/work/asgi_bench_data")
    ap.add_argument("-n", type=int, default=5)
    a = ap.parse_args()
    assert 1 <= a.n <= 20
    {
        "disk": lambda: disk(a.dir, a.n),
        "hash": lambda: hashspeed(a.n),
        "loopback": lambda: loopback(a.n),
    }[a.what]()


if __name__ == "__main__":
    main()
