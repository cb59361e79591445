"""Slowing down password guessing: failed logins are counted per account and address, and per
address.

Only failures are counted, and a caller under the limits is never delayed, so successful logins
cost nothing extra: no sleep, and with the in-memory counters no I/O. There are two counters:

- **per account and address** (``auth.login_failures_per_account``): failures for one account
  from one address. Reaching it refuses that account from that address only, the right
  password included (else guessing could go on), so a stranger who types ``admin``'s password
  wrong ten times locks out himself, not the admin everywhere;
- **per address** (``auth.login_failures_per_address``): failures from one address for any
  account, so one address cannot try many accounts either.

IPv6 addresses are counted by their /64 network, which one client usually holds whole.
Addresses in ``auth.login_limit_exempt_networks`` (an office, the CI runners) are neither
counted nor refused. A refusal lasts until the oldest counted failure leaves the moving window,
or until an operator lifts it with ``portside admin unlock``, which records the unlock in the
audit log; a server that would refuse a login looks there first (:class:`Unlocks`), so the
unlock reaches every replica whichever storage holds the counters.

The counters live in memory, or in Redis (``auth.login_limit_storage``) so that all replicas
share them; there both counters are read concurrently, one round trip of latency per login.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from sqlalchemy import func, select

from portside.db.engine import Database
from portside.db.queries import as_utc
from portside.db.tables import audit_logs
from portside.registry.cache import LRUCache

__all__ = ["UNLOCK_OPERATION", "LoginLimiter", "Unlocks", "address_key"]

log = structlog.get_logger(__name__)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# The audit log entries ``portside admin unlock`` writes: resource type "user" (resource: the
# account name) or "address" (resource: an address_key).
UNLOCK_OPERATION = "unlock"
_IPV6_PREFIX = 64
# How long a "no unlock recorded" answer is trusted, so that a refused client hammering the
# server costs at most one small query per subject this often.
_UNLOCK_LOOKUP_TTL = 2.0


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, an IPv4-mapped IPv6 address as IPv4; None when it is no IP address."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def address_key(address: str) -> str:
    """What a client address is counted under: itself, or for IPv6 its /64 network."""
    parsed = _parse(address)
    if parsed is None:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/{_IPV6_PREFIX}", strict=False))
    return str(parsed)


@dataclass(frozen=True, slots=True)
class _Counter:
    """One failure counter: its limit, and whose failures it counts (``kind`` "user" with the
    account name, or "address"), from which address for an account's counter."""

    item: RateLimitItem
    kind: str
    subject: str
    address: str | None = None

    @property
    def identifiers(self) -> tuple[str, ...]:
        extra = (self.address,) if self.address is not None else ()
        return (self.kind, self.subject, *extra)


class Unlocks:
    """When an operator last lifted the refusal of an account or an address (the newest
    ``unlock`` entry in the audit log), read only when a login would be refused."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._seen: LRUCache[tuple[str, str], float] = LRUCache(10_000, _UNLOCK_LOOKUP_TTL)

    async def latest(self, kind: str, subject: str, since: float) -> float:
        """The time (epoch seconds) of the newest unlock of ``subject`` after ``since``, or 0."""
        cached = self._seen.get((kind, subject))
        if cached is not None:
            return cached
        query = select(func.max(audit_logs.c.op_time)).where(
            audit_logs.c.op_time >= dt.datetime.fromtimestamp(since, dt.UTC),
            audit_logs.c.operation == UNLOCK_OPERATION,
            audit_logs.c.resource_type == kind,
            audit_logs.c.resource == subject,
        )
        try:
            found = await self._db.read(lambda c: c.scalar(query))
        except Exception:  # the database is down: the refusal stands, and the login is answered
            log.warning("cannot look up failed-login unlocks", exc_info=True)
            return 0.0
        stamp = as_utc(found).timestamp() if found is not None else 0.0
        self._seen.put((kind, subject), stamp)
        return stamp


class LoginLimiter:
    def __init__(
        self,
        per_account: str,
        per_address: str,
        storage_url: str,
        key_prefix: str,
        exempt: Sequence[Network] = (),
        unlocks: Unlocks | None = None,
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
        self._exempt = tuple(exempt)
        self._unlocks = unlocks

    def exempt(self, address: str | None) -> bool:
        """Whether ``address`` is in a network the limits never apply to."""
        parsed = _parse(address) if address is not None and self._exempt else None
        return parsed is not None and any(parsed in network for network in self._exempt)

    def _counters(self, username: str, address: str | None) -> list[_Counter]:
        if address is None:
            return [_Counter(self._per_account, "user", username)]
        key = address_key(address)
        return [
            _Counter(self._per_account, "user", username, key),
            _Counter(self._per_address, "address", key),
        ]

    async def blocked(self, username: str, address: str | None) -> bool:
        """True when too many recent failures forbid trying again now."""
        if self.exempt(address):
            return False
        counters = self._counters(username, address)
        tests = (self._limiter.test(c.item, *c.identifiers) for c in counters)
        if self._shared:
            allowed = await asyncio.gather(*tests)
        else:
            allowed = [await test for test in tests]
        for counter, ok in zip(counters, allowed, strict=True):
            if not ok and not await self._unlocked(counter):
                return True
        return False

    async def _unlocked(self, counter: _Counter) -> bool:
        """Clear a full counter when an operator unlocked its subject after the oldest failure
        it holds; True when that happened."""
        if self._unlocks is None:
            return False
        stats = await self._limiter.get_window_stats(counter.item, *counter.identifiers)
        oldest = stats.reset_time - counter.item.get_expiry()
        if await self._unlocks.latest(counter.kind, counter.subject, oldest) <= oldest:
            return False
        await self._limiter.clear(counter.item, *counter.identifiers)
        subject = counter.subject[:64]
        log.info("failed logins forgotten after an unlock", kind=counter.kind, subject=subject)
        return True

    async def failed(self, username: str, address: str | None) -> None:
        """Count one failed login against the account and address, and the address."""
        if self.exempt(address):
            return
        for counter in self._counters(username, address):
            await self._limiter.hit(counter.item, *counter.identifiers)

    async def retry_after(self, username: str, address: str | None) -> int:
        """Whole seconds until a blocked caller may try again (at least 1), for a
        ``Retry-After`` header."""
        wait = 0.0
        for counter in self._counters(username, address):
            stats = await self._limiter.get_window_stats(counter.item, *counter.identifiers)
            if stats.remaining <= 0:
                wait = max(wait, stats.reset_time - time.time())
        return max(1, math.ceil(wait))

    async def clear(self) -> None:
        await self._storage.reset()
