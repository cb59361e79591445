"""The pull gate's verdict cache: a scan that ends must never leave an outdated verdict behind."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterable

from portside.db.engine import Database
from portside.events import SCANNING_COMPLETED, Event, EventBus
from portside.oci import mediatypes as mt
from portside.projects.projects import Project
from portside.scanner.allowlists import Allowlists
from portside.scanner.gate import PullGate
from portside.scanner.registrations import BUILTIN_UUID, Registrations
from portside.scanner.reports import (
    ERROR,
    INCOMPLETE,
    SUCCESS,
    VULNERABILITY_REPORT,
    JobOutcome,
    ScanJob,
    ScanReports,
)

DIGEST = "sha256:" + "ab" * 32
IMAGE = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_IMAGE_CONFIG, "digest": "sha256:" + "0c" * 32, "size": 2},
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + "1a" * 32,
                "size": 9,
            }
        ],
    }
).encode()


def _guarded_project() -> Project:
    stamp = dt.datetime.now(dt.UTC)
    metadata = {"prevent_vul": "true", "severity": "high"}
    return Project(1, "guarded", None, stamp, stamp, metadata)


class _HeldReports(ScanReports):
    """Scan reports whose reads, once done, wait for the test's word before they return:
    the window in which a scan can end while the gate is still deciding."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.read = asyncio.Event()
        self.release = asyncio.Event()

    async def jobs(
        self, digests: Iterable[str], mime_type: str, registration_uuid: str | None = None
    ) -> dict[str, ScanJob]:
        found = await super().jobs(digests, mime_type, registration_uuid)
        self.read.set()
        await self.release.wait()
        return found


async def _gate(db: Database) -> tuple[PullGate, _HeldReports]:
    await Registrations(db).ensure_builtin("built in")
    reports = _HeldReports(db)
    reports.release.set()
    gate = PullGate(reports, Allowlists(db, 60), block_unscanned=True, cache_ttl=60)
    return gate, reports


async def _scanned_clean(reports: ScanReports) -> None:
    outcome = JobOutcome(SUCCESS, severity="None", summary={"cves": {}}, report={})
    await reports.record(DIGEST, "guarded/app", BUILTIN_UUID, VULNERABILITY_REPORT, outcome)


async def test_a_verdict_decided_while_a_scan_ended_is_not_kept(db: Database) -> None:
    gate, reports = await _gate(db)
    project = _guarded_project()
    reports.release.clear()
    deciding = asyncio.create_task(gate.check(project, DIGEST, mt.OCI_MANIFEST, IMAGE))
    await reports.read.wait()  # the gate has read the reports: no scan yet
    await _scanned_clean(reports)
    gate.forget()  # what the scan's end does
    reports.release.set()
    assert not (await deciding).allowed  # decided from the reports before the scan
    # The next pull must see the scan, not the verdict decided from older reports.
    assert (await gate.check(project, DIGEST, mt.OCI_MANIFEST, IMAGE)).allowed


async def test_a_finished_scan_on_the_bus_clears_cached_verdicts(db: Database) -> None:
    gate, reports = await _gate(db)
    events = EventBus()
    events.subscribe(gate.on_event)
    project = _guarded_project()
    assert not (await gate.check(project, DIGEST, mt.OCI_MANIFEST, IMAGE)).allowed
    await _scanned_clean(reports)
    assert not (await gate.check(project, DIGEST, mt.OCI_MANIFEST, IMAGE)).allowed  # cached
    await events.publish(Event(SCANNING_COMPLETED, "guarded/app", DIGEST))
    assert (await gate.check(project, DIGEST, mt.OCI_MANIFEST, IMAGE)).allowed


# -- scans the advisories did not cover ---------------------------------------------------------

MISSING = "scan incomplete: the vulnerability database has no advisories for Alpine:v3.19"


async def _scanned_incomplete(reports: ScanReports, cves: dict[str, str]) -> None:
    """What an Alpine image's scan leaves when no Alpine advisories were imported."""
    summary = {"total": len(cves), "cves": cves, INCOMPLETE: True}
    outcome = JobOutcome(ERROR, severity="None", summary=summary, report={}, message=MISSING)
    await reports.record(DIGEST, "guarded/app", BUILTIN_UUID, VULNERABILITY_REPORT, outcome)


async def test_an_image_scanned_without_its_advisories_counts_as_not_scanned(
    db: Database,
) -> None:
    gate, reports = await _gate(db)
    await _scanned_incomplete(reports, {})
    verdict = await gate.check(_guarded_project(), DIGEST, mt.OCI_MANIFEST, IMAGE)
    assert not verdict.allowed
    assert "has not been scanned successfully" in verdict.reason
    assert "Alpine:v3.19" in verdict.reason
    lenient = PullGate(reports, Allowlists(db, 60), block_unscanned=False, cache_ttl=60)
    assert (await lenient.check(_guarded_project(), DIGEST, mt.OCI_MANIFEST, IMAGE)).allowed


async def test_what_an_incomplete_scan_did_find_still_blocks(db: Database) -> None:
    await Registrations(db).ensure_builtin("built in")
    reports = ScanReports(db)
    await _scanned_incomplete(reports, {"CVE-2024-0001": "Critical"})
    lenient = PullGate(reports, Allowlists(db, 60), block_unscanned=False, cache_ttl=60)
    verdict = await lenient.check(_guarded_project(), DIGEST, mt.OCI_MANIFEST, IMAGE)
    assert not verdict.allowed
    assert "CVE-2024-0001" in verdict.reason
