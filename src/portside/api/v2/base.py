"""``GET /v2/`` (version check and login) and ``GET /v2/_catalog``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portside.api.security import authorize
from portside.api.v2.common import API_VERSION_HEADER, Page
from portside.auth.access import Scope

__all__ = ["api_version", "catalog"]

_CATALOG_SCOPE = Scope("registry", "catalog", frozenset({"*"}))


async def api_version(request: Request) -> Response:
    """200 for any authenticated caller; the 401 challenge tells clients how to log in."""
    await authorize(request, None)
    return JSONResponse({}, headers=API_VERSION_HEADER)


async def catalog(request: Request) -> Response:
    principal = await authorize(request, _CATALOG_SCOPE)
    services = request.app.state.services
    visible = await services.policy.visible_project_ids(principal)
    limit = services.settings.registry.catalog_max_entries
    page = Page(request, limit, default=limit)
    names = [] if page.empty else await services.repositories.names(page.fetch, page.last, visible)
    items, headers = page.trim(names)
    return JSONResponse({"repositories": items}, headers=headers)
