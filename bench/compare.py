#!/usr/bin/env python3
"""Benchmark Portside against CNCF distribution 2.8.2 in the same run, on the same machine.

    .venv/bin/python bench/compare.py                 # full sizes (about 15 minutes)
    .venv/bin/python bench/compare.py --quick         # small sizes, a minute or two
    .venv/bin/python bench/compare.py --scenarios push,pull --repeat 5

Runs the shared harness (``../shared/bench/registry_bench.py``) against Debian's
``docker-registry`` through ``run_reference.sh``, then against ``portside serve`` on its embedded
defaults (SQLite and a data folder, access log on), authenticated as admin through the token flow.
Prints one Markdown table of medians and ratios (higher is better for Portside) and writes the raw
results next to it. Also records Portside's idle RSS after start-up.

A benchmark, not a test: numbers vary with the machine; only the side-by-side ratio means much.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Bench-Admin-1"
# scenario -> (label, higher is better)
SCENARIOS = {
    "blob_push_monolithic": ("monolithic push, MB/s", True),
    "blob_push_chunked": ("chunked push, MB/s", True),
    "blob_pull": ("blob pull, MB/s", True),
    "manifest_get": ("manifest GET, req/s", True),
    "blob_head": ("blob HEAD, req/s", True),
    "blob_head_missing": ("blob HEAD of a missing blob, req/s", True),
    "small_image_push": ("small images pushed, images/s", True),
    "tags_list": ("tag list of N tags, p50 ms", False),
    "catalog": ("first _catalog page, p50 ms", False),
}


def _load(path: Path) -> dict[str, dict[str, object]]:
    results = json.loads(path.read_text())
    return {r["scenario"]: r for r in results if isinstance(r, dict) and "scenario" in r}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_reference(harness: Path, args: list[str], out: Path) -> None:
    subprocess.run(
        ["bash", str(harness / "run_reference.sh"), "--json-out", str(out), *args],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PY": sys.executable},  # the harness needs aiohttp, as we have
    )


def run_portside(harness: Path, args: list[str], out: Path, port: int) -> float:
    with tempfile.TemporaryDirectory(prefix="portside-bench.") as data:
        env = {
            **os.environ,
            "PORTSIDE_ADMIN_PASSWORD": PASSWORD,
            "PORTSIDE_DATA_DIR": data,
            "PORTSIDE_SERVER__HOST": "127.0.0.1",
            "PORTSIDE_SERVER__PORT": str(port),
        }
        log = open(Path(data) / "server.log", "wb")  # noqa: SIM115 - closed below
        server = subprocess.Popen(
            [sys.executable, "-m", "portside.cli.main", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                except urllib.error.HTTPError:
                    break  # 401: up
                except OSError:
                    time.sleep(0.1)
            time.sleep(1)
            idle_rss = _rss_mb(server.pid)
            subprocess.run(
                [
                    sys.executable,
                    str(harness / "registry_bench.py"),
                    "--url",
                    f"http://127.0.0.1:{port}",
                    "--user",
                    f"admin:{PASSWORD}",
                    "--server-pid",
                    str(server.pid),
                    "--json-out",
                    str(out),
                    *args,
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
            log.close()
    return idle_rss


def table(reference: dict[str, dict[str, object]], portside: dict[str, dict[str, object]]) -> str:
    lines = [
        "| measure | distribution 2.8.2 | Portside | Portside / distribution |",
        "|---|---|---|---|",
    ]
    for scenario, (label, higher_better) in SCENARIOS.items():
        ref, ours = reference.get(scenario), portside.get(scenario)
        if not ref or not ours or ref.get("median") is None or ours.get("median") is None:
            continue
        a, b = float(ref["median"]), float(ours["median"])  # type: ignore[arg-type]
        ratio = (b / a) if higher_better else (a / b)
        note = "x" if higher_better else "x faster"
        lines.append(f"| {label} | {a:,.4g} | {b:,.4g} | {ratio:.2f}{note} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--harness", type=Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "portside-bench")
    parser.add_argument("--port", type=int, default=17500)
    parser.add_argument("--skip-reference", action="store_true")
    args, harness_args = parser.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ref_json, ours_json = args.out / "reference.json", args.out / "portside.json"
    if not args.skip_reference:
        print("running distribution 2.8.2 ...", file=sys.stderr)
        run_reference(args.harness, harness_args, ref_json)
    print("running Portside ...", file=sys.stderr)
    idle_rss = run_portside(args.harness, harness_args, ours_json, args.port)
    print(table(_load(ref_json), _load(ours_json)))
    print(f"\nPortside idle RSS after start-up: {idle_rss:.1f} MB")
    print(f"raw results: {ref_json} {ours_json}", file=sys.stderr)


if __name__ == "__main__":
    main()
