"""Basic auth against Bearer tokens under load: 64 connections pulling a manifest and 8 pushing
small images, against one ``portside serve`` on 127.0.0.1 (SQLite and a data folder).

Usage: ``.venv/bin/python -m bench.basic_auth_load [--seconds 30] [--getters 64]
[--pushers 8] [--max-requests 20000]``

The same load runs twice on the same server, each phase bounded by ``--seconds`` and by
``--max-requests`` per client:

- **bearer**: each client fetches a token from ``/service/token`` once, then sends it;
- **basic**: every request carries the admin's basic credentials, so the server checks the
  password (argon2) whenever its credential cache (``registry.cache_ttl_seconds``, 10 s) has
  no fresh entry. Each phase outlasts the cache several times, and before the basic phase the
  server is left idle for longer than the cache lives, so the phase starts on an expired entry.

A push is one image: config and layer (4 KiB) blobs, each a POST and a monolithic PUT, and the
manifest PUT; its latency is the whole sequence. Prints p50, p99 and max for GETs and pushes in
each phase, and basic p99 / bearer p99 (issue 13 asks for at most 2). ``--json-out`` writes the
figures.

A benchmark, not a test: figures vary with the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.support.oci import OCI_MANIFEST, image_manifest, random_blob
from tests.support.server import PortsideServer

REPOSITORY = "library/bench-auth"
TAG = "pulled"


@dataclass
class Phase:
    name: str
    gets: list[float] = field(default_factory=list)
    pushes: list[float] = field(default_factory=list)
    errors: int = 0


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50_ms": statistics.median(values) * 1000 if values else float("nan"),
        "p99_ms": _percentile(values, 0.99) * 1000,
        "max_ms": max(values) * 1000 if values else float("nan"),
    }


async def _push(
    client: httpx.AsyncClient, repository: str, headers: dict[str, str], tag: str | None = None
) -> None:
    """Push one image: each blob with a POST and a monolithic PUT, then the manifest."""
    manifest = image_manifest(layers=[random_blob(4096)])
    for blob in manifest.blobs:
        started = await client.post(f"/v2/{repository}/blobs/uploads/", headers=headers)
        started.raise_for_status()
        location = started.headers["Location"]
        separator = "&" if "?" in location else "?"
        done = await client.put(
            f"{location}{separator}digest={blob.digest}",
            content=blob.data,
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        done.raise_for_status()
    put = await client.put(
        f"/v2/{repository}/manifests/{tag or os.urandom(6).hex()}",
        content=manifest.raw,
        headers={**headers, "Content-Type": OCI_MANIFEST},
    )
    put.raise_for_status()


async def _bearer(client: httpx.AsyncClient, auth: tuple[str, str], scope: str) -> dict[str, str]:
    response = await client.get(
        "/service/token", params={"service": "portside", "scope": scope}, auth=auth
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _basic(auth: tuple[str, str]) -> dict[str, str]:
    credentials = base64.b64encode(":".join(auth).encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


async def _run_phase(
    url: str, auth: tuple[str, str], phase: Phase, args: argparse.Namespace
) -> None:
    limits = httpx.Limits(max_connections=args.getters + args.pushers + 4)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        deadline = time.monotonic() + args.seconds

        async def getter() -> None:
            scope = f"repository:{REPOSITORY}:pull"
            headers = await _bearer(client, auth, scope) if phase.name == "bearer" else _basic(auth)
            headers["Accept"] = OCI_MANIFEST
            for _ in range(args.max_requests):
                if time.monotonic() >= deadline:
                    return
                started = time.monotonic()
                response = await client.get(f"/v2/{REPOSITORY}/manifests/{TAG}", headers=headers)
                if response.status_code == 200:
                    phase.gets.append(time.monotonic() - started)
                else:
                    phase.errors += 1

        async def pusher(number: int) -> None:
            repository = f"library/bench-push-{number}"
            scope = f"repository:{repository}:pull,push"
            headers = await _bearer(client, auth, scope) if phase.name == "bearer" else _basic(auth)
            for _ in range(args.max_requests):
                if time.monotonic() >= deadline:
                    return
                started = time.monotonic()
                try:
                    await _push(client, repository, headers)
                except httpx.HTTPError:
                    phase.errors += 1
                    continue
                phase.pushes.append(time.monotonic() - started)

        await asyncio.gather(
            *(getter() for _ in range(args.getters)),
            *(pusher(n) for n in range(args.pushers)),
        )


def _prepare(server: PortsideServer) -> None:
    """The image every getter pulls."""

    async def push() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            await _push(client, REPOSITORY, _basic((server.username, server.password)), TAG)

    asyncio.run(push())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="length of each phase")
    parser.add_argument("--getters", type=int, default=64)
    parser.add_argument("--pushers", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=20_000, help="per client and phase")
    parser.add_argument("--idle", type=float, default=11, help="idle seconds before basic")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="portside-bench.") as data:
        server = PortsideServer(Path(data), {"PORTSIDE_LOG__ACCESS_LOG": "false"})
        server.start()
        try:
            _prepare(server)
            auth = (server.username, server.password)
            phases = [Phase("bearer"), Phase("basic")]
            for phase in phases:
                time.sleep(args.idle)  # the credential cache entry has expired
                asyncio.run(_run_phase(server.url, auth, phase, args))
        finally:
            server.stop()

    results: dict[str, dict[str, Any]] = {
        p.name: {"get": _summary(p.gets), "push": _summary(p.pushes), "errors": p.errors}
        for p in phases
    }
    print(f"{args.getters} GET connections + {args.pushers} pushers, {args.seconds:g} s each")
    print(
        "| auth | GET p50 ms | GET p99 ms | GET max ms | pushes | push p50 ms | push p99 ms "
        "| push max ms | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, figures in results.items():
        get, push = figures["get"], figures["push"]
        print(
            f"| {name} | {get['p50_ms']:.0f} | {get['p99_ms']:.0f} | {get['max_ms']:.0f} "
            f"| {push['count']} | {push['p50_ms']:.0f} | {push['p99_ms']:.0f} "
            f"| {push['max_ms']:.0f} | {figures['errors']} |"
        )
    for kind in ("get", "push"):
        ratio = results["basic"][kind]["p99_ms"] / results["bearer"][kind]["p99_ms"]
        print(f"{kind} p99, basic / bearer: {ratio:.2f}")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
