"""Project rows and their metadata, looked up on every access decision and therefore cached.

A project is the first path component of a repository name (``library/alpine`` lives in
``library``). Its metadata are Harbor's string-valued keys; ``public`` decides whether anyone,
anonymous callers included, may pull.

Every write here that changes what :meth:`Projects.get` returns leaves the cache to the caller
(:meth:`Projects.forget`), together with the access policy's cache, because both must be dropped
together for a change to take effect at once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, delete, func, select, update

from portside.auth.rbac import Role
from portside.auth.robots import delete_namespace_permissions
from portside.db.engine import Database
from portside.db.queries import insert_ignore, now
from portside.db.tables import (
    project_blobs,
    project_members,
    project_metadata,
    projects,
    quotas,
    repositories,
    users,
)
from portside.registry.cache import LRUCache

__all__ = [
    "BOOLEAN_METADATA",
    "LIBRARY",
    "METADATA_KEYS",
    "PROJECT_NAME",
    "SEVERITIES",
    "SORTABLE",
    "MetadataError",
    "Project",
    "ProjectDetail",
    "ProjectNameError",
    "ProjectNotEmpty",
    "Projects",
    "QuotaUsage",
    "normalize_metadata",
    "owned_by",
    "project_of",
    "public_is",
    "validate_project_name",
]

LIBRARY = "library"
# Harbor's rule: lower-case letters and digits, single separators (. _ -) between them.
PROJECT_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
MAX_PROJECT_NAME = 255


class ProjectNameError(ValueError):
    """A name that Harbor's project naming rules refuse."""


def validate_project_name(name: str) -> str:
    if len(name) > MAX_PROJECT_NAME or not PROJECT_NAME.fullmatch(name):
        raise ProjectNameError(
            "project names are 1-255 lower-case letters and digits, separated by single "
            "'.', '_' or '-'"
        )
    return name


# Harbor's project metadata keys that Portside stores. Every value is a string, as in Harbor.
BOOLEAN_METADATA = frozenset(
    {
        "public",
        "auto_scan",
        "auto_sbom_generation",
        "prevent_vul",
        "enable_content_trust",
        "enable_content_trust_cosign",
        "reuse_sys_cve_allowlist",
    }
)
SEVERITIES = ("none", "low", "medium", "high", "critical")
METADATA_KEYS = BOOLEAN_METADATA | {"severity", "retention_id"}
MAX_METADATA_VALUE = 255


class MetadataError(ValueError):
    """A metadata key Harbor does not know, or a value it would refuse."""


def _metadata_value(key: str, value: str) -> str:
    if key in BOOLEAN_METADATA:
        normalized = value.strip().lower()
        if normalized not in ("true", "false"):
            raise MetadataError(f"metadata {key!r} must be 'true' or 'false'")
        return normalized
    if key == "severity":
        normalized = value.strip().lower()
        if normalized not in SEVERITIES:
            raise MetadataError(f"metadata 'severity' must be one of {', '.join(SEVERITIES)}")
        return normalized
    # retention_id: the id of a tag retention policy.
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise MetadataError("metadata 'retention_id' must be a positive integer")
    return str(int(value))


def normalize_metadata(items: Mapping[str, str]) -> dict[str, str]:
    """Validated metadata in canonical form (``"true"``/``"false"``, lower-case severity).
    Raises :class:`MetadataError` for unknown keys and bad values."""
    normalized: dict[str, str] = {}
    for key, value in items.items():
        if key not in METADATA_KEYS:
            allowed = ", ".join(sorted(METADATA_KEYS))
            raise MetadataError(f"unknown metadata {key[:64]!r}; allowed: {allowed}")
        if len(value) > MAX_METADATA_VALUE:
            raise MetadataError(f"metadata {key!r} is too long")
        normalized[key] = _metadata_value(key, value)
    return normalized


class ProjectNotEmpty(Exception):
    """Deleting a project that still holds repositories, which Harbor refuses."""

    message = "the project contains repositories, can not be deleted"


def project_of(repository: str) -> str:
    """The project a repository name belongs to: its first path component."""
    return repository.partition("/")[0]


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    name: str
    owner_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def public(self) -> bool:
        return self.metadata.get("public", "false").lower() == "true"


_BY_NAME = select(
    projects.c.id,
    projects.c.name,
    projects.c.owner_id,
    projects.c.created_at,
    projects.c.updated_at,
).where(projects.c.name == bindparam("name"))
_METADATA = select(project_metadata.c.name, project_metadata.c.value).where(
    project_metadata.c.project_id == bindparam("project_id")
)


@dataclass(frozen=True, slots=True)
class ProjectDetail:
    """A project as listed: with its owner's name and how many repositories it holds."""

    project: Project
    owner_name: str | None
    repo_count: int


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """A project's storage quota (-1: unlimited) and the bytes of unique blobs it holds."""

    hard_bytes: int
    used_bytes: int


# Listing: the orderings ``sort=`` may ask for, and filters on the visibility-relevant facts.
SORTABLE: dict[str, Any] = {
    "name": projects.c.name,
    "project_id": projects.c.id,
    "creation_time": projects.c.created_at,
    "update_time": projects.c.updated_at,
    "owner_id": projects.c.owner_id,
}
_PUBLIC_IDS = select(project_metadata.c.project_id).where(
    project_metadata.c.name == "public", project_metadata.c.value == "true"
)


def public_is(public: bool) -> ColumnElement[bool]:
    """Projects that are (or are not) public. No ``public`` metadata means private."""
    clause = projects.c.id.in_(_PUBLIC_IDS)
    return clause if public else ~clause


def owned_by(username: str) -> ColumnElement[bool]:
    return projects.c.owner_id.in_(select(users.c.id).where(users.c.username == username))


def load_project(connection: Connection, name: str) -> Project | None:
    row = connection.execute(_BY_NAME, {"name": name}).first()
    if row is None:
        return None
    meta = {r.name: r.value for r in connection.execute(_METADATA, {"project_id": row.id})}
    return Project(int(row.id), row.name, row.owner_id, row.created_at, row.updated_at, meta)


class Projects:
    def __init__(self, db: Database, cache_ttl: float) -> None:
        self._db = db
        # Positive answers only: a project created on another replica is seen at once.
        self._by_name: LRUCache[str, Project] = LRUCache(10_000, cache_ttl)

    async def get(self, name: str) -> Project | None:
        cached = self._by_name.get(name)
        if cached is not None:
            return cached
        return await self._by_name.fetch(
            name, lambda: self._db.read(lambda c: load_project(c, name))
        )

    async def get_by_id(self, project_id: int) -> Project | None:
        query = select(projects.c.name).where(projects.c.id == project_id)
        name = await self._db.read(lambda c: c.scalar(query))
        return None if name is None else await self.get(name)

    async def public_ids(self) -> set[int]:
        query = select(project_metadata.c.project_id).where(
            project_metadata.c.name == "public", project_metadata.c.value == "true"
        )
        return set(await self._db.read(lambda c: list(c.scalars(query))))

    async def ids_of(self, names: set[str]) -> set[int]:
        """Ids of the named projects that exist; ``"*"`` among the names means all."""
        query = select(projects.c.id)
        if "*" not in names:
            query = query.where(projects.c.name.in_(sorted(names)))
        return set(await self._db.read(lambda c: list(c.scalars(query))))

    def forget(self, name: str | None = None) -> None:
        """Drop cached projects after a change (one project, or all of them)."""
        if name is None:
            self._by_name.clear()
        else:
            self._by_name.discard(name)

    @staticmethod
    def insert(
        connection: Connection,
        name: str,
        owner_id: int | None,
        metadata: Mapping[str, str],
        quota_bytes: int,
    ) -> int | None:
        """Create a project inside the caller's transaction. Returns its id, or None when a
        project of that name exists already."""
        stamp = now()
        if not insert_ignore(
            connection, projects, name=name, owner_id=owner_id, created_at=stamp, updated_at=stamp
        ):
            return None
        project_id: int = connection.execute(
            select(projects.c.id).where(projects.c.name == name)
        ).scalar_one()
        if metadata:
            connection.execute(
                project_metadata.insert(),
                [{"project_id": project_id, "name": k, "value": v} for k, v in metadata.items()],
            )
        connection.execute(
            quotas.insert(),
            {
                "project_id": project_id,
                "hard_bytes": quota_bytes,
                "created_at": stamp,
                "updated_at": stamp,
            },
        )
        return project_id

    @staticmethod
    def create_in(
        connection: Connection,
        name: str,
        owner_id: int | None,
        metadata: Mapping[str, str],
        quota_bytes: int,
    ) -> int | None:
        """:meth:`insert`, and the owner made the project's ProjectAdmin, as Harbor does for
        whoever creates a project. None when the name is taken."""
        project_id = Projects.insert(connection, name, owner_id, metadata, quota_bytes)
        if project_id is not None and owner_id is not None:
            stamp = now()
            connection.execute(
                project_members.insert(),
                {
                    "project_id": project_id,
                    "entity_id": owner_id,
                    "entity_type": "u",
                    "role": int(Role.PROJECT_ADMIN),
                    "created_at": stamp,
                    "updated_at": stamp,
                },
            )
        return project_id

    async def create(
        self, name: str, owner_id: int | None, metadata: Mapping[str, str], quota_bytes: int
    ) -> int | None:
        return await self._db.write(
            lambda c: Projects.create_in(c, name, owner_id, metadata, quota_bytes)
        )

    async def search(
        self,
        where: Sequence[ColumnElement[bool]],
        order: Sequence[tuple[str, bool]],
        offset: int,
        limit: int,
    ) -> tuple[int, list[ProjectDetail]]:
        """One page of the projects matching every condition in ``where``, and how many match
        in all. ``order`` is ``[(key of SORTABLE, descending)]``; name order by default."""
        ordering = [
            SORTABLE[key].desc() if descending else SORTABLE[key].asc() for key, descending in order
        ] or [projects.c.name.asc()]
        ordering.append(projects.c.id.asc())

        def run(connection: Connection) -> tuple[int, list[ProjectDetail]]:
            total = connection.scalar(select(func.count()).select_from(projects).where(*where))
            rows = connection.execute(
                select(
                    projects.c.id,
                    projects.c.name,
                    projects.c.owner_id,
                    projects.c.created_at,
                    projects.c.updated_at,
                    users.c.username,
                )
                .select_from(projects.outerjoin(users, users.c.id == projects.c.owner_id))
                .where(*where)
                .order_by(*ordering)
                .offset(offset)
                .limit(limit)
            ).all()
            details = _details(connection, rows)
            return int(total or 0), details

        return await self._db.read(run)

    async def detail(self, project: Project) -> ProjectDetail:
        def run(connection: Connection) -> ProjectDetail:
            owner = None
            if project.owner_id is not None:
                owner = connection.scalar(
                    select(users.c.username).where(users.c.id == project.owner_id)
                )
            return ProjectDetail(project, owner, _repo_count(connection, project.id))

        return await self._db.read(run)

    async def repo_count(self, project_id: int) -> int:
        return await self._db.read(lambda c: _repo_count(c, project_id))

    async def exists(self, name: str) -> bool:
        """Whether a project of that name exists, asked of the database (not the cache)."""
        query = select(projects.c.id).where(projects.c.name == name)
        return await self._db.read(lambda c: c.scalar(query)) is not None

    async def set_metadata(
        self, project_id: int, changes: Mapping[str, str | None], only_new: bool = False
    ) -> set[str]:
        """Set (or, for None values, remove) metadata keys and touch ``update_time``.

        With ``only_new``, nothing is written if any key is set already; the keys that are
        set are returned (Harbor answers 409 for them). Otherwise returns the keys that were
        removed but were not set."""

        def run(connection: Connection) -> set[str]:
            current = {
                r.name: r.value for r in connection.execute(_METADATA, {"project_id": project_id})
            }
            if only_new:
                taken = set(changes) & set(current)
                if taken:
                    return taken
            missing = {k for k, v in changes.items() if v is None and k not in current}
            if missing == set(changes):
                return missing  # nothing to change
            for key, value in changes.items():
                if value is None:
                    connection.execute(
                        delete(project_metadata).where(
                            project_metadata.c.project_id == project_id,
                            project_metadata.c.name == key,
                        )
                    )
                elif key in current:
                    connection.execute(
                        update(project_metadata)
                        .where(
                            project_metadata.c.project_id == project_id,
                            project_metadata.c.name == key,
                        )
                        .values(value=value)
                    )
                else:
                    connection.execute(
                        project_metadata.insert(),
                        {"project_id": project_id, "name": key, "value": value},
                    )
            connection.execute(
                update(projects).where(projects.c.id == project_id).values(updated_at=now())
            )
            return missing

        return await self._db.write(run)

    async def delete(self, project_id: int) -> bool:
        """Delete an empty project with its members, metadata, quota and project robots.
        Raises :class:`ProjectNotEmpty` while it holds repositories; False if it is gone.

        The project row is locked first (PostgreSQL), and a push creating a repository takes
        a key-share lock on it, so a repository cannot appear between the check and the
        delete and be deleted with the project."""

        def run(connection: Connection) -> bool:
            locked = connection.scalar(
                select(projects.c.id).where(projects.c.id == project_id).with_for_update()
            )
            if locked is None:
                return False
            if _repo_count(connection, project_id):
                raise ProjectNotEmpty(ProjectNotEmpty.message)
            name = connection.scalar(select(projects.c.name).where(projects.c.id == project_id))
            delete_namespace_permissions(connection, str(name))
            connection.execute(delete(projects).where(projects.c.id == project_id))
            return True

        return await self._db.write(run)

    async def quota(self, project_id: int) -> QuotaUsage:
        def run(connection: Connection) -> QuotaUsage:
            hard = connection.scalar(
                select(quotas.c.hard_bytes).where(quotas.c.project_id == project_id)
            )
            used = connection.scalar(
                select(func.coalesce(func.sum(project_blobs.c.size), 0)).where(
                    project_blobs.c.project_id == project_id
                )
            )
            return QuotaUsage(-1 if hard is None else int(hard), int(used or 0))

        return await self._db.read(run)

    async def ensure_library(self, quota_bytes: int, owner_id: int | None) -> None:
        """Create the public ``library`` project, owned by the admin, on first start, as Harbor
        does. A registry that has projects already is left alone, even if ``library`` was
        deleted."""

        def create(connection: Connection) -> None:
            if connection.scalar(select(projects.c.id).limit(1)) is None:
                Projects.insert(connection, LIBRARY, owner_id, {"public": "true"}, quota_bytes)

        await self._db.write(create)


def _repo_count(connection: Connection, project_id: int) -> int:
    query = select(func.count()).where(repositories.c.project_id == project_id)
    return int(connection.scalar(query) or 0)


def _details(connection: Connection, rows: Sequence[Any]) -> list[ProjectDetail]:
    """Projects of a listing page, with their metadata and repository counts in two queries."""
    ids = [row.id for row in rows]
    if not ids:
        return []
    metadata: dict[int, dict[str, str]] = {i: {} for i in ids}
    for meta in connection.execute(
        select(
            project_metadata.c.project_id, project_metadata.c.name, project_metadata.c.value
        ).where(project_metadata.c.project_id.in_(ids))
    ):
        metadata[meta.project_id][meta.name] = meta.value
    counts: dict[int, int] = {
        int(project_id): int(count)
        for project_id, count in connection.execute(
            select(repositories.c.project_id, func.count())
            .where(repositories.c.project_id.in_(ids))
            .group_by(repositories.c.project_id)
        )
    }
    return [
        ProjectDetail(
            Project(
                int(row.id),
                row.name,
                row.owner_id,
                row.created_at,
                row.updated_at,
                metadata[row.id],
            ),
            row.username,
            int(counts.get(row.id, 0)),
        )
        for row in rows
    ]
