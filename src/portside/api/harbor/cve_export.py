"""``/api/v2.0/export/cve``: Harbor's scan data export (a CSV of the CVEs in projects).

Permissions, as Harbor's (src/server/v2.0/handler/scanexport.go and rbac_role.go): starting
an export needs ``export-cve:create`` in every requested project (Developers and up, robots
granted it, system admins); reading an execution or its file needs ``export-cve:read`` in
each of its projects that still exists, and being the user who ran it. Unlike Harbor, a
system admin may read anyone's execution, an export may name several projects (at most
:data:`MAX_PROJECTS`), and the file stays downloadable after the first download.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from portside.api.harbor.access import MAX_ID, Caller, deny, record_change, services_of
from portside.api.harbor.errors import HarborError
from portside.audit.log import iso8601
from portside.auth.access import Principal
from portside.auth.rbac import Permission
from portside.scanner.cve_export import (
    Execution,
    ExportBusy,
    ExportCriteria,
    InvalidCriteria,
    Owner,
)
from portside.scanner.reports import VULNERABILITY_REPORT
from portside.storage.base import PathNotFound

__all__ = ["router"]

router = APIRouter(tags=["scan data export"])

MAX_PROJECTS = 100
_CREATE = Permission("export-cve", "create")
_READ = Permission("export-cve", "read")
_ZERO_TIME = "0001-01-01T00:00:00.000Z"  # Harbor's strfmt.DateTime of an unset time
PositiveId = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
Pattern = Annotated[StrictStr, Field(max_length=1024)]


class ScanDataExportRequest(BaseModel):
    """Harbor's ``ScanDataExportRequest``. Patterns are doublestar globs (``*``, ``**``,
    ``?``, ``[a-z]``, ``{a,b}``); empty ones match everything."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    job_name: Annotated[StrictStr, Field(max_length=255)] | None = None
    projects: (
        Annotated[
            list[PositiveId], Field(max_length=MAX_PROJECTS, json_schema_extra={"minItems": 1})
        ]
        | None
    ) = None
    labels: Annotated[list[PositiveId], Field(max_length=100)] | None = None
    repositories: Pattern | None = None
    cve_ids: Annotated[Pattern | None, Field(alias="cveIds")] = None
    tags: Pattern | None = None


class ScanDataExportJob(BaseModel):
    """Harbor's ``ScanDataExportJob``."""

    id: int


class ScanDataExportExecution(BaseModel):
    """Harbor's ``ScanDataExportExecution``."""

    id: int
    user_id: int
    status: str
    trigger: str
    start_time: str
    end_time: str
    status_text: str
    user_name: str
    file_present: bool


class ScanDataExportExecutionList(BaseModel):
    """Harbor's ``ScanDataExportExecutionList``."""

    items: list[ScanDataExportExecution]


def _owner(principal: Principal) -> Owner:
    return Owner(principal.id or 0, principal.name)


def _out(execution: Execution) -> ScanDataExportExecution:
    return ScanDataExportExecution(
        id=execution.id,
        user_id=execution.user_id,
        status=execution.status,
        trigger=execution.trigger,
        start_time=iso8601(execution.start_time),
        end_time=iso8601(execution.end_time) if execution.end_time else _ZERO_TIME,
        status_text=execution.status_text,
        user_name=execution.user_name,
        file_present=execution.file_present,
    )


async def _may_read(request: Request, principal: Principal, execution: Execution) -> bool:
    """Read access to every project of the execution that still exists, as its owner."""
    if principal.is_admin:
        return True
    if not execution.owned_by(_owner(principal)):
        return False
    services = services_of(request)
    for project_id in execution.project_ids:
        project = await services.projects.get_by_id(project_id)
        if project is not None and not await services.policy.allows(principal, project, _READ):
            return False
    return True


async def _readable(request: Request, principal: Principal, execution_id: int) -> Execution:
    execution = await services_of(request).cve_exports.get(execution_id)
    if execution is None:
        raise HarborError(404, f"execution {execution_id} not found")
    if not await _may_read(request, principal, execution):
        raise deny(request, principal, f"read CVE export {execution_id}")
    return execution


ExecutionId = Annotated[int, Path(ge=1, le=MAX_ID, description="Execution ID")]


@router.post("/export/cve", summary="Export scan data for selected projects.")
async def export_scan_data(
    request: Request,
    principal: Caller,
    body: ScanDataExportRequest,
    x_scan_data_type: Annotated[
        str,
        Header(
            alias="X-Scan-Data-Type",
            description="The type of scan data to export",
            json_schema_extra={"enum": [VULNERABILITY_REPORT]},
        ),
    ],
) -> ScanDataExportJob:
    if x_scan_data_type != VULNERABILITY_REPORT:
        raise HarborError(400, f"Unsupported MIME type : {x_scan_data_type[:128]}")
    if not body.projects:
        raise HarborError(400, "projects: name at least one project to export from")
    if body.job_name and not body.job_name.isprintable():  # NULs and lone surrogates too
        raise HarborError(400, "job_name: only printable characters are allowed")
    patterns = {"repositories": body.repositories, "tags": body.tags, "cveIds": body.cve_ids}
    for name, value in patterns.items():
        if value and " " in value:
            raise HarborError(400, f"{name}: remove the spaces from {value[:128]!r}")
    services = services_of(request)
    projects = []
    for project_id in dict.fromkeys(body.projects):
        project = await services.projects.get_by_id(project_id)
        if project is None:
            raise HarborError(404, f"project {project_id} not found")
        if not await services.policy.allows(principal, project, _CREATE):
            raise deny(request, principal, f"export CVEs of {project.name}")
        projects.append(project)
    try:
        criteria = ExportCriteria.parse(
            [p.id for p in projects],
            repositories=body.repositories or "",
            tags=body.tags or "",
            cve_ids=body.cve_ids or "",
            label_ids=body.labels or (),
            job_name=body.job_name or "",
        )
    except InvalidCriteria as error:
        raise HarborError(400, str(error)) from None
    try:
        execution = await services.cve_exports.start(_owner(principal), criteria)
    except ExportBusy:
        raise HarborError(409, "an export of yours is still running; try when it ends") from None
    for project in projects:
        record_change(
            request,
            principal,
            "create",
            "export-cve",
            f"execution {execution.id}",
            project_id=project.id,
        )
    return ScanDataExportJob(id=execution.id)


@router.get("/export/cve/execution/{execution_id}", summary="Get one scan data export execution.")
async def get_execution(
    request: Request, principal: Caller, execution_id: ExecutionId
) -> ScanDataExportExecution:
    return _out(await _readable(request, principal, execution_id))


@router.get("/export/cve/executions", summary="The caller's scan data export executions.")
async def list_executions(request: Request, principal: Caller) -> ScanDataExportExecutionList:
    """Newest first; executions of projects the caller may no longer read are left out
    (Harbor refuses the whole list instead)."""
    executions = await services_of(request).cve_exports.list(_owner(principal))
    items = [_out(e) for e in executions if await _may_read(request, principal, e)]
    return ScanDataExportExecutionList(items=items)


_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The CSV file (attachment; filename=scandata_export_<id>.csv).",
        "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.get(
    "/export/cve/download/{execution_id}",
    summary="Download a scan data export file.",
    response_class=StreamingResponse,
    responses=_CSV_RESPONSE,
)
async def download(
    request: Request,
    principal: Caller,
    execution_id: ExecutionId,
    file_format: Annotated[
        str,
        Query(
            alias="format",
            max_length=16,
            description="Only CSV is supported.",
            json_schema_extra={"pattern": "^[cC][sS][vV]$"},
        ),
    ] = "csv",
) -> StreamingResponse:
    if file_format.lower() != "csv":
        raise HarborError(400, "only the CSV format is supported")
    execution = await _readable(request, principal, execution_id)
    if not execution.file_present:
        raise HarborError(404, f"execution {execution_id} has no file ({execution.status})")
    chunks = aiter(services_of(request).cve_exports.content(execution))
    try:
        first = await anext(chunks)
    except (PathNotFound, StopAsyncIteration):
        raise HarborError(404, f"the file of execution {execution_id} is gone") from None

    async def body() -> Any:
        yield bytes(first)
        async for chunk in chunks:
            yield bytes(chunk)

    name = f"scandata_export_{execution.id}.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
