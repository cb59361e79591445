#!/usr/bin/env python3
"""Benchmark Portside's built-in vulnerability scanner on a real ~300 MB image.

    .venv/bin/python bench/scan.py                          # debootstrap + pip, then measure
    .venv/bin/python bench/scan.py --rootfs /tmp/rootfs     # reuse a debootstrapped bookworm
    .venv/bin/python bench/scan.py --profile                # plus where a first scan's time goes

Starts ``portside serve`` on its embedded defaults (SQLite and a data folder), imports the
shared advisories (``../shared/vulndb``: PyPA and Debian 12) with ``portside vulndb import``,
builds an image from a debootstrapped Debian 12 minbase plus real Python packages installed by
pip, pushes it with skopeo and measures, from the scan request to a ``Success`` overview:

- the first scan of the image (every layer read and analysed), target under 5 s;
- the scan of images sharing those layers under one different small top layer (the layer
  analyses are cached by digest), target under 1 s.

Prints a Markdown table and the raw figures as JSON, with the load average before and after.
``--profile`` runs cProfile over an in-process ImageScanner reading the same layer files
with the same analysers and advisories, and prints the functions that took the time.

Needs root, debootstrap (unless ``--rootfs``), skopeo and pip's access to PyPI. A benchmark,
not a test: the figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import io
import json
import os
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support builds the images

from tests.support.debian import (  # noqa: E402
    Layer,
    debootstrap,
    image_descriptor,
    pack_layer,
    write_layout,
)

PASSWORD = "Bench-Admin-1"
PROJECT = "bench"
REPORT = "application/vnd.security.vulnerability.report; version=1.1"
SITE_PACKAGES = "usr/lib/python3.11/site-packages"
# Enough real wheels to bring minbase (about 200 MB) to about 300 MB, some of them releases
# with advisories so matching has work to do.
PACKAGES = ",".join(
    (
        "numpy==2.1.3",
        "pillow==10.0.0",
        "django==2.2.0",
        "requests==2.19.1",
        "urllib3==1.24.1",
        "jinja2==2.10",
        "flask==0.12",
    )
)
SCAN_DEADLINE = 600.0  # seconds: a scan that takes longer is reported as a failure
REPEATS_LIMIT = 10
PIP = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile"]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the image ----------------------------------------------------------------------------------


def build_layers(
    work: Path, rootfs: Path | None, packages: Sequence[str], tops: int
) -> dict[str, Any]:
    """The base, the pip layer and ``tops`` small distinct top layers, each packed once."""
    if rootfs is None:
        rootfs = debootstrap(work / "rootfs")
    base = pack_layer(rootfs, work / "base.tar.gz")
    site = work / "python" / SITE_PACKAGES
    subprocess.run(
        [*PIP, "--target", str(site), *packages],
        check=True,
        timeout=1200,
    )
    python = pack_layer(work / "python", work / "python.tar.gz")
    top_layers = []
    for number in range(tops):
        tree = work / f"top{number}"
        (tree / "app").mkdir(parents=True)
        (tree / "app" / "release").write_text(f"release {number} {os.urandom(8).hex()}\n")
        top_layers.append(pack_layer(tree, work / f"top{number}.tar.gz"))
    return {"base": base, "python": python, "tops": top_layers}


def write_images(layout: Path, layers: dict[str, Any]) -> list[str]:
    """Tags ``v0``, ``v1``, ... : base + pip layer + one of the top layers each."""
    tags = []
    for number, top in enumerate(layers["tops"]):
        image = image_descriptor(layout, [layers["base"], layers["python"], top])
        write_layout(layout, f"v{number}", [image])
        tags.append(f"v{number}")
    return tags


# -- the server ---------------------------------------------------------------------------------


class Server:
    def __init__(self, data: Path, port: int) -> None:
        self.port = port
        self.env = {
            **os.environ,
            "PORTSIDE_ADMIN_PASSWORD": PASSWORD,
            "PORTSIDE_DATA_DIR": str(data),
            "PORTSIDE_SERVER__HOST": "127.0.0.1",
            "PORTSIDE_SERVER__PORT": str(port),
        }
        self._log = (data / "server.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "portside.cli.main", "serve"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            except urllib.error.HTTPError:
                return  # 401: up
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"portside did not start; see {data / 'server.log'}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        self._log.close()

    def api(self, method: str, path: str, body: object = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v2.0{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={
                "Content-Type": "application/json",
                "Authorization": "Basic " + b64encode(f"admin:{PASSWORD}".encode()).decode(),
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else {}

    def import_vulndb(self, path: Path) -> float:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "portside.cli.main", "vulndb", "import", str(path)],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=600,
        )
        return time.perf_counter() - started

    def push(self, layout: Path, tag: str, auth: Path) -> float:
        started = time.perf_counter()
        subprocess.run(
            [
                *("skopeo", "copy", "--dest-tls-verify=false", "--preserve-digests"),
                *("--dest-creds", f"admin:{PASSWORD}", "--authfile", str(auth)),
                f"oci:{layout}:{tag}",
                f"docker://127.0.0.1:{self.port}/{PROJECT}/image:{tag}",
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
        return time.perf_counter() - started

    def scan(self, tag: str) -> tuple[float, dict[str, Any]]:
        """Seconds from the scan request to a Success overview, and the overview."""
        path = f"/projects/{PROJECT}/repositories/image/artifacts/{tag}"
        started = time.perf_counter()
        self.api("POST", f"{path}/scan")
        deadline = time.monotonic() + SCAN_DEADLINE
        while time.monotonic() < deadline:
            artifact = self.api("GET", f"{path}?with_scan_overview=true")
            overview = (artifact.get("scan_overview") or {}).get(REPORT) or {}
            if overview.get("scan_status") in ("Success", "Error", "Stopped"):
                elapsed = time.perf_counter() - started
                if overview["scan_status"] != "Success":
                    raise RuntimeError(f"the scan of {tag} ended {overview}")
                return elapsed, overview
            time.sleep(0.02)
        raise RuntimeError(f"the scan of {tag} took over {SCAN_DEADLINE} s")


# -- profiling ----------------------------------------------------------------------------------


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            yield chunk


def profile_scan(database_url: str, layers: Sequence[Layer], top: int = 20) -> str:
    """Where one first scan's time goes, in process: the engine Portside's jobs use, over the
    same layer files, with an empty analysis cache and the imported advisories. Gives each
    phase's wall time, and cProfile of the layer reading, which runs in a worker thread (the
    event loop's own profile would show only its waiting)."""
    from portside.db.engine import Database
    from portside.scanner import layers as layer_reader
    from portside.scanner.analyses import LayerAnalyses
    from portside.scanner.analyzers import default_analyzers
    from portside.scanner.engine import ImageScanner
    from portside.scanner.image import merge_layers
    from portside.scanner.vulndb import VulnDB

    media_type = "application/vnd.oci.image.layer.v1.tar+gzip"
    paths = {layer.digest: layer.path for layer in layers}
    profiler = cProfile.Profile()
    read_layer = layer_reader._read_layer

    def profiled_read_layer(*args: Any, **kwargs: Any) -> Any:
        # One layer is read at a time, so one profiler can collect them all.
        return profiler.runcall(read_layer, *args, **kwargs)

    async def analyze(stream: Any, media: str) -> Any:
        return await layer_reader.analyze_layer(stream(), media, default_analyzers())

    async def run() -> list[tuple[str, float]]:
        db = Database(database_url, pool_size=1)
        phases: list[tuple[str, float]] = []
        try:
            vulndb = VulnDB(db)
            analyses = LayerAnalyses(None, analyze)
            started = time.perf_counter()
            await vulndb.advisories_for("PyPI", {"django"})
            phases.append(("advisories loaded from the database", time.perf_counter() - started))
            results = []
            for number, layer in enumerate(layers):
                started = time.perf_counter()
                stream = functools.partial(_file_chunks, paths[layer.digest])
                results.append(await analyses.get(layer.digest, media_type, stream))
                label = f"layer {number} read ({layer.raw_size / 1e6:.0f} MB uncompressed)"
                phases.append((label, time.perf_counter() - started))
            started = time.perf_counter()
            contents = merge_layers(results)
            phases.append(("layers merged", time.perf_counter() - started))
            started = time.perf_counter()
            findings = await ImageScanner(analyses, vulndb).findings(contents.packages)
            label = f"{len(contents.packages)} packages matched, {len(findings)} findings"
            phases.append((label, time.perf_counter() - started))
        finally:
            await db.close()
        return phases

    layer_reader._read_layer = profiled_read_layer  # type: ignore[assignment]
    try:
        phases = asyncio.run(run())
    finally:
        layer_reader._read_layer = read_layer  # type: ignore[assignment]
    out = io.StringIO()
    out.write("| phase of an in-process first scan | seconds |\n|---|---|\n")
    for label, seconds in phases:
        out.write(f"| {label} | {seconds:.3f} |\n")
    out.write("\nlayer reading (worker thread), by own time:\n")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rootfs", type=Path, help="a debootstrapped bookworm to reuse")
    parser.add_argument("--packages", default=PACKAGES, help="comma-separated pip requirements")
    parser.add_argument("--vulndb", type=Path, default=ROOT.parent / "shared" / "vulndb")
    parser.add_argument("--repeat", type=int, default=3, help="images with a new top layer")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile an in-process scan (always when > 5 s)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    repeat = max(1, min(args.repeat, REPEATS_LIMIT))
    for tool in ("skopeo", "tar", "gzip"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed")

    work = Path(tempfile.mkdtemp(prefix="portside-scan-bench."))
    results: dict[str, Any] = {"load_before": loadavg(), "cpus": os.cpu_count()}
    server: Server | None = None
    try:
        started = time.perf_counter()
        layers = build_layers(work, args.rootfs, args.packages.split(","), repeat + 1)
        results["build_s"] = round(time.perf_counter() - started, 1)
        first_image = [layers["base"], layers["python"], layers["tops"][0]]
        results["image_mb"] = round(sum(x.raw_size for x in first_image) / 1e6, 1)
        results["image_compressed_mb"] = round(sum(x.size for x in first_image) / 1e6, 1)
        layout = work / "layout"
        tags = write_images(layout, layers)

        data = work / "data"
        data.mkdir()
        server = Server(data, free_port())
        results["import_pypa_s"] = round(server.import_vulndb(args.vulndb / "pypa"), 2)
        debian = args.vulndb / "debian-bookworm"
        results["import_debian_s"] = round(server.import_vulndb(debian), 2)
        results["import_total_s"] = round(results["import_pypa_s"] + results["import_debian_s"], 2)
        server.api("POST", "/projects", {"project_name": PROJECT, "metadata": {"public": "false"}})
        auth = work / "auth.json"
        auth.write_text("{}")
        results["push_first_s"] = round(server.push(layout, tags[0], auth), 2)
        for tag in tags[1:]:
            server.push(layout, tag, auth)

        first, overview = server.scan(tags[0])
        results["first_scan_s"] = round(first, 3)
        results["findings"] = overview.get("summary", {}).get("total")
        shared = [server.scan(tag)[0] for tag in tags[1:]]
        results["shared_base_scans_s"] = [round(x, 3) for x in shared]
        results["shared_base_scan_median_s"] = round(statistics.median(shared), 3)
        results["load_after"] = loadavg()
        results["targets_met"] = {
            "import < 30 s": results["import_total_s"] < 30,
            "first scan < 5 s": first < 5,
            "shared-base scan < 1 s": results["shared_base_scan_median_s"] < 1,
        }
        server.stop()
        server = None
        if args.profile or first >= 5:
            print(profile_scan(f"sqlite:///{data / 'portside.db'}", first_image))
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder kept: {work}")

    size = f"{results['image_mb']} MB / {results['image_compressed_mb']} MB"
    load = f"{results['load_before']} / {results['load_after']}"
    shared_label = f"scan sharing the base layers (median of {repeat})"
    rows = [
        ("image size (uncompressed / gzip)", size, ""),
        ("vulndb import, PyPA", f"{results['import_pypa_s']} s", ""),
        ("vulndb import, Debian 12", f"{results['import_debian_s']} s", ""),
        ("vulndb import, both", f"{results['import_total_s']} s", "< 30 s"),
        ("first scan (request -> Success)", f"{results['first_scan_s']} s", "< 5 s"),
        (shared_label, f"{results['shared_base_scan_median_s']} s", "< 1 s"),
        ("findings in the image", str(results["findings"]), ""),
        ("load average before / after", load, ""),
    ]
    print("| measure | Portside | target |\n|---|---|---|")
    for label, value, target in rows:
        print(f"| {label} | {value} | {target} |")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
