"""What artifact reads show of scans: ``scan_overview`` in listings and the
``vulnerabilities`` addition. Kept apart from :mod:`.scans` (which starts and stops scans) so
the artifact routes can use it without importing the scan routes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Request

from portside.api.harbor.access import services_of
from portside.audit.log import iso8601
from portside.scanner.registrations import BUILTIN_UUID
from portside.scanner.report import ScannerInfo, scan_overview
from portside.scanner.reports import (
    INCOMPLETE,
    SBOM_REPORT,
    SUCCESS,
    VULNERABILITY_REPORT,
    ScanJob,
)

__all__ = ["scan_overviews", "shown_summary", "vulnerability_reports"]


def shown_summary(job: ScanJob) -> dict[str, Any]:
    """A job's summary as Harbor shows it: without the keys only Portside reads (the CVEs for
    the pull gate, the incomplete mark)."""
    return {k: v for k, v in (job.summary or {}).items() if k not in ("cves", INCOMPLETE)}


def _overview(job: ScanJob, builtin: ScannerInfo) -> dict[str, Any]:
    """Harbor's ``NativeReportSummary`` of one job, keyed by report type, plus the job's
    ``message`` when it did not succeed."""
    summary = shown_summary(job)
    return scan_overview(
        report_id=job.uuid,
        scan_status=job.status,
        start_time=job.start_time,
        end_time=job.end_time,
        scanner=builtin if job.registration_uuid == BUILTIN_UUID else None,
        severity=job.severity or "",
        summary=summary or None,
        mime_type=job.mime_type,
        message=job.message or "",
    )


async def scan_overviews(
    request: Request, digests: Iterable[str], *, scan: bool, sbom: bool
) -> dict[str, dict[str, Any]]:
    """``scan_overview`` and ``sbom_overview`` of each digest that has them, as fields to add
    to its artifact: two queries for a whole page, whatever its size."""
    wanted = list(digests)
    found: dict[str, dict[str, Any]] = {digest: {} for digest in wanted}
    scans = services_of(request).scans
    builtin = ScannerInfo(name="Portside", vendor="Portside", version=scans.version)
    if scan:
        for digest, job in (await scans.reports.jobs(wanted, VULNERABILITY_REPORT)).items():
            found[digest]["scan_overview"] = _overview(job, builtin)
    if sbom:
        jobs = await scans.reports.jobs(wanted, SBOM_REPORT)
        done = await scans.reports.reports(j.id for j in jobs.values() if j.status == SUCCESS)
        for digest, job in jobs.items():
            found[digest]["sbom_overview"] = _sbom_overview(job, done.get(job.id), builtin)
    return found


def _sbom_overview(
    job: ScanJob, report: dict[str, Any] | None, builtin: ScannerInfo
) -> dict[str, Any]:
    """Harbor's ``SBOMOverview``: the generation's status and times, and the digest of the
    SBOM accessory once there is one."""
    overview: dict[str, Any] = {
        "report_id": job.uuid,
        "scan_status": job.status,
        "start_time": iso8601(job.start_time) if job.start_time else None,
        "end_time": iso8601(job.end_time) if job.end_time else None,
        "duration": int((job.end_time - job.start_time).total_seconds())
        if job.start_time and job.end_time
        else 0,
        "scanner": builtin.to_json() if job.registration_uuid == BUILTIN_UUID else None,
        "sbom_digest": (report or {}).get("sbom_digest"),
    }
    return {key: value for key, value in overview.items() if value not in (None, "")}


async def vulnerability_reports(request: Request, digest: str) -> dict[str, Any]:
    """The ``vulnerabilities`` addition: each report type the caller accepts, by MIME type.
    Empty when the artifact was never scanned successfully; an incomplete scan's report is
    shown, with its ``coverage`` saying what was not checked."""
    scans = services_of(request).scans
    jobs = await scans.reports.jobs([digest], VULNERABILITY_REPORT)
    job = jobs.get(digest)
    if job is None or job.summary is None:  # no report yet
        return {}
    report = await scans.reports.report(job.id)
    return {VULNERABILITY_REPORT: report} if report is not None else {}
