"""``/configurations``: the system settings an admin changes at run time (admins only).

GET answers Harbor's ``ConfigurationsResponse`` for the keys Portside has, each as
``{"value", "editable"}``; PUT takes a partial body of plain values, checked as a whole before
anything is stored (400 names the first bad key). Every changed key is audited as a
``configuration`` change.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fastapi import APIRouter, Request, Response

from portside.api.harbor.access import Caller, record_change, require_admin, services_of
from portside.api.harbor.errors import HarborError
from portside.system.configurations import EDITABLE, ConfigurationError

__all__ = ["router"]

router = APIRouter(tags=["configure"])

# A body is a handful of small values; anything bigger is not a configuration.
_MAX_BODY_BYTES = 16 * 1024


@router.get("/configurations", summary="The system configuration (admins only).")
async def get_configurations(request: Request, principal: Caller) -> dict[str, dict[str, Any]]:
    require_admin(request, principal, "read the system configuration")
    config = await services_of(request).configurations.get()
    return {
        field.name: {"value": getattr(config, field.name), "editable": field.name in EDITABLE}
        for field in dataclasses.fields(config)
    }


@router.put(
    "/configurations",
    summary="Change some of the system configuration (admins only).",
    responses={200: {"description": "Changed."}, 400: {}, 401: {}, 403: {}},
)
async def update_configurations(request: Request, principal: Caller) -> Response:
    require_admin(request, principal, "change the system configuration")
    raw = await request.body()
    if len(raw) > _MAX_BODY_BYTES:
        raise HarborError(400, "configuration body too large")
    try:
        body = json.loads(raw)
    except ValueError:
        raise HarborError(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise HarborError(400, "the body must be a JSON object")
    services = services_of(request)
    try:
        changed = await services.configurations.update(body)
    except ConfigurationError as exc:
        raise HarborError(400, str(exc)) from None
    for key, (before, after) in changed.items():
        record_change(
            request,
            principal,
            "update",
            "configuration",
            key,
            detail=f"{json.dumps(before)} -> {json.dumps(after)}",
        )
    return Response(status_code=200)
