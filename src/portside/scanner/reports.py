"""Scan reports, which are also the scan job queue.

One row per (artifact digest, scanner registration, report type). Requesting a scan sets the
row to Pending; a worker on any replica claims it (Pending -> Running, a compare-and-set, so
two workers never run one job); the worker writes the outcome (Success or Error) unless the
job was stopped meanwhile. A Running job whose heartbeat is older than the lease goes back to
Pending, so a replica that died mid-scan does not leave the artifact "Running" forever.

Reports are keyed by digest, not by repository: the same bytes pushed to two repositories have
the same vulnerabilities, so they are scanned once.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, select, update

from portside.db.engine import Database
from portside.db.queries import as_utc, insert_ignore, now
from portside.db.tables import scan_reports
from portside.scanner.report import REPORT_MIME_TYPE

__all__ = [
    "ERROR",
    "INCOMPLETE",
    "PENDING",
    "RUNNING",
    "SBOM_REPORT",
    "STOPPED",
    "SUCCESS",
    "VULNERABILITY_REPORT",
    "JobOutcome",
    "ScanJob",
    "ScanReports",
]

VULNERABILITY_REPORT = REPORT_MIME_TYPE
SBOM_REPORT = "application/vnd.security.sbom.report+json; version=1.0"

PENDING, RUNNING, SUCCESS, ERROR, STOPPED = "Pending", "Running", "Success", "Error", "Stopped"
ACTIVE = (PENDING, RUNNING)
# The summary key (true) of a scan the advisories did not cover: it ended Error, but with a
# report of what it could check (see portside.scanner.coverage).
INCOMPLETE = "incomplete"


@dataclass(frozen=True)
class JobOutcome:
    """How a scan ended: a report with its summary, or a failure message."""

    status: str
    severity: str | None = None
    summary: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    message: str | None = None


@dataclass(frozen=True)
class ScanJob:
    id: int
    uuid: str
    digest: str
    repository: str
    registration_uuid: str
    mime_type: str
    status: str
    severity: str | None
    summary: dict[str, Any] | None
    message: str | None
    requested_by: str | None
    requested_at: dt.datetime
    start_time: dt.datetime | None
    end_time: dt.datetime | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> ScanJob:
        return cls(
            id=row.id,
            uuid=row.uuid,
            digest=row.digest,
            repository=row.repository,
            registration_uuid=row.registration_uuid,
            mime_type=row.mime_type,
            status=row.status,
            severity=row.severity,
            summary=json.loads(row.summary) if row.summary else None,
            message=row.message,
            requested_by=row.requested_by,
            requested_at=as_utc(row.requested_at),
            start_time=as_utc(row.start_time) if row.start_time else None,
            end_time=as_utc(row.end_time) if row.end_time else None,
        )


def _dumps(value: dict[str, Any] | None) -> str | None:
    return json.dumps(value, separators=(",", ":")) if value else None


_JOB_COLUMNS = [c for c in scan_reports.c if c.name != "report"]


class ScanReports:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def request(
        self,
        digest: str,
        repository: str,
        registration_uuid: str,
        mime_type: str,
        requested_by: str | None,
    ) -> tuple[ScanJob, bool]:
        """Queue a scan. Returns the job and whether it was queued now (False when one for
        the same digest, scanner and report type is already queued or running)."""
        key = {"digest": digest, "registration_uuid": registration_uuid, "mime_type": mime_type}

        def queue(connection: Connection) -> tuple[ScanJob, bool]:
            # The last successful result stays until a new one replaces it: the pull gate
            # and readers keep seeing it while the artifact is scanned again.
            values = {
                "uuid": str(uuid.uuid4()),
                "repository": repository,
                "status": PENDING,
                "message": None,
                "requested_by": requested_by,
                "requested_at": now(),
                "start_time": None,
                "end_time": None,
                "heartbeat_at": None,
            }
            # Insert-or-nothing first, so two replicas asking at once never collide.
            queued = insert_ignore(connection, scan_reports, **key, **values)
            if not queued:
                existing = connection.execute(
                    select(scan_reports.c.id, scan_reports.c.status)
                    .filter_by(**key)
                    .with_for_update()
                ).one()
                if existing.status not in ACTIVE:
                    connection.execute(
                        update(scan_reports)
                        .where(scan_reports.c.id == existing.id)
                        .values(**values)
                    )
                    queued = True
            row = connection.execute(select(*_JOB_COLUMNS).filter_by(**key)).one()
            return ScanJob.from_row(row), queued

        return await self._db.write(queue)

    async def claim(self, lease: dt.timedelta) -> ScanJob | None:
        """Take the oldest pending job (or one whose worker stopped beating), or None."""

        def take(connection: Connection) -> ScanJob | None:
            stamp = now()
            stale = stamp - lease
            candidates = connection.execute(
                select(scan_reports.c.id, scan_reports.c.status)
                .where(
                    (scan_reports.c.status == PENDING)
                    | ((scan_reports.c.status == RUNNING) & (scan_reports.c.heartbeat_at < stale))
                )
                .order_by(scan_reports.c.id)
                .limit(8)
            ).all()
            for candidate in candidates:
                claimed = connection.execute(
                    update(scan_reports)
                    .where(
                        scan_reports.c.id == candidate.id,
                        scan_reports.c.status == candidate.status,
                    )
                    .values(status=RUNNING, start_time=stamp, heartbeat_at=stamp)
                ).rowcount
                if claimed:
                    row = connection.execute(
                        select(*_JOB_COLUMNS).where(scan_reports.c.id == candidate.id)
                    ).one()
                    return ScanJob.from_row(row)
            return None

        return await self._db.write(take)

    async def heartbeat(self, job_id: int) -> str | None:
        """Record that the job's worker is alive; returns the job's status (Stopped means the
        worker should give up), or None when the row is gone."""

        def beat(connection: Connection) -> str | None:
            connection.execute(
                update(scan_reports)
                .where(scan_reports.c.id == job_id, scan_reports.c.status == RUNNING)
                .values(heartbeat_at=now())
            )
            status = connection.scalar(
                select(scan_reports.c.status).where(scan_reports.c.id == job_id)
            )
            return None if status is None else str(status)

        return await self._db.write(beat)

    async def finish(
        self,
        job_id: int,
        status: str,
        *,
        severity: str | None = None,
        summary: dict[str, Any] | None = None,
        report: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> bool:
        """Store a job's outcome. False when the job was stopped (or taken back) meanwhile.
        A failure keeps the previous successful result, unless it brings a report of its own
        (an incomplete scan's, which is newer than any before it)."""
        values: dict[str, Any] = {"status": status, "message": message, "end_time": now()}
        if status == SUCCESS or report is not None:
            values.update(severity=severity, summary=_dumps(summary), report=_dumps(report))

        def store(connection: Connection) -> bool:
            return bool(
                connection.execute(
                    update(scan_reports)
                    .where(scan_reports.c.id == job_id, scan_reports.c.status == RUNNING)
                    .values(**values)
                ).rowcount
            )

        return await self._db.write(store)

    async def record(
        self,
        digest: str,
        repository: str,
        registration_uuid: str,
        mime_type: str,
        outcome: JobOutcome,
    ) -> None:
        """Store a finished report that was made as part of another job (an index's
        platforms), as if its own job had run."""
        key = {"digest": digest, "registration_uuid": registration_uuid, "mime_type": mime_type}
        stamp = now()
        values = {
            "repository": repository,
            "status": outcome.status,
            "severity": outcome.severity,
            "summary": _dumps(outcome.summary),
            "report": _dumps(outcome.report),
            "message": outcome.message,
            "start_time": stamp,
            "end_time": stamp,
            "heartbeat_at": None,
        }

        def store(connection: Connection) -> None:
            changed = connection.execute(
                update(scan_reports).filter_by(**key).values(**values)
            ).rowcount
            if not changed:
                insert_ignore(
                    connection,
                    scan_reports,
                    **key,
                    **values,
                    uuid=str(uuid.uuid4()),
                    requested_by=None,
                    requested_at=stamp,
                )

        await self._db.write(store)

    async def stop(self, digests: Iterable[str], mime_type: str) -> int:
        """Stop queued or running scans of these digests; returns how many were stopped."""
        wanted = list(digests)

        def halt(connection: Connection) -> int:
            return int(
                connection.execute(
                    update(scan_reports)
                    .where(
                        scan_reports.c.digest.in_(wanted),
                        scan_reports.c.mime_type == mime_type,
                        scan_reports.c.status.in_(ACTIVE),
                    )
                    .values(status=STOPPED, end_time=now())
                ).rowcount
            )

        return await self._db.write(halt)

    async def jobs(
        self, digests: Iterable[str], mime_type: str, registration_uuid: str | None = None
    ) -> dict[str, ScanJob]:
        """The latest job of each digest for this report type (and scanner, when given)."""
        wanted = list(set(digests))
        if not wanted:
            return {}

        def read(connection: Connection) -> dict[str, ScanJob]:
            query = select(*_JOB_COLUMNS).where(
                scan_reports.c.digest.in_(wanted), scan_reports.c.mime_type == mime_type
            )
            if registration_uuid is not None:
                query = query.where(scan_reports.c.registration_uuid == registration_uuid)
            latest: dict[str, ScanJob] = {}
            for row in connection.execute(query.order_by(scan_reports.c.requested_at)):
                latest[row.digest] = ScanJob.from_row(row)
            return latest

        return await self._db.read(read)

    async def report(self, job_id: int) -> dict[str, Any] | None:
        return (await self.reports([job_id])).get(job_id)

    async def reports(self, job_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The stored reports of several jobs in one query, by job id (jobs without one are
        left out)."""
        wanted = list(set(job_ids))
        if not wanted:
            return {}
        query = select(scan_reports.c.id, scan_reports.c.report).where(
            scan_reports.c.id.in_(wanted), scan_reports.c.report.is_not(None)
        )
        rows = await self._db.read(lambda c: c.execute(query).all())
        return {row.id: json.loads(row.report) for row in rows if row.report}
