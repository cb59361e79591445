"""Background scan workers: a bounded number per replica, fed from the scan_reports queue.

A push never waits for a scan: it only queues one (a row) and pokes the local workers. Workers
on other replicas find the job on their next poll. While a job runs its worker beats every few
seconds; the beat also tells it when someone stopped the job, and the job is then cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

from portside.scanner.reports import ERROR, STOPPED, JobOutcome, ScanJob, ScanReports

__all__ = ["ScanWorkers"]

log = structlog.get_logger("portside.scanner")


Runner = Callable[[ScanJob], Coroutine[Any, Any, JobOutcome]]
Listener = Callable[[ScanJob, str], Awaitable[None]]


class ScanWorkers:
    def __init__(
        self,
        reports: ScanReports,
        run: Runner,
        *,
        workers: int,
        poll_seconds: float = 2.0,
        heartbeat_seconds: float = 5.0,
        lease: dt.timedelta = dt.timedelta(minutes=2),
    ) -> None:
        self._reports = reports
        self._run = run
        self._count = workers
        self._poll = poll_seconds
        self._beat = heartbeat_seconds
        self._lease = lease
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: list[Listener] = []

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return list(self._tasks)

    def on_finish(self, listener: Listener) -> None:
        """Call ``listener(job, status)`` after each job ends (events for webhooks)."""
        self._listeners.append(listener)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"scan worker {n}") for n in range(self._count)
        ]

    def poke(self) -> None:
        """A job was queued here: wake a worker now instead of at its next poll."""
        self._wake.set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _loop(self) -> None:
        while True:
            try:
                job = await self._reports.claim(self._lease)
            except Exception:
                log.exception("could not claim a scan job; will retry")
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)
                continue
            await self._execute(job)

    async def _execute(self, job: ScanJob) -> None:
        status = ERROR
        try:
            status = await self._supervise(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scan bookkeeping failed", digest=job.digest)
        for listener in self._listeners:
            try:
                await listener(job, status)
            except Exception:
                log.exception("scan listener failed", digest=job.digest)

    async def _supervise(self, job: ScanJob) -> str:
        """Run one job to its end, beating meanwhile; returns the status it ended with."""
        work = asyncio.create_task(self._run(job), name=f"scan {job.digest}")
        try:
            while not (await asyncio.wait({work}, timeout=self._beat))[0]:
                if await self._reports.heartbeat(job.id) != "Running":
                    log.info("scan stopped", digest=job.digest)
                    return STOPPED
            try:
                outcome = work.result()
            except Exception as error:  # a scanner bug or a storage failure: the job fails
                log.exception("scan failed", digest=job.digest)
                outcome = JobOutcome(ERROR, message=f"scan failed: {error}"[:1000])
            stored = await self._reports.finish(
                job.id,
                outcome.status,
                severity=outcome.severity,
                summary=outcome.summary,
                report=outcome.report,
                message=outcome.message,
            )
            return outcome.status if stored else STOPPED
        finally:
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
