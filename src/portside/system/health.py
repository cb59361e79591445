"""``/health``: is each part Portside depends on working?

Checks run concurrently, each with a time limit, and the whole answer is kept for
``CACHE_SECONDS``: a load balancer polling many times a second costs one round of checks per
second, and a healthy answer is served from memory. Harbor's shape: an overall ``status`` and
one entry per component, with ``error`` only on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from portside.db.engine import Database
from portside.storage.base import PathNotFound, StorageDriver

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["ComponentHealth", "HealthChecks", "OverallHealth"]

CACHE_SECONDS = 1.0
CHECK_TIMEOUT_SECONDS = 3.0
# A key that never exists: stat-ing it proves the driver can reach its backend.
_PROBE_KEY = "health/probe"
_SELECT_ONE = text("SELECT 1")


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
    def __init__(self, db: Database, storage: StorageDriver, redis_url: str | None) -> None:
        self._db = db
        self._storage = storage
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

    async def _storage_reachable(self) -> None:
        with contextlib.suppress(PathNotFound):  # a missing key: the backend answered
            await self._storage.stat(_PROBE_KEY)

    async def _workers_alive(self) -> None:
        stopped = [task.get_name() for task in self._workers if task.done()]
        if stopped:
            raise RuntimeError(f"background tasks stopped: {', '.join(stopped)}")

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
    except Exception as exc:  # any failure makes the component unhealthy
        return ComponentHealth(name, f"{type(exc).__name__}: {str(exc)[:200]}")
    return ComponentHealth(name)
