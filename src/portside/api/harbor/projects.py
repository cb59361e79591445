"""``/api/v2.0`` projects: create, list, read, update and delete projects, their summary, and
their metadata, shaped as Harbor's ``Project``, ``ProjectReq``, ``ProjectSummary`` and
``ProjectDeletable`` models.

Who may do what:

- create: system admins; any user when ``auth.project_creation_restriction`` is ``everyone``
  (never robots, never anonymous callers). The creator becomes the project's ProjectAdmin.
- list: everyone; admins see every project, users the public ones and those they are members
  of, robots the public ones and those their permissions name, anonymous callers the public
  ones (the access policy's :meth:`~portside.auth.policy.ProjectPolicy.visible_project_ids`).
- read, summary: ``project:read`` (anyone on a public project); update: ``project:update``;
  delete and ``_deletable``: ``project:delete``; metadata: ``metadata:<action>``.

Every change drops the cached project and the policy's cached decisions, so it takes effect at
once on this replica, and is written to the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from sqlalchemy import ColumnElement

from portside.api.harbor.access import (
    MAX_ID,
    Caller,
    deny,
    record_change,
    require_authenticated,
    require_project,
    services_of,
)
from portside.api.harbor.errors import HarborError
from portside.api.harbor.listing import (
    ID,
    NOT_FUZZY,
    Key,
    Page,
    PageParams,
    Term,
    parse_query,
    parse_sort,
    q_query,
    set_page_headers,
    sort_query,
    where_clauses,
)
from portside.api.harbor.scan_all import AllowlistIn, allowlist_out, parse_allowlist
from portside.audit.log import iso8601
from portside.auth.access import Principal
from portside.auth.rbac import Permission, Role
from portside.db.tables import projects
from portside.projects.projects import (
    MAX_PROJECT_NAME,
    METADATA_KEYS,
    PROJECT_NAME,
    SORTABLE,
    MetadataError,
    Project,
    ProjectDetail,
    ProjectNameError,
    ProjectNotEmpty,
    normalize_metadata,
    owned_by,
    public_is,
    validate_project_name,
)
from portside.text import has_control_characters

__all__ = [
    "MAX_ID",
    "ProjectOut",
    "ProjectReq",
    "ProjectSummary",
    "project_for",
    "router",
    "text_filter",
]

router = APIRouter(tags=["project"])

INT64_MAX = 2**63 - 1
_PROXY_METADATA = frozenset(
    {"proxy_speed_kb", "max_upstream_conn", "proxy_cache_filter_pattern", "proxy_cache_filter_kind"}
)
# Harbor's current_user_role_id is the "highest" of the caller's roles, in this order.
_ROLE_POWER = {
    Role.PROJECT_ADMIN: 50,
    Role.MAINTAINER: 40,
    Role.DEVELOPER: 30,
    Role.GUEST: 20,
    Role.LIMITED_GUEST: 10,
}


# -- models -------------------------------------------------------------------------------------


class ProjectReq(BaseModel):
    """Harbor's ``ProjectReq``: the body of ``POST /projects`` and ``PUT /projects/{p}``."""

    model_config = ConfigDict(extra="forbid")

    project_name: StrictStr | None = Field(
        None,
        description="The name of the project.",
        json_schema_extra={
            "maxLength": MAX_PROJECT_NAME,
            "pattern": f"^(?:{PROJECT_NAME.pattern})$",
        },
    )
    public: StrictBool | None = Field(
        None, description="Deprecated: use metadata.public. Kept for old replication clients."
    )
    metadata: dict[str, StrictStr | None] | None = Field(
        None,
        description="Harbor's project metadata, every value a string: public, auto_scan, "
        "prevent_vul, severity, enable_content_trust, enable_content_trust_cosign, "
        "reuse_sys_cve_allowlist, auto_sbom_generation, retention_id.",
    )
    cve_allowlist: AllowlistIn | None = Field(
        None,
        description="The project's own CVE allowlist (used when metadata "
        "reuse_sys_cve_allowlist is false): items and an optional expires_at.",
    )
    storage_limit: int | None = Field(
        None,
        ge=-1,
        le=INT64_MAX,
        strict=True,
        description="Storage quota in bytes, -1 for unlimited; only admins may choose it, "
        "others get the system default (on create only).",
    )
    registry_id: int | None = Field(
        None, strict=True, description="Proxy cache projects are not supported."
    )
    retention_days: int | None = Field(
        None, strict=True, description="Only for proxy cache projects, which are not supported."
    )


class ProjectOut(BaseModel):
    """Harbor's ``Project`` model."""

    project_id: int
    owner_id: int | None
    name: str
    registry_id: int | None = None
    creation_time: str
    update_time: str
    deleted: bool = False
    owner_name: str | None
    togglable: bool
    current_user_role_id: int
    current_user_role_ids: list[int]
    repo_count: int
    chart_count: int = 0
    metadata: dict[str, str]
    cve_allowlist: dict[str, Any]


class ResourceList(BaseModel):
    storage: int


class SummaryQuota(BaseModel):
    hard: ResourceList
    used: ResourceList


class ProjectSummary(BaseModel):
    """Harbor's ``ProjectSummary``: member counts need ``member:list``, the quota
    ``quota:read``; without them those fields are left out, as in Harbor."""

    repo_count: int
    chart_count: int = 0
    project_admin_count: int | None = None
    maintainer_count: int | None = None
    developer_count: int | None = None
    guest_count: int | None = None
    limited_guest_count: int | None = None
    quota: SummaryQuota | None = None


class ProjectDeletable(BaseModel):
    deletable: bool
    message: str | None = None


# -- helpers shared with the members endpoints --------------------------------------------------


def text_filter(value: str | None, what: str, limit: int = 255) -> str | None:
    """A free-text filter from the query string, refused (400) when it could not match anything
    a name may hold: control characters, or longer than any stored name."""
    if value is None:
        return None
    if len(value) > limit or has_control_characters(value):
        raise HarborError(400, f"invalid {what}: control characters or too long")
    return value


async def project_for(
    request: Request, principal: Principal, name_or_id: str, permission: Permission
) -> Project:
    """The project a ``{project_name_or_id}`` names, if ``principal`` holds ``permission`` in it.

    A value that cannot name any project (not a valid name, an id out of range, non-ASCII
    digits) is a 404 before anything is looked up."""
    by_name = request.headers.get("x-is-resource-name", "").lower() == "true"
    plausible = bool(len(name_or_id) <= MAX_PROJECT_NAME and PROJECT_NAME.fullmatch(name_or_id))
    if plausible and name_or_id.isdigit() and not by_name:
        plausible = len(name_or_id) <= 10 and int(name_or_id) <= MAX_ID
    if not plausible:
        raise HarborError(404, f"project {name_or_id[:64]!r} not found")
    return await require_project(request, principal, name_or_id, permission)


def _audit(
    request: Request,
    principal: Principal,
    operation: str,
    project: str,
    project_id: int | None,
    detail: str | None = None,
) -> None:
    record_change(
        request, principal, operation, "project", project, project_id=project_id, detail=detail
    )


def _forget(request: Request, name: str) -> None:
    services = services_of(request)
    services.projects.forget(name)
    services.policy.forget()


def _metadata_changes(body: ProjectReq) -> dict[str, str]:
    """The metadata a request sets, validated and normalized. Empty values mean "not given";
    the proxy cache keys are ignored for non-proxy projects, as Harbor does."""
    given: dict[str, str] = {}
    for key, value in (body.metadata or {}).items():
        if key in _PROXY_METADATA:
            continue
        if key not in METADATA_KEYS:
            allowed = ", ".join(sorted(METADATA_KEYS))
            raise HarborError(400, f"unknown metadata {key[:64]!r}; allowed: {allowed}")
        if value:
            given[key] = value
    if body.public is not None and "public" not in given:
        given["public"] = "true" if body.public else "false"
    try:
        return normalize_metadata(given)
    except MetadataError as exc:
        raise HarborError(400, str(exc)) from None


def _refuse_unsupported(body: ProjectReq) -> None:
    if body.retention_days is not None:
        raise HarborError(
            400, "retention_days is only supported when creating a proxy cache project"
        )


def _highest(roles: frozenset[Role]) -> int:
    return int(max(roles, key=_ROLE_POWER.__getitem__)) if roles else 0


async def _project_out(
    request: Request,
    principal: Principal,
    details: list[ProjectDetail],
) -> list[ProjectOut]:
    """Harbor's ``Project`` for each of ``details``, seen by ``principal``: its roles there
    (members only, as Harbor) and whether it may change the project's settings."""
    services = services_of(request)
    roles: dict[int, frozenset[Role]] = {}
    if principal.kind == "user" and principal.id is not None:
        roles = await services.members.roles_by_project(
            principal.id, (d.project.id for d in details)
        )
    update = Permission("project", "update")
    allowlists = await services.allowlists.get_many([d.project.id for d in details])
    result = []
    for detail in details:
        project = detail.project
        held = roles.get(project.id, frozenset())
        result.append(
            ProjectOut(
                project_id=project.id,
                owner_id=project.owner_id,
                name=project.name,
                creation_time=iso8601(project.created_at),
                update_time=iso8601(project.updated_at),
                owner_name=detail.owner_name,
                togglable=await services.policy.allows(principal, project, update),
                current_user_role_id=_highest(held),
                current_user_role_ids=sorted(int(role) for role in held),
                repo_count=detail.repo_count,
                metadata={"public": "false", **project.metadata},
                cve_allowlist=allowlist_out(allowlists[project.id]),
            )
        )
    return result


# -- create, check, list ------------------------------------------------------------------------


@router.post(
    "/projects",
    status_code=201,
    summary="Create a new project.",
    responses={201: {"description": "Created; Location names the new project."}},
)
async def create_project(
    request: Request,
    principal: Caller,
    body: Annotated[ProjectReq, Body()],
    x_resource_name_in_location: Annotated[bool, Header()] = False,
) -> Response:
    services = services_of(request)
    require_authenticated(request, principal)
    everyone = (await services.configurations.get()).project_creation_restriction == "everyone"
    if principal.is_robot or principal.id is None or not (principal.is_admin or everyone):
        raise deny(request, principal, "create projects")
    if not body.project_name:
        raise HarborError(400, "project_name is required")
    try:
        name = validate_project_name(body.project_name)
    except ProjectNameError as exc:
        raise HarborError(400, f"invalid project name {body.project_name[:64]!r}: {exc}") from None
    if body.registry_id is not None:
        raise HarborError(400, "proxy cache projects are not supported")
    _refuse_unsupported(body)
    if (body.metadata or {}).get("retention_id"):
        raise HarborError(400, "retention_id must be omitted (or empty) when creating a project")
    metadata = {"public": "false", **_metadata_changes(body)}
    # Validated before anything is created: a refused body leaves no project behind.
    allowlist = parse_allowlist(body.cve_allowlist) if body.cve_allowlist is not None else None
    # Only admins choose a quota; 0 or nothing means the system default, as in Harbor.
    quota = (await services.configurations.get()).storage_per_project
    if principal.is_admin and body.storage_limit:
        quota = body.storage_limit
    project_id = await services.projects.create(name, principal.id, metadata, quota)
    if project_id is None:
        raise HarborError(409, f"project {name} already exists")
    if allowlist is not None:
        await services.allowlists.put(project_id, *allowlist)
    _forget(request, name)
    _audit(request, principal, "create", name, project_id, f"public={metadata['public']}")
    location = (
        f"{request.url.path.rstrip('/')}/{name if x_resource_name_in_location else project_id}"
    )
    return Response(status_code=201, headers={"Location": location})


@router.head(
    "/projects",
    summary="Check whether a project name is taken.",
    response_class=Response,  # HEAD answers have no body, so none is documented
    responses={200: {"description": "The name is taken."}},
)
async def head_project(
    request: Request, principal: Caller, project_name: Annotated[str, Query()]
) -> Response:
    require_authenticated(request, principal)
    plausible = len(project_name) <= MAX_PROJECT_NAME and PROJECT_NAME.fullmatch(project_name)
    if not plausible or not await services_of(request).projects.exists(project_name):
        raise HarborError(404, "project not found")
    return Response(status_code=200)


_QUERY_KEYS = {"name", "public", "owner", "project_id"}


def _project_id(value: str) -> int:
    if not value.isascii() or not value.isdigit() or int(value) > MAX_ID:
        raise ValueError("not a project id")
    return int(value)


def _exact_bool(term: Term) -> bool:
    value = term.values[0].strip().lower() if term.kind == "exact" else ""
    if value not in ("true", "false", "1", "0"):
        raise HarborError(400, "public must be true or false")
    return value in ("true", "1")


def _query_conditions(q: str | None) -> list[ColumnElement[bool]]:
    terms = parse_query(q, _QUERY_KEYS)
    for term in terms.values():
        for value in term.values:
            text_filter(value, f"query value for {term.key}")
    conditions: list[ColumnElement[bool]] = []
    public = terms.pop("public", None)
    if public is not None:
        conditions.append(public_is(_exact_bool(public)))
    owner = terms.pop("owner", None)
    if owner is not None:
        if owner.kind != "exact":
            raise HarborError(400, "owner takes an exact user name")
        conditions.append(owned_by(owner.values[0]))
    conditions.extend(
        where_clauses(
            terms,
            {
                "name": (projects.c.name, str),
                "project_id": (projects.c.id, _project_id),
            },
        )
    )
    return conditions


@router.get(
    "/projects",
    response_model=list[ProjectOut],
    summary="List the projects the caller may see.",
)
async def list_projects(
    request: Request,
    response: Response,
    principal: Caller,
    page: Annotated[Page, Depends(PageParams)],
    q: Annotated[
        str | None,
        q_query(
            {
                "name": Key(),
                "public": Key("true|false", ("exact",)),
                "owner": Key(forms=("exact",)),
                "project_id": Key(ID, NOT_FUZZY),
            }
        ),
    ] = None,
    sort: Annotated[str | None, sort_query(SORTABLE)] = None,
    name: Annotated[str | None, Query(description="Fuzzy match on the name.")] = None,
    public: Annotated[bool | None, Query()] = None,
    owner: Annotated[str | None, Query(description="The owner's username.")] = None,
    with_detail: Annotated[bool, Query()] = True,
) -> list[ProjectOut]:
    services = services_of(request)
    conditions = _query_conditions(q)
    if text_filter(name, "name"):
        conditions.append(projects.c.name.contains(name, autoescape=True))
    if public is not None:
        conditions.append(public_is(public))
    if text_filter(owner, "owner"):
        assert owner is not None
        conditions.append(owned_by(owner))
    visible = await services.policy.visible_project_ids(principal)
    if visible is not None:
        conditions.append(projects.c.id.in_(sorted(visible)))
    order = parse_sort(sort, set(SORTABLE))
    total, details = await services.projects.search(conditions, order, page.offset, page.page_size)
    set_page_headers(request, response, page, total)
    return await _project_out(request, principal, details)


# -- one project --------------------------------------------------------------------------------

_PROJECT = "/projects/{project_name_or_id}"


@router.get(_PROJECT, response_model=ProjectOut, summary="Get a project.")
async def get_project(request: Request, principal: Caller, project_name_or_id: str) -> ProjectOut:
    project = await project_for(
        request, principal, project_name_or_id, Permission("project", "read")
    )
    detail = await services_of(request).projects.detail(project)
    return (await _project_out(request, principal, [detail]))[0]


@router.put(_PROJECT, summary="Update a project's settings (its metadata).")
async def update_project(
    request: Request,
    principal: Caller,
    project_name_or_id: str,
    body: Annotated[ProjectReq, Body()],
) -> Response:
    services = services_of(request)
    project = await project_for(
        request, principal, project_name_or_id, Permission("project", "update")
    )
    _refuse_unsupported(body)
    changes = _metadata_changes(body)
    retention = changes.get("retention_id")
    if retention is not None and retention != project.metadata.get("retention_id"):
        raise HarborError(
            400,
            "retention_id must be omitted, or be the one already associated with the project",
        )
    allowlist = parse_allowlist(body.cve_allowlist) if body.cve_allowlist is not None else None
    await services.projects.set_metadata(project.id, dict(changes))
    if allowlist is not None:
        await services.allowlists.put(project.id, *allowlist)
        services.pull_gate.forget()
        changes = {**changes, "cve_allowlist": f"{len(allowlist[0])} CVEs"}
    _forget(request, project.name)
    detail = ",".join(f"{key}={value}" for key, value in sorted(changes.items()))
    _audit(request, principal, "update", project.name, project.id, detail or None)
    return Response(status_code=200)


@router.delete(_PROJECT, summary="Delete an empty project.")
async def delete_project(request: Request, principal: Caller, project_name_or_id: str) -> Response:
    services = services_of(request)
    project = await project_for(
        request, principal, project_name_or_id, Permission("project", "delete")
    )
    try:
        deleted = await services.projects.delete(project.id)
    except ProjectNotEmpty as exc:
        raise HarborError(412, str(exc)) from None
    _forget(request, project.name)
    services.robots.forget()  # the project's robots went with it
    await services.allowlists.delete(project.id)
    services.quotas.forget(project.id)  # SQLite may give the id to the next project
    if not deleted:
        raise HarborError(404, f"project {project.name} not found")
    _audit(request, principal, "delete", project.name, project.id)
    return Response(status_code=200)


@router.get(
    f"{_PROJECT}/_deletable",
    response_model=ProjectDeletable,
    response_model_exclude_none=True,
    summary="Whether the project can be deleted.",
)
async def project_deletable(
    request: Request, principal: Caller, project_name_or_id: str
) -> ProjectDeletable:
    project = await project_for(
        request, principal, project_name_or_id, Permission("project", "delete")
    )
    if await services_of(request).projects.repo_count(project.id):
        return ProjectDeletable(deletable=False, message=ProjectNotEmpty.message)
    return ProjectDeletable(deletable=True)


@router.get(
    f"{_PROJECT}/summary",
    response_model=ProjectSummary,
    response_model_exclude_none=True,
    summary="Repository and member counts and the storage quota of a project.",
)
async def project_summary(
    request: Request, principal: Caller, project_name_or_id: str
) -> ProjectSummary:
    services = services_of(request)
    project = await project_for(
        request, principal, project_name_or_id, Permission("project", "read")
    )
    summary = ProjectSummary(repo_count=await services.projects.repo_count(project.id))
    if await services.policy.allows(principal, project, Permission("quota", "read")):
        usage = await services.projects.quota(project.id)
        summary.quota = SummaryQuota(
            hard=ResourceList(storage=usage.hard_bytes),
            used=ResourceList(storage=usage.used_bytes),
        )
    if await services.policy.allows(principal, project, Permission("member", "list")):
        counts = await services.members.count_by_role(project.id)
        summary.project_admin_count = counts[Role.PROJECT_ADMIN]
        summary.maintainer_count = counts[Role.MAINTAINER]
        summary.developer_count = counts[Role.DEVELOPER]
        summary.guest_count = counts[Role.GUEST]
        summary.limited_guest_count = counts[Role.LIMITED_GUEST]
    return summary


# -- metadata -----------------------------------------------------------------------------------

_METADATAS = f"{_PROJECT}/metadatas"
_META_NAME = f"{_METADATAS}/{{meta_name}}"


def _known_key(meta_name: str) -> str:
    if meta_name not in METADATA_KEYS:
        allowed = ", ".join(sorted(METADATA_KEYS))
        raise HarborError(400, f"unknown metadata {meta_name[:64]!r}; allowed: {allowed}")
    return meta_name


def _validated(items: dict[str, str]) -> dict[str, str]:
    if not items:
        raise HarborError(400, "no metadata given")
    try:
        return normalize_metadata(items)
    except MetadataError as exc:
        raise HarborError(400, str(exc)) from None


@router.get(_METADATAS, response_model=dict[str, str], summary="Get a project's metadata.")
@router.get(f"{_METADATAS}/", response_model=dict[str, str], include_in_schema=False)
async def list_metadata(
    request: Request, principal: Caller, project_name_or_id: str
) -> dict[str, str]:
    project = await project_for(
        request, principal, project_name_or_id, Permission("metadata", "read")
    )
    return dict(project.metadata)


@router.post(_METADATAS, summary="Add metadata to a project (409 if a key is set already).")
@router.post(f"{_METADATAS}/", include_in_schema=False)
async def add_metadata(
    request: Request,
    principal: Caller,
    project_name_or_id: str,
    body: Annotated[dict[str, StrictStr], Body()],
) -> Response:
    project = await project_for(
        request, principal, project_name_or_id, Permission("metadata", "create")
    )
    items = _validated(body)
    taken = await services_of(request).projects.set_metadata(project.id, dict(items), only_new=True)
    if taken:
        raise HarborError(409, f"metadata already set: {', '.join(sorted(taken))}")
    _forget(request, project.name)
    detail = ",".join(f"{key}={value}" for key, value in sorted(items.items()))
    _audit(request, principal, "update", project.name, project.id, detail)
    return Response(status_code=200)


@router.get(_META_NAME, response_model=dict[str, str], summary="Get one metadata value.")
async def get_metadata(
    request: Request, principal: Caller, project_name_or_id: str, meta_name: str
) -> dict[str, str]:
    project = await project_for(
        request, principal, project_name_or_id, Permission("metadata", "read")
    )
    key = _known_key(meta_name)
    if key not in project.metadata:
        raise HarborError(404, f"metadata {key} is not set")
    return {key: project.metadata[key]}


@router.put(_META_NAME, summary="Change one metadata value.")
async def update_metadata(
    request: Request,
    principal: Caller,
    project_name_or_id: str,
    meta_name: str,
    body: Annotated[dict[str, StrictStr], Body()],
) -> Response:
    project = await project_for(
        request, principal, project_name_or_id, Permission("metadata", "update")
    )
    key = _known_key(meta_name)
    if set(body) != {key}:
        raise HarborError(400, f"the body must hold exactly the metadata {key}")
    items = _validated(body)
    if key not in project.metadata:
        raise HarborError(404, f"metadata {key} is not set")
    await services_of(request).projects.set_metadata(project.id, dict(items))
    _forget(request, project.name)
    _audit(request, principal, "update", project.name, project.id, f"{key}={items[key]}")
    return Response(status_code=200)


@router.delete(_META_NAME, summary="Remove one metadata value.")
async def delete_metadata(
    request: Request, principal: Caller, project_name_or_id: str, meta_name: str
) -> Response:
    project = await project_for(
        request, principal, project_name_or_id, Permission("metadata", "delete")
    )
    key = _known_key(meta_name)
    missing = await services_of(request).projects.set_metadata(project.id, {key: None})
    if missing:
        raise HarborError(404, f"metadata {key} is not set")
    _forget(request, project.name)
    _audit(request, principal, "update", project.name, project.id, f"{key} removed")
    return Response(status_code=200)
