"""Portside's built-in scanner, served through Harbor's pluggable scanner API (v1.2) under
``/scanner-adapter/api/v1``: a Harbor (or another Portside) registers
``https://portside.example/scanner-adapter`` as a scanner and sends it scan requests.

A scan request names a registry and gives the Authorization header to pull with, so serving it
means fetching from a URL the caller chose. Only system admins may call this API (HTTP basic),
and pulled layers are analysed in a cache of their own, never mixed with this registry's.
Jobs run in this process, at most ``scanner.workers`` at once (at least one), and their
reports are kept in memory for an hour: with several replicas, send each scan and its polls to
the same replica (any sticky load balancing does).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from portside.api.security import principal_from_basic
from portside.api.services import Services
from portside.scanner.adapter_api import (
    ERROR_MIME,
    HARBOR_REPORT_V1,
    METADATA_MIME,
    SCAN_RESPONSE_MIME,
    SCANNABLE_MANIFESTS,
    RegistryClientError,
    builtin_metadata,
)
from portside.scanner.engine import UnsupportedArtifact, layers_of
from portside.scanner.model import LayerError
from portside.scanner.reports import VULNERABILITY_REPORT
from portside.scanner.service import IncompleteScan

__all__ = ["PREFIX", "routes"]

PREFIX = "/scanner-adapter"
log = structlog.get_logger("portside.scanner")

MAX_REQUEST_BYTES = 64 << 10
MAX_JOBS = 1000
JOB_RETENTION_SECONDS = 3600
_REPORT_TYPES = (VULNERABILITY_REPORT, HARBOR_REPORT_V1)


@dataclass
class _Job:
    created: float
    task: asyncio.Task[None] | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class _AdapterJobs:
    def __init__(self, concurrency: int) -> None:
        self.jobs: dict[str, _Job] = {}
        self.slots = asyncio.Semaphore(max(concurrency, 1))

    def expire(self) -> None:
        cutoff = time.monotonic() - JOB_RETENTION_SECONDS
        for key in [k for k, job in self.jobs.items() if job.created < cutoff]:
            job = self.jobs.pop(key)
            if job.task is not None:
                job.task.cancel()


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": {"message": message}}, status, media_type=ERROR_MIME)


def _jobs(request: Request) -> _AdapterJobs:
    state = request.app.state
    jobs: _AdapterJobs | None = getattr(state, "scanner_adapter_jobs", None)
    if jobs is None:
        services: Services = state.services
        jobs = _AdapterJobs(services.settings.scanner.workers)
        state.scanner_adapter_jobs = jobs
    return jobs


async def _admin_only(request: Request) -> Response | None:
    header = request.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        principal = await principal_from_basic(request, header)
        if principal is not None and principal.is_admin:
            return None
        if principal is not None:
            return _error(403, "only system administrators may use the scanner API")
    return JSONResponse(
        {"error": {"message": "authentication required"}},
        401,
        media_type=ERROR_MIME,
        headers={"WWW-Authenticate": 'Basic realm="Portside scanner adapter"'},
    )


async def metadata(request: Request) -> Response:
    if (refused := await _admin_only(request)) is not None:
        return refused
    services: Services = request.app.state.services
    status = await services.scans.vulndb.status()
    imported = status.get("imported_at")
    body = builtin_metadata(services.scans.version, str(imported) if imported else None)
    return JSONResponse(body, media_type=METADATA_MIME)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


async def accept_scan(request: Request) -> Response:
    if (refused := await _admin_only(request)) is not None:
        return refused
    body = await request.body()
    if len(body) > MAX_REQUEST_BYTES:
        return _error(400, "the scan request is too large")
    try:
        scan = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "the scan request is not valid JSON")
    if not isinstance(scan, dict):
        return _error(400, "the scan request must be a JSON object")
    registry = _object(scan.get("registry"))
    artifact = _object(scan.get("artifact"))
    url = _text(registry.get("url"), 2048)
    authorization = registry.get("authorization") or ""
    repository = _text(artifact.get("repository"), 255)
    digest = _text(artifact.get("digest"), 200)
    mime_type = artifact.get("mime_type") or SCANNABLE_MANIFESTS[0]
    if url is None or not url.startswith(("http://", "https://")):
        return _error(422, "registry.url must be an http(s) URL")
    if not isinstance(authorization, str) or len(authorization) > 8192:
        return _error(422, "registry.authorization must be a string")
    if repository is None or digest is None:
        return _error(422, "artifact.repository and artifact.digest are required")
    if mime_type not in SCANNABLE_MANIFESTS:
        return _error(501, f"artifacts of type {str(mime_type)[:100]!r} cannot be scanned")
    capabilities = scan.get("enabled_capabilities")
    if (
        isinstance(capabilities, list)
        and capabilities
        and not any(isinstance(c, dict) and c.get("type") == "vulnerability" for c in capabilities)
    ):
        return _error(501, "only vulnerability scans are offered through this API")
    jobs = _jobs(request)
    jobs.expire()
    if len(jobs.jobs) >= MAX_JOBS:
        return _error(500, "too many scans are in progress; retry later")
    scan_id = str(uuid.uuid4())
    job = _Job(time.monotonic())
    jobs.jobs[scan_id] = job
    services: Services = request.app.state.services
    job.task = asyncio.create_task(
        _run(services, jobs, job, url, authorization, repository, digest),
        name=f"adapter scan {digest}",
    )
    return JSONResponse({"id": scan_id}, 202, media_type=SCAN_RESPONSE_MIME)


async def _run(
    services: Services,
    jobs: _AdapterJobs,
    job: _Job,
    url: str,
    authorization: str,
    repository: str,
    digest: str,
) -> None:
    started = dt.datetime.now(dt.UTC)
    from portside.scanner.registry_client import RegistryClient  # httpx: only when used

    client = RegistryClient(url, authorization, repository)
    try:
        async with jobs.slots:
            manifest = await client.manifest(digest)
            layers = layers_of(manifest)
            report = await services.scans.scan_remote(
                layers, client.blob, repository, digest, started
            )
            job.report = report
    except (RegistryClientError, UnsupportedArtifact, LayerError, IncompleteScan) as error:
        job.error = str(error)
    except Exception as error:
        log.exception("adapter scan failed", digest=digest)
        job.error = f"scan failed: {error}"[:1000]
    finally:
        await client.close()
        job.done.set()


async def scan_report(request: Request) -> Response:
    if (refused := await _admin_only(request)) is not None:
        return refused
    job = _jobs(request).jobs.get(request.path_params["scan_id"])
    if job is None:
        return _error(404, "no such scan request")
    accept = request.headers.get("accept", VULNERABILITY_REPORT)
    wanted = next((t for t in _REPORT_TYPES if t.replace(" ", "") in accept.replace(" ", "")), None)
    if wanted is None and accept not in ("", "*/*", "application/json"):
        return _error(501, f"reports of type {accept[:100]!r} are not produced here")
    if not job.done.is_set():
        return Response(status_code=302, headers={"Refresh-After": "1"})
    if job.error is not None:
        return _error(500, job.error)
    return JSONResponse(job.report, media_type=wanted or VULNERABILITY_REPORT)


async def close_jobs(state: Any) -> None:
    """Cancel adapter scans still running at shutdown."""
    jobs: _AdapterJobs | None = getattr(state, "scanner_adapter_jobs", None)
    if jobs is None:
        return
    for job in jobs.jobs.values():
        if job.task is not None and not job.task.done():
            job.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job.task


def routes() -> list[Route]:
    return [
        Route(f"{PREFIX}/api/v1/metadata", metadata, methods=["GET"]),
        Route(f"{PREFIX}/api/v1/scan", accept_scan, methods=["POST"]),
        Route(f"{PREFIX}/api/v1/scan/{{scan_id}}/report", scan_report, methods=["GET"]),
    ]
