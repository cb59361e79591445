"""``/health``: is each part Portside depends on working?

Checks run concurrently, each with a time limit, and the whole answer is kept for
``CACHE_SECONDS``: a load balancer polling many times a second costs one round of checks per
second, and a healthy answer is served from memory. Harbor's shape: an overall ``status`` and
one entry per component, with ``error`` only on failure.

The storage check writes a small key (reading one would not notice a full or read-only disk),
and local folders (the filesystem driver's root, the SQLite file's folder) are unhealthy when
their free space is under ``storage.min_free_bytes``, before a push fails for want of it.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from portside.config import Settings
from portside.db.engine import Database
from portside.storage.base import StorageDriver
from portside.storage.layout import HEALTH_PROBE_KEY

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["ComponentHealth", "HealthChecks", "OverallHealth", "local_folders"]

CACHE_SECONDS = 1.0
CHECK_TIMEOUT_SECONDS = 3.0
_SELECT_ONE = text("SELECT 1")
# A failed write makes the database unhealthy until one succeeds, or this long without another.
_WRITE_FAILURE_SECONDS = 30.0


class _Unhealthy(Exception):
    """A check found its component unfit, and says why in its message."""


def local_folders(settings: Settings) -> dict[str, Path]:
    """The local folders each component writes to, by component: their free space is checked."""
    folders: dict[str, Path] = {}
    if settings.storage.driver == "filesystem":
        folders["storage"] = settings.storage_root
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database:
        folders["database"] = Path(url.database).parent
    return folders


def _too_full(folder: Path, min_free_bytes: int) -> str | None:
    """Why ``folder`` has too little room left, or None."""
    free = shutil.disk_usage(folder).free
    if free >= min_free_bytes:
        return None
    return f"{free} bytes free in {folder}, under storage.min_free_bytes ({min_free_bytes})"


def _redis_client(url: str) -> Redis:
    # Imported here: the redis package costs several MB of memory, and most installations
    # (one node, memory:// login counters) never use it.
    import redis.asyncio

    client: Redis = redis.asyncio.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS)
    return client


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    name: str
    error: str | None = None

    @property
    def healthy(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, str]:
        body = {"name": self.name, "status": "healthy" if self.healthy else "unhealthy"}
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass(frozen=True, slots=True)
class OverallHealth:
    components: tuple[ComponentHealth, ...]

    @property
    def healthy(self) -> bool:
        return all(component.healthy for component in self.components)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "healthy" if self.healthy else "unhealthy",
            "components": [component.to_json() for component in self.components],
        }


class HealthChecks:
    def __init__(
        self,
        db: Database,
        storage: StorageDriver,
        redis_url: str | None,
        *,
        folders: Mapping[str, Path] | None = None,
        min_free_bytes: int = 0,
    ) -> None:
        self._db = db
        self._storage = storage
        self._folders = dict(folders or {})
        self._min_free_bytes = min_free_bytes
        self._redis: Redis | None = _redis_client(redis_url) if redis_url else None
        self._workers: list[asyncio.Task[Any]] = []
        self._cached: OverallHealth | None = None
        self._checked_at = -float("inf")
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    def watch(self, workers: Iterable[asyncio.Task[Any]]) -> None:
        """Report the background loops (upload and audit purges) as the ``jobservice``."""
        self._workers = list(workers)

    async def check(self) -> OverallHealth:
        if self._cached is not None and time.monotonic() - self._checked_at < CACHE_SECONDS:
            return self._cached
        async with self._lock:
            if self._cached is None or time.monotonic() - self._checked_at >= CACHE_SECONDS:
                self._cached = await self._check_all()
                self._checked_at = time.monotonic()
        return self._cached

    async def _check_all(self) -> OverallHealth:
        checks: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("core", _nothing),
            ("database", self._database),
            ("storage", self._storage_reachable),
            ("jobservice", self._workers_alive),
        ]
        if self._redis is not None:
            checks.append(("redis", self._redis_reachable))
        results = await asyncio.gather(*(_run(name, probe) for name, probe in checks))
        return OverallHealth(tuple(results))

    async def _database(self) -> None:
        await self._db.read(lambda c: c.execute(_SELECT_ONE).scalar())
        failing = self._db.failing_writes(within=_WRITE_FAILURE_SECONDS)
        if failing is not None:
            raise _Unhealthy(f"writes fail: {failing}")
        await self._room_in("database")

    async def _storage_reachable(self) -> None:
        await self._storage.put(HEALTH_PROBE_KEY, f"{time.time():.3f}\n".encode())
        await self._room_in("storage")

    async def _room_in(self, component: str) -> None:
        folder = self._folders.get(component)
        if folder is None or self._min_free_bytes <= 0:
            return
        problem = await asyncio.to_thread(_too_full, folder, self._min_free_bytes)
        if problem is not None:
            raise _Unhealthy(problem)

    async def _workers_alive(self) -> None:
        stopped = [task.get_name() for task in self._workers if task.done()]
        if stopped:
            raise _Unhealthy(f"background tasks stopped: {', '.join(stopped)}")

    async def _redis_reachable(self) -> None:
        assert self._redis is not None
        await self._redis.ping()


async def _nothing() -> None:
    """The core answers this request, so it is healthy."""


async def _run(name: str, probe: Callable[[], Awaitable[None]]) -> ComponentHealth:
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return ComponentHealth(name, f"no answer within {CHECK_TIMEOUT_SECONDS:g} s")
    except _Unhealthy as exc:  # a check's own finding, said in its own words
        return ComponentHealth(name, str(exc)[:300])
    except Exception as exc:  # any failure makes the component unhealthy
        return ComponentHealth(name, f"{type(exc).__name__}: {str(exc)[:200]}")
    return ComponentHealth(name)
