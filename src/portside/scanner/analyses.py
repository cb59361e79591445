"""Layer analyses, cached by layer digest.

A layer's bytes never change, so what the analyzers found in it never changes either, until the
analyzers themselves change: results carry :data:`ANALYZER_VERSION` and older ones are redone.
Results live in memory (a bounded LRU) and in the database, so every replica and every restart
reuses them; that is what makes a second image on a shared base layer cheap to scan.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, bindparam, select

from portside.db.engine import Database
from portside.db.queries import now, upsert
from portside.db.tables import layer_analyses
from portside.registry.cache import LRUCache
from portside.scanner.model import LayerResult, OSRelease, Package

__all__ = ["ANALYZER_VERSION", "LayerAnalyses", "layer_from_json", "layer_to_json"]

# Raise whenever an analyzer finds more or different packages than before, so cached layer
# results made by the older code are analysed again.
ANALYZER_VERSION = 2

BlobStream = Callable[[], AsyncIterator[bytes | memoryview]]
Analyze = Callable[[BlobStream, str], Awaitable[LayerResult]]

_SELECT = select(layer_analyses.c.analyzer_version, layer_analyses.c.result).where(
    layer_analyses.c.digest == bindparam("digest")
)


def layer_to_json(result: LayerResult) -> str:
    return json.dumps(
        {
            "packages": {
                path: [asdict(package) for package in packages]
                for path, packages in result.packages.items()
            },
            "whiteouts": result.whiteouts,
            "opaque_dirs": result.opaque_dirs,
            "os_release": asdict(result.os_release) if result.os_release else None,
            "os_release_path": result.os_release_path,
            "owned": result.owned,
        },
        separators=(",", ":"),
    )


def _package(item: dict[str, Any]) -> Package:
    item["licenses"] = tuple(item.get("licenses") or ())
    return Package(**item)


def layer_from_json(text: str) -> LayerResult:
    data = json.loads(text)
    release = data.get("os_release")
    return LayerResult(
        packages={
            path: [_package(item) for item in items] for path, items in data["packages"].items()
        },
        whiteouts=list(data["whiteouts"]),
        opaque_dirs=list(data["opaque_dirs"]),
        os_release=OSRelease(**release) if release else None,
        os_release_path=data.get("os_release_path", ""),
        owned={path: list(files) for path, files in data.get("owned", {}).items()},
    )


class LayerAnalyses:
    """Analyses by layer digest. Without a database they live in memory only: that is the
    cache for layers pulled from other registries (the scanner Portside serves to others),
    whose bytes we cannot vouch for and so must never mix with our own layers' results."""

    def __init__(self, db: Database | None, analyze: Analyze, memory_entries: int = 512) -> None:
        self._db = db
        self._analyze = analyze
        self._memory: LRUCache[str, LayerResult] = LRUCache(memory_entries, float("inf"))
        # One analysis per digest at a time: two images on one new base layer, scanned
        # together, read that layer once.
        self._running: dict[str, asyncio.Future[LayerResult]] = {}

    async def get(self, digest: str, media_type: str, stream: BlobStream) -> LayerResult:
        cached = self._memory.get(digest)
        if cached is not None:
            return cached
        running = self._running.get(digest)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[LayerResult] = asyncio.get_running_loop().create_future()
        self._running[digest] = future
        try:
            result = await self._load_or_analyze(digest, media_type, stream)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        else:
            future.set_result(result)
            self._memory.put(digest, result)
            return result
        finally:
            del self._running[digest]

    async def _load_or_analyze(
        self, digest: str, media_type: str, stream: BlobStream
    ) -> LayerResult:
        if self._db is None:
            return await self._analyze(stream, media_type)
        row = await self._db.read(lambda c: c.execute(_SELECT, {"digest": digest}).first())
        if row is not None and row.analyzer_version == ANALYZER_VERSION:
            return layer_from_json(row.result)
        result = await self._analyze(stream, media_type)
        text = layer_to_json(result)

        def store(connection: Connection) -> None:
            upsert(
                connection,
                layer_analyses,
                {"digest": digest},
                {"analyzer_version": ANALYZER_VERSION, "result": text, "created_at": now()},
            )

        await self._db.write(store)
        return result
