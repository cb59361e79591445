"""Remembering successful credential checks: single-flight, and refreshed ahead of expiry.

argon2 is slow on purpose, and clients send basic credentials with every request. A successful
check is remembered for ``ttl`` seconds under a key the caller derives from the credentials
(an HMAC, never the secret itself). Two things keep the cost of the slow check off requests:

- **Single flight.** While a credential is being checked, other requests with the same
  credential wait for that check instead of hashing again, so 64 requests arriving together
  when an entry has expired cost one argon2 run, not 64.
- **Refresh ahead.** A remembered credential used in the second half of its lifetime is checked
  again in the background, and the entry renewed when it still holds. A client that keeps
  sending the credential therefore never waits for a check; one that stops lets it expire.
  A background check that fails (a changed password on another replica) drops the entry.
- **Stale if the database is down.** A check that cannot reach the database answers with the
  credential's last good check, however old, so clients keep working through an outage.

:meth:`forget` drops everything after a local change; a check that was under way then can
neither fill the cache nor answer a request that arrives after the change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog

from portside.db.engine import DatabaseUnavailable
from portside.registry.cache import LRUCache

__all__ = ["VerifiedCredentials"]

log = structlog.get_logger(__name__)

V = TypeVar("V")
Check = Callable[[], Awaitable[V | None]]


class VerifiedCredentials(Generic[V]):
    def __init__(self, max_entries: int, ttl: float) -> None:
        self._ttl = ttl
        # value, and when (monotonic) the check that produced it started
        self._entries: LRUCache[bytes, tuple[V, float]] = LRUCache(max_entries, ttl)
        self._running: dict[bytes, asyncio.Future[V | None]] = {}
        self._refreshing: set[bytes] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._generation = 0

    async def check(self, key: bytes, run: Check[V]) -> V | None:
        """The remembered value for ``key``, else what ``run`` (the slow check) answers; None
        means the credential is wrong. Concurrent calls for one key share one ``run``."""
        entry = self._entries.get(key)
        if entry is not None:
            value, checked_at = entry
            if time.monotonic() - checked_at >= self._ttl / 2:
                self._refresh(key, run)
            return value
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(self._run(key, run, self._generation, False))
            self._running[key] = running
            running.add_done_callback(lambda done: self._finished(key, done))
        # shield: one waiter giving up (a client disconnecting) must not cancel the others'
        return await asyncio.shield(running)

    def forget(self) -> None:
        """Drop every remembered check, and stop checks under way from filling the cache."""
        self._generation += 1
        self._entries.clear()
        self._running.clear()
        self._refreshing.clear()

    async def _run(self, key: bytes, run: Check[V], generation: int, background: bool) -> V | None:
        started = time.monotonic()
        try:
            value = await run()
        except DatabaseUnavailable:
            # The database is down: a credential checked before stays good until it is back.
            stale = self._entries.stale(key)
            if stale is None:
                raise
            return stale[0]
        log.debug("credential checked", valid=value is not None, background=background)
        if generation == self._generation:
            if value is None:
                self._entries.discard(key)
            else:
                self._entries.put(key, (value, started))
        return value

    def _finished(self, key: bytes, done: asyncio.Future[V | None]) -> None:
        if self._running.get(key) is done:
            del self._running[key]

    def _refresh(self, key: bytes, run: Check[V]) -> None:
        if key in self._refreshing or key in self._running:
            return
        self._refreshing.add(key)
        task = asyncio.create_task(self._refresh_in_background(key, run, self._generation))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh_in_background(self, key: bytes, run: Check[V], generation: int) -> None:
        try:
            await self._run(key, run, generation, True)
        except DatabaseUnavailable:
            pass  # served stale meanwhile (see _run); the outage is logged where it is seen
        except Exception:  # the entry simply expires; the next request checks in the open
            log.warning("background credential check failed", exc_info=True)
        finally:
            if generation == self._generation:
                self._refreshing.discard(key)
