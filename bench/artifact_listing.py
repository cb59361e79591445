"""Artifact listing at scale: the first page of a repository's artifacts (with tags and labels)
and of ``/repositories``, on SQLite and on PostgreSQL.

Usage: ``.venv/bin/python -m bench.artifact_listing [--artifacts 10000 100000] [--repos 1000]
[--backends sqlite postgres]``

For each size and backend: a fresh database (PostgreSQL on 127.0.0.1:5432, trust auth) and a
real ``portside serve``; rows are inserted straight into the app's own tables (a push per
artifact would take hours at 100k), every artifact with a tag and a label, plus one large
repository holding a tenth of all artifacts. The manifests and configs of the repositories
measured are written to storage too, so ``extra_attrs`` is really read. Each figure is the p50
(and p95) of 50 requests; "cold" requests go to 50 different repositories, each asked once.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg2
from sqlalchemy import create_engine, insert, select
from tests.support.server import PortsideServer

from portside.db.tables import (
    artifact_labels,
    blobs,
    labels,
    manifests,
    projects,
    repositories,
    tags,
)

PROJECT = "bench"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LABELS = 5
SAMPLES = 50
MEASURED_REPOS = 50


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@contextlib.contextmanager
def _postgres() -> Iterator[str]:
    name = f"portside_bench_{secrets.token_hex(4)}"
    admin = psycopg2.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _sync_url(url: str) -> str:
    return url.replace("postgresql+asyncpg", "postgresql+psycopg2")


def _store(root: Path, digest: str, data: bytes) -> None:
    hex_ = digest.split(":", 1)[1]
    path = root / "blobs" / "sha256" / hex_[:2] / hex_ / "data"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def seed(url: str, storage: Path, artifacts: int, repos: int) -> None:
    """Insert ``artifacts`` artifacts over ``repos`` repositories plus one large one."""
    engine = create_engine(_sync_url(url))
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {}}).encode()
    config_digest = _digest(config)
    _store(storage, config_digest, config)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    big = artifacts // 10
    per_repo = max(1, (artifacts - big) // repos)
    with engine.begin() as connection:
        project_id = connection.scalar(select(projects.c.id).where(projects.c.name == PROJECT))
        connection.execute(
            insert(blobs), [{"digest": config_digest, "size": len(config), "created_at": start}]
        )
        connection.execute(
            insert(labels),
            [
                {"name": f"l{i}", "scope": "g", "created_at": start, "updated_at": start}
                for i in range(LABELS)
            ],
        )
        label_ids = list(connection.scalars(select(labels.c.id).order_by(labels.c.id)))
        names = [f"{PROJECT}/r{i:05d}" for i in range(repos)] + [f"{PROJECT}/big"]
        connection.execute(
            insert(repositories),
            [{"name": n, "project_id": project_id, "created_at": start} for n in names],
        )
        ids = dict(connection.execute(select(repositories.c.name, repositories.c.id)).all())
        counter = 0
        for name in names:
            count = big if name.endswith("/big") else per_repo
            measured = name.endswith("/big") or int(name[-5:]) < MEASURED_REPOS
            rows, bodies = [], []
            for _ in range(count):
                body = json.dumps(
                    {
                        "schemaVersion": 2,
                        "mediaType": OCI_MANIFEST,
                        "config": {
                            "mediaType": OCI_CONFIG,
                            "digest": config_digest,
                            "size": len(config),
                        },
                        "layers": [],
                        "annotations": {"n": str(counter)},
                    }
                ).encode()
                digest = _digest(body)
                if measured:
                    bodies.append((digest, body))
                rows.append(
                    {
                        "repository_id": ids[name],
                        "digest": digest,
                        "media_type": OCI_MANIFEST,
                        "artifact_type": OCI_CONFIG,
                        "config_media_type": OCI_CONFIG,
                        "size": len(body),
                        "created_at": start + dt.timedelta(seconds=counter),
                    }
                )
                counter += 1
            connection.execute(insert(manifests), rows)
            manifest_ids = list(
                connection.scalars(
                    select(manifests.c.id).where(manifests.c.repository_id == ids[name])
                )
            )
            connection.execute(
                insert(tags),
                [
                    {
                        "repository_id": ids[name],
                        "name": f"v{i}",
                        "manifest_id": m,
                        "updated_at": start,
                    }
                    for i, m in enumerate(manifest_ids)
                ],
            )
            connection.execute(
                insert(artifact_labels),
                [
                    {"manifest_id": m, "label_id": label_ids[i % LABELS], "created_at": start}
                    for i, m in enumerate(manifest_ids)
                ],
            )
            for digest, body in bodies:
                _store(storage, digest, body)
    engine.dispose()


def _timed(client: httpx.Client, paths: list[str]) -> dict[str, float]:
    took = []
    for path in paths:
        began = time.perf_counter()
        response = client.get(path)
        took.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text[:200])
        assert response.json(), path
    took.sort()
    return {"p50": statistics.median(took), "p95": took[int(len(took) * 0.95) - 1]}


def measure(server: PortsideServer) -> dict[str, dict[str, float]]:
    listing = "with_tag=true&with_label=true"
    base = f"/api/v2.0/projects/{PROJECT}/repositories"
    with server.client() as client:
        client.get(f"{base}/r00000/artifacts?{listing}")  # connections warm
        return {
            "artifacts, 50 repositories once each (cold)": _timed(
                client, [f"{base}/r{i:05d}/artifacts?{listing}" for i in range(MEASURED_REPOS)]
            ),
            "artifacts, one repository again (warm)": _timed(
                client, [f"{base}/r00001/artifacts?{listing}"] * SAMPLES
            ),
            "artifacts, the large repository": _timed(
                client, [f"{base}/big/artifacts?{listing}"] * SAMPLES
            ),
            "GET /repositories": _timed(client, ["/api/v2.0/repositories"] * SAMPLES),
            "GET /projects/bench/repositories": _timed(client, [base] * SAMPLES),
        }


def run(backend: str, artifacts: int, repos: int) -> dict[str, dict[str, float]]:
    with (
        tempfile.TemporaryDirectory(prefix="portside-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        env: dict[str, str] = {"PORTSIDE_LOG__ACCESS_LOG": "false"}
        data = Path(tmp) / "data"
        if backend == "postgres":
            env["PORTSIDE_DATABASE__URL"] = stack.enter_context(_postgres())
        server = PortsideServer(data, env)
        server.start(timeout=60)
        stack.callback(server.stop)
        with server.client() as client:
            created = client.post("/api/v2.0/projects", json={"project_name": PROJECT})
            assert created.status_code == 201, created.text
        url = env.get("PORTSIDE_DATABASE__URL") or f"sqlite:///{(data / 'portside.db').resolve()}"
        began = time.perf_counter()
        seed(url, data / "storage", artifacts, repos)
        print(f"  seeded {artifacts} artifacts in {time.perf_counter() - began:.1f} s", flush=True)
        return measure(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for artifacts in args.artifacts:
        for backend in args.backends:
            print(f"{backend}, {artifacts} artifacts over {args.repos} repositories:", flush=True)
            figures = run(backend, artifacts, args.repos)
            for what, values in figures.items():
                print(f"  {what:48s} p50 {values['p50']:6.2f} ms   p95 {values['p95']:6.2f} ms")
            results[f"{backend}-{artifacts}"] = figures
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
