"""``/api/v2.0`` repositories: list (per project and across visible projects), read, update the
description, delete; shaped as Harbor's ``Repository`` model.

A repository is addressed by the part of its name after the project. Names containing ``/``
arrive URL-encoded twice (``a%252Fb``): the server decodes the path once, so the route sees
``a%2Fb`` as one segment, and :func:`repository_name` decodes it once more.

Who may do what: ``repository:list`` / ``read`` / ``update`` / ``delete`` in the project (read
and list for anyone on a public project). ``GET /repositories`` lists the repositories of the
projects the caller can see.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from sqlalchemy import ColumnElement, update

from portside.api.harbor.access import Caller, record_change, require_project, services_of
from portside.api.harbor.errors import HarborError
from portside.api.harbor.listing import (
    ID,
    NOT_FUZZY,
    Key,
    parse_query,
    parse_sort,
    q_query,
    set_page_headers,
    sort_query,
    where_clauses,
)
from portside.api.harbor.listing import Page as _Page
from portside.audit.log import iso8601
from portside.auth.rbac import Permission
from portside.db.queries import now
from portside.db.tables import repositories
from portside.oci.errors import RegistryError
from portside.oci.names import validate_name
from portside.projects.projects import Project
from portside.registry.artifacts import (
    REPOSITORY_SORT,
    RepositoryRow,
    list_repositories,
    repository_by_name,
)

__all__ = ["RepositoryOut", "full_name", "repository_name", "router"]

router = APIRouter(tags=["repository"])

_REPOS = "/projects/{project_name}/repositories"
_REPO = "/projects/{project_name}/repositories/{repository_name}"
MAX_DESCRIPTION = 64 << 10


class RepositoryOut(BaseModel):
    """Harbor's ``Repository``."""

    id: int
    project_id: int
    name: str
    description: str
    artifact_count: int
    pull_count: int
    creation_time: str
    update_time: str


class RepositoryReq(BaseModel):
    """Harbor's ``Repository`` as a PUT body: only ``description`` changes; the other fields
    are accepted (clients send back what they read) and ignored."""

    model_config = ConfigDict(extra="forbid")

    description: StrictStr | None = Field(None, max_length=MAX_DESCRIPTION)
    id: StrictInt | None = None
    project_id: StrictInt | None = None
    name: StrictStr | None = Field(None, max_length=512)
    artifact_count: StrictInt | None = None
    pull_count: StrictInt | None = None
    creation_time: StrictStr | None = Field(None, max_length=64)
    update_time: StrictStr | None = Field(None, max_length=64)


def repository_name(value: str) -> str:
    """The path value decoded once more (``a%2Fb`` → ``a/b``), validated: 404 when no
    repository could have this name."""
    decoded = unquote(value)
    try:
        validate_name(f"p/{decoded}")
    except RegistryError:
        raise HarborError(404, f"repository {value[:128]!r} not found") from None
    return decoded


def full_name(project: Project, value: str) -> str:
    return f"{project.name}/{repository_name(value)}"


def repository_out(row: RepositoryRow) -> RepositoryOut:
    return RepositoryOut(
        id=row.id,
        project_id=row.project_id or 0,
        name=row.name,
        description=row.description or "",
        artifact_count=row.artifact_count,
        pull_count=row.pull_count,
        creation_time=iso8601(row.created_at),
        update_time=iso8601(row.updated_at or row.created_at),
    )


def _conditions(q: str | None) -> list[ColumnElement[bool]]:
    terms = parse_query(q, {"name", "project_id"})
    return where_clauses(
        terms,
        {"name": (repositories.c.name, str), "project_id": (repositories.c.project_id, int)},
    )


def _order(sort: str | None) -> list[Any]:
    order: list[Any] = []
    for key, descending in parse_sort(sort, set(REPOSITORY_SORT)):
        column = REPOSITORY_SORT[key]
        order.append(column.desc() if descending else column.asc())
    if not order:
        order.append(repositories.c.created_at.desc())
    order.append(repositories.c.id.desc())
    return order


async def _list(
    request: Request,
    response: Response,
    conditions: list[ColumnElement[bool]],
    sort: str | None,
    page: _Page,
) -> list[RepositoryOut]:
    order = _order(sort)
    total, rows = await services_of(request).db.read(
        lambda c: list_repositories(c, conditions, order, page.offset, page.page_size)
    )
    set_page_headers(request, response, page, total)
    return [repository_out(row) for row in rows]


Sort = Annotated[str | None, sort_query(REPOSITORY_SORT)]
Q = Annotated[str | None, q_query({"name": Key(), "project_id": Key(ID, NOT_FUZZY)})]


@router.get(_REPOS, response_model=list[RepositoryOut], summary="List a project's repositories.")
async def list_project_repositories(
    request: Request,
    response: Response,
    principal: Caller,
    project_name: str,
    q: Q = None,
    sort: Sort = None,
    page: int = Query(1, ge=1, le=1_000_000),
    page_size: int = Query(10, ge=1, le=100),
) -> list[RepositoryOut]:
    project = await require_project(
        request, principal, project_name, Permission("repository", "list"), by_name=True
    )
    conditions = [repositories.c.project_id == project.id, *_conditions(q)]
    return await _list(request, response, conditions, sort, _Page(page, page_size))


@router.get("/repositories", response_model=list[RepositoryOut], summary="List repositories.")
async def list_all_repositories(
    request: Request,
    response: Response,
    principal: Caller,
    q: Q = None,
    sort: Sort = None,
    page: int = Query(1, ge=1, le=1_000_000),
    page_size: int = Query(10, ge=1, le=100),
) -> list[RepositoryOut]:
    visible = await services_of(request).policy.visible_project_ids(principal)
    conditions = _conditions(q)
    if visible is not None:
        conditions.append(repositories.c.project_id.in_(sorted(visible)))
    return await _list(request, response, conditions, sort, _Page(page, page_size))


async def _found(request: Request, name: str) -> RepositoryRow:
    row = await services_of(request).db.read(lambda c: repository_by_name(c, name))
    if row is None:
        raise HarborError(404, f"repository {name[:255]!r} not found")
    return row


@router.get(_REPO, response_model=RepositoryOut, summary="Get a repository.")
async def get_repository(
    request: Request, principal: Caller, project_name: str, repository_name: str
) -> RepositoryOut:
    project = await require_project(
        request, principal, project_name, Permission("repository", "read"), by_name=True
    )
    return repository_out(await _found(request, full_name(project, repository_name)))


@router.put(_REPO, summary="Update a repository's description.")
async def update_repository(
    request: Request,
    principal: Caller,
    project_name: str,
    repository_name: str,
    body: RepositoryReq,
) -> Response:
    project = await require_project(
        request, principal, project_name, Permission("repository", "update"), by_name=True
    )
    name = full_name(project, repository_name)
    await _found(request, name)
    statement = (
        update(repositories)
        .where(repositories.c.name == name)
        .values(description=body.description or "", updated_at=now())
    )
    await services_of(request).db.write(lambda c: c.execute(statement))
    record_change(request, principal, "update", "repository", name, project_id=project.id)
    return Response(status_code=200)


@router.delete(_REPO, summary="Delete a repository with all its artifacts.")
async def delete_repository(
    request: Request, principal: Caller, project_name: str, repository_name: str
) -> Response:
    project = await require_project(
        request, principal, project_name, Permission("repository", "delete"), by_name=True
    )
    name = full_name(project, repository_name)
    if not await services_of(request).repositories.delete(name):
        raise HarborError(404, f"repository {name[:255]!r} not found")
    record_change(request, principal, "delete", "repository", name, project_id=project.id)
    return Response(status_code=200)
