"""``/api/v2.0/labels``: Harbor's global and project labels.

Who may do what (anonymous callers are refused by the gate before any of this):

- list global labels (``scope=g``): every authenticated caller, as in Harbor, where the UI
  offers global labels to everyone who can label an artifact;
- list project labels (``scope=p&project_id=N``): ``label:list`` in that project (Guests and up);
- create, read, update or delete a global label: system admins;
- create, read, update or delete a project label: ``label:create|read|update|delete`` in its
  project (reading is Guests and up, changing Maintainers and up).

Every change is audited with resource type ``label``. Deleting a label detaches it from every
artifact.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from portside.api.harbor import documented
from portside.api.harbor.access import (
    MAX_ID,
    Caller,
    record_change,
    require_admin,
    require_authenticated,
    require_project,
    services_of,
)
from portside.api.harbor.errors import HarborError
from portside.api.harbor.listing import (
    ID,
    NOT_FUZZY,
    TIME,
    Key,
    Paging,
    parse_query,
    parse_sort,
    parse_time,
    q_query,
    set_page_headers,
    sort_query,
    where_clauses,
)
from portside.audit.log import iso8601
from portside.auth.access import Principal
from portside.auth.rbac import Permission
from portside.db.tables import labels
from portside.projects.labels import (
    MAX_DESCRIPTION_LENGTH,
    Label,
    LabelConflict,
    LabelScope,
    label_problem,
)
from portside.projects.labels import MAX_NAME_LENGTH as MAX_LABEL_NAME
from portside.projects.projects import Project
from portside.text import has_control_characters

__all__ = ["router"]

router = APIRouter(tags=["label"])

LabelId = Annotated[int, Path(ge=1, le=MAX_ID, description="The label's id.")]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    meaning = {
        400: "Bad request: invalid parameters or body.",
        401: "Authentication required.",
        403: "The caller may not do this.",
        404: "The label or project does not exist.",
        409: "A label with this name already exists in the scope.",
        415: "The body is not JSON.",
    }
    # The error body's schema is added to every operation by errors.document_errors.
    return {status: {"description": meaning[status]} for status in statuses}


_QUERY_KEYS = {"name", "id", "creation_time", "update_time"}
_SORT_COLUMNS = {
    "id": labels.c.id,
    "name": labels.c.name,
    "creation_time": labels.c.created_at,
    "update_time": labels.c.updated_at,
}


class LabelBody(BaseModel):
    """Harbor's ``Label`` as a request body. Clients often send back a label they read, so the
    read-only fields (id, times) are accepted and ignored; anything else unknown is refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = documented.printable_name(MAX_LABEL_NAME)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    color: str | None = Field(
        default=None,
        max_length=64,
        # label_problem's rule: empty, or a CSS hex colour (3, 4, 6 or 8 digits).
        json_schema_extra={"pattern": "^(?:#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8}))?$"},
    )
    scope: Literal["g", "p"] | None = None
    project_id: int | None = Field(default=None, ge=0, le=MAX_ID)
    id: int | None = None
    creation_time: str | None = Field(default=None, max_length=64)
    update_time: str | None = Field(default=None, max_length=64)
    deleted: bool | None = None


class LabelOut(BaseModel):
    """Harbor's ``Label``: ``project_id`` is 0 for global labels."""

    id: int
    name: str
    description: str
    color: str
    scope: str
    project_id: int
    creation_time: str
    update_time: str


def _out(label: Label) -> LabelOut:
    return LabelOut(
        id=label.id,
        name=label.name,
        description=label.description,
        color=label.color,
        scope=label.scope,
        project_id=label.project_id or 0,
        creation_time=iso8601(label.created_at),
        update_time=iso8601(label.updated_at),
    )


def _no_control(value: str | None, name: str) -> str | None:
    """Query values reach SQL, logs and audit entries, and no label holds a control
    character: a filter with one could match nothing."""
    if value is not None and has_control_characters(value):
        raise HarborError(400, f"{name} must not contain control characters")
    return value


def _positive_id(value: str) -> int:
    number = int(value)
    if not 1 <= number <= MAX_ID:
        raise ValueError("out of range")
    return number


async def _project_by_id(
    request: Request, principal: Principal, project_id: int, permission: Permission
) -> Project:
    """The project with this id, if ``principal`` holds ``permission`` there (404/401/403)."""
    project = await services_of(request).projects.get_by_id(project_id)
    if project is None:
        raise HarborError(404, f"project {project_id} not found")
    return await require_project(request, principal, project.name, permission, by_name=True)


async def _require_on(request: Request, principal: Principal, label: Label, action: str) -> None:
    """Global labels are the admins'; a project label follows ``label:<action>`` there."""
    if label.scope == "g" or label.project_id is None:
        require_admin(request, principal, f"{action} global labels")
        return
    await _project_by_id(request, principal, label.project_id, Permission("label", action))


async def _existing(request: Request, label_id: int) -> Label:
    label = await services_of(request).labels.get(label_id)
    if label is None:
        raise HarborError(404, f"label {label_id} not found")
    return label


def _audit(request: Request, principal: Principal, operation: str, label: Label) -> None:
    where = "global" if label.project_id is None else f"project {label.project_id}"
    record_change(
        request,
        principal,
        operation,
        "label",
        label.name,
        project_id=label.project_id,
        detail=f"label {label.id} ({where})",
    )


def _checked(body: LabelBody) -> tuple[str, str | None, str | None]:
    problem = label_problem(body.name, body.description, body.color)
    if problem:
        raise HarborError(400, problem)
    return body.name, body.description, body.color


@router.get(
    "/labels",
    response_model=list[LabelOut],
    summary="List labels according to the query strings",
    description="``scope=g`` lists global labels (every user); ``scope=p&project_id=N`` a "
    "project's labels (label:list there). Without ``scope``, ``p`` is assumed when "
    "``project_id`` is given, else ``g``. ``name`` is a substring filter; ``q`` keys: "
    "name, id, creation_time, update_time; ``sort`` fields: id, name, creation_time, "
    "update_time.",
    responses=_errors(400, 401, 403, 404),
)
async def list_labels(
    request: Request,
    response: Response,
    principal: Caller,
    page: Paging,
    q: Annotated[
        str | None,
        q_query(
            {
                "name": Key(),
                "id": Key(ID, NOT_FUZZY),
                "creation_time": Key(TIME, NOT_FUZZY),
                "update_time": Key(TIME, NOT_FUZZY),
            }
        ),
    ] = None,
    sort: Annotated[str | None, sort_query(_SORT_COLUMNS, max_length=512)] = None,
    name: Annotated[str | None, Query(max_length=128)] = None,
    scope: Annotated[Literal["g", "p"] | None, Query()] = None,
    project_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> list[LabelOut]:
    require_authenticated(request, principal)
    chosen: LabelScope = scope or ("p" if project_id is not None else "g")
    owner: int | None = None
    if chosen == "p":
        if project_id is None:
            raise HarborError(400, "project_id is required to list project labels")
        await _project_by_id(request, principal, project_id, Permission("label", "list"))
        owner = project_id
    terms = parse_query(_no_control(q, "q"), _QUERY_KEYS)
    where = where_clauses(
        terms,
        {
            "name": (labels.c.name, str),
            "id": (labels.c.id, _positive_id),
            "creation_time": (labels.c.created_at, parse_time),
            "update_time": (labels.c.updated_at, parse_time),
        },
    )
    if _no_control(name, "name"):
        where.append(labels.c.name.contains(name, autoescape=True))
    order = [
        _SORT_COLUMNS[field].desc() if descending else _SORT_COLUMNS[field].asc()
        for field, descending in parse_sort(_no_control(sort, "sort"), set(_SORT_COLUMNS))
    ]
    total, found = await services_of(request).labels.list(
        chosen, owner, where, order, page.offset, page.page_size
    )
    set_page_headers(request, response, page, total)
    return [_out(label) for label in found]


@router.post(
    "/labels",
    status_code=201,
    response_class=Response,
    summary="Create a label",
    description="A global label (``scope`` ``g``, system admins) or a project label (``scope`` "
    "``p`` with ``project_id``; label:create in that project, Maintainers and up). The "
    "``Location`` header names the new label.",
    responses={
        201: {"description": "Created; Location names the new label."},
        **_errors(400, 401, 403, 404, 409, 415),
    },
)
async def create_label(request: Request, body: LabelBody, principal: Caller) -> Response:
    require_authenticated(request, principal)
    scope: LabelScope = body.scope or ("p" if body.project_id else "g")
    name, description, color = _checked(body)
    project_id: int | None = None
    if scope == "g":
        require_admin(request, principal, "create global labels")
    else:
        if not body.project_id:
            raise HarborError(400, "project_id is required for a project label")
        await _project_by_id(request, principal, body.project_id, Permission("label", "create"))
        project_id = body.project_id
    services = services_of(request)
    try:
        label_id = await services.labels.create(name, description, color, scope, project_id)
    except LabelConflict as conflict:
        raise HarborError(409, str(conflict)) from None
    created = await services.labels.get(label_id)
    if created is not None:
        _audit(request, principal, "create", created)
    location = f"{request.url.path.rstrip('/')}/{label_id}"
    return Response(status_code=201, headers={"Location": location})


@router.get(
    "/labels/{label_id}",
    response_model=LabelOut,
    summary="Get the label specified by ID",
    description="A project label needs label:read in its project; a global label, system admin.",
    responses=_errors(400, 401, 403, 404),
)
async def get_label(request: Request, label_id: LabelId, principal: Caller) -> LabelOut:
    label = await _existing(request, label_id)
    await _require_on(request, principal, label, "read")
    return _out(label)


@router.put(
    "/labels/{label_id}",
    response_class=Response,
    summary="Update the label properties",
    description="Replaces name, description and color (as Harbor does, fields left out become "
    "empty); scope and project_id cannot change and are ignored.",
    responses={200: {"description": "Updated."}, **_errors(400, 401, 403, 404, 409, 415)},
)
async def update_label(
    request: Request, label_id: LabelId, body: LabelBody, principal: Caller
) -> Response:
    label = await _existing(request, label_id)
    await _require_on(request, principal, label, "update")
    name, description, color = _checked(body)
    try:
        updated = await services_of(request).labels.update(label_id, name, description, color)
    except LabelConflict as conflict:
        raise HarborError(409, str(conflict)) from None
    if updated is None:
        raise HarborError(404, f"label {label_id} not found")
    _audit(request, principal, "update", updated)
    return Response(status_code=200)


@router.delete(
    "/labels/{label_id}",
    response_class=Response,
    summary="Delete the label specified by ID",
    description="Also removes the label from every artifact it was attached to.",
    responses={200: {"description": "Deleted."}, **_errors(400, 401, 403, 404)},
)
async def delete_label(request: Request, label_id: LabelId, principal: Caller) -> Response:
    label = await _existing(request, label_id)
    await _require_on(request, principal, label, "delete")
    if not await services_of(request).labels.delete(label_id):
        raise HarborError(404, f"label {label_id} not found")
    _audit(request, principal, "delete", label)
    return Response(status_code=200)
