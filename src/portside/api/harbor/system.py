"""System endpoints: ``/health``, ``/ping``, ``/systeminfo``, ``/statistics`` and
``/users/current/permissions`` (a user route in Harbor, kept here with the other questions a
client asks about the system and itself).

- ``/health``, ``/ping`` and ``/systeminfo``: anyone (Harbor allows anonymous callers; load
  balancers and the log-in page ask them). Anonymous callers get a subset of ``/systeminfo``.
- ``/statistics`` and ``/users/current/permissions``: any authenticated caller, answered for
  what that caller may see.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from portside import __version__
from portside.api.harbor.access import (
    Caller,
    deny,
    get_project,
    require_authenticated,
    services_of,
)
from portside.api.harbor.errors import HarborError
from portside.api.public_url import base_url
from portside.audit.log import iso8601
from portside.auth.access import Principal
from portside.auth.rbac import ROLE_PERMISSIONS, Permission
from portside.auth.robots import GRANTABLE_PERMISSIONS
from portside.system.statistics import statistics

__all__ = ["router"]

router = APIRouter(tags=["system"])


@router.get("/health", summary="Health of each component (200 even when one is unhealthy).")
async def health(request: Request) -> JSONResponse:
    result = await services_of(request).health.check()
    return JSONResponse(result.to_json())


@router.get("/ping", response_class=PlainTextResponse, summary="Is the API server alive?")
async def ping() -> PlainTextResponse:
    return PlainTextResponse("Pong")


def _registry_host(request: Request) -> tuple[str, str]:
    """``(registry_url, external_url)``: the host clients push to, and the full base URL."""
    base = base_url(request)
    return re.sub(r"^[a-z]+://", "", base), base


@router.get("/systeminfo", summary="General system information (a subset when anonymous).")
async def systeminfo(request: Request, principal: Caller) -> dict[str, Any]:
    services = services_of(request)
    config = await services.configurations.get()
    registry_url, external_url = _registry_host(request)
    info: dict[str, Any] = {
        "auth_mode": config.auth_mode,
        "primary_auth_mode": False,
        "self_registration": config.self_registration,
        "harbor_version": __version__,
        "registry_url": registry_url,
        "banner_message": "",
    }
    if principal.is_authenticated:
        info |= {
            "current_time": iso8601(dt.datetime.now(dt.UTC)),
            "external_url": external_url,
            "project_creation_restriction": config.project_creation_restriction,
            "has_ca_root": False,
            "registry_storage_provider_name": services.settings.storage.driver,
            "read_only": config.read_only,
            "notification_enable": False,
        }
    return info


@router.get("/statistics", summary="Project and repository counts the caller may see.")
async def get_statistics(request: Request, principal: Caller) -> dict[str, int]:
    require_authenticated(request, principal)
    services = services_of(request)
    visible = await services.policy.visible_project_ids(principal)
    return (await statistics(services.db, visible)).to_json()


# -- the caller's own permissions ---------------------------------------------------------------

_PROJECT_SCOPE = re.compile(r"/project/([^/]{1,255})")
_ALL_PROJECT_PERMISSIONS = frozenset().union(*ROLE_PERMISSIONS.values())
# What a system admin may do at system level, in Harbor's resource names.
_SYSTEM_PERMISSIONS = frozenset(
    Permission(resource, action)
    for resource, actions in {
        "audit-log": ("list",),
        "configuration": ("read", "update"),
        "project": ("create", "list"),
        "quota": ("list", "read", "update"),
        "robot": ("create", "delete", "list", "read", "update"),
        "user": ("create", "delete", "list", "read", "update"),
        "user-group": ("create", "delete", "list", "read", "update"),
    }.items()
    for action in actions
)


async def _scope_permissions(
    request: Request, principal: Principal, scope: str
) -> tuple[str, frozenset[Permission]]:
    """``(resource prefix, permissions)`` of ``principal`` in ``scope``."""
    match = _PROJECT_SCOPE.fullmatch(scope)
    if match:
        project = await get_project(request, match[1])
        if project is None:
            return scope, frozenset()
        if principal.is_admin:
            return scope, _ALL_PROJECT_PERMISSIONS
        return scope, await services_of(request).policy.permissions(principal, project)
    if scope.rstrip("/") in ("", "/system"):
        granted = _SYSTEM_PERMISSIONS if principal.is_admin else frozenset()
        return "/system", granted
    raise HarborError(400, f"unsupported scope {scope[:255]!r}: use /system or /project/<id>")


@router.get("/users/current/permissions", summary="What the caller may do in a scope.")
async def current_permissions(
    request: Request,
    principal: Caller,
    scope: Annotated[str, Query(max_length=300)] = "/system",
    relative: bool = False,
) -> list[dict[str, str]]:
    require_authenticated(request, principal)
    prefix, granted = await _scope_permissions(request, principal, scope)
    return [
        {
            "resource": permission.resource if relative else f"{prefix}/{permission.resource}",
            "action": permission.action,
        }
        for permission in sorted(granted)
    ]


@router.get("/permissions", summary="The permissions a robot account may be given.")
async def grantable_permissions(request: Request, principal: Caller) -> dict[str, Any]:
    """Harbor's ``Permissions``: what the robot editor offers. ``project`` lists every
    permission a project robot may hold; ``system`` is empty because Portside has no
    system-level robot permissions (a robot covers every project with namespace ``*``)."""
    require_authenticated(request, principal)
    if principal.is_robot:
        raise deny(request, principal, "list robot permissions")
    return {
        "system": [],
        "project": [
            {"resource": permission.resource, "action": permission.action}
            for permission in sorted(GRANTABLE_PERMISSIONS)
        ],
    }
