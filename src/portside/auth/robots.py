"""Robot accounts: non-human credentials with an explicit permission list, as in Harbor.

A robot's full name is the configurable prefix plus its stored name: ``robot$ci`` for a system
robot, ``robot$library+ci`` for a robot of project ``library``. Its secret is shown once and
stored as an argon2 hash. ``secret_version`` increases on every refresh; tokens carry it, so a
refresh revokes every earlier token as soon as replicas see the new version.

Besides what the access policy asks on every request (:meth:`Robots.state`,
:meth:`Robots.authenticate`, :meth:`Robots.principal`, :meth:`Robots.permissions_in`), this
module keeps the robot records the management API reads and changes. Every change drops this
replica's caches at once; other replicas see it within ``cache_ttl`` seconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, bindparam, delete, func, select, update

from portside.auth.access import Principal
from portside.auth.passwords import hash_password, verify_password
from portside.auth.rbac import ROLE_PERMISSIONS, Permission
from portside.auth.verified import VerifiedCredentials
from portside.db.engine import Database
from portside.db.queries import as_utc, insert_ignore, now
from portside.db.tables import projects, robot_permissions, robots, users
from portside.registry.cache import LRUCache

__all__ = [
    "ALL_PROJECTS",
    "DEFAULT_DURATION_DAYS",
    "GRANTABLE_PERMISSIONS",
    "MAX_DURATION_DAYS",
    "NEVER",
    "ROBOT_NAME",
    "NameTaken",
    "ProjectMissing",
    "RobotAccess",
    "RobotBlock",
    "RobotRecord",
    "RobotState",
    "Robots",
    "delete_namespace_permissions",
    "expiry",
    "generate_secret",
    "parse_access",
    "valid_secret",
]

Level = Literal["system", "project"]

# Harbor's robot name rule: lower-case letters and digits with single separators; no "+",
# which joins a project robot's project and name.
ROBOT_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
# What Harbor's robot_token_duration defaults to, used when a robot is created with duration 0.
DEFAULT_DURATION_DAYS = 30
# About a thousand years: long enough for anyone, short enough for every database's timestamps.
MAX_DURATION_DAYS = 365_000
NEVER = -1
ALL_PROJECTS = "*"

# Everything a project role can be granted may be granted to a robot, plus the few project
# permissions Harbor's robot dialog offers that no Portside endpoint checks yet (accepted so
# Harbor clients work; they allow nothing here).
GRANTABLE_PERMISSIONS: frozenset[Permission] = frozenset().union(
    *ROLE_PERMISSIONS.values(),
    {
        Permission("metadata", "list"),
        Permission("export-cve", "create"),
        Permission("export-cve", "read"),
    },
)


class NameTaken(Exception):
    """Another robot has this name."""


class ProjectMissing(Exception):
    """A project the robot belongs to or names in its permissions does not exist (any more)."""


def generate_secret() -> str:
    """A robot secret: 192 random bits, which also passes Harbor's password policy."""
    while True:
        candidate = secrets.token_urlsafe(24)
        if valid_secret(candidate):
            return candidate


def valid_secret(secret: str) -> bool:
    """Harbor's rule for a secret chosen by the caller: 8-128 characters with at least one
    upper-case letter, one lower-case letter and one digit."""
    return (
        8 <= len(secret) <= 128
        and any(c.isupper() for c in secret)
        and any(c.islower() for c in secret)
        and any(c.isdigit() for c in secret)
    )


def expiry(start: dt.datetime, duration_days: int) -> dt.datetime | None:
    """When a robot with ``duration_days`` counted from ``start`` expires; None for never."""
    if duration_days == NEVER:
        return None
    return start + dt.timedelta(days=duration_days)


@dataclass(frozen=True, slots=True)
class RobotState:
    """What decides whether a robot may act now; cached for ``cache_ttl`` seconds."""

    id: int
    secret_hash: str
    secret_version: int
    disabled: bool
    expires_at: dt.datetime | None

    def usable(self, at: dt.datetime | None = None) -> bool:
        """Enabled and not expired at ``at`` (default: now)."""
        if self.disabled:
            return False
        return self.expires_at is None or self.expires_at > (at or dt.datetime.now(dt.UTC))


@dataclass(frozen=True, slots=True)
class RobotAccess:
    resource: str
    action: str
    effect: str = "allow"

    @property
    def permission(self) -> Permission:
        return Permission(self.resource, self.action)


@dataclass(frozen=True, slots=True)
class RobotBlock:
    """One permission block, as in Harbor's API: ``kind`` is always ``project`` here, and
    ``namespace`` a project name or ``*`` for every project."""

    kind: str
    namespace: str
    access: tuple[RobotAccess, ...]


@dataclass(frozen=True, slots=True)
class RobotRecord:
    """A robot as the management API shows it. ``name`` is the stored name, without prefix."""

    id: int
    name: str
    description: str
    level: Level
    project_id: int | None
    duration: int
    expires_at: dt.datetime | None
    disabled: bool
    secret_version: int
    creator: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    permissions: tuple[RobotBlock, ...]


_STATE = select(
    robots.c.id,
    robots.c.secret_hash,
    robots.c.secret_version,
    robots.c.disabled,
    robots.c.expires_at,
).where(robots.c.name == bindparam("name"))
_PERMISSIONS = select(
    robot_permissions.c.kind, robot_permissions.c.namespace, robot_permissions.c.access
).where(robot_permissions.c.robot_id == bindparam("robot_id"))
_RECORD_COLUMNS = (
    robots.c.id,
    robots.c.name,
    robots.c.description,
    robots.c.level,
    robots.c.project_id,
    robots.c.duration_days,
    robots.c.expires_at,
    robots.c.disabled,
    robots.c.secret_version,
    robots.c.creator,
    robots.c.created_at,
    robots.c.updated_at,
)


def parse_access(raw: str) -> list[tuple[Permission, str]]:
    """A stored access list: ``[(permission, effect)]``. Unknown shapes are skipped (deny)."""
    return [(a.permission, a.effect) for a in _access_entries(raw)]


def _access_entries(raw: str) -> list[RobotAccess]:
    try:
        entries = json.loads(raw)
    except ValueError:
        return []
    parsed = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            resource, action = entry.get("resource"), entry.get("action")
            effect = entry.get("effect") or "allow"
            if isinstance(resource, str) and isinstance(action, str):
                parsed.append(RobotAccess(resource, action, str(effect)))
    return parsed


def _dump_access(access: Iterable[RobotAccess]) -> str:
    return json.dumps(
        [{"resource": a.resource, "action": a.action, "effect": a.effect} for a in access]
    )


def _permission_rows(robot_id: int, blocks: Sequence[RobotBlock]) -> list[dict[str, Any]]:
    return [
        {
            "robot_id": robot_id,
            "kind": block.kind,
            "namespace": block.namespace,
            "access": _dump_access(block.access),
        }
        for block in blocks
    ]


def delete_namespace_permissions(connection: Connection, project_name: str) -> None:
    """Drop every robot permission block naming ``project_name``, inside the caller's
    transaction. Deleting a project must call this: blocks are kept by name, and a later
    project of the same name must not inherit them."""
    connection.execute(
        delete(robot_permissions).where(
            robot_permissions.c.kind == "project", robot_permissions.c.namespace == project_name
        )
    )


def _load_records(connection: Connection, rows: Sequence[Any]) -> list[RobotRecord]:
    ids = [int(row.id) for row in rows]
    blocks: dict[int, list[RobotBlock]] = {robot_id: [] for robot_id in ids}
    if ids:
        query = (
            select(
                robot_permissions.c.robot_id,
                robot_permissions.c.kind,
                robot_permissions.c.namespace,
                robot_permissions.c.access,
            )
            .where(robot_permissions.c.robot_id.in_(ids))
            .order_by(robot_permissions.c.id)
        )
        for perm in connection.execute(query):
            blocks[int(perm.robot_id)].append(
                RobotBlock(perm.kind, perm.namespace, tuple(_access_entries(perm.access)))
            )
    return [
        RobotRecord(
            id=int(row.id),
            name=row.name,
            description=row.description or "",
            level="project" if row.level == "project" else "system",
            project_id=row.project_id,
            duration=int(row.duration_days),
            expires_at=as_utc(row.expires_at) if row.expires_at is not None else None,
            disabled=bool(row.disabled),
            secret_version=int(row.secret_version),
            creator=row.creator,
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
            permissions=tuple(blocks[int(row.id)]),
        )
        for row in rows
    ]


class Robots:
    def __init__(self, db: Database, prefix: str, cache_ttl: float) -> None:
        self._db = db
        self.prefix = prefix
        self._cache_key = secrets.token_bytes(32)
        self._states: LRUCache[str, RobotState] = LRUCache(10_000, cache_ttl)
        self._verified: VerifiedCredentials[int] = VerifiedCredentials(10_000, cache_ttl)
        self._permissions: LRUCache[tuple[int, str], frozenset[Permission]] = LRUCache(
            50_000, cache_ttl
        )

    def is_robot_name(self, name: str) -> bool:
        return name.startswith(self.prefix)

    def stored_name(self, full_name: str) -> str:
        return full_name[len(self.prefix) :]

    def full_name(self, stored_name: str) -> str:
        return self.prefix + stored_name

    # -- what the access policy asks on every request --------------------------------------

    async def state(self, full_name: str) -> RobotState | None:
        """The robot's current state, or None when no such robot exists."""
        cached = self._states.get(full_name)
        if cached is not None:
            return cached
        params = {"name": self.stored_name(full_name)}

        async def load() -> RobotState | None:
            row = await self._db.read(lambda c: c.execute(_STATE, params).first())
            if row is None:
                return None
            expires_at = as_utc(row.expires_at) if row.expires_at is not None else None
            return RobotState(
                int(row.id),
                row.secret_hash,
                int(row.secret_version),
                bool(row.disabled),
                expires_at,
            )

        return await self._states.fetch(full_name, load)

    async def authenticate(self, full_name: str, secret: str) -> Principal | None:
        """The robot's principal when the secret is right and the robot enabled and unexpired."""
        state = await self.state(full_name)
        # The secret version is part of the key: a refreshed secret is never taken from the
        # cache for the old one.
        key = hmac.new(
            self._cache_key,
            full_name.encode()
            + b"\0"
            + secret.encode()
            + b"\0"
            + str(state and state.secret_version).encode(),
            hashlib.sha256,
        ).digest()

        async def check() -> int | None:
            secret_hash = state.secret_hash if state else None
            ok = await asyncio.to_thread(verify_password, secret_hash, secret)
            return state.id if ok and state is not None else None

        verified = await self._verified.check(key, check)
        if verified is None or state is None or verified != state.id or not state.usable():
            return None
        return Principal("robot", full_name, state.id, False, state.secret_version)

    async def principal(self, full_name: str, version: int) -> Principal | None:
        """The robot behind a token: None when it is gone, disabled, expired or its secret was
        refreshed after the token was issued."""
        state = await self.state(full_name)
        if state is None or not state.usable() or state.secret_version != version:
            return None
        return Principal("robot", full_name, state.id, False, state.secret_version)

    async def permissions_in(self, robot_id: int, project: str) -> frozenset[Permission]:
        """What the robot may do in ``project``: its ``project`` blocks naming it or ``*``."""
        key = (robot_id, project)
        cached = self._permissions.get(key)
        if cached is not None:
            return cached
        params = {"robot_id": robot_id}

        async def load() -> frozenset[Permission]:
            rows = await self._db.read(lambda c: list(c.execute(_PERMISSIONS, params)))
            allowed: set[Permission] = set()
            denied: set[Permission] = set()
            for row in rows:
                if row.kind != "project" or row.namespace not in (project, ALL_PROJECTS):
                    continue
                for permission, effect in parse_access(row.access):
                    (denied if effect == "deny" else allowed).add(permission)
            if Permission("repository", "push") in allowed:
                # As in Harbor: pushing needs to see what is there (blob HEAD, mounts, manifests).
                allowed.add(Permission("repository", "pull"))
            return frozenset(allowed - denied)

        granted = await self._permissions.fetch(key, load)
        assert granted is not None  # load() never answers None
        return granted

    async def namespaces(self, robot_id: int) -> set[str]:
        """Project names (or ``*``) the robot's permission blocks cover."""
        query = select(robot_permissions.c.namespace).where(
            robot_permissions.c.robot_id == robot_id, robot_permissions.c.kind == "project"
        )
        return set(await self._db.read(lambda c: list(c.scalars(query))))

    def forget(self) -> None:
        """Drop every cached robot fact after a local change."""
        self._states.clear()
        self._verified.forget()
        self._permissions.clear()

    # -- records, for the management API ----------------------------------------------------

    async def get(self, robot_id: int) -> RobotRecord | None:
        query = select(*_RECORD_COLUMNS).where(robots.c.id == robot_id)

        def load(connection: Connection) -> RobotRecord | None:
            rows = list(connection.execute(query))
            return _load_records(connection, rows)[0] if rows else None

        return await self._db.read(load)

    async def page(
        self,
        conditions: Sequence[ColumnElement[bool]],
        order_by: Sequence[ColumnElement[Any]],
        offset: int,
        limit: int,
    ) -> tuple[list[RobotRecord], int]:
        """One page of the robots matching ``conditions`` (on :data:`robots` columns), and how
        many match in all."""
        query = (
            select(*_RECORD_COLUMNS)
            .where(*conditions)
            .order_by(*order_by, robots.c.id)
            .offset(offset)
            .limit(limit)
        )
        count = select(func.count()).select_from(robots).where(*conditions)

        def load(connection: Connection) -> tuple[list[RobotRecord], int]:
            total = int(connection.scalar(count) or 0)
            return _load_records(connection, list(connection.execute(query))), total

        return await self._db.read(load)

    async def creator_refs(self, creators: Iterable[str]) -> dict[str, int]:
        """Ids of the users and robots named as creators (full robot names for robots)."""
        names = set(creators)
        robot_names = {self.stored_name(n) for n in names if self.is_robot_name(n)}
        user_names = {n for n in names if not self.is_robot_name(n)}
        user_query = select(users.c.username, users.c.id).where(users.c.username.in_(user_names))
        robot_query = select(robots.c.name, robots.c.id).where(robots.c.name.in_(robot_names))

        def load(connection: Connection) -> dict[str, int]:
            found = {
                row.username: int(row.id)
                for row in (connection.execute(user_query) if user_names else ())
            }
            for row in connection.execute(robot_query) if robot_names else ():
                found[self.full_name(row.name)] = int(row.id)
            return found

        return await self._db.read(load) if names else {}

    async def create(
        self,
        *,
        name: str,
        description: str,
        level: Level,
        project_id: int | None,
        duration: int,
        disabled: bool,
        creator: str,
        permissions: Sequence[RobotBlock],
    ) -> tuple[RobotRecord, str]:
        """Create a robot with a fresh secret; returns it with the secret (shown once).
        ``name`` is the stored name; ``duration`` in days (-1: never), not 0.

        Raises :class:`NameTaken`, or :class:`ProjectMissing` when a project it names does not
        exist; both are checked in the writing transaction, so races cannot slip through."""
        secret = generate_secret()
        secret_hash = await asyncio.to_thread(hash_password, secret)
        stamp = now()
        values = {
            "name": name,
            "description": description,
            "level": level,
            "project_id": project_id,
            "secret_hash": secret_hash,
            "secret_version": 1,
            "duration_days": duration,
            "expires_at": expiry(stamp, duration),
            "disabled": disabled,
            "creator": creator,
            "created_at": stamp,
            "updated_at": stamp,
        }

        def insert(connection: Connection) -> RobotRecord | type[Exception]:
            if not _projects_exist(connection, project_id, permissions):
                return ProjectMissing
            if not insert_ignore(connection, robots, **values):
                return NameTaken
            query = select(*_RECORD_COLUMNS).where(robots.c.name == name)
            row = connection.execute(query).one()
            if permissions:
                connection.execute(
                    robot_permissions.insert(), _permission_rows(int(row.id), permissions)
                )
            return _load_records(connection, [row])[0]

        created = await self._db.write(insert)
        if not isinstance(created, RobotRecord):
            raise created()
        self.forget()
        return created, secret

    async def update(
        self,
        robot_id: int,
        *,
        description: str,
        disabled: bool,
        duration: int,
        permissions: Sequence[RobotBlock],
    ) -> RobotRecord | None:
        """Change what may change: description, disabled, duration (expiry is counted from
        the creation time, as in Harbor) and permissions. None when the robot is gone; raises
        :class:`ProjectMissing` when a project named in ``permissions`` does not exist."""

        def change(connection: Connection) -> RobotRecord | type[Exception] | None:
            row = connection.execute(
                select(robots.c.created_at, robots.c.duration_days, robots.c.expires_at)
                .where(robots.c.id == robot_id)
                .with_for_update()
            ).first()
            if row is None:
                return None
            if not _projects_exist(connection, None, permissions):
                return ProjectMissing
            values: dict[str, Any] = {
                "description": description,
                "disabled": disabled,
                "updated_at": now(),
            }
            if duration != row.duration_days:
                values["duration_days"] = duration
                values["expires_at"] = expiry(as_utc(row.created_at), duration)
            connection.execute(update(robots).where(robots.c.id == robot_id).values(values))
            connection.execute(
                delete(robot_permissions).where(robot_permissions.c.robot_id == robot_id)
            )
            if permissions:
                connection.execute(
                    robot_permissions.insert(), _permission_rows(robot_id, permissions)
                )
            rows = list(connection.execute(select(*_RECORD_COLUMNS).where(robots.c.id == robot_id)))
            return _load_records(connection, rows)[0]

        changed = await self._db.write(change)
        if isinstance(changed, type):
            raise changed()
        self.forget()
        return changed

    async def delete(self, robot_id: int) -> bool:
        """Delete the robot and its permissions; False when it did not exist."""

        def remove(connection: Connection) -> bool:
            connection.execute(
                delete(robot_permissions).where(robot_permissions.c.robot_id == robot_id)
            )
            return bool(connection.execute(delete(robots).where(robots.c.id == robot_id)).rowcount)

        removed = await self._db.write(remove)
        self.forget()
        return removed

    async def refresh_secret(self, robot_id: int, secret: str | None) -> str | None:
        """Replace the secret (``secret``, or a generated one, which is returned) and bump
        ``secret_version`` so every earlier token is refused. None when the robot is gone."""
        new_secret = secret or generate_secret()
        secret_hash = await asyncio.to_thread(hash_password, new_secret)
        statement = (
            update(robots)
            .where(robots.c.id == robot_id)
            .values(
                secret_hash=secret_hash,
                secret_version=robots.c.secret_version + 1,
                updated_at=now(),
            )
        )
        changed = await self._db.write(lambda c: bool(c.execute(statement).rowcount))
        self.forget()
        return new_secret if changed else None


def _projects_exist(
    connection: Connection, project_id: int | None, blocks: Sequence[RobotBlock]
) -> bool:
    """Whether the robot's project and every project its blocks name exist, checked inside the
    writing transaction."""
    if project_id is not None:
        query = select(projects.c.id).where(projects.c.id == project_id)
        if connection.scalar(query) is None:
            return False
    names = {b.namespace for b in blocks if b.namespace != ALL_PROJECTS}
    if names:
        query = select(func.count()).select_from(projects).where(projects.c.name.in_(names))
        if int(connection.scalar(query) or 0) != len(names):
            return False
    return True
