"""Settings an admin changes at run time through ``/api/v2.0/configurations``, as in Harbor.

Each key starts from the file/environment settings and is overridden by a row of the
``configurations`` table (a JSON value). Readers ask :meth:`Configurations.get` (or the
synchronous :attr:`Configurations.current` where they cannot wait): the values are cached for
``cache_ttl`` seconds, so another replica's change is seen within that time and a local change at
once. Nothing on the request path queries the database more than once per ``cache_ttl``.

While the database cannot be reached, the last loaded values stay in force and a reload is tried
again every :data:`~portside.registry.cache.STALE_RETRY_SECONDS`; a request never waits for a
reload that another one is doing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.engine import Connection

from portside.auth.robots import DEFAULT_DURATION_DAYS, MAX_DURATION_DAYS
from portside.config import Settings
from portside.db.engine import Database, DatabaseUnavailable
from portside.db.queries import now, upsert
from portside.db.tables import configurations
from portside.projects.quotas import MAX_HARD_BYTES, UNLIMITED
from portside.registry.cache import STALE_RETRY_SECONDS

__all__ = ["ConfigurationError", "Configurations", "SystemConfig"]

log = structlog.get_logger("portside.configurations")


class ConfigurationError(ValueError):
    """A change names an unknown or fixed key, or gives a value of the wrong kind."""


@dataclass(frozen=True, slots=True)
class SystemConfig:
    """One consistent view of the run-time settings (Harbor's names and units)."""

    auth_mode: str
    project_creation_restriction: str
    self_registration: bool
    robot_token_duration: int  # days
    robot_name_prefix: str
    token_expiration: int  # minutes
    storage_per_project: int  # bytes; -1 is unlimited
    read_only: bool

    @property
    def token_lifetime_seconds(self) -> int:
        return self.token_expiration * 60


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError("must be true or false")
    return value


def _integer(low: int, high: int, *, also: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigurationError("must be an integer")
        if value != also and not low <= value <= high:
            extra = f" or {also}" if also is not None else ""
            raise ConfigurationError(f"must be from {low} to {high}{extra}")
        return value

    return check


def _restriction(value: Any) -> str:
    if value not in ("adminonly", "everyone"):
        raise ConfigurationError("must be adminonly or everyone")
    return str(value)


# The keys an admin may change, each with its check. Others in SystemConfig are shown only.
EDITABLE: Mapping[str, Callable[[Any], Any]] = {
    "project_creation_restriction": _restriction,
    "self_registration": _boolean,
    "robot_token_duration": _integer(1, MAX_DURATION_DAYS),
    # Token lifetimes the file settings allow too: 1 minute to 1 day.
    "token_expiration": _integer(1, 1440),
    "storage_per_project": _integer(1, MAX_HARD_BYTES, also=UNLIMITED),
    "read_only": _boolean,
}
FIXED = frozenset({"auth_mode", "robot_name_prefix"})


def defaults_of(settings: Settings) -> SystemConfig:
    """The values before any change through the API: the file and environment settings."""
    return SystemConfig(
        auth_mode="db_auth",
        project_creation_restriction=settings.auth.project_creation_restriction,
        self_registration=settings.auth.self_registration,
        robot_token_duration=DEFAULT_DURATION_DAYS,
        robot_name_prefix=settings.auth.robot_prefix,
        token_expiration=max(1, settings.auth.token_ttl_seconds // 60),
        storage_per_project=settings.quota.default_project_bytes,
        read_only=False,
    )


def validate(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The checked values of ``changes``; raises :class:`ConfigurationError` naming the key."""
    checked: dict[str, Any] = {}
    for key, value in changes.items():
        if key in FIXED:
            raise ConfigurationError(f"{key} cannot be changed")
        check = EDITABLE.get(key)
        if check is None:
            raise ConfigurationError(f"unknown configuration key {key[:64]!r}")
        try:
            checked[key] = check(value)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{key}: {exc}") from None
    return checked


class Configurations:
    def __init__(self, db: Database, settings: Settings, cache_ttl: float) -> None:
        self._db = db
        self._defaults = defaults_of(settings)
        self._ttl = cache_ttl
        self._current = self._defaults
        self._loaded = False  # once: the defaults are never served in place of stored values
        self._stale = False  # the last reload failed
        self._loaded_at = -float("inf")
        self._lock = asyncio.Lock()

    @property
    def current(self) -> SystemConfig:
        """The last loaded values, without waiting (at most ``cache_ttl`` old while requests
        keep arriving, since the read-only guard calls :meth:`get` on each one)."""
        return self._current

    async def get(self) -> SystemConfig:
        """The values, reloaded from the database when older than ``cache_ttl``. Raises
        :class:`DatabaseUnavailable` only if they were never loaded."""
        if time.monotonic() - self._loaded_at < self._ttl:
            return self._current
        if self._loaded and self._lock.locked():
            return self._current  # another request is reloading them
        async with self._lock:
            if time.monotonic() - self._loaded_at >= self._ttl:
                await self._reload()
        return self._current

    async def _reload(self) -> None:
        try:
            await self._load()
        except DatabaseUnavailable as exc:
            if not self._loaded:
                raise
            if not self._stale:
                log.warning("keeping the last configuration: database unavailable", error=str(exc))
            self._stale = True
            self._loaded_at = time.monotonic() - self._ttl + STALE_RETRY_SECONDS
            return
        if self._stale:
            log.info("configuration reloaded: database available again")
        self._stale = False

    async def _load(self) -> None:
        query = select(configurations.c.name, configurations.c.value)
        rows = await self._db.read(lambda c: c.execute(query).all())
        stored: dict[str, Any] = {}
        for row in rows:
            if row.name not in EDITABLE:
                continue
            try:
                stored[row.name] = EDITABLE[row.name](json.loads(row.value))
            except (ValueError, ConfigurationError):
                continue  # a value written by a newer version or by hand: keep the default
        self._current = dataclasses.replace(self._defaults, **stored)
        self._loaded = True
        self._loaded_at = time.monotonic()

    async def update(self, changes: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Store ``changes`` (validated with :func:`validate` first) and apply them at once.
        Returns ``{key: (before, after)}`` for the keys whose value changed."""
        checked = validate(changes)
        before = await self.get()
        stamp = now()

        def write(connection: Connection) -> None:
            for key, value in checked.items():
                upsert(
                    connection,
                    configurations,
                    {"name": key},
                    {"value": json.dumps(value), "updated_at": stamp},
                )

        if checked:
            await self._db.write(write)
        async with self._lock:
            await self._load()
        return {
            key: (getattr(before, key), value)
            for key, value in checked.items()
            if getattr(before, key) != value
        }
