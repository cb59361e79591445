"""What artifact reads show of scans: ``scan_overview`` in listings and the
``vulnerabilities`` addition. Kept apart from :mod:`.scans` (which starts and stops scans) so
the artifact routes can use it without importing the scan routes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Request

from portside.api.harbor.access import services_of
from portside.scanner.registrations import BUILTIN_UUID
from portside.scanner.report import ScannerInfo, scan_overview
from portside.scanner.reports import VULNERABILITY_REPORT, ScanJob

__all__ = ["scan_overviews", "vulnerability_reports"]


def _overview(job: ScanJob, builtin: ScannerInfo) -> dict[str, Any]:
    """Harbor's ``NativeReportSummary`` of one job, keyed by report type."""
    summary = {k: v for k, v in (job.summary or {}).items() if k != "cves"}
    return scan_overview(
        report_id=job.uuid,
        scan_status=job.status,
        start_time=job.start_time,
        end_time=job.end_time,
        scanner=builtin if job.registration_uuid == BUILTIN_UUID else None,
        severity=job.severity or "",
        summary=summary or None,
        mime_type=job.mime_type,
    )


async def scan_overviews(request: Request, digests: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``scan_overview`` of each digest that was ever scanned, keyed by digest."""
    scans = services_of(request).scans
    jobs = await scans.reports.jobs(digests, VULNERABILITY_REPORT)
    builtin = ScannerInfo(name="Portside", vendor="Portside", version=scans.version)
    return {digest: _overview(job, builtin) for digest, job in jobs.items()}


async def vulnerability_reports(request: Request, digest: str) -> dict[str, Any]:
    """The ``vulnerabilities`` addition: each report type the caller accepts, by MIME type.
    Empty when the artifact was never scanned successfully."""
    scans = services_of(request).scans
    jobs = await scans.reports.jobs([digest], VULNERABILITY_REPORT)
    job = jobs.get(digest)
    if job is None or job.summary is None:  # never scanned successfully
        return {}
    report = await scans.reports.report(job.id)
    return {VULNERABILITY_REPORT: report} if report is not None else {}
