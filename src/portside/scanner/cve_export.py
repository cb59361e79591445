"""CVE export: Harbor's scan data export, a CSV of the vulnerabilities in chosen projects.

An export runs in the background on the replica that was asked (Harbor runs it as a job):

1. the repositories of the requested projects are narrowed by the repository pattern (matched
   against the name without its project, as Harbor's ``repoMatches`` selector does);
2. their artifacts by the tag pattern and the labels. As in Harbor
   (src/pkg/scan/export/filter_processor.go), an untagged artifact passes the tag filter and
   an artifact passes the label filter with any one of the labels. A platform of an index
   carries the index's tags and labels, and an index whose platforms have reports of their
   own is represented by them (its own report repeats their findings);
3. the latest successful vulnerability report of each artifact gives one row per item, kept
   when its CVE id matches the CVE pattern; the Scanner column is the registration's name.

The CSV is streamed to storage, never held whole in memory. Nothing matched: no file, and
status text "No vulnerabilities found or matched", as in Harbor. Bounds: one export per user
at a time, :data:`MAX_CONCURRENT` per replica, :data:`MAX_ROWS` rows and :data:`TIMEOUT`;
an export that goes past them ends in Error. Each user keeps their :data:`KEEP_PER_USER`
latest executions (and files); older ones are dropped when a new export starts. An execution
left Running by a replica that stopped is turned into Error, once past :data:`TIMEOUT`, when
its user starts another.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Connection, delete, insert, select, update

from portside.db.engine import Database
from portside.db.queries import as_utc, now
from portside.db.tables import (
    artifact_labels,
    cve_exports,
    manifest_references,
    manifests,
    repositories,
    scan_reports,
    tags,
)
from portside.oci import mediatypes as mt
from portside.scanner.globs import Glob, GlobError, compile_glob
from portside.scanner.registrations import Registrations
from portside.scanner.report import csv_export, csv_rows
from portside.scanner.reports import VULNERABILITY_REPORT
from portside.storage.base import StorageDriver, Writer
from portside.storage.layout import export_path

__all__ = [
    "ERROR",
    "KEEP_PER_USER",
    "MAX_ROWS",
    "RUNNING",
    "SUCCESS",
    "CveExports",
    "Execution",
    "ExportBusy",
    "ExportCriteria",
    "InvalidCriteria",
    "Owner",
]

log = structlog.get_logger("portside.scanner.cve_export")

RUNNING, SUCCESS, ERROR = "Running", "Success", "Error"
TRIGGER = "MANUAL"  # Harbor's task.ExecutionTriggerManual
NOTHING_MATCHED = "No vulnerabilities found or matched"
MAX_ROWS = 1_000_000
MAX_CONCURRENT = 2
KEEP_PER_USER = 10
TIMEOUT = dt.timedelta(minutes=30)
_REPORT_BATCH = 16  # digests whose reports are read at once: reports can be megabytes each
_HEADER = csv_export(())
_STOPPED = "the server stopped during the export"


class InvalidCriteria(ValueError):
    """A filter of the request cannot be used (a malformed pattern)."""


class ExportBusy(Exception):
    """The user already has an export running."""


class _TooLarge(Exception):
    pass


@dataclass(frozen=True)
class Owner:
    """Who ran an export: a user or a robot (``user_id`` is then the robot's id)."""

    user_id: int
    user_name: str


@dataclass(frozen=True)
class ExportCriteria:
    """Harbor's ``ScanDataExportRequest``, validated. Empty patterns match everything."""

    project_ids: tuple[int, ...]
    repositories: Glob
    tags: Glob
    cve_ids: Glob
    label_ids: frozenset[int] = field(default_factory=frozenset)
    job_name: str = ""

    @classmethod
    def parse(
        cls,
        project_ids: Iterable[int],
        *,
        repositories: str = "",
        tags: str = "",
        cve_ids: str = "",
        label_ids: Iterable[int] = (),
        job_name: str = "",
    ) -> ExportCriteria:
        """Raises :class:`InvalidCriteria` naming the bad filter."""
        globs = {}
        for name, pattern in (("repositories", repositories), ("tags", tags), ("cveIds", cve_ids)):
            try:
                globs[name] = compile_glob(pattern)
            except GlobError as error:
                raise InvalidCriteria(f"{name}: {error}") from None
        return cls(
            project_ids=tuple(dict.fromkeys(project_ids)),
            repositories=globs["repositories"],
            tags=globs["tags"],
            cve_ids=globs["cveIds"],
            label_ids=frozenset(label_ids),
            job_name=job_name,
        )


@dataclass(frozen=True)
class Execution:
    id: int
    uuid: str
    user_id: int
    user_name: str
    job_name: str
    status: str
    status_text: str
    trigger: str
    start_time: dt.datetime
    end_time: dt.datetime | None
    file_size: int | None
    project_ids: tuple[int, ...]

    @property
    def file_present(self) -> bool:
        return self.status == SUCCESS and self.file_size is not None

    def owned_by(self, owner: Owner) -> bool:
        return (self.user_id, self.user_name) == (owner.user_id, owner.user_name)

    @classmethod
    def from_row(cls, row: Any) -> Execution:
        try:
            ids = tuple(int(i) for i in json.loads(row.project_ids))
        except (ValueError, TypeError):
            ids = ()
        return cls(
            id=row.id,
            uuid=row.uuid,
            user_id=row.user_id,
            user_name=row.user_name,
            job_name=row.job_name,
            status=row.status,
            status_text=row.status_text,
            trigger=row.trigger,
            start_time=as_utc(row.start_time),
            end_time=as_utc(row.end_time) if row.end_time else None,
            file_size=row.file_size,
            project_ids=ids,
        )


@dataclass
class _Artifact:
    digest: str
    is_index: bool
    tags: set[str] = field(default_factory=set)
    labels: set[int] = field(default_factory=set)
    children: list[str] = field(default_factory=list)


class CveExports:
    def __init__(self, db: Database, storage: StorageDriver, registrations: Registrations) -> None:
        self._db = db
        self._storage = storage
        self._registrations = registrations
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        self._starting = asyncio.Lock()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self.max_rows = MAX_ROWS

    # -- executions -----------------------------------------------------------------------------

    async def start(self, owner: Owner, criteria: ExportCriteria) -> Execution:
        """Record a Running execution and start it. Raises :class:`ExportBusy`."""
        async with self._starting:  # one check-and-insert at a time on this replica
            execution, dropped = await self._db.write(lambda c: self._insert(c, owner, criteria))
        for old in dropped:
            await self._delete_file(old)
        task = asyncio.create_task(self._run(execution, criteria))
        self._tasks[execution.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(execution.id, None))
        return execution

    def _insert(
        self, connection: Connection, owner: Owner, criteria: ExportCriteria
    ) -> tuple[Execution, list[str]]:
        stamp = now()
        mine = cve_exports.c.user_name == owner.user_name
        # A Running execution past the timeout belongs to a replica that stopped.
        connection.execute(
            update(cve_exports)
            .where(
                mine, cve_exports.c.status == RUNNING, cve_exports.c.start_time < stamp - TIMEOUT
            )
            .values(status=ERROR, status_text="the export was interrupted", end_time=stamp)
        )
        if connection.scalar(select(cve_exports.c.id).where(mine, cve_exports.c.status == RUNNING)):
            raise ExportBusy
        values = {
            "uuid": str(uuid.uuid4()),
            "user_id": owner.user_id,
            "user_name": owner.user_name,
            "job_name": criteria.job_name,
            "status": RUNNING,
            "status_text": "",
            "trigger": TRIGGER,
            "start_time": stamp,
            "project_ids": json.dumps(list(criteria.project_ids)),
        }
        connection.execute(insert(cve_exports).values(**values))
        row = connection.execute(select(cve_exports).filter_by(uuid=values["uuid"])).one()
        old = connection.execute(
            select(cve_exports.c.id, cve_exports.c.uuid)
            .where(mine)
            .order_by(cve_exports.c.id.desc())
            .offset(KEEP_PER_USER)
        ).all()
        if old:
            connection.execute(delete(cve_exports).where(cve_exports.c.id.in_([o.id for o in old])))
        return Execution.from_row(row), [o.uuid for o in old]

    async def get(self, execution_id: int) -> Execution | None:
        row = await self._db.read(
            lambda c: c.execute(select(cve_exports).filter_by(id=execution_id)).one_or_none()
        )
        return Execution.from_row(row) if row is not None else None

    async def list(self, owner: Owner) -> list[Execution]:
        """The owner's executions, newest first."""
        rows = await self._db.read(
            lambda c: c.execute(
                select(cve_exports)
                .filter_by(user_name=owner.user_name, user_id=owner.user_id)
                .order_by(cve_exports.c.id.desc())
            ).all()
        )
        return [Execution.from_row(row) for row in rows]

    async def content(self, execution: Execution) -> AsyncIterator[bytes | memoryview]:
        """The CSV's bytes. Raises :class:`PathNotFound` (on first iteration) when gone."""
        async for chunk in self._storage.reader(export_path(uuid.UUID(execution.uuid))):
            yield chunk

    async def close(self) -> None:
        """Stop running exports; they end in Error, their partial files are discarded."""
        running = dict(self._tasks)
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
        for execution_id in running:  # a task cancelled before it began never ran its handler
            await self._finish(execution_id, ERROR, _STOPPED, None)

    async def _delete_file(self, execution_uuid: str) -> None:
        try:
            await self._storage.delete(export_path(uuid.UUID(execution_uuid)))
        except Exception:  # an orphan file is harmless: its row is gone
            log.warning("failed to delete an old cve export file", uuid=execution_uuid)

    async def _finish(self, execution_id: int, status: str, text: str, size: int | None) -> None:
        values = {"status": status, "status_text": text, "end_time": now(), "file_size": size}
        await self._db.write(
            lambda c: c.execute(
                update(cve_exports)
                .where(cve_exports.c.id == execution_id, cve_exports.c.status == RUNNING)
                .values(**values)
            )
        )

    # -- the export itself ----------------------------------------------------------------------

    async def _run(self, execution: Execution, criteria: ExportCriteria) -> None:
        key = export_path(uuid.UUID(execution.uuid))
        writer: Writer | None = None
        try:
            async with self._slots, asyncio.timeout(TIMEOUT.total_seconds()):
                writer = await self._storage.writer(key)
                rows = await self._write(writer, criteria)
                if rows:
                    await writer.commit()
                else:
                    await writer.cancel()
            await self._finish(
                execution.id,
                SUCCESS,
                "" if rows else NOTHING_MATCHED,
                writer.size if rows else None,
            )
            log.info("cve export finished", execution_id=execution.id, rows=rows)
        except BaseException as error:
            if writer is not None:
                await asyncio.shield(writer.cancel())
            text = _failure(error, self.max_rows)
            await asyncio.shield(self._finish(execution.id, ERROR, text, None))
            log.warning(
                "cve export failed", execution_id=execution.id, reason=text, error=repr(error)
            )
            if not isinstance(error, Exception):
                raise

    async def _write(self, writer: Writer, criteria: ExportCriteria) -> int:
        scanners = {r.uuid: r.name for r in await self._registrations.list()}
        written = 0
        repos = await self._db.read(lambda c: _repositories(c, criteria.project_ids))
        for repository_id, name in repos:
            if not criteria.repositories.matches(name.partition("/")[2]):
                continue
            digests = await self._db.read(
                partial(_selected, repository_id=repository_id, criteria=criteria)
            )
            for start in range(0, len(digests), _REPORT_BATCH):
                batch = digests[start : start + _REPORT_BATCH]
                reports = await self._db.read(partial(_latest_reports, digests=batch))
                rows = [
                    row
                    for digest in batch
                    if digest in reports
                    for row in csv_rows(
                        reports[digest][1],
                        repository=name,
                        artifact_digest=digest,
                        scanner_name=scanners.get(reports[digest][0], ""),
                    )
                    if criteria.cve_ids.matches(row[2])
                ]
                if not rows:
                    continue
                if written + len(rows) > self.max_rows:
                    raise _TooLarge
                text = csv_export(rows)
                await writer.write((text if written == 0 else text[len(_HEADER) :]).encode())
                written += len(rows)
        return written


def _failure(error: BaseException, max_rows: int) -> str:
    if isinstance(error, _TooLarge):
        return f"the export has more than {max_rows} rows: narrow it down with filters"
    if isinstance(error, TimeoutError):
        return f"the export took longer than {int(TIMEOUT.total_seconds() // 60)} minutes"
    if isinstance(error, asyncio.CancelledError):
        return _STOPPED
    return "the export failed; the server log has the details"


def _repositories(connection: Connection, project_ids: Sequence[int]) -> list[tuple[int, str]]:
    rows = connection.execute(
        select(repositories.c.id, repositories.c.name)
        .where(repositories.c.project_id.in_(list(project_ids)))
        .order_by(repositories.c.name)
    ).all()
    return [(row.id, row.name) for row in rows]


def _selected(connection: Connection, repository_id: int, criteria: ExportCriteria) -> list[str]:
    """Digests of the repository's artifacts that pass the tag and label filters, with each
    index replaced by its platforms when those have reports."""
    in_repository = manifests.c.repository_id == repository_id
    artifacts: dict[int, _Artifact] = {
        row.id: _Artifact(row.digest, row.media_type in mt.INDEXES)
        for row in connection.execute(
            select(manifests.c.id, manifests.c.digest, manifests.c.media_type).where(in_repository)
        )
    }
    by_digest = {a.digest: a for a in artifacts.values()}
    for row in connection.execute(
        select(tags.c.manifest_id, tags.c.name).where(tags.c.repository_id == repository_id)
    ):
        if row.manifest_id in artifacts:
            artifacts[row.manifest_id].tags.add(row.name)
    if criteria.label_ids:
        labelled = select(artifact_labels.c.manifest_id, artifact_labels.c.label_id).join(
            manifests, manifests.c.id == artifact_labels.c.manifest_id
        )
        for row in connection.execute(labelled.where(in_repository)):
            if row.manifest_id in artifacts:  # each query is its own snapshot on SQLite
                artifacts[row.manifest_id].labels.add(row.label_id)
    children = select(manifest_references.c.manifest_id, manifest_references.c.digest).join(
        manifests, manifests.c.id == manifest_references.c.manifest_id
    )
    for row in connection.execute(
        children.where(in_repository, manifest_references.c.kind == "manifest")
    ):
        parent, child = artifacts.get(row.manifest_id), by_digest.get(row.digest)
        if parent is not None and child is not None:
            parent.children.append(child.digest)
    for parent in artifacts.values():  # platforms carry their index's tags and labels
        for digest in parent.children:
            by_digest[digest].tags |= parent.tags
            by_digest[digest].labels |= parent.labels
    chosen = [
        a
        for a in artifacts.values()
        if (not a.tags or any(criteria.tags.matches(t) for t in a.tags))
        and (not criteria.label_ids or a.labels & criteria.label_ids)
    ]
    with_reports = _reported(connection, [a.digest for a in chosen])
    digests = {
        a.digest
        for a in chosen
        if a.digest in with_reports
        and not (a.is_index and any(c in with_reports for c in a.children))
    }
    return sorted(digests)


def _reported(connection: Connection, digests: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(digests), 500):
        found.update(
            connection.scalars(
                select(scan_reports.c.digest).where(
                    scan_reports.c.digest.in_(digests[start : start + 500]),
                    scan_reports.c.mime_type == VULNERABILITY_REPORT,
                    scan_reports.c.report.is_not(None),
                )
            )
        )
    return found


def _latest_reports(
    connection: Connection, digests: list[str]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each digest's latest successful report (any scanner) with its registration's uuid.
    A report that does not parse is skipped."""
    rows = connection.execute(
        select(
            scan_reports.c.digest,
            scan_reports.c.registration_uuid,
            scan_reports.c.end_time,
            scan_reports.c.report,
        ).where(
            scan_reports.c.digest.in_(digests),
            scan_reports.c.mime_type == VULNERABILITY_REPORT,
            scan_reports.c.report.is_not(None),
        )
    ).all()
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    rows = sorted(rows, key=lambda r: as_utc(r.end_time) if r.end_time else epoch)
    latest: dict[str, tuple[str, dict[str, Any]]] = {}
    for row in rows:
        try:
            report = json.loads(row.report)
        except ValueError:
            log.debug("skipping an unreadable report", digest=row.digest)
            continue
        if isinstance(report, dict):
            latest[row.digest] = (row.registration_uuid, report)
    return latest
