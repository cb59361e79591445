"""Slowing down password guessing: failed logins are counted per account and per client address.

Only failures are counted, and a caller under the limit is never delayed, so successful logins
cost nothing extra: no sleep, and with the in-memory counters no I/O. Once either counter
reaches its limit, every login attempt for that account or from that address is refused, the
right password included (else guessing could go on), until the oldest failure leaves the moving
window. The two limits are independent: one address cannot try many accounts, and many
addresses cannot gang up on one account.

The counters live in memory, or in Redis (``auth.login_limit_storage``) so that all replicas
share them; there both counters are read concurrently, one round trip of latency per login.
"""

from __future__ import annotations

import asyncio
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

__all__ = ["LoginLimiter"]


class LoginLimiter:
    def __init__(
        self, per_account: str, per_address: str, storage_url: str, key_prefix: str
    ) -> None:
        storage: Storage
        self._shared = storage_url.startswith("redis")
        if self._shared:
            storage = RedisStorage(
                "async+" + storage_url, implementation="redispy", key_prefix=key_prefix
            )
        else:
            storage = MemoryStorage()
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_account: RateLimitItem = parse(per_account)
        self._per_address: RateLimitItem = parse(per_address)

    def _counters(self, username: str, address: str | None) -> list[tuple[RateLimitItem, str, str]]:
        counters = [(self._per_account, "account", username)]
        if address is not None:
            counters.append((self._per_address, "address", address))
        return counters

    async def blocked(self, username: str, address: str | None) -> bool:
        """True when too many recent failures forbid trying again now."""
        counters = self._counters(username, address)
        if self._shared:
            allowed = await asyncio.gather(*(self._limiter.test(*c) for c in counters))
            return not all(allowed)
        for counter in counters:
            if not await self._limiter.test(*counter):
                return True
        return False

    async def failed(self, username: str, address: str | None) -> None:
        """Count one failed login against the account and the address."""
        for counter in self._counters(username, address):
            await self._limiter.hit(*counter)

    async def retry_after(self, username: str, address: str | None) -> int:
        """Whole seconds until a blocked caller may try again (at least 1), for a
        ``Retry-After`` header."""
        wait = 0.0
        for item, *identifiers in self._counters(username, address):
            stats = await self._limiter.get_window_stats(item, *identifiers)
            if stats.remaining <= 0:
                wait = max(wait, stats.reset_time - time.time())
        return max(1, math.ceil(wait))

    async def clear(self) -> None:
        await self._storage.reset()
