"""``/api/v2.0/robots``: Harbor's robot account API (v2).

- System robots (``level: system``) may cover several projects or all of them (namespace
  ``*``); only system admins manage them.
- Project robots (``level: project``) hold exactly one ``project`` permission block naming their
  project; whoever holds ``robot:<action>`` in that project (ProjectAdmin, admins) manages them.
- A robot calling this API is held to its own permissions, and may only create, change, refresh
  or delete robots that can do no more than itself, so no robot can widen its own reach.

Secrets are returned once (on create, and on a refresh that generates one) and stored hashed.
Refreshing a secret, disabling, deleting or changing a robot takes effect on this replica at
once: the robot and policy caches are dropped, and tokens carry the secret version.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement

from portside.api.harbor import documented
from portside.api.harbor.access import (
    MAX_ID,
    Caller,
    deny,
    record_change,
    require_admin,
    require_authenticated,
    services_of,
)
from portside.api.harbor.errors import HarborError
from portside.api.harbor.listing import (
    ID,
    Key,
    Page,
    PageParams,
    parse_query,
    parse_sort,
    q_query,
    set_page_headers,
    sort_query,
    where_clauses,
)
from portside.api.services import Services
from portside.audit.log import iso8601
from portside.auth.access import Principal
from portside.auth.rbac import Permission
from portside.auth.robots import (
    ALL_PROJECTS,
    GRANTABLE_PERMISSIONS,
    MAX_DURATION_DAYS,
    NEVER,
    ROBOT_NAME,
    NameTaken,
    ProjectMissing,
    RobotAccess,
    RobotBlock,
    RobotRecord,
    valid_secret,
)
from portside.db.tables import robots as robots_table
from portside.projects.projects import PROJECT_NAME, Project

__all__ = ["router"]

router = APIRouter(tags=["robot"])

MAX_NAME = 255
MAX_BLOCKS = 100
MAX_ACCESS = 200
_EFFECTS = {"allow", "deny"}
_SORT_COLUMNS: dict[str, ColumnElement[Any]] = {
    "id": robots_table.c.id,
    "name": robots_table.c.name,
    "creation_time": robots_table.c.created_at,
    "update_time": robots_table.c.updated_at,
    "expires_at": robots_table.c.expires_at,
    "duration": robots_table.c.duration_days,
}

RobotId = Annotated[int, Path(ge=1, le=MAX_ID, description="Robot ID")]


# -- request bodies (Harbor's RobotCreate, Robot, RobotSec, RobotPermission, Access) ------------


class AccessBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resource: str = Field(max_length=64)
    action: str = Field(max_length=64)
    effect: str | None = Field(  # empty means allow
        None, max_length=16, json_schema_extra={"enum": ["", *sorted(_EFFECTS), None]}
    )


class PermissionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(max_length=16, json_schema_extra={"enum": ["project"]})
    namespace: str = Field(
        max_length=MAX_NAME,
        json_schema_extra={"pattern": f"^(?:{re.escape(ALL_PROJECTS)}|{PROJECT_NAME.pattern})$"},
    )
    access: list[AccessBody] | None = Field(
        None, max_length=MAX_ACCESS, json_schema_extra={"minItems": 1}
    )


class RobotCreateBody(BaseModel):
    """Harbor's ``RobotCreate``. ``secret`` is accepted and ignored, as Harbor does: the secret
    is always generated (choose one afterwards with PATCH)."""

    model_config = ConfigDict(extra="forbid")

    name: str = documented.matching(ROBOT_NAME, MAX_NAME)
    description: str | None = Field(None, max_length=1024)
    secret: str | None = Field(None, max_length=128)
    level: str = Field(max_length=16, json_schema_extra={"enum": ["system", "project"]})
    disable: bool = False
    duration: int | None = Field(
        None,
        description="Days; -1 never expires; 0 or absent: the default (30 days).",
        json_schema_extra={"minimum": NEVER, "maximum": MAX_DURATION_DAYS},
    )
    permissions: list[PermissionBody] | None = Field(None, max_length=MAX_BLOCKS)


class RobotUpdateBody(BaseModel):
    """Harbor's ``Robot``, as a client sends back what it read. ``name`` and ``level`` cannot
    change; read-only fields are ignored. As in Harbor, an absent ``description`` or
    ``disable`` means empty or false."""

    model_config = ConfigDict(extra="forbid")

    id: int | None = None
    name: str | None = Field(None, max_length=MAX_NAME + 64)
    description: str | None = Field(None, max_length=1024)
    secret: str | None = Field(None, max_length=128)
    level: str | None = Field(None, max_length=16)
    duration: int | None = Field(  # on update, 0 means nothing: -1 or a number of days
        None,
        json_schema_extra={"minimum": NEVER, "maximum": MAX_DURATION_DAYS, "not": {"const": 0}},
    )
    editable: bool | None = None
    disable: bool = False
    expires_at: int | None = None
    permissions: list[PermissionBody] | None = Field(None, max_length=MAX_BLOCKS)
    creator_type: str | None = Field(None, max_length=64)
    creator_ref: int | None = None
    creator: str | None = Field(None, max_length=MAX_NAME + 64)
    creation_time: str | None = Field(None, max_length=64)
    update_time: str | None = Field(None, max_length=64)


class RobotSecBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str | None = Field(None, max_length=128, json_schema_extra=documented.PASSWORD_RULES)


# -- responses (Harbor's Robot, RobotCreated, RobotSec) --------------------------------------


class AccessOut(BaseModel):
    resource: str
    action: str
    effect: str


class PermissionOut(BaseModel):
    kind: str
    namespace: str
    access: list[AccessOut]


class RobotOut(BaseModel):
    id: int
    name: str
    description: str
    level: Literal["system", "project"]
    duration: int
    editable: bool
    disable: bool
    expires_at: int = Field(description="Unix seconds; -1 when it never expires.")
    permissions: list[PermissionOut]
    creator_type: str
    creator_ref: int
    creator: str
    creation_time: str
    update_time: str


class RobotCreatedOut(BaseModel):
    id: int
    name: str
    secret: str
    creation_time: str
    expires_at: int


class RobotSecOut(BaseModel):
    secret: str | None = None


# -- validation -------------------------------------------------------------------------------


def _valid_name(name: str) -> str:
    if not ROBOT_NAME.fullmatch(name):
        raise HarborError(
            400,
            "robot name is not in lower case or contains illegal characters: use lower-case "
            "letters and digits, separated by single '.', '_' or '-'",
        )
    return name


def _valid_level(level: str | None) -> Literal["system", "project"]:
    if level == "system":
        return "system"
    if level == "project":
        return "project"
    raise HarborError(400, f"bad request error level input: {str(level)[:16]!r}")


def _valid_duration(duration: int | None) -> int:
    if duration == NEVER or (duration is not None and 0 < duration <= MAX_DURATION_DAYS):
        return duration
    raise HarborError(
        400,
        f"bad request error duration input: {duration}, duration must be either -1 (never) "
        f"or a number of days from 1 to {MAX_DURATION_DAYS}",
    )


def _valid_blocks(
    level: Literal["system", "project"], permissions: list[PermissionBody] | None
) -> list[RobotBlock]:
    """Harbor's checks on a permission list, with blocks naming one namespace merged."""
    if not permissions:
        raise HarborError(400, "bad request empty permission")
    merged: dict[str, list[RobotAccess]] = {}
    for block in permissions:
        if block.kind != "project":
            raise HarborError(
                400,
                f"bad request permission kind {block.kind[:16]!r}: Portside robots hold "
                "'project' permissions; use namespace '*' to cover every project",
            )
        namespace = block.namespace
        if namespace != ALL_PROJECTS and not PROJECT_NAME.fullmatch(namespace):
            raise HarborError(400, f"bad request permission namespace {namespace[:64]!r}")
        if not block.access:
            raise HarborError(400, "bad request empty access")
        entries = merged.setdefault(namespace, [])
        for item in block.access:
            effect = item.effect or "allow"
            if effect not in _EFFECTS:
                raise HarborError(400, f"bad request access effect {effect[:16]!r}")
            if Permission(item.resource, item.action) not in GRANTABLE_PERMISSIONS:
                raise HarborError(
                    400, f"bad request permission: {item.resource[:64]}:{item.action[:64]}"
                )
            access = RobotAccess(item.resource, item.action, effect)
            if access not in entries:
                entries.append(access)
    if level == "project" and (len(merged) != 1 or ALL_PROJECTS in merged):
        raise HarborError(
            400, "bad request permission: a project robot holds one block naming its project"
        )
    return [RobotBlock("project", ns, tuple(access)) for ns, access in merged.items()]


# -- access -------------------------------------------------------------------------------------


async def _require(request: Request, principal: Principal, project: Project, action: str) -> None:
    """``robot:<action>`` in ``project``, as the access policy decides."""
    services = services_of(request)
    if not await services.policy.allows(principal, project, Permission("robot", action)):
        raise deny(request, principal, f"{action} robots of {project.name}")


async def _require_on(
    request: Request, principal: Principal, record: RobotRecord, action: str
) -> Project | None:
    """May ``principal`` do ``action`` on this robot? Returns a project robot's project."""
    if record.level == "system":
        require_admin(request, principal, f"{action} system robots")
        return None
    services = services_of(request)
    project = None
    if record.project_id is not None:
        project = await services.projects.get_by_id(record.project_id)
    if project is None:
        raise HarborError(404, f"robot {record.id} not found")
    await _require(request, principal, project, action)
    return project


async def _require_within_caller(
    request: Request, principal: Principal, blocks: tuple[RobotBlock, ...] | list[RobotBlock]
) -> None:
    """A robot caller may only handle robots allowed no more than itself."""
    if not principal.is_robot or principal.id is None:
        return
    services = services_of(request)
    for block in blocks:
        held = await services.robots.permissions_in(principal.id, block.namespace)
        for access in block.access:
            if access.effect != "deny" and access.permission not in held:
                raise deny(
                    request,
                    principal,
                    f"grant {access.resource}:{access.action} in {block.namespace}: "
                    "a robot can only handle robots with no more permissions than its own",
                )


async def _existing(request: Request, principal: Principal, robot_id: int) -> RobotRecord:
    require_authenticated(request, principal)
    record = await services_of(request).robots.get(robot_id)
    if record is None:
        raise HarborError(404, f"robot {robot_id} not found")
    return record


async def _check_namespaces(request: Request, blocks: list[RobotBlock]) -> None:
    projects = services_of(request).projects
    for block in blocks:
        if block.namespace != ALL_PROJECTS and await projects.get(block.namespace) is None:
            raise HarborError(404, f"project {block.namespace!r} not found")


# -- rendering ----------------------------------------------------------------------------------


def _unix(value: dt.datetime | None) -> int:
    return NEVER if value is None else int(value.timestamp())


def _robot_out(services: Services, record: RobotRecord, refs: dict[str, int]) -> RobotOut:
    creator = record.creator or ""
    return RobotOut(
        id=record.id,
        name=services.robots.full_name(record.name),
        description=record.description,
        level=record.level,
        duration=record.duration,
        editable=True,
        disable=record.disabled,
        expires_at=_unix(record.expires_at),
        permissions=[
            PermissionOut(
                kind=block.kind,
                namespace=block.namespace,
                access=[
                    AccessOut(resource=a.resource, action=a.action, effect=a.effect)
                    for a in block.access
                ],
            )
            for block in record.permissions
        ],
        creator_type="robot" if services.robots.is_robot_name(creator) else "local",
        creator_ref=refs.get(creator, 0),
        creator=creator,
        creation_time=iso8601(record.created_at),
        update_time=iso8601(record.updated_at),
    )


async def _render(services: Services, records: list[RobotRecord]) -> list[RobotOut]:
    refs = await services.robots.creator_refs(r.creator for r in records if r.creator)
    return [_robot_out(services, record, refs) for record in records]


def _changed(services: Services) -> None:
    """Drop every cached fact the change may affect, so it holds on this replica at once."""
    services.robots.forget()
    services.policy.forget()


def _audit(
    request: Request,
    principal: Principal,
    operation: str,
    record: RobotRecord,
    detail: str | None = None,
) -> None:
    record_change(
        request,
        principal,
        operation,
        "robot",
        services_of(request).robots.full_name(record.name),
        project_id=record.project_id,
        detail=detail,
    )


# -- endpoints ----------------------------------------------------------------------------------


@router.post(
    "/robots",
    status_code=201,
    response_model=RobotCreatedOut,
    summary="Create a robot account",
    responses={400: {}, 401: {}, 403: {}, 404: {}, 409: {}},
)
async def create_robot(request: Request, body: RobotCreateBody, principal: Caller) -> Response:
    require_authenticated(request, principal)
    services = services_of(request)
    name = _valid_name(body.name)
    level = _valid_level(body.level)
    duration = (
        (await services.configurations.get()).robot_token_duration
        if not body.duration
        else _valid_duration(body.duration)
    )
    blocks = _valid_blocks(level, body.permissions)
    project: Project | None = None
    if level == "system":
        require_admin(request, principal, "create system robots")
        await _check_namespaces(request, blocks)
        stored_name = name
    else:
        project = await services.projects.get(blocks[0].namespace)
        if project is None:
            raise HarborError(404, f"project {blocks[0].namespace!r} not found")
        await _require(request, principal, project, "create")
        stored_name = f"{project.name}+{name}"
    await _require_within_caller(request, principal, blocks)
    if len(stored_name) > MAX_NAME:
        raise HarborError(400, f"robot name is too long: at most {MAX_NAME} characters in all")
    try:
        record, secret = await services.robots.create(
            name=stored_name,
            description=body.description or "",
            level=level,
            project_id=project.id if project else None,
            duration=duration,
            disabled=body.disable,
            creator=principal.name,
            permissions=blocks,
        )
    except NameTaken:
        raise HarborError(
            409, f"robot {services.robots.full_name(stored_name)!r} already exists"
        ) from None
    except ProjectMissing:
        raise HarborError(404, "a project named in the permissions no longer exists") from None
    _changed(services)
    _audit(request, principal, "create", record)
    created = RobotCreatedOut(
        id=record.id,
        name=services.robots.full_name(record.name),
        secret=secret,
        creation_time=iso8601(record.created_at),
        expires_at=_unix(record.expires_at),
    )
    return JSONResponse(
        created.model_dump(),
        status_code=201,
        headers={
            "Location": f"{request.url.path.rstrip('/')}/{record.id}",
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/robots",
    response_model=list[RobotOut],
    summary="List robot accounts",
    description="``q=Level=system`` (the default) lists system robots, for admins; "
    "``q=Level=project,ProjectID=<id>`` a project's robots, for callers with robot:list there. "
    "``name`` filters by stored name (``name=~ci`` for a substring).",
    responses={400: {}, 401: {}, 403: {}, 404: {}},
)
async def list_robots(
    request: Request,
    response: Response,
    principal: Caller,
    page: Annotated[Page, Depends(PageParams)],
    q: Annotated[
        str | None,
        q_query(
            {
                "Level": Key("system|project", ("exact",)),
                "ProjectID": Key(ID, ("exact",)),
                "name": Key(),
            }
        ),
    ] = None,
    sort: Annotated[str | None, sort_query(_SORT_COLUMNS)] = None,
) -> list[RobotOut]:
    require_authenticated(request, principal)
    services = services_of(request)
    terms = parse_query(q, {"Level", "ProjectID", "name"})
    level = "system"
    if "Level" in terms:
        term = terms.pop("Level")
        level = _valid_level(term.values[0] if term.kind == "exact" else None)
    project_term = terms.pop("ProjectID", None)
    conditions: list[ColumnElement[bool]] = [robots_table.c.level == level]
    if level == "system":
        require_admin(request, principal, "list system robots")
    else:
        if project_term is None:
            raise HarborError(400, "must with project ID when to query project robots")
        value = project_term.values[0] if project_term.kind == "exact" else ""
        if not value.isdigit() or not 0 < int(value) <= MAX_ID:
            raise HarborError(400, "ProjectID must be a positive integer")
        project = await services.projects.get_by_id(int(value))
        if project is None:
            raise HarborError(404, f"project {value} not found")
        await _require(request, principal, project, "list")
        conditions.append(robots_table.c.project_id == project.id)
    conditions += where_clauses(terms, {"name": (robots_table.c.name, str)})
    order = [
        _SORT_COLUMNS[field].desc() if descending else _SORT_COLUMNS[field].asc()
        for field, descending in parse_sort(sort, set(_SORT_COLUMNS))
    ]
    records, total = await services.robots.page(conditions, order, page.offset, page.page_size)
    set_page_headers(request, response, page, total)
    return await _render(services, records)


@router.get(
    "/robots/{robot_id}",
    response_model=RobotOut,
    summary="Get a robot account",
    responses={401: {}, 403: {}, 404: {}},
)
async def get_robot(request: Request, robot_id: RobotId, principal: Caller) -> RobotOut:
    record = await _existing(request, principal, robot_id)
    await _require_on(request, principal, record, "read")
    return (await _render(services_of(request), [record]))[0]


@router.put(
    "/robots/{robot_id}",
    summary="Update a robot account",
    description="Changes description, disable, duration (counted from the creation time) and "
    "permissions. Name and level cannot change.",
    responses={200: {}, 400: {}, 401: {}, 403: {}, 404: {}, 409: {}},
)
async def update_robot(
    request: Request, robot_id: RobotId, body: RobotUpdateBody, principal: Caller
) -> Response:
    services = services_of(request)
    record = await _existing(request, principal, robot_id)
    project = await _require_on(request, principal, record, "update")
    if body.level is not None and body.level != record.level:
        raise HarborError(400, "cannot update the level or name of robot")
    if body.name is not None and body.name not in (
        record.name,
        services.robots.full_name(record.name),
    ):
        raise HarborError(400, "cannot update the level or name of robot")
    duration = record.duration if body.duration is None else _valid_duration(body.duration)
    blocks = _valid_blocks(record.level, body.permissions)
    if project is not None and blocks[0].namespace != project.name:
        raise HarborError(400, "cannot update the project id of robot")
    if project is None:
        await _check_namespaces(request, blocks)
    await _require_within_caller(request, principal, record.permissions)
    await _require_within_caller(request, principal, blocks)
    try:
        updated = await services.robots.update(
            robot_id,
            description=body.description or "",
            disabled=body.disable,
            duration=duration,
            permissions=blocks,
        )
    except ProjectMissing:
        raise HarborError(404, "a project named in the permissions no longer exists") from None
    _changed(services)
    if updated is None:
        raise HarborError(404, f"robot {robot_id} not found")
    _audit(request, principal, "update", updated, detail=_update_detail(record, updated))
    return Response(status_code=200)


def _update_detail(before: RobotRecord, after: RobotRecord) -> str:
    changes = []
    if before.disabled != after.disabled:
        changes.append("disabled" if after.disabled else "enabled")
    if before.duration != after.duration:
        changes.append(f"duration {before.duration} -> {after.duration}")
    if before.permissions != after.permissions:
        changes.append("permissions changed")
    if before.description != after.description:
        changes.append("description changed")
    return ", ".join(changes) or "no change"


@router.patch(
    "/robots/{robot_id}",
    response_model=RobotSecOut,
    response_model_exclude_none=True,
    summary="Refresh the robot secret",
    description="With ``secret`` (8-128 characters, upper case, lower case and a digit) that "
    "secret is set and not echoed; without it one is generated and returned. Every earlier "
    "secret and token of the robot is refused from then on.",
    responses={400: {}, 401: {}, 403: {}, 404: {}},
)
async def refresh_secret(
    request: Request, robot_id: RobotId, body: RobotSecBody, principal: Caller
) -> Response:
    services = services_of(request)
    record = await _existing(request, principal, robot_id)
    await _require_on(request, principal, record, "update")
    await _require_within_caller(request, principal, record.permissions)
    if body.secret and not valid_secret(body.secret):
        raise HarborError(
            400,
            "the secret must be 8-128, inclusively, characters long with at least 1 uppercase "
            "letter, 1 lowercase letter and 1 number",
        )
    secret = await services.robots.refresh_secret(robot_id, body.secret or None)
    _changed(services)
    if secret is None:
        raise HarborError(404, f"robot {robot_id} not found")
    _audit(request, principal, "update", record, detail="secret refreshed")
    payload = {} if body.secret else {"secret": secret}
    return JSONResponse(payload, headers={"Cache-Control": "no-store"})


@router.delete(
    "/robots/{robot_id}",
    summary="Delete a robot account",
    responses={200: {}, 401: {}, 403: {}, 404: {}},
)
async def delete_robot(request: Request, robot_id: RobotId, principal: Caller) -> Response:
    services = services_of(request)
    record = await _existing(request, principal, robot_id)
    await _require_on(request, principal, record, "delete")
    await _require_within_caller(request, principal, record.permissions)
    removed = await services.robots.delete(robot_id)
    _changed(services)
    if not removed:
        raise HarborError(404, f"robot {robot_id} not found")
    _audit(request, principal, "delete", record)
    return Response(status_code=200)
