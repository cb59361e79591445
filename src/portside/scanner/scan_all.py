"""Scan-all: queue a vulnerability scan of every image in the registry, on demand or on a
schedule (Harbor's ``/system/scanAll``).

Each run queues one job per distinct image digest (platforms of an index are scanned with their
index), with each project's own scanner. Jobs already queued or running are left alone. The
schedule is a cron expression with seconds, as Harbor writes them (``0 0 0 * * *`` is daily at
midnight, UTC); every replica checks it, and a compare-and-set on the run time makes exactly
one of them run each due time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, func, select, update

from portside.db.engine import Database
from portside.db.queries import as_utc, insert_ignore, now
from portside.db.tables import (
    manifest_references,
    manifests,
    project_scanners,
    repositories,
    scan_reports,
    scanner_registrations,
    schedules,
)
from portside.oci import mediatypes as mt
from portside.scanner.reports import ACTIVE, PENDING, VULNERABILITY_REPORT

__all__ = ["SCHEDULE_TYPES", "ScanAll", "Schedule", "cron_problem"]

log = structlog.get_logger("portside.scanner")

NAME = "scan_all"
# Harbor's schedule types and the cron each stands for; Custom carries its own cron.
SCHEDULE_TYPES = {
    "None": "",
    "Hourly": "0 0 * * * *",
    "Daily": "0 0 0 * * *",
    "Weekly": "0 0 0 * * 0",
    "Custom": None,
    "Manual": "",
}
BATCH = 500
REQUESTER_PREFIX = "scan-all:"


def cron_problem(cron: str) -> str | None:
    from croniter import croniter  # with dateutil, a few MB a server without schedules skips

    if len(cron) > 128 or not croniter.is_valid(cron, second_at_beginning=True):
        return "cron must have six fields, seconds first, e.g. '0 0 2 * * *' (02:00 daily)"
    return None


@dataclass(frozen=True)
class Schedule:
    type: str
    cron: str
    last_run_at: dt.datetime | None
    updated_at: dt.datetime | None

    def next_run(self, after: dt.datetime) -> dt.datetime | None:
        if not self.cron:
            return None
        from croniter import croniter

        result: dt.datetime = croniter(self.cron, after, second_at_beginning=True).get_next(
            dt.datetime
        )
        return result


class ScanAll:
    def __init__(self, db: Database, poke: Any) -> None:
        self._db = db
        self._poke = poke
        self.last_trigger = "Manual"

    async def schedule(self) -> Schedule | None:
        row = await self._db.read(
            lambda c: c.execute(select(schedules).where(schedules.c.name == NAME)).first()
        )
        if row is None:
            return None
        return Schedule(
            row.type,
            row.cron,
            as_utc(row.last_run_at) if row.last_run_at else None,
            as_utc(row.updated_at),
        )

    async def set_schedule(self, kind: str, cron: str) -> None:
        def store(connection: Connection) -> None:
            stamp = now()
            changed = connection.execute(
                update(schedules)
                .where(schedules.c.name == NAME)
                .values(type=kind, cron=cron, updated_at=stamp, last_run_at=stamp)
            ).rowcount
            if not changed:
                connection.execute(
                    schedules.insert().values(
                        name=NAME, type=kind, cron=cron, updated_at=stamp, last_run_at=stamp
                    )
                )

        await self._db.write(store)

    async def run(self, requester: str) -> int:
        """Queue every image; returns how many jobs were queued now."""
        run_id = f"{REQUESTER_PREFIX}{uuid.uuid4()}"
        targets = await self._db.read(_targets)
        queued = 0
        for start in range(0, len(targets), BATCH):
            batch = targets[start : start + BATCH]
            queued += await self._db.write(functools.partial(_queue, batch=batch, run=run_id))
            self._poke()
        log.info("scan-all queued", jobs=queued, requester=requester)
        return queued

    async def stop(self) -> int:
        def halt(connection: Connection) -> int:
            return int(
                connection.execute(
                    update(scan_reports)
                    .where(
                        scan_reports.c.requested_by.startswith(REQUESTER_PREFIX),
                        scan_reports.c.status.in_(ACTIVE),
                    )
                    .values(status="Stopped", end_time=now())
                ).rowcount
            )

        return await self._db.write(halt)

    async def metrics(self) -> dict[str, Any]:
        """Harbor's ``Stats`` for the scans queued by scan-all runs."""

        def read(connection: Connection) -> dict[str, int]:
            rows = connection.execute(
                select(scan_reports.c.status, func.count())
                .where(scan_reports.c.requested_by.startswith(REQUESTER_PREFIX))
                .group_by(scan_reports.c.status)
            ).all()
            return {str(status): int(count) for status, count in rows}

        counts = await self._db.read(read)
        total = sum(counts.values())
        ongoing = sum(counts.get(s, 0) for s in ACTIVE)
        return {
            "total": total,
            "completed": total - ongoing,
            "metrics": counts,
            "ongoing": ongoing > 0,
            "trigger": self.last_trigger,
        }

    async def due(self, at: dt.datetime) -> bool:
        """Claim the schedule's run if one is due at ``at``: True on exactly one replica."""
        schedule = await self.schedule()
        if schedule is None or not schedule.cron or schedule.last_run_at is None:
            return False
        next_run = schedule.next_run(schedule.last_run_at)
        if next_run is None or next_run > at:
            return False
        previous = schedule.last_run_at

        def claim(connection: Connection) -> bool:
            return bool(
                connection.execute(
                    update(schedules)
                    .where(schedules.c.name == NAME, schedules.c.last_run_at == previous)
                    .values(last_run_at=at)
                ).rowcount
            )

        return await self._db.write(claim)

    async def loop(self, interval: float = 30.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if await self.due(now()):
                    self.last_trigger = "Schedule"
                    await self.run("schedule")
            except Exception:
                log.exception("scheduled scan-all failed; will retry")


def _targets(connection: Connection) -> list[tuple[str, str, int | None]]:
    """(digest, repository, project id) of each image or index to scan, once per digest,
    leaving out manifests that are platforms of an index in the same repository."""
    children = (
        select(manifest_references.c.digest)
        .join(manifests, manifests.c.id == manifest_references.c.manifest_id)
        .where(manifest_references.c.kind == "manifest")
    )
    rows = connection.execute(
        select(manifests.c.digest, repositories.c.name, repositories.c.project_id)
        .join(repositories, repositories.c.id == manifests.c.repository_id)
        .where(
            manifests.c.media_type.in_(sorted(mt.MANIFESTS)),
            manifests.c.digest.not_in(children),
        )
        .order_by(manifests.c.id)
    ).all()
    seen: set[str] = set()
    targets = []
    for digest, name, project_id in rows:
        if digest not in seen:
            seen.add(digest)
            targets.append((digest, name, project_id))
    return targets


def _queue(connection: Connection, batch: Iterable[tuple[str, str, int | None]], run: str) -> int:
    default = connection.scalar(
        select(scanner_registrations.c.uuid).where(
            scanner_registrations.c.is_default, ~scanner_registrations.c.disabled
        )
    )
    chosen = {
        row.project_id: row.registration_uuid
        for row in connection.execute(
            select(project_scanners.c.project_id, project_scanners.c.registration_uuid)
            .join(
                scanner_registrations,
                scanner_registrations.c.uuid == project_scanners.c.registration_uuid,
            )
            .where(~scanner_registrations.c.disabled)
        )
    }
    queued = 0
    stamp = now()
    for digest, repository, project_id in batch:
        registration = chosen.get(project_id, default)
        if registration is None:
            continue
        key = {
            "digest": digest,
            "registration_uuid": registration,
            "mime_type": VULNERABILITY_REPORT,
        }
        values = {
            "uuid": str(uuid.uuid4()),
            "repository": repository,
            "status": PENDING,
            "requested_by": run,
            "requested_at": stamp,
            "message": None,
            "start_time": None,
            "end_time": None,
            "heartbeat_at": None,
        }
        if insert_ignore(connection, scan_reports, **key, **values):
            queued += 1
            continue
        queued += connection.execute(
            update(scan_reports)
            .filter_by(**key)
            .where(scan_reports.c.status.not_in(ACTIVE))
            .values(**values)
        ).rowcount
    return queued
