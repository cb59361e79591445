"""``/search?q=``: projects and repositories whose name contains ``q``, among those the caller
may list (anonymous callers: public ones), as Harbor's ``Search``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from portside.api.harbor.access import Caller, services_of
from portside.api.harbor.projects import _project_out
from portside.db.tables import projects
from portside.system.search import search_repositories

__all__ = ["router"]

router = APIRouter(tags=["search"])

# Harbor does not page search results; this bounds the answer instead.
_MAX_HITS = 100


@router.get("/search", summary="Search projects and repositories by name.")
async def search(
    request: Request,
    principal: Caller,
    q: Annotated[str, Query(min_length=1, max_length=255)],
) -> dict[str, list[Any]]:
    services = services_of(request)
    visible = await services.policy.visible_project_ids(principal)
    conditions = [projects.c.name.contains(q, autoescape=True)]
    if visible is not None:
        conditions.append(projects.c.id.in_(sorted(visible)))
    _, details = await services.projects.search(conditions, [], 0, _MAX_HITS)
    found = await _project_out(request, principal, details)
    repositories = await search_repositories(services.db, q, visible, _MAX_HITS)
    return {
        "project": [project.model_dump() for project in found],
        "repository": [hit.to_json() for hit in repositories],
    }
