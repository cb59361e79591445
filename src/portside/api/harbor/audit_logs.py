"""``/api/v2.0`` audit logs: ``GET /audit-logs`` and ``GET /projects/{project_name}/logs``.

Shaped as Harbor's ``AuditLog`` model (``id``, ``username``, ``resource``, ``resource_type``,
``operation``, ``op_time``), plus two Portside fields, ``result`` and ``client_ip``.

Who sees what, as in Harbor: a system admin sees every entry; anyone else sees only the entries
of projects in which they hold ``log:list`` (ProjectAdmin), so logins and other entries that
belong to no project are the admin's alone. Anonymous callers get 401.

Entries are recorded through a queue (:mod:`portside.audit.log`); a listing first writes out
what is queued, so a change made just before is in the answer.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Connection, UnaryExpression, func, select

from portside.api.harbor.access import Caller, require_authenticated, require_project
from portside.api.harbor.errors import HarborError
from portside.api.harbor.listing import (
    TIME,
    Converter,
    Key,
    Page,
    PageParams,
    parse_query,
    parse_sort,
    parse_time,
    q_query,
    set_page_headers,
    sort_query,
    where_clauses,
)
from portside.api.services import Services
from portside.audit.log import iso8601
from portside.auth.access import Principal
from portside.auth.rbac import Permission
from portside.db.tables import audit_logs, projects

__all__ = ["AuditLog", "router"]

router = APIRouter(tags=["auditlog"])
log = structlog.get_logger("portside.audit")

LOG_LIST = Permission("log", "list")


class AuditLog(BaseModel):
    id: int = Field(description="The ID of the audit log entry.")
    username: str = Field(description="Who did it (a user, a robot, or anonymous).")
    resource: str = Field(description="What it was done to, e.g. library/alpine:3.20.")
    resource_type: str = Field(description="artifact, tag, blob, user, project, ...")
    operation: str = Field(description="push, pull, delete, login, create, update, ...")
    op_time: str = Field(description="When, ISO 8601 in UTC.", examples=["2006-01-02T15:04:05Z"])
    result: str = Field(description="Portside: success or failure.")
    client_ip: str | None = Field(description="Portside: the client's address, when known.")


def _text(value: str) -> str:
    """A string value of ``q``; Harbor allows it in quotes."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    if len(value) > 512:
        raise ValueError("longer than 512 characters")
    return value


def _time(value: str) -> dt.datetime:
    """A time value of ``q``: ISO 8601 or ``2020-04-09 02:36:00`` (UTC when no zone is given).
    Converted to UTC, the zone stored times are in."""
    try:
        return parse_time(_text(value)).astimezone(dt.UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise ValueError("out of range") from None


_COLUMNS: dict[str, tuple[ColumnElement[Any], Converter]] = {
    "username": (audit_logs.c.username, _text),
    "operation": (audit_logs.c.operation, _text),
    "resource": (audit_logs.c.resource, _text),
    "resource_type": (audit_logs.c.resource_type, _text),
    "result": (audit_logs.c.result, _text),
    "client_ip": (audit_logs.c.client_ip, _text),
    "op_time": (audit_logs.c.op_time, _time),
}
_SORTABLE: dict[str, ColumnElement[Any]] = {"id": audit_logs.c.id} | {
    key: column for key, (column, _) in _COLUMNS.items()
}


def _conditions(q: str | None) -> list[ColumnElement[bool]]:
    terms = parse_query(q, set(_COLUMNS))
    time_term = terms.get("op_time")
    if time_term is not None and time_term.kind == "fuzzy":
        raise HarborError(400, "op_time takes an exact time or a range [from~to], not ~")
    return where_clauses(terms, _COLUMNS)


def _order(sort: str | None) -> list[UnaryExpression[Any]]:
    fields = parse_sort(sort, set(_SORTABLE))
    order = [
        _SORTABLE[field].desc() if descending else _SORTABLE[field].asc()
        for field, descending in fields
    ]
    # Newest first by default, as Harbor. The id breaks ties, so pages never overlap, in the
    # direction of the first key: entries of the same millisecond then keep their order of
    # recording whichever way the list is sorted.
    ascending = bool(fields) and not fields[0][1]
    tie = audit_logs.c.id.asc() if ascending else audit_logs.c.id.desc()
    return [*(order or [audit_logs.c.op_time.desc()]), tie]


def _entry(row: Any) -> AuditLog:
    return AuditLog(
        id=row.id,
        username=row.username,
        resource=row.resource,
        resource_type=row.resource_type,
        operation=row.operation,
        op_time=iso8601(row.op_time),
        result=row.result,
        client_ip=row.client_ip,
    )


async def _listing(
    request: Request,
    response: Response,
    page: Page,
    conditions: list[ColumnElement[bool]],
    order: list[UnaryExpression[Any]],
) -> list[AuditLog]:
    services: Services = request.app.state.services
    try:
        await services.audit.flush()
    except Exception:  # the listing is still worth having; the entries stay queued
        log.exception("could not write queued audit entries before listing them")
    counted = select(func.count()).select_from(audit_logs).where(*conditions)
    query = (
        select(audit_logs)
        .where(*conditions)
        .order_by(*order)
        .offset(page.offset)
        .limit(page.page_size)
    )

    def run(connection: Connection) -> tuple[int, list[Any]]:
        return int(connection.scalar(counted) or 0), list(connection.execute(query))

    total, rows = await services.db.read(run)
    set_page_headers(request, response, page, total)
    return [_entry(row) for row in rows]


async def _projects_with_log_list(request: Request, principal: Principal) -> list[int]:
    """Ids of the projects whose entries ``principal`` may list (it is not an admin).
    Candidates are the projects it belongs to; the policy decides on each."""
    services: Services = request.app.state.services
    candidates: set[int] = set()
    if principal.kind == "user" and principal.id is not None:
        candidates = await services.members.projects_of_user(principal.id)
    elif principal.kind == "robot" and principal.id is not None:
        namespaces = await services.robots.namespaces(principal.id)
        candidates = await services.projects.ids_of(namespaces) if namespaces else set()
    if not candidates:
        return []
    query = select(projects.c.name).where(projects.c.id.in_(sorted(candidates)))
    names = await services.db.read(lambda c: list(c.scalars(query)))
    allowed = []
    for name in names:
        project = await services.projects.get(name)
        if project is not None and await services.policy.allows(principal, project, LOG_LIST):
            allowed.append(project.id)
    return sorted(allowed)


Q = Annotated[
    str | None,
    q_query(
        {
            key: Key(TIME, ("exact", "range")) if convert is _time else Key()
            for key, (_, convert) in _COLUMNS.items()
        },
        description="Filter: username, operation, resource, resource_type, result, client_ip "
        "(k=v exact, k=~v substring, k=(a b) any of) and op_time (exact or [from~to]).",
    ),
]
Sort = Annotated[
    str | None,
    sort_query(_SORTABLE, description="e.g. sort=-op_time (the default) or sort=username,id"),
]


@router.get(
    "/audit-logs",
    operation_id="listAuditLogs",
    summary="List audit entries: all for a system admin, else those of the caller's projects",
    response_model=list[AuditLog],
    responses={400: {}, 401: {}},
)
async def list_audit_logs(
    request: Request,
    response: Response,
    principal: Caller,
    page: Annotated[Page, Depends(PageParams)],
    q: Q = None,
    sort: Sort = None,
) -> list[AuditLog]:
    require_authenticated(request, principal)
    conditions = _conditions(q)
    order = _order(sort)
    if not principal.is_admin:
        visible = await _projects_with_log_list(request, principal)
        if not visible:
            set_page_headers(request, response, page, 0)
            return []
        conditions.append(audit_logs.c.project_id.in_(visible))
    return await _listing(request, response, page, conditions, order)


@router.get(
    "/projects/{project_name}/logs",
    operation_id="getLogs",
    tags=["project"],
    summary="List the audit entries of one project (log:list in it: ProjectAdmin)",
    response_model=list[AuditLog],
    responses={400: {}, 401: {}, 403: {}, 404: {}},
)
async def list_project_logs(
    request: Request,
    response: Response,
    principal: Caller,
    project_name: Annotated[str, Path(min_length=1, max_length=255)],
    page: Annotated[Page, Depends(PageParams)],
    q: Q = None,
    sort: Sort = None,
) -> list[AuditLog]:
    project = await require_project(request, principal, project_name, LOG_LIST, by_name=True)
    conditions = _conditions(q)
    conditions.append(audit_logs.c.project_id == project.id)
    return await _listing(request, response, page, conditions, _order(sort))
