"""The Harbor-compatible management API, served under ``/api/v2.0``.

A FastAPI application mounted into the main app: FastAPI builds the OpenAPI document from the
same pydantic models that validate requests. Errors always use Harbor's envelope
(:mod:`.errors`). Every route passes :func:`.access.gate` first, which refuses anonymous
callers outside a short allow-list, and then asks :mod:`.access` before doing anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from fastapi import Depends, FastAPI, Request, Response

from portside.api.harbor import (
    artifacts,
    audit_logs,
    configurations,
    cve_export,
    labels,
    members,
    projects,
    quotas,
    repositories,
    robots,
    scan_all,
    scanners,
    scans,
    search,
    system,
    usergroups,
    users,
    vulndb,
)
from portside.api.harbor.access import gate
from portside.api.harbor.errors import document_errors, exception_handlers
from portside.api.harbor.methods import AllowedMethods
from portside.api.harbor.openapi import document_text_rule
from portside.api.harbor.session_auth import CsrfTokenHeader
from portside.api.services import Services

__all__ = ["PREFIX", "create_management_app"]

PREFIX = "/api/v2.0"


def create_management_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="Portside management API",
        version="2.0",
        description="Harbor-compatible management API of Portside.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        exception_handlers=exception_handlers,
        dependencies=[Depends(gate)],
    )
    for module in (users, usergroups, projects, members, robots, quotas, audit_logs, labels):
        app.include_router(module.router)
    for module in (system, configurations, search):
        app.include_router(module.router)
    for module in (repositories, artifacts):
        app.include_router(module.router)
    for module in (scans, scanners, scan_all, vulndb, cve_export):
        app.include_router(module.router)
    document_errors(app)  # one shared declaration of Harbor's error responses for every route
    document_text_rule(app)  # the request boundary's rule for all text

    @app.middleware("http")
    async def request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Echo ``X-Request-Id`` (or make one up), as Harbor does."""
        value = request.headers.get("x-request-id", "")[:128] or str(uuid.uuid4())
        response = await call_next(request)
        response.headers["X-Request-Id"] = value
        return response

    app.add_middleware(CsrfTokenHeader)
    app.add_middleware(AllowedMethods, document=lambda: app.openapi())
    app.state.services = services
    return app
