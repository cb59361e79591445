"""The access gate of ``/api/v2.0``: who is calling, and may they do this?

Every handler takes the caller from :func:`caller` and asks :func:`require_project` or
:func:`require_admin` before touching anything; both go to the same
:class:`~portside.auth.policy.ProjectPolicy` that ``/v2/`` uses. Anything not explicitly
allowed is refused: 401 for anonymous callers, 403 for everyone else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from portside.api.harbor.errors import HarborError
from portside.api.harbor.session_auth import SESSION_COOKIE, session_caller
from portside.api.security import client_address, principal_from_basic
from portside.api.services import Services
from portside.auth.access import ANONYMOUS, Principal
from portside.auth.rbac import Permission
from portside.projects.projects import Project

__all__ = [
    "ANONYMOUS_ROUTES",
    "MAX_ID",
    "Caller",
    "caller",
    "deny",
    "gate",
    "get_project",
    "record_change",
    "require_admin",
    "require_authenticated",
    "require_project",
    "services_of",
]


MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL


def services_of(request: Request) -> Services:
    """The application's services, typed."""
    services: Services = request.app.state.services
    return services


async def caller(request: Request) -> Principal:
    """The principal behind the request's basic credentials, else behind its UI session cookie
    (with the CSRF check, see :mod:`.session_auth`), else the anonymous caller. Basic
    credentials win when both are sent."""
    header = request.headers.get("authorization", "")
    if not header:
        token = request.cookies.get(SESSION_COOKIE)
        if token is None:
            return ANONYMOUS
        return await session_caller(request, token)
    if header[:6].lower() != "basic ":
        raise _unauthorized(request, "only basic authentication is supported here")
    principal = await principal_from_basic(request, header)
    if principal is None:
        raise _unauthorized(request, "invalid username or password")
    request.scope.setdefault("state", {})["user"] = principal.name
    return principal


Caller = Annotated[Principal, Depends(caller)]

# The only routes an anonymous caller may reach at all; the handlers still decide what they see
# (public projects only). Every other route refuses anonymous callers before its parameters
# and body are even validated.
ANONYMOUS_ROUTES = frozenset(
    {
        ("GET", "/projects"),
        ("GET", "/projects/{project_name_or_id}"),
        ("GET", "/projects/{project_name_or_id}/summary"),
        # Public projects' content is readable by anyone, as in Harbor.
        ("GET", "/repositories"),
        ("GET", "/projects/{project_name}/repositories"),
        ("GET", "/projects/{project_name}/repositories/{repository_name}"),
        ("GET", "/projects/{project_name}/repositories/{repository_name}/artifacts"),
        ("GET", "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}"),
        (
            "GET",
            "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags",
        ),
        (
            "GET",
            "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}"
            "/accessories",
        ),
        (
            "GET",
            "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}"
            "/additions/{addition}",
        ),
        # Harbor answers these anonymously too: load balancers, the log-in page, public search.
        ("GET", "/health"),
        ("GET", "/ping"),
        ("GET", "/systeminfo"),
        ("GET", "/search"),
    }
)


async def gate(request: Request, principal: Caller) -> None:
    """Application-wide dependency: anonymous callers are refused everywhere except
    :data:`ANONYMOUS_ROUTES` (and ``POST /users`` when self-registration is on)."""
    if principal.is_authenticated:
        return
    route = request.scope.get("route")
    key = (request.method, getattr(route, "path", ""))
    if key in ANONYMOUS_ROUTES:
        return
    if (
        key == ("POST", "/users")
        and (await services_of(request).configurations.get()).self_registration
    ):
        return
    raise _unauthorized(request, "authentication required")


def _unauthorized(request: Request, message: str) -> HarborError:
    realm = request.app.state.services.settings.auth.realm
    return HarborError(401, message, headers={"WWW-Authenticate": f'Basic realm="{realm}"'})


def deny(request: Request, principal: Principal, what: str) -> HarborError:
    """The refusal for ``principal``, audited: 401 when anonymous, else 403."""
    request.app.state.services.audit.record(
        principal.name,
        "access",
        "api",
        what,
        "failure",
        client_address(request),
        detail="access denied",
    )
    if not principal.is_authenticated:
        return _unauthorized(request, "authentication required")
    return HarborError(403, f"{principal.name or 'anonymous'} may not {what}")


def record_change(
    request: Request,
    principal: Principal,
    operation: str,
    resource_type: str,
    resource: str,
    *,
    project_id: int | None = None,
    detail: str | None = None,
) -> None:
    """Audit a successful change made through the API by ``principal``."""
    services_of(request).audit.record(
        principal.name,
        operation,
        resource_type,
        resource,
        "success",
        client_address(request),
        project_id=project_id,
        detail=detail,
    )


def require_authenticated(request: Request, principal: Principal) -> None:
    if not principal.is_authenticated:
        raise _unauthorized(request, "authentication required")


def require_admin(request: Request, principal: Principal, what: str) -> None:
    """Only system admins may do ``what`` (a phrase for the error message)."""
    if not principal.is_admin:
        raise deny(request, principal, what)


async def get_project(
    request: Request, name_or_id: str, *, by_name: bool = False
) -> Project | None:
    """Resolve a ``{project_name_or_id}`` path value; ``X-Is-Resource-Name: true`` (or
    ``by_name``, for paths that only take names) forces a name, as in Harbor."""
    services: Services = request.app.state.services
    by_name = by_name or request.headers.get("x-is-resource-name", "").lower() == "true"
    if not by_name and name_or_id.isascii() and name_or_id.isdigit():
        project_id = int(name_or_id)
        if project_id > MAX_ID:
            return None
        return await services.projects.get_by_id(project_id)
    return await services.projects.get(name_or_id)


async def require_project(
    request: Request,
    principal: Principal,
    name_or_id: str,
    permission: Permission,
    *,
    by_name: bool = False,
) -> Project:
    """The project, if ``principal`` holds ``permission`` in it. 404 when it does not exist."""
    project = await get_project(request, name_or_id, by_name=by_name)
    if project is None:
        raise HarborError(404, f"project {name_or_id[:255]!r} not found")
    if not await request.app.state.services.policy.allows(principal, project, permission):
        raise deny(
            request, principal, f"{permission.action} {permission.resource} in {project.name}"
        )
    return project
