"""The scan job queue on a real database: claims, leases, stops, outcomes; scheduled
scan-all claimed by exactly one replica; workers that stop a job when asked."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import update

from portside.db.engine import Database
from portside.db.tables import scan_reports, schedules
from portside.scanner.jobs import ScanWorkers
from portside.scanner.reports import (
    ERROR,
    RUNNING,
    STOPPED,
    SUCCESS,
    VULNERABILITY_REPORT,
    JobOutcome,
    ScanJob,
    ScanReports,
)
from portside.scanner.scan_all import ScanAll

LEASE = dt.timedelta(minutes=2)
REGISTRATION = "00000000-0000-0000-0000-00000000000a"


async def _queue(reports: ScanReports, digest: str = "sha256:" + "a" * 64) -> ScanJob:
    job, queued = await reports.request(digest, "p/r", REGISTRATION, VULNERABILITY_REPORT, "me")
    assert queued
    return job


async def test_a_job_is_claimed_once_even_by_racing_workers(db: Database) -> None:
    reports = ScanReports(db)
    await _queue(reports)
    claims = await asyncio.gather(*(reports.claim(LEASE) for _ in range(6)))
    assert len([c for c in claims if c is not None]) == 1
    assert await reports.claim(LEASE) is None


async def test_requesting_an_active_scan_again_queues_nothing(db: Database) -> None:
    reports = ScanReports(db)
    first = await _queue(reports)
    again, queued = await reports.request(
        first.digest, "p/r", REGISTRATION, VULNERABILITY_REPORT, "you"
    )
    assert not queued
    assert again.uuid == first.uuid


async def test_a_stale_running_job_is_taken_back(db: Database) -> None:
    reports = ScanReports(db)
    await _queue(reports)
    claimed = await reports.claim(LEASE)
    assert claimed is not None
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    await db.write(
        lambda c: c.execute(
            update(scan_reports).where(scan_reports.c.id == claimed.id).values(heartbeat_at=old)
        )
    )
    again = await reports.claim(LEASE)
    assert again is not None and again.id == claimed.id and again.status == RUNNING


async def test_a_failure_keeps_the_last_good_report(db: Database) -> None:
    reports = ScanReports(db)
    job = await _queue(reports)
    assert await reports.claim(LEASE) is not None
    good = {"total": 1, "fixable": 0, "summary": {"High": 1}, "cves": {"CVE-1": "High"}}
    assert await reports.finish(job.id, SUCCESS, severity="High", summary=good, report={"x": 1})
    await reports.request(job.digest, "p/r", REGISTRATION, VULNERABILITY_REPORT, "me")
    assert await reports.claim(LEASE) is not None
    assert await reports.finish(job.id, ERROR, message="boom")
    latest = (await reports.jobs([job.digest], VULNERABILITY_REPORT))[job.digest]
    assert latest.status == ERROR
    assert latest.summary == good
    assert await reports.report(job.id) == {"x": 1}


async def test_a_stopped_job_cannot_be_finished(db: Database) -> None:
    reports = ScanReports(db)
    job = await _queue(reports)
    assert await reports.claim(LEASE) is not None
    assert await reports.stop([job.digest], VULNERABILITY_REPORT) == 1
    assert not await reports.finish(job.id, SUCCESS, summary={"total": 0}, report={"x": 1})
    latest = (await reports.jobs([job.digest], VULNERABILITY_REPORT))[job.digest]
    assert latest.status == STOPPED
    assert await reports.stop([job.digest], VULNERABILITY_REPORT) == 0


async def test_workers_run_jobs_and_cancel_stopped_ones(db: Database) -> None:
    reports = ScanReports(db)
    started = asyncio.Event()
    cancelled = asyncio.Event()
    ended: list[tuple[str, str]] = []

    async def run(job: ScanJob) -> JobOutcome:
        if job.digest.endswith("b"):
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return JobOutcome(SUCCESS, severity="None", summary={"total": 0}, report={"ok": True})

    async def finished(job: ScanJob, status: str) -> None:
        ended.append((job.digest[-1], status))

    workers = ScanWorkers(reports, run, workers=2, poll_seconds=0.05, heartbeat_seconds=0.05)
    workers.on_finish(finished)
    workers.start()
    try:
        await _queue(reports, "sha256:" + "a" * 64)
        slow = await _queue(reports, "sha256:" + "b" * 64)
        workers.poke()
        await asyncio.wait_for(started.wait(), 10)
        await reports.stop([slow.digest], VULNERABILITY_REPORT)
        await asyncio.wait_for(cancelled.wait(), 10)
        for _ in range(100):
            if len(ended) == 2:
                break
            await asyncio.sleep(0.05)
        assert sorted(ended) == [("a", SUCCESS), ("b", STOPPED)]
    finally:
        await workers.close()
    statuses = await reports.jobs(["sha256:" + "a" * 64], VULNERABILITY_REPORT)
    assert statuses["sha256:" + "a" * 64].status == SUCCESS


async def test_a_due_schedule_runs_on_exactly_one_replica(db: Database) -> None:
    replicas = [ScanAll(db, lambda: None) for _ in range(4)]
    await replicas[0].set_schedule("Custom", "*/5 * * * * *")
    stamp = dt.datetime(2026, 1, 1, 0, 0, 1, tzinfo=dt.UTC)
    await db.write(lambda c: c.execute(update(schedules).values(last_run_at=stamp)))
    assert not await replicas[0].due(stamp + dt.timedelta(seconds=2))  # next run at :05
    at = stamp + dt.timedelta(seconds=6)
    claimed = await asyncio.gather(*(replica.due(at) for replica in replicas))
    assert claimed.count(True) == 1
    assert not await replicas[1].due(at + dt.timedelta(seconds=1))  # next one at :10
    assert await replicas[2].due(at + dt.timedelta(seconds=5))


async def test_no_schedule_never_runs(db: Database) -> None:
    scan_all = ScanAll(db, lambda: None)
    assert not await scan_all.due(dt.datetime.now(dt.UTC))
    await scan_all.set_schedule("None", "")
    assert not await scan_all.due(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
