"""``/api/v2.0/system/scanAll`` and ``/system/CVEAllowlist``: scanning every image, on demand or
on a schedule, and the system CVE allowlist. System admins only, except that every
authenticated caller may read the system allowlist (projects inherit it, so their admins need
to see it).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from portside.api.harbor import documented
from portside.api.harbor.access import (
    Caller,
    record_change,
    require_admin,
    require_authenticated,
    services_of,
)
from portside.api.harbor.errors import HarborError
from portside.audit.log import iso8601
from portside.db.queries import now
from portside.scanner.allowlists import _CVE_ID as CVE_ID
from portside.scanner.allowlists import MAX_ITEMS, SYSTEM, Allowlist, cve_problem
from portside.scanner.scan_all import SCHEDULE_TYPES, Schedule, cron_problem

__all__ = ["allowlist_out", "parse_allowlist", "router"]

router = APIRouter(tags=["scanAll"])

ScheduleType = Literal["None", "Hourly", "Daily", "Weekly", "Custom", "Manual"]


class ScheduleObj(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra=documented.CUSTOM_NEEDS_CRON)
    type: ScheduleType
    cron: str = documented.cron()


class ScheduleIn(BaseModel):
    """Harbor's ``Schedule`` as sent: only ``schedule`` (and ignored ``parameters``) matter."""

    model_config = ConfigDict(extra="ignore")
    schedule: ScheduleObj


class AllowlistItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    cve_id: StrictStr = Field(json_schema_extra={"pattern": f"^(?:{CVE_ID.pattern})$"})


class AllowlistIn(BaseModel):
    """Harbor's ``CVEAllowlist``; ``id``, ``project_id`` and times are ignored on input."""

    model_config = ConfigDict(extra="ignore")
    expires_at: StrictInt | None = Field(None, ge=0, le=2**53)
    items: list[AllowlistItem] = Field(default_factory=list, max_length=MAX_ITEMS)


def parse_allowlist(body: AllowlistIn) -> tuple[list[str], int | None]:
    """Validated CVE ids and expiry from a request body; 400 on a bad id."""
    items = [item.cve_id.strip() for item in body.items]
    for cve in items:
        if (problem := cve_problem(cve)) is not None:
            raise HarborError(400, problem)
    return items, body.expires_at or None


def allowlist_out(allowlist: Allowlist) -> dict[str, Any]:
    return {
        "id": allowlist.id,
        "project_id": allowlist.project_id,
        "expires_at": allowlist.expires_at,
        "items": [{"cve_id": cve} for cve in allowlist.items],
        "creation_time": iso8601(allowlist.created_at) if allowlist.created_at else None,
        "update_time": iso8601(allowlist.updated_at) if allowlist.updated_at else None,
    }


def _schedule_out(schedule: Schedule | None) -> dict[str, Any]:
    if schedule is None:
        return {"schedule": {"type": "None", "cron": ""}}
    next_run = schedule.next_run(now()) if schedule.cron else None
    return {
        "id": 1,
        "status": "Scheduled" if schedule.cron else "",
        "creation_time": iso8601(schedule.updated_at) if schedule.updated_at else None,
        "update_time": iso8601(schedule.updated_at) if schedule.updated_at else None,
        "schedule": {
            "type": schedule.type,
            "cron": schedule.cron,
            "next_scheduled_time": iso8601(next_run) if next_run else None,
        },
    }


@router.get("/system/scanAll/schedule", summary="The scan-all schedule.")
async def get_schedule(request: Request, principal: Caller) -> dict[str, Any]:
    require_admin(request, principal, "read the scan-all schedule")
    return _schedule_out(await services_of(request).scans.scan_all.schedule())


async def _set_schedule(request: Request, principal: Caller, body: ScheduleIn) -> None:
    require_admin(request, principal, "schedule scan-all")
    scan_all = services_of(request).scans.scan_all
    kind = body.schedule.type
    cron = SCHEDULE_TYPES[kind]
    if cron is None:  # Custom
        cron = body.schedule.cron.strip()
        if (problem := cron_problem(cron)) is not None:
            raise HarborError(400, problem)
    if kind == "Manual":
        scan_all.last_trigger = "Manual"
        await scan_all.run(principal.name)
        record_change(request, principal, "create", "scan-all", "manual")
        return
    await scan_all.set_schedule(kind, cron)
    record_change(request, principal, "update", "scan-all", f"{kind} {cron}".strip())


@router.post("/system/scanAll/schedule", status_code=201, summary="Scan all now, or schedule.")
async def create_schedule(request: Request, principal: Caller, body: ScheduleIn) -> Response:
    await _set_schedule(request, principal, body)
    return Response(status_code=201)


@router.put("/system/scanAll/schedule", summary="Change the scan-all schedule.")
async def update_schedule(request: Request, principal: Caller, body: ScheduleIn) -> Response:
    await _set_schedule(request, principal, body)
    return Response(status_code=200)


@router.get("/scans/all/metrics", summary="Progress of scan-all.")
async def metrics(request: Request, principal: Caller) -> dict[str, Any]:
    require_admin(request, principal, "read scan-all metrics")
    return await services_of(request).scans.scan_all.metrics()


@router.get("/scans/schedule/metrics", summary="Progress of scheduled scan-all.")
async def schedule_metrics(request: Request, principal: Caller) -> dict[str, Any]:
    require_admin(request, principal, "read scan-all metrics")
    return await services_of(request).scans.scan_all.metrics()


@router.post("/system/scanAll/stop", status_code=202, summary="Stop scan-all.")
async def stop(request: Request, principal: Caller) -> Response:
    require_admin(request, principal, "stop scan-all")
    await services_of(request).scans.scan_all.stop()
    record_change(request, principal, "stop", "scan-all", "all")
    return Response(status_code=202)


@router.get("/system/CVEAllowlist", summary="The system CVE allowlist.")
async def get_system_allowlist(request: Request, principal: Caller) -> dict[str, Any]:
    require_authenticated(request, principal)
    return allowlist_out(await services_of(request).allowlists.get(SYSTEM))


@router.put("/system/CVEAllowlist", summary="Replace the system CVE allowlist.")
async def put_system_allowlist(request: Request, principal: Caller, body: AllowlistIn) -> Response:
    require_admin(request, principal, "change the system CVE allowlist")
    items, expires_at = parse_allowlist(body)
    services = services_of(request)
    await services.allowlists.put(SYSTEM, items, expires_at)
    services.pull_gate.forget()
    record_change(
        request,
        principal,
        "update",
        "cve-allowlist",
        "system",
        detail=f"{len(items)} CVEs"
        + (f", expires {time.strftime('%Y-%m-%d', time.gmtime(expires_at))}" if expires_at else ""),
    )
    return Response(status_code=200)
