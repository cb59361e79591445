#!/usr/bin/env python3
"""Benchmark Portside against CNCF distribution 2.8.2 in the same run, on the same machine.

    .venv/bin/python bench/compare.py                 # full sizes (6 to 8 minutes)
    .venv/bin/python bench/compare.py --quick         # small sizes, a minute or two
    .venv/bin/python bench/compare.py --scenarios push,pull --repeat 5
    .venv/bin/python bench/compare.py --skip-reference --identities admin,developer,robot \
        --scenarios manifest,head                  # what authorisation costs

Runs the shared harness (``../shared/bench/registry_bench.py``) against Debian's
``docker-registry`` through ``run_reference.sh``, then against ``portside serve`` on its embedded
defaults (SQLite and a data folder, access log on), authenticated through the token flow as the
admin, or (``--identities``) as a Developer member of a private project or a robot of it, pushing
into project ``bench``.
Prints one Markdown table of medians and ratios (higher is better for Portside) and writes the raw
results next to it. Also records Portside's idle RSS after start-up, and names the interpreter
Portside ran on (this one): a CPython built without optimizations serves markedly fewer requests
per second (docs/deployment.md, Which Python).

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
import urllib.error
import urllib.request
from base64 import b64encode
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


def _api(port: int, method: str, path: str, body: object) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v2.0{path}",
        data=json.dumps(body).encode(),
        method=method,
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + b64encode(f"admin:{PASSWORD}".encode()).decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else {}


def _credentials(port: int, identity: str) -> str:
    """Create project ``bench`` and the identity to benchmark as; returns ``user:password``."""
    _api(port, "POST", "/projects", {"project_name": "bench", "metadata": {"public": "false"}})
    if identity == "admin":
        return f"admin:{PASSWORD}"
    if identity == "developer":
        user = {
            "username": "bench-dev",
            "email": "bench-dev@example.com",
            "realname": "bench developer",
            "password": PASSWORD,
        }
        _api(port, "POST", "/users", user)
        member = {"role_id": 2, "member_user": {"username": "bench-dev"}}
        _api(port, "POST", "/projects/bench/members", member)
        return f"bench-dev:{PASSWORD}"
    access = [{"resource": "repository", "action": action} for action in ("pull", "push", "delete")]
    robot = {
        "name": "bench",
        "level": "project",
        "duration": -1,
        "permissions": [{"kind": "project", "namespace": "bench", "access": access}],
    }
    created = _api(port, "POST", "/robots", robot)
    return f"{created['name']}:{created['secret']}"


def run_portside(
    harness: Path, args: list[str], out: Path, port: int, identity: str = "admin"
) -> float:
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
            credentials = _credentials(port, identity)
            prefix = f"bench/{os.urandom(3).hex()}"
            subprocess.run(
                [
                    sys.executable,
                    str(harness / "registry_bench.py"),
                    "--url",
                    f"http://127.0.0.1:{port}",
                    "--user",
                    credentials,
                    "--prefix",
                    prefix,
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


def identity_table(results: dict[str, dict[str, dict[str, object]]]) -> str:
    """Each identity's median next to the first identity's (normally the admin)."""
    names = list(results)
    base = names[0]
    header = (
        "| measure | "
        + " | ".join(names)
        + " | "
        + " | ".join(f"{n} / {base}" for n in names[1:])
        + " |"
    )
    lines = [header, "|" + "---|" * (1 + 2 * len(names) - 1)]
    for scenario, (label, higher_better) in SCENARIOS.items():
        medians = [results[n].get(scenario, {}).get("median") for n in names]
        if any(m is None for m in medians):
            continue
        values = [float(m) for m in medians]  # type: ignore[arg-type]
        ratios = [(v / values[0]) if higher_better else (values[0] / v) for v in values[1:]]
        cells = [f"{v:,.4g}" for v in values] + [f"{r:.3f}" for r in ratios]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--harness", type=Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "portside-bench")
    parser.add_argument("--port", type=int, default=17500)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument(
        "--identities",
        default="admin",
        help="comma-separated: admin, developer, robot; Portside runs once as each",
    )
    args, harness_args = parser.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ref_json = args.out / "reference.json"
    if not args.skip_reference:
        print("running distribution 2.8.2 ...", file=sys.stderr)
        run_reference(args.harness, harness_args, ref_json)
    print(f"Portside runs on {sys.executable} (Python {sys.version.split()[0]})", file=sys.stderr)
    identities = args.identities.split(",")
    results: dict[str, dict[str, dict[str, object]]] = {}
    for identity in identities:
        print(f"running Portside as {identity} ...", file=sys.stderr)
        ours_json = args.out / f"portside-{identity}.json"
        idle_rss = run_portside(args.harness, harness_args, ours_json, args.port, identity)
        results[identity] = _load(ours_json)
        print(f"Portside idle RSS after start-up: {idle_rss:.1f} MB", file=sys.stderr)
    if ref_json.exists():
        print(table(_load(ref_json), results[identities[0]]))
    if len(identities) > 1:
        print("\n" + identity_table(results))
    print(f"raw results in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
