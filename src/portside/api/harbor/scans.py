"""``/api/v2.0`` scanning of one artifact: start a scan, stop it, read its log; and the
``vulnerabilities`` addition and ``scan_overview`` that artifact reads include.

Permissions (Harbor's): ``scan:create`` and ``scan:stop`` (Maintainers and up) for vulnerability
scans, ``sbom:create`` and ``sbom:stop`` for SBOM generation, ``scan:read`` for logs, and
``artifact-addition:read`` for the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from portside.api.harbor.access import Caller, record_change, services_of
from portside.api.harbor.artifacts import _ARTIFACT, _target
from portside.api.harbor.errors import HarborError
from portside.api.harbor.scan_results import shown_summary
from portside.audit.log import iso8601
from portside.auth.access import Principal
from portside.auth.rbac import Permission
from portside.scanner.engine import UnsupportedArtifact
from portside.scanner.model import LayerError
from portside.scanner.reports import SBOM_REPORT, VULNERABILITY_REPORT
from portside.scanner.sbom import CYCLONEDX_MEDIA_TYPE, SPDX_MEDIA_TYPE
from portside.scanner.service import ScanUnavailable

__all__ = ["router"]

router = APIRouter(tags=["scan"])

ScanType = Literal["vulnerability", "sbom"]
_REPORT_TYPES: dict[str, str] = {"vulnerability": VULNERABILITY_REPORT, "sbom": SBOM_REPORT}
_RESOURCE = {"vulnerability": "scan", "sbom": "sbom"}


class ScanTypeIn(BaseModel):
    """Harbor's ``ScanType``."""

    model_config = ConfigDict(extra="forbid")
    scan_type: ScanType = "vulnerability"


@dataclass(frozen=True)
class _ScanTarget:
    project_id: int
    repository: str
    digest: str
    resource: str  # "scan" or "sbom": Harbor's RBAC resource and the audit resource type
    report_type: str


async def _scan_target(
    request: Request,
    principal: Principal,
    path: tuple[str, str, str],
    body: ScanTypeIn | None,
    action: str,
) -> _ScanTarget:
    """The artifact a scan request is about, once the caller may ``action`` its scans."""
    scan_type = body.scan_type if body else "vulnerability"
    resource = _RESOURCE[scan_type]
    project, name, _, artifact = await _target(
        request, principal, *path, Permission(resource, action)
    )
    return _ScanTarget(project.id, name, artifact.digest, resource, _REPORT_TYPES[scan_type])


def _audit(request: Request, principal: Principal, operation: str, target: _ScanTarget) -> None:
    record_change(
        request,
        principal,
        operation,
        target.resource,
        f"{target.repository}@{target.digest}",
        project_id=target.project_id,
    )


@router.post(f"{_ARTIFACT}/scan", status_code=202, summary="Scan an artifact.")
async def scan_artifact(
    request: Request,
    principal: Caller,
    project_name: str,
    repository_name: str,
    reference: str,
    body: ScanTypeIn | None = None,
) -> Response:
    path = (project_name, repository_name, reference)
    target = await _scan_target(request, principal, path, body, "create")
    try:
        await services_of(request).scans.request(
            target.repository, target.digest, target.report_type, principal.name
        )
    except UnsupportedArtifact as error:
        raise HarborError(400, f"this artifact cannot be scanned: {error}") from None
    except ScanUnavailable as error:
        raise HarborError(412, str(error)) from None
    _audit(request, principal, "create", target)
    return Response(status_code=202)


@router.post(f"{_ARTIFACT}/scan/stop", status_code=202, summary="Stop scanning an artifact.")
async def stop_scan(
    request: Request,
    principal: Caller,
    project_name: str,
    repository_name: str,
    reference: str,
    body: ScanTypeIn | None = None,
) -> Response:
    path = (project_name, repository_name, reference)
    target = await _scan_target(request, principal, path, body, "stop")
    stopped = await services_of(request).scans.stop(
        target.repository, target.digest, target.report_type, principal.name
    )
    if not stopped:
        raise HarborError(400, "no scan of this artifact is queued or running")
    _audit(request, principal, "stop", target)
    return Response(status_code=202)


@router.get(
    f"{_ARTIFACT}/scan/{{report_id}}/log",
    summary="The log of an artifact's scan.",
    response_class=Response,
)
async def scan_log(
    request: Request,
    principal: Caller,
    project_name: str,
    repository_name: str,
    reference: str,
    report_id: str,
) -> Response:
    _, _, _, artifact = await _target(
        request, principal, project_name, repository_name, reference, Permission("scan", "read")
    )
    scans = services_of(request).scans
    jobs = [
        job
        for mime in _REPORT_TYPES.values()
        for job in (await scans.reports.jobs([artifact.digest], mime)).values()
    ]
    job = next((j for j in jobs if j.uuid == report_id), None)
    if job is None:
        raise HarborError(404, f"no scan report {report_id[:64]!r} for this artifact")
    lines = [
        f"{iso8601(job.requested_at)} scan of {job.digest} requested by {job.requested_by or '-'}",
    ]
    if job.start_time:
        lines.append(f"{iso8601(job.start_time)} scan started")
    if job.end_time:
        lines.append(f"{iso8601(job.end_time)} scan ended: {job.status}")
    if job.message:
        lines.append(job.message)
    if job.summary:
        lines.append("summary: " + json.dumps(shown_summary(job)))
    return Response("\n".join(lines) + "\n", media_type="text/plain; charset=utf-8")


@router.get(
    f"{_ARTIFACT}/sbom",
    summary="The SBOM of an artifact (Portside extension).",
    response_class=Response,
)
async def get_sbom(
    request: Request,
    principal: Caller,
    project_name: str,
    repository_name: str,
    reference: str,
    sbom_format: Annotated[Literal["spdx", "cyclonedx"], Query(alias="format")] = "spdx",
) -> Response:
    """SPDX 2.3 or CycloneDX 1.5 JSON, made from the image's layers as they are now (the
    stored SBOM accessory, if any, is the SPDX document of its generation)."""
    _, name, _, artifact = await _target(
        request, principal, project_name, repository_name, reference, Permission("sbom", "read")
    )
    media_type = CYCLONEDX_MEDIA_TYPE if sbom_format == "cyclonedx" else SPDX_MEDIA_TYPE
    try:
        document = await services_of(request).scans.sbom_document(
            name, artifact.digest, media_type, "" if ":" in reference else reference
        )
    except (UnsupportedArtifact, LayerError) as error:
        raise HarborError(400, f"this artifact has no SBOM: {error}") from None
    return Response(document, media_type=media_type)
