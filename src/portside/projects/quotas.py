"""Per-project storage quotas: what a project stores, and refusing a push that would not fit.

**What is counted.** ``project_blobs`` holds one row per (project, digest) with the blob's size:
every blob linked into a repository of the project and every manifest pushed to one (manifests
are stored as blobs, so they count, as in Harbor). A digest counts once per project, however many
repositories hold it. Usage is ``SUM(size)`` over the project's rows.

**Why no usage counter.** A ``used_bytes`` column on the quota row would be one hot row that every
push in the project has to update, so concurrent pushes would queue behind each other's
transactions. Rows per blob are written independently; the sum is only taken where a limit must
be enforced.

**Hot path.** Most projects have no limit (``hard_bytes = -1``, the default). For them, linking a
blob adds one ``INSERT ... ON CONFLICT`` of its ``project_blobs`` row to the linking transaction
(and nothing when the repository already held the blob): the limit is cached, so there is no
query, no lock and no sum. A limit changed on another replica is seen within ``cache_ttl``.

**Limited projects and concurrency.** Several pushes may race for the last bytes of a quota.
Each one, inside the transaction that links its blob or manifest:

1. takes ``pg_advisory_xact_lock(QUOTA_LOCK_NAMESPACE, project_id)`` on PostgreSQL. An advisory
   lock instead of ``SELECT ... FOR UPDATE`` on the quota row because it locks no table row: it
   serialises only the pushes that add bytes to this one limited project, and it is released by
   the commit or rollback itself. On SQLite nothing is needed: every write transaction already
   runs on the single writer (:mod:`portside.db.engine`), one after the other;
2. reads the limit afresh and inserts its ``project_blobs`` row (a digest already counted costs
   nothing and is never refused);
3. sums the project's usage, which (READ COMMITTED: a new snapshot per statement, taken after
   the lock was granted) includes every push committed before it, and raises
   :class:`QuotaExceeded` when the sum is over the limit, rolling the whole link back.

A push is also refused earlier, before its bytes are kept, by an unlocked estimate
(:meth:`ProjectQuotas.room_for`): when an upload's declared or received bytes would not fit, the
upload is discarded mid-way. The locked check at link time is the one that decides.

**Deletes.** Unlinking a blob, deleting a manifest or a repository calls
:func:`release_unreferenced` in the same transaction: the rows of digests that no repository of
the project still references (a blob link or a manifest) are deleted. On PostgreSQL the rows are
locked first (``FOR UPDATE``) and the references counted by the next statement, so a push that
links the same digest at the same moment is either seen (the row stays) or waits and re-inserts
the row after the delete commits: usage never misses a stored blob. The push side locks an
existing row with ``ON CONFLICT DO UPDATE ... WHERE false``, which locks it without writing it.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Connection,
    Executable,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from portside.db.engine import Database
from portside.db.queries import as_utc, now
from portside.db.tables import (
    manifests,
    project_blobs,
    projects,
    quotas,
    repositories,
    repository_blobs,
    users,
)
from portside.oci.errors import ErrorCode, RegistryError
from portside.projects.projects import Projects, project_of
from portside.registry.cache import LRUCache

__all__ = [
    "MAX_HARD_BYTES",
    "QUOTA_LOCK_NAMESPACE",
    "UNLIMITED",
    "ProjectQuotas",
    "QuotaExceeded",
    "QuotaRecord",
    "Room",
    "claim_digest",
    "release_unreferenced",
]

UNLIMITED = -1
# Harbor's ceiling for a storage limit: 1024 TiB.
MAX_HARD_BYTES = 1 << 50
# First key of the two-key advisory lock ("QUOT"); the second is the project id. A namespace of
# its own keeps these locks apart from any other advisory lock on the same database.
QUOTA_LOCK_NAMESPACE = 0x51554F54
_RELEASE_BATCH = 500  # digests per statement when a repository with many blobs is deleted

SortKey = Literal["creation_time", "update_time", "hard.storage", "used.storage"]


class QuotaExceeded(RegistryError):
    """A push refused because the project's quota would be exceeded (``DENIED``, 403)."""

    def __init__(self, project: str, used: int, hard: int, needed: int, what: str) -> None:
        super().__init__(
            ErrorCode.DENIED,
            f"quota exceeded: project {project} uses {used} of {hard} bytes; {what} needs {needed}",
            detail={"project": project, "used": used, "hard": hard, "needed": needed},
        )


@dataclass(frozen=True, slots=True)
class Room:
    """An unlocked estimate of what a limited project can still take."""

    project: str
    project_id: int
    hard: int
    used: int

    @property
    def left(self) -> int:
        return max(self.hard - self.used, 0)

    def refuse(self, needed: int, what: str) -> QuotaExceeded:
        return QuotaExceeded(self.project, self.used, self.hard, needed, what)


@dataclass(frozen=True, slots=True)
class QuotaRecord:
    """A project's quota as the management API shows it (the quota id is the project id)."""

    project_id: int
    project_name: str
    owner_name: str | None
    hard: int
    used: int
    created_at: dt.datetime
    updated_at: dt.datetime


# -- statements, built once (see db.queries) ------------------------------------------------

_HARD = select(quotas.c.hard_bytes).where(quotas.c.project_id == bindparam("project_id"))
_USAGE = select(func.coalesce(func.sum(project_blobs.c.size), 0)).where(
    project_blobs.c.project_id == bindparam("project_id")
)
_COUNTED = select(literal(1)).where(
    project_blobs.c.project_id == bindparam("project_id"),
    project_blobs.c.digest == bindparam("digest"),
)
_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:namespace, :project_id)").bindparams(
    namespace=QUOTA_LOCK_NAMESPACE
)
_LOCK_ROWS = (
    select(project_blobs.c.digest)
    .where(
        project_blobs.c.project_id == bindparam("project_id"),
        project_blobs.c.digest.in_(bindparam("digests", expanding=True)),
    )
    .order_by(project_blobs.c.digest)  # one order for everyone: no deadlock between deletes
    .with_for_update()
)
_LINKED_IN_PROJECT = exists().where(
    repository_blobs.c.digest == project_blobs.c.digest,
    repositories.c.id == repository_blobs.c.repository_id,
    repositories.c.project_id == project_blobs.c.project_id,
)
_MANIFEST_IN_PROJECT = exists().where(
    manifests.c.digest == project_blobs.c.digest,
    repositories.c.id == manifests.c.repository_id,
    repositories.c.project_id == project_blobs.c.project_id,
)
_DELETE_UNREFERENCED = delete(project_blobs).where(
    project_blobs.c.project_id == bindparam("project_id"),
    project_blobs.c.digest.in_(bindparam("digests", expanding=True)),
    ~_LINKED_IN_PROJECT,
    ~_MANIFEST_IN_PROJECT,
)


@functools.cache
def _claim_statement(dialect: str) -> Executable:
    """Insert a (project, digest) row; rowcount 1 when it was not counted yet.

    On PostgreSQL an existing row is locked (``DO UPDATE ... WHERE false`` updates nothing but
    locks the row), so a concurrent :func:`release_unreferenced` cannot delete it under us.
    SQLite runs one write transaction at a time and needs no lock.
    """
    if dialect == "postgresql":
        # Here, not at the top: the PostgreSQL dialect costs ~2 MB an SQLite server never uses.
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        insert = pg_insert(project_blobs)
        statement: Executable = insert.on_conflict_do_update(
            index_elements=[project_blobs.c.project_id, project_blobs.c.digest],
            set_={"size": insert.excluded.size},
            where=false(),
        )
        return statement
    statement = sqlite_insert(project_blobs).on_conflict_do_nothing()
    return statement


def claim_digest(connection: Connection, project_id: int, digest: str, size: int) -> bool:
    """Count ``digest`` in the project (no limit checked). True when it was not counted yet."""
    statement = _claim_statement(connection.dialect.name)
    values = {"project_id": project_id, "digest": digest, "size": size, "created_at": now()}
    return bool(connection.execute(statement, values).rowcount)


def _usage(connection: Connection, project_id: int) -> int:
    return int(connection.scalar(_USAGE, {"project_id": project_id}) or 0)


def release_unreferenced(
    connection: Connection, project_id: int | None, digests: Collection[str]
) -> int:
    """Inside the caller's transaction, after it removed blob links or manifests: stop counting
    those of ``digests`` that no repository of the project references any more. Returns how many
    rows went."""
    if project_id is None or not digests:
        return 0
    wanted = sorted(set(digests))
    released = 0
    for start in range(0, len(wanted), _RELEASE_BATCH):
        params = {"project_id": project_id, "digests": wanted[start : start + _RELEASE_BATCH]}
        if connection.dialect.name == "postgresql":
            # Lock first: the DELETE below then counts references in a snapshot taken after any
            # push holding these rows has committed.
            connection.execute(_LOCK_ROWS, params).all()
        released += connection.execute(_DELETE_UNREFERENCED, params).rowcount
    return released


class ProjectQuotas:
    """Quota enforcement on the push path, and the quota records the management API shows."""

    def __init__(self, db: Database, projects: Projects, cache_ttl: float) -> None:
        self._db = db
        self._projects = projects
        # project id -> hard limit. Dropped by every local change (forget); a change on another
        # replica is seen within cache_ttl.
        self._hard: LRUCache[int, int] = LRUCache(10_000, cache_ttl)

    # -- push path ----------------------------------------------------------------------------

    def _load_hard(self, connection: Connection, project_id: int, *, remember: bool) -> int:
        found = connection.scalar(_HARD, {"project_id": project_id})
        hard = UNLIMITED if found is None else int(found)
        if remember:
            self._hard.put(project_id, hard)
        return hard

    async def room_for(self, repository: str, digest: str | None = None) -> Room | None:
        """What the project of ``repository`` can still take, or None when no limit applies to
        this push: the project has none, or ``digest`` is counted in it already.

        An unlocked estimate, to refuse early; :meth:`charge` makes the binding decision. For a
        project without a limit this costs no query once the limit is cached.
        """
        project = await self._projects.get(project_of(repository))
        if project is None:
            return None
        project_id = project.id
        hard = self._hard.get(project_id)
        if hard is None:
            hard = await self._db.read(lambda c: self._load_hard(c, project_id, remember=True))
        if hard < 0:
            return None

        def measure(connection: Connection) -> int | None:
            if digest is not None:
                counted = connection.scalar(_COUNTED, {"project_id": project_id, "digest": digest})
                if counted is not None:
                    return None
            return _usage(connection, project_id)

        used = await self._db.read(measure)
        return None if used is None else Room(project.name, project_id, hard, used)

    def charge(
        self,
        connection: Connection,
        project_id: int | None,
        repository: str,
        digest: str,
        size: int,
        what: str,
    ) -> None:
        """Count ``digest`` in the project, inside the transaction that links it. Raises
        :class:`QuotaExceeded` (the caller's transaction then rolls back) when it does not fit.

        ``what`` names the content in the refusal ("this blob", "this manifest").
        """
        if project_id is None:
            return
        # The limit as cached by room_for(), which callers ask first; what is read here is not
        # cached (a grouped SQLite commit may roll it back).
        hard = self._hard.get(project_id)
        if hard is None:
            hard = self._load_hard(connection, project_id, remember=False)
        if hard < 0:
            claim_digest(connection, project_id, digest, size)
            return
        if connection.dialect.name == "postgresql":
            connection.execute(_ADVISORY_LOCK, {"project_id": project_id})
        hard = self._load_hard(connection, project_id, remember=False)  # afresh, under the lock
        if not claim_digest(connection, project_id, digest, size) or hard < 0:
            return
        used = _usage(connection, project_id)
        if used > hard:
            raise QuotaExceeded(project_of(repository), used - size, hard, size, what)

    def forget(self, project_id: int | None = None) -> None:
        """Drop cached limits after a local change (one project, or all of them)."""
        if project_id is None:
            self._hard.clear()
        else:
            self._hard.discard(project_id)

    # -- management API -----------------------------------------------------------------------

    async def get(self, project_id: int) -> QuotaRecord | None:
        rows = await self._db.read(
            lambda c: c.execute(_records().where(quotas.c.project_id == project_id)).all()
        )
        return _record(rows[0]) if rows else None

    async def list(
        self,
        project_id: int | None,
        sort: list[tuple[SortKey, bool]],
        offset: int,
        limit: int,
    ) -> tuple[int, list[QuotaRecord]]:
        """(total, one page of quotas), newest first unless ``sort`` says otherwise; only the
        quota of ``project_id`` when it is given."""
        query = _records()
        count = select(func.count()).select_from(quotas)
        if project_id is not None:
            query = query.where(quotas.c.project_id == project_id)
            count = count.where(quotas.c.project_id == project_id)
        order: list[Any] = []
        for key, descending in sort:
            column = _sort_column(key)
            order.append(column.desc() if descending else column.asc())
        if not order:
            order.append(quotas.c.created_at.desc())
        query = query.order_by(*order, quotas.c.project_id).offset(offset).limit(limit)

        def fetch(connection: Connection) -> tuple[int, list[QuotaRecord]]:
            total = int(connection.scalar(count) or 0)
            return total, [_record(row) for row in connection.execute(query)]

        return await self._db.read(fetch)

    async def set_hard(self, project_id: int, hard: int) -> bool:
        """Change a project's limit. Returns False when the project has no quota."""
        statement = (
            update(quotas)
            .where(quotas.c.project_id == project_id)
            .values(hard_bytes=hard, updated_at=now())
        )
        changed = await self._db.write(lambda c: c.execute(statement).rowcount)
        self.forget(project_id)
        return bool(changed)


_USED_BY_PROJECT = (
    select(
        project_blobs.c.project_id.label("project_id"),
        func.sum(project_blobs.c.size).label("used"),
    )
    .group_by(project_blobs.c.project_id)
    .subquery("usage")
)


def _records() -> Any:
    used = func.coalesce(_USED_BY_PROJECT.c.used, 0).cast(BigInteger)
    return select(
        quotas.c.project_id,
        projects.c.name.label("project_name"),
        users.c.username.label("owner_name"),
        quotas.c.hard_bytes,
        used.label("used"),
        quotas.c.created_at,
        quotas.c.updated_at,
    ).select_from(
        quotas.join(projects, projects.c.id == quotas.c.project_id)
        .outerjoin(users, users.c.id == projects.c.owner_id)
        .outerjoin(_USED_BY_PROJECT, _USED_BY_PROJECT.c.project_id == quotas.c.project_id)
    )


def _sort_column(key: SortKey) -> Any:
    if key == "creation_time":
        return quotas.c.created_at
    if key == "update_time":
        return quotas.c.updated_at
    if key == "hard.storage":
        # Unlimited sorts above every limit, as in Harbor.
        return case((quotas.c.hard_bytes < 0, literal(2**63 - 1)), else_=quotas.c.hard_bytes)
    return func.coalesce(_USED_BY_PROJECT.c.used, 0)


def _record(row: Any) -> QuotaRecord:
    return QuotaRecord(
        project_id=int(row.project_id),
        project_name=row.project_name,
        owner_name=row.owner_name,
        hard=int(row.hard_bytes),
        used=int(row.used or 0),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )
