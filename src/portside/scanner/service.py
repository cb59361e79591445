"""Scans: what the API and the registry call. Queues scans, runs them in the background
workers, and answers what is known about an artifact's vulnerabilities.

A scan job scans one artifact digest with one scanner registration:

- the built-in scanner reads the layers straight from storage (:mod:`.engine`);
- an external adapter is asked over Harbor's pluggable scanner API (:mod:`.adapter_client`),
  and pulls the artifact itself with a short-lived credential for just that artifact.

An index is scanned platform by platform, and its report lists the findings of them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from portside.auth.tokens import TokenService
from portside.config import Settings
from portside.db.engine import Database
from portside.events import (
    SCANNING_COMPLETED,
    SCANNING_FAILED,
    SCANNING_STOPPED,
    Event,
    EventBus,
)
from portside.oci import mediatypes as mt
from portside.oci.digest import parse_digest
from portside.projects.projects import Projects, project_of
from portside.registry.blobs import Blobs
from portside.registry.manifests import Manifests, Reference
from portside.scanner.adapter_api import AdapterError
from portside.scanner.analyses import LayerAnalyses
from portside.scanner.coverage import IMPORT_HINT, Coverage
from portside.scanner.engine import (
    ImageScanner,
    Layer,
    OpenBlob,
    UnsupportedArtifact,
    layers_of,
)
from portside.scanner.image import ImageContents
from portside.scanner.jobs import ScanWorkers
from portside.scanner.model import Finding, LayerError, LayerResult, Severity
from portside.scanner.registrations import Registration, Registrations
from portside.scanner.report import ScannerInfo, harbor_report, item_severity
from portside.scanner.report import summarize as report_summary
from portside.scanner.reports import (
    ERROR,
    INCOMPLETE,
    SBOM_REPORT,
    SUCCESS,
    VULNERABILITY_REPORT,
    JobOutcome,
    ScanJob,
    ScanReports,
)
from portside.scanner.sbom import (
    CYCLONEDX_MEDIA_TYPE,
    SPDX_MEDIA_TYPE,
    SbomSubject,
    cyclonedx_document,
    spdx_document,
)
from portside.scanner.sboms import SbomAccessories
from portside.scanner.scan_all import ScanAll
from portside.scanner.vulndb import VulnDB
from portside.storage.base import StorageDriver
from portside.storage.layout import blob_path

__all__ = ["IncompleteScan", "ScanUnavailable", "Scans", "summarize"]

log = structlog.get_logger("portside.scanner")

MAX_INDEX_CHILDREN = 64
EXTERNAL_TOKEN_SECONDS = 1800  # an external scan's pull token lives as long as we wait for it


@dataclass(frozen=True)
class ImageManifest:
    digest: str
    media_type: str
    raw: bytes
    layers: list[Layer]


class ScanUnavailable(Exception):
    """No enabled scanner serves this project."""


class IncompleteScan(Exception):
    """The vulnerability database does not cover the image; the message says what is missing
    and how to import it."""


def summarize(vulnerabilities: Sequence[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Harbor's overall severity and summary of a report's findings, plus ``cves`` (id ->
    highest severity), which the pull gate and allowlists need and listings never show."""
    severity, summary = report_summary(vulnerabilities)
    cves: dict[str, str] = {}
    for item in vulnerabilities:
        cve = str(item.get("id") or "")
        rated = item_severity(str(item.get("severity", "")))
        if cve and Severity.rank(rated) >= Severity.rank(cves.get(cve, Severity.NONE)):
            cves[cve] = rated
    return severity, {**summary, "cves": cves}


class Scans:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        storage: StorageDriver,
        manifests: Manifests,
        projects: Projects,
        vulndb: VulnDB,
        tokens: TokenService,
        blobs: Blobs,
        events: EventBus,
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._storage = storage
        self._manifests = manifests
        self._projects = projects
        self.vulndb = vulndb
        self.reports = ScanReports(db)
        self.registrations = Registrations(db)
        self.analyses = LayerAnalyses(db, self._analyze_layer, settings.scanner.layer_cache_entries)
        self.engine = ImageScanner(self.analyses, vulndb)
        # Layers pulled from other registries: analysed apart from ours (see LayerAnalyses).
        self._remote_engine = ImageScanner(
            LayerAnalyses(None, self._analyze_layer, settings.scanner.layer_cache_entries),
            vulndb,
        )
        self.version = _version()
        self.workers = ScanWorkers(self.reports, self._run, workers=settings.scanner.workers)
        self.events = events
        self.workers.on_finish(self._announce)
        self.scan_all = ScanAll(db, self.workers.poke)
        self.sboms = SbomAccessories(db, storage, blobs, manifests)
        self._schedule: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def _announce(self, job: ScanJob, status: str) -> None:
        """Publish how a job ended (stops are announced by :meth:`stop`, which sees queued
        jobs too)."""
        kind = {SUCCESS: SCANNING_COMPLETED, ERROR: SCANNING_FAILED}.get(status)
        if kind is not None:
            await self.events.publish(
                Event(
                    kind,
                    job.repository,
                    job.digest,
                    job.requested_by or "",
                    {"report_type": job.mime_type},
                )
            )

    async def stop(self, repository: str, digest: str, mime_type: str, operator: str) -> int:
        """Stop queued or running scans of ``digest``; returns how many were stopped."""
        stopped = await self.reports.stop([digest], mime_type)
        if stopped:
            await self.events.publish(
                Event(SCANNING_STOPPED, repository, digest, operator, {"report_type": mime_type})
            )
        return stopped

    async def start(self) -> None:
        await self.registrations.ensure_builtin(
            "Portside's built-in scanner: offline, from the imported vulnerability database"
        )
        if not await self.vulndb.ecosystems():
            # Every scan by the built-in scanner would end incomplete: say so, and what to do.
            log.warning(
                "the vulnerability database is empty: the built-in scanner can check nothing "
                f"until advisories are imported; {IMPORT_HINT} (see docs/scanning.md)"
            )
        self.workers.start()
        self._schedule = asyncio.create_task(self.scan_all.loop(), name="scan-all schedule")

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The background loops, for the health check."""
        return [*self.workers.tasks, *([self._schedule] if self._schedule else [])]

    async def close(self) -> None:
        if self._schedule is not None:
            self._schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._schedule
            self._schedule = None
        await self.workers.close()

    # -- queueing ------------------------------------------------------------------------------

    async def request(
        self, repository: str, digest: str, mime_type: str, requested_by: str | None
    ) -> ScanJob:
        """Queue a scan of ``digest`` (held by ``repository``) with its project's scanner.

        Raises :class:`ScanUnavailable` when no enabled scanner serves the project, and
        :class:`UnsupportedArtifact` for artifacts that are not images."""
        project = await self._projects.get(project_of(repository))
        if project is None:
            raise ScanUnavailable("the project no longer exists")
        registration = await self.registrations.for_project(project.id)
        if registration is None or registration.disabled:
            raise ScanUnavailable("no enabled scanner is configured for this project")
        await self._check_scannable(digest)
        job, queued = await self.reports.request(
            digest, repository, registration.uuid, mime_type, requested_by
        )
        if queued:
            self.workers.poke()
        return job

    def pushed(self, repository: str, digest: str) -> None:
        """A manifest was pushed: queue its scan in the background when the project scans on
        push. The push never waits for this, nor fails because of it."""
        task = asyncio.create_task(self._on_push(repository, digest), name="scan on push")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _on_push(self, repository: str, digest: str) -> None:
        try:
            project = await self._projects.get(project_of(repository))
            if project is None:
                return
            if project.metadata.get("auto_scan") == "true":
                await self.request(repository, digest, VULNERABILITY_REPORT, "auto_scan")
            if project.metadata.get("auto_sbom_generation") == "true":
                await self.request(repository, digest, SBOM_REPORT, "auto_sbom_generation")
        except (ScanUnavailable, UnsupportedArtifact):
            return
        except Exception:
            log.exception("could not queue a scan on push", repository=repository)

    async def _check_scannable(self, digest: str) -> None:
        await self.images(digest)  # raises UnsupportedArtifact

    # -- running -------------------------------------------------------------------------------

    async def _analyze_layer(self, stream: Any, media_type: str) -> LayerResult:
        # Imported at the first scan: the analyzers cost an idle server ~2.5 MB.
        from portside.scanner.analyzers import default_analyzers
        from portside.scanner.layers import analyze_layer

        return await analyze_layer(stream(), media_type, default_analyzers())

    def _open_blob(self, digest: str) -> AsyncIterator[bytes | memoryview]:
        return self._storage.reader(blob_path(parse_digest(digest)))

    async def images(self, digest: str) -> list[ImageManifest]:
        """Each image in the artifact: itself, or each platform of an index (other entries of
        an index, such as attestations, are skipped). Raises :class:`UnsupportedArtifact` when
        there is no image to scan."""
        raw = await self._manifests.content(parse_digest(digest))
        try:
            body = json.loads(raw)
        except ValueError:
            raise UnsupportedArtifact("the manifest is not JSON") from None
        if not (isinstance(body, dict) and isinstance(body.get("manifests"), list)):
            media_type = str(body.get("mediaType") or mt.OCI_MANIFEST)
            return [ImageManifest(digest, media_type, raw, layers_of(raw))]
        images: list[ImageManifest] = []
        for entry in body["manifests"][:MAX_INDEX_CHILDREN]:
            if not isinstance(entry, dict) or entry.get("mediaType") not in mt.IMAGE_MANIFESTS:
                continue
            child = str(entry.get("digest"))
            child_raw = await self._manifests.content(parse_digest(child))
            try:
                layers = layers_of(child_raw)
            except UnsupportedArtifact:
                continue  # attestations and other artifacts listed in an index
            images.append(ImageManifest(child, str(entry["mediaType"]), child_raw, layers))
        if not images:
            raise UnsupportedArtifact("the index lists no image")
        return images

    async def contents(self, digest: str) -> list[ImageContents]:
        return [
            await self.engine.contents(image.layers, self._open_blob)
            for image in await self.images(digest)
        ]

    async def scan_remote(
        self,
        layers: Sequence[Layer],
        open_blob: OpenBlob,
        repository: str,
        digest: str,
        started: dt.datetime,
    ) -> dict[str, Any]:
        """Scan an image of another registry (the adapter API) and return its report.
        Raises :class:`IncompleteScan` when the advisories do not cover the image: the
        adapter API has no way to mark a report incomplete, so the scan fails, as Harbor's
        own scanner does without its database."""
        scan = await self._remote_engine.scan(layers, open_blob)
        if not scan.coverage.complete:
            raise IncompleteScan(scan.coverage.message)
        return self._report(repository, digest, scan.findings, started, scan.coverage)

    async def _run(self, job: ScanJob) -> JobOutcome:
        registration = await self.registrations.get(job.registration_uuid)
        if registration is None:
            return JobOutcome(ERROR, message="the scanner registration was deleted")
        try:
            if job.mime_type == VULNERABILITY_REPORT:
                return await self._vulnerability_scan(job, registration)
            if job.mime_type == SBOM_REPORT:
                return await self._generate_sbom(job)
        except (LayerError, UnsupportedArtifact) as error:
            # The artifact's own bytes are the problem, not Portside: a failed job, no trace.
            log.info("artifact cannot be scanned", digest=job.digest, reason=str(error))
            return JobOutcome(ERROR, message=f"the artifact cannot be scanned: {error}")
        return JobOutcome(ERROR, message=f"report type {job.mime_type!r} is not supported")

    async def sbom_document(
        self, repository: str, digest: str, media_type: str, tag: str = ""
    ) -> bytes:
        """The SBOM of an artifact (every platform of an index), SPDX or CycloneDX JSON.
        Built from the cached layer analyses, so it is cheap once the image was scanned."""
        contents = await self.contents(digest)
        packages = [package for image in contents for package in image.packages]
        os_release = next((c.os_release for c in contents if c.os_release), None)
        subject = SbomSubject(repository=repository, digest=digest, tag=tag)
        created = dt.datetime.now(dt.UTC)
        tool = f"portside-{self.version}"
        if media_type == CYCLONEDX_MEDIA_TYPE:
            document = cyclonedx_document(subject, packages, os_release, created, tool)
        else:
            document = spdx_document(subject, packages, os_release, created, tool)
        return json.dumps(document, separators=(",", ":")).encode()

    async def _generate_sbom(self, job: ScanJob) -> JobOutcome:
        """Generate the SPDX SBOM (what Harbor generates) and store it as an accessory,
        replacing the one an earlier generation stored."""
        created = dt.datetime.now(dt.UTC)
        document = await self.sbom_document(job.repository, job.digest, SPDX_MEDIA_TYPE)
        record = await self._manifests.resolve(
            job.repository, Reference(None, parse_digest(job.digest))
        )
        previous = await self.reports.report(job.id)
        stored = await self.sboms.store(
            job.repository,
            job.digest,
            record.media_type,
            record.size,
            document,
            SPDX_MEDIA_TYPE,
            created,
        )
        old = (previous or {}).get("sbom_digest")
        if isinstance(old, str) and old != str(stored):
            await self.sboms.remove(job.repository, old)
        report = {
            "generated_at": created.isoformat().replace("+00:00", "Z"),
            "artifact": {"repository": job.repository, "digest": job.digest},
            "scanner": {"name": "Portside", "vendor": "Portside", "version": self.version},
            "media_type": SPDX_MEDIA_TYPE,
            "sbom_digest": str(stored),
        }
        return JobOutcome(SUCCESS, report=report)

    def registry_url(self, registration: Registration) -> str:
        """Where an external scanner pulls from: the public URL, or this process's own
        address when the registration asks for the internal one (or no public URL is set)."""
        server = self._settings.server
        if server.public_url and not registration.use_internal_addr:
            return str(server.public_url).rstrip("/")
        scheme = "https" if server.tls_cert else "http"
        host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{server.port}"

    async def _external_scan(self, job: ScanJob, registration: Registration) -> JobOutcome:
        """Ask an external adapter, one image at a time, each with a pull token limited to
        that image's manifest and blobs."""
        from portside.scanner.adapter_client import AdapterClient  # httpx: only when used

        client = AdapterClient(registration)
        vulnerabilities: list[dict[str, Any]] = []
        report: dict[str, Any] = {}
        try:
            for image in await self.images(job.digest):
                config = json.loads(image.raw)["config"]["digest"]
                token = self._tokens.issue_scanner_token(
                    job.repository,
                    [image.digest, str(config), *(layer.digest for layer in image.layers)],
                    EXTERNAL_TOKEN_SECONDS,
                )
                report = await client.scan(
                    self.registry_url(registration),
                    f"Bearer {token.token}",
                    job.repository,
                    image.digest,
                    image.media_type,
                    VULNERABILITY_REPORT,
                    deadline_seconds=EXTERNAL_TOKEN_SECONDS,
                )
                vulnerabilities.extend(_clean_vulnerabilities(report.get("vulnerabilities")))
        except AdapterError as error:
            return JobOutcome(ERROR, message=str(error))
        scanner = report.get("scanner")
        if not isinstance(scanner, dict):
            scanner = {}
        combined = {
            "generated_at": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
            "artifact": {
                "repository": job.repository,
                "digest": job.digest,
                "mime_type": mt.OCI_MANIFEST,
            },
            "scanner": {k: str(scanner.get(k, "")) for k in ("name", "vendor", "version")},
            "vulnerabilities": vulnerabilities,
        }
        severity, summary = summarize(vulnerabilities)
        combined["severity"] = severity
        return JobOutcome(SUCCESS, severity=severity, summary=summary, report=combined)

    async def _vulnerability_scan(self, job: ScanJob, registration: Registration) -> JobOutcome:
        started = dt.datetime.now(dt.UTC)
        if not registration.builtin:
            return await self._external_scan(job, registration)
        images = await self.images(job.digest)
        findings: list[Finding] = []
        coverage = Coverage()
        for image in images:
            scan = await self.engine.scan(image.layers, self._open_blob)
            findings.extend(scan.findings)
            coverage = coverage.merge(scan.coverage)
            if image.digest != job.digest:
                # A platform of an index: record its own report too, so pulling it by digest
                # (what clients do after resolving the index) is judged on its findings.
                child = self._outcome(
                    job.repository, image.digest, scan.findings, started, scan.coverage
                )
                await self.reports.record(
                    image.digest, job.repository, job.registration_uuid, job.mime_type, child
                )
        return self._outcome(job.repository, job.digest, findings, started, coverage)

    def _outcome(
        self,
        repository: str,
        digest: str,
        findings: list[Finding],
        started: dt.datetime,
        coverage: Coverage,
    ) -> JobOutcome:
        """A scan's result. One the advisories did not cover ends ``Error`` (a Harbor status
        every client knows is not a clean bill) with the reason as its message, and keeps its
        report and summary, marked ``incomplete``: the findings it did make still count."""
        report = self._report(repository, digest, findings, started, coverage)
        severity, summary = summarize(report.get("vulnerabilities", []))
        if coverage.complete:
            return JobOutcome(SUCCESS, severity=severity, summary=summary, report=report)
        summary[INCOMPLETE] = True
        return JobOutcome(
            ERROR, severity=severity, summary=summary, report=report, message=coverage.message
        )

    def _report(
        self,
        repository: str,
        digest: str,
        findings: list[Finding],
        started: dt.datetime,
        coverage: Coverage,
    ) -> dict[str, Any]:
        return harbor_report(
            findings,
            ScannerInfo(name="Portside", vendor="Portside", version=self.version),
            digest,
            started,
            repository=repository,
            coverage=coverage,
        )


_VULNERABILITY_FIELDS = ("id", "package", "version", "fix_version", "severity", "description")


def _clean_vulnerabilities(items: Any) -> list[dict[str, Any]]:
    """An external report's findings, keeping only well-typed fields of Harbor's
    VulnerabilityItem: what we store and show must not be whatever an adapter sent."""
    if not isinstance(items, list):
        return []
    cleaned = []
    for item in items[:100_000]:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        out: dict[str, Any] = {
            key: str(item[key])[:4096]
            for key in _VULNERABILITY_FIELDS
            if isinstance(item.get(key), str | int | float)
        }
        if out.get("severity") not in Severity.ORDER:
            out["severity"] = Severity.UNKNOWN
        links = item.get("links")
        out["links"] = [str(x)[:2048] for x in links[:50]] if isinstance(links, list) else []
        cwes = item.get("cwe_ids")
        out["cwe_ids"] = [str(x)[:64] for x in cwes[:50]] if isinstance(cwes, list) else []
        for key in ("preferred_cvss", "vendor_attributes"):
            value = item.get(key)
            if isinstance(value, dict) and len(json.dumps(value)) <= 65536:
                out[key] = value
        cleaned.append(out)
    return cleaned


def _version() -> str:
    from importlib.metadata import version

    return version("portside")
