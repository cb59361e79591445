"""The in-process cache: expiry, and stale-if-error when the database cannot be reached."""

from __future__ import annotations

import asyncio

import pytest

from portside.db.engine import DatabaseUnavailable
from portside.registry.cache import LRUCache


async def _unreachable() -> int:
    raise DatabaseUnavailable("connection refused")


async def test_fetch_loads_once_and_caches_positive_answers() -> None:
    cache: LRUCache[str, int] = LRUCache(10, ttl=60)
    calls: list[str] = []

    async def load() -> int | None:
        calls.append("load")
        return 7

    assert await cache.fetch("a", load) == 7
    assert await cache.fetch("a", load) == 7
    assert calls == ["load"]
    assert await cache.fetch("missing", lambda: asyncio.sleep(0, None)) is None
    assert cache.get("missing") is None  # None is never cached


async def test_an_expired_entry_is_served_while_the_database_is_unreachable() -> None:
    cache: LRUCache[str, int] = LRUCache(10, ttl=0.01)
    cache.put("a", 1)
    await asyncio.sleep(0.02)
    assert cache.get("a") is None  # expired
    assert await cache.fetch("a", _unreachable) == 1
    assert cache.get("a") == 1  # kept a moment, so the next requests do not wait either


async def test_without_a_value_the_outage_is_raised() -> None:
    cache: LRUCache[str, int] = LRUCache(10, ttl=60)
    with pytest.raises(DatabaseUnavailable):
        await cache.fetch("a", _unreachable)


async def test_a_discarded_entry_is_never_served_stale() -> None:
    cache: LRUCache[str, int] = LRUCache(10, ttl=60)
    cache.put("a", 1)
    cache.discard("a")
    with pytest.raises(DatabaseUnavailable):
        await cache.fetch("a", _unreachable)
    cache.put("b", 2)
    cache.clear()
    with pytest.raises(DatabaseUnavailable):
        await cache.fetch("b", _unreachable)


async def test_other_failures_are_not_hidden() -> None:
    cache: LRUCache[str, int] = LRUCache(10, ttl=0)
    cache.put("a", 1)

    async def bug() -> int:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        await cache.fetch("a", bug)
