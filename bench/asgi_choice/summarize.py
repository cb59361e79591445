"""results.jsonl (one or more files) -> markdown tables on stdout.

Large transfers: the per-round value is the median of N=5 runs; with several rounds
(or several result files) the table shows the median of the round medians and, in
brackets, the min-max of the round medians.  MB = 10^6 bytes.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict

SERVERS = ["uvicorn", "granian", "hypercorn"]


def load(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def fmt(vals, digits=0):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "—"
    m = statistics.median(vals)
    s = f"{m:,.{digits}f}"
    if len(vals) > 1:
        s += f" ({min(vals):,.{digits}f}-{max(vals):,.{digits}f})"
    return s


def table(title, head, body):
    out = [
        f"### {title}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * len(head)) + "|",
    ]
    out += ["| " + " | ".join(map(str, r)) + " |" for r in body]
    return "\n".join(out) + "\n"


def main() -> None:
    rows = load(sys.argv[1:])
    present = [s for s in SERVERS if any(r.get("server") == s for r in rows)]
    out = []

    lim = [r["data"] for r in rows if r.get("section") == "limits" and not r.get("throttled")]
    thr = [r["data"] for r in rows if r.get("section") == "limits" and r.get("throttled")]
    if lim or thr:
        body = []
        for d in lim:
            if d["kind"] == "sha256":
                body.append(
                    [f"hashlib.sha256, {d['block'] // 1024} KiB updates", d["median_MBps"], ""]
                )
            elif d["kind"] == "loopback":
                body.append(["TCP loopback, python sendall -> recv_into", d["median_MBps"], ""])
            elif d["kind"] == "disk":
                body.append(
                    [
                        f"python 4 MiB writes, {d['mode']}",
                        d["median_MBps"],
                        f"first run {d['warmup_MBps']}; fdatasync {d['fdatasync_s']} s",
                    ]
                )
            elif d["kind"] == "dd":
                body.append(
                    [
                        f"dd bs=4M count=64 conv=fdatasync if={d['src']}",
                        d["median_MBps"],
                        f"first run {d['warmup_MBps']}",
                    ]
                )
        for d in thr:
            body.append(
                [
                    f"python {d['mode']} **under 300 MB/s blkio throttle**",
                    d["median_MBps"],
                    f"fdatasync {d['fdatasync_s']} s",
                ]
            )
        out.append(
            table(
                "Raw limits (256 MiB, MB/s, median of 5 after 1 warm-up)",
                ["what", "MB/s", "notes"],
                body,
            )
        )

    def grid(section, key):
        g = defaultdict(list)
        for r in rows:
            if r.get("section") != section:
                continue
            k = (r["app"], r["variant"], r["server"])
            if "unsupported" in r:
                g[k].append(None)
            elif "py" in r and "median_MBps" in r["py"]:
                g[k].append(key(r))
        return g

    g_py = grid("get", lambda r: r["py"]["median_MBps"])
    g_curl = grid("get", lambda r: r.get("curl_median_MBps"))
    g_cpu = grid("get", lambda r: r.get("server_cpu_ms_per_req"))
    if g_py:
        keys = sorted({(a, v) for a, v, _ in g_py}, key=lambda k: (k[0], k[1]))
        body = []
        for a, v in keys:
            row = [a.replace("app_", ""), v]
            for s in present:
                if (a, v, s) not in g_py:
                    row.append("")
                elif all(x is None for x in g_py[(a, v, s)]):
                    row.append("n/a (501)")
                else:
                    row.append(
                        f"{fmt(g_py[(a, v, s)])} / {fmt(g_curl[(a, v, s)])}"
                        f" · {fmt(g_cpu[(a, v, s)])} ms"
                    )
            body.append(row)
        out.append(
            table(
                "GET 256 MiB (range_*: middle 128 MiB) — MB/s python client / MB/s curl"
                " · server CPU ms per request",
                ["app", "variant", *present],
                body,
            )
        )

    for section, title in (
        (
            "put",
            "PUT 256 MiB, sha256 + write + fdatasync before 201 — MB/s · "
            "final fdatasync s · server CPU ms per request",
        ),
        ("slowdisk", "PUT 256 MiB with the server in a 300 MB/s blkio write throttle — MB/s"),
    ):
        g = grid(section, lambda r: r["py"]["median_MBps"])
        gf = grid(section, lambda r: statistics.median(e["fsync_s"] for e in r["py"]["extra"]))
        gm = grid(section, lambda r: statistics.median(e["avg_msg"] for e in r["py"]["extra"]))
        gc = grid(section, lambda r: r.get("server_cpu_ms_per_req"))
        if not g:
            continue
        order = ["naive", "naive_thread", "naive_wb", "batched4m", "batched8m", "batched8m_wb"]
        keys = sorted(
            {(a, v) for a, v, _ in g},
            key=lambda k: (k[0], order.index(k[1]) if k[1] in order else 99),
        )
        body = []
        for a, v in keys:
            row = [a.replace("app_", ""), v]
            for s in present:
                if (a, v, s) in g:
                    row.append(
                        f"{fmt(g[(a, v, s)])} · fsync {fmt(gf[(a, v, s)], 2)} s"
                        f" · {fmt(gc[(a, v, s)])} ms"
                    )
                else:
                    row.append("")
            body.append(row)
        msg = "; ".join(
            f"{s}: {fmt([x for (a, v, ss), xs in gm.items() if ss == s for x in xs])} B"
            for s in present
            if any(ss == s for (_, _, ss) in gm)
        )
        out.append(
            table(title, ["app", "mode", *present], body)
            + f"\nMedian size of one http.request body message: {msg}\n"
        )

    sm = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("section") == "small":
            k = (r["app"], r["workers"], r["server"])
            sm[k]["wrk_get"].append(r["wrk_get_rps"])
            sm[k]["lg_head"].append(r["lg_head"].get("rps"))
            sm[k]["lg_get"].append(r["lg_get"].get("rps"))
            if r.get("ab10_head_rps"):
                sm[k]["ab_head"].append(r["ab10_head_rps"])
            if r.get("wrk_requests"):
                sm[k]["cpu_us"].append(r["wrk_server_cpu_ticks"] * 10_000 / r["wrk_requests"])
    if sm:
        body = []
        for a in ("app_raw", "app_starlette"):
            for w in (1, 2):
                for f, name in (
                    ("wrk_get", "GET 1 KiB JSON — wrk"),
                    ("lg_head", "HEAD blob — loadgen.py"),
                    ("lg_get", "GET 1 KiB JSON — loadgen.py"),
                    ("ab_head", "HEAD blob — ab -k (HTTP/1.0)"),
                    ("cpu_us", "server CPU µs per wrk GET"),
                ):
                    row = [a.replace("app_", ""), w, name]
                    for s in present:
                        row.append(fmt(sm[(a, w, s)][f]) if (a, w, s) in sm else "")
                    body.append(row)
        out.append(
            table(
                "Small responses, 32 connections, 10 s — req/s",
                ["app", "workers", "request — client", *present],
                body,
            )
        )

    mx = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("section") == "mixed":
            k = (r["server"], r["variant"])
            mx[k]["rps"].append(r["wrk_get_rps"])
            mx[k]["pull"].append(r["pull_MBps"])
            p99 = r.get("wrk_p99", "")
            ms = (
                float(p99[:-2])
                if p99.endswith("ms")
                else float(p99[:-2]) / 1000
                if p99.endswith("us")
                else float(p99[:-1]) * 1000
                if p99.endswith("s")
                else None
            )
            mx[k]["p99"].append(ms)
    if mx:
        body = []
        for (srv, v), d in sorted(mx.items()):
            label = {"file": "FileResponse -> pathsend", "file4m": "FileResponse, 4 MiB chunks"}[v]
            body.append([srv, label, fmt(d["pull"]), fmt(d["rps"]), fmt(d["p99"], 1)])
        out.append(
            table(
                "Mixed: 2 concurrent 256 MiB pulls (curl loops) + wrk GET /small, "
                "Starlette, 1 worker",
                [
                    "server",
                    "blob path",
                    "pull MB/s (sum of 2)",
                    "small GET req/s",
                    "small GET p99 ms",
                ],
                body,
            )
        )

    rs = [r for r in rows if r.get("section") == "rss"]
    if rs:
        body = []
        for r in rs:
            per = ", ".join(f"{p['cmd']} {p['rss_kb'] / 1024:.0f}" for p in r["procs"])
            body.append(
                [
                    r["server"],
                    r["workers"],
                    f"{r['total_rss_kb'] / 1024:.0f}",
                    f"{r['total_pss_kb'] / 1024:.0f}",
                    per,
                ]
            )
        out.append(
            table(
                "Idle memory, Starlette app loaded (after 1 request) — MiB",
                ["server", "workers", "RSS sum", "PSS sum", "per process RSS"],
                body,
            )
        )
    print("\n".join(out))


if __name__ == "__main__":
    main()
