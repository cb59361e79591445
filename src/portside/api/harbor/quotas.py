"""``/api/v2.0/quotas``: each project's storage quota, shaped as Harbor's quota API.

A quota belongs to one project, and its id is the project's id. ``hard.storage`` is the limit in
bytes (-1: unlimited) and ``used.storage`` the bytes of the unique blobs and manifests the
project stores (:mod:`portside.projects.quotas`).

Who may do what (anonymous callers get 401, others 403):

- list quotas and change a limit: system admins;
- read one quota: system admins, and callers holding ``quota:read`` in its project (every
  member role has it, as in Harbor's project roles).

Every change is audited (resource type ``quota``) and takes effect at once on this replica.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from portside.api.harbor.access import MAX_ID, Caller, record_change, require_admin, services_of
from portside.api.harbor.errors import HarborError
from portside.api.harbor.listing import Paging, parse_sort, set_page_headers, sort_query
from portside.audit.log import iso8601
from portside.auth.access import Principal
from portside.projects.quotas import MAX_HARD_BYTES, UNLIMITED, QuotaRecord, SortKey

__all__ = ["router"]

router = APIRouter(tags=["quota"])

QuotaId = Annotated[int, Path(ge=1, le=MAX_ID, description="Quota ID (the project's id).")]
STORAGE = "storage"
_SORT_KEYS = {"creation_time", "update_time", "hard.storage", "used.storage"}


async def _admin(request: Request, principal: Caller) -> Principal:
    """Admins only; a dependency, so callers are refused before their body is looked at."""
    require_admin(request, principal, "manage quotas")
    return principal


Admin = Annotated[Principal, Depends(_admin)]


class QuotaUpdateReq(BaseModel):
    """Harbor's ``QuotaUpdateReq``: the new hard limits, by resource name."""

    model_config = ConfigDict(extra="forbid", strict=True)

    hard: dict[str, StrictInt] = Field(
        json_schema_extra={
            "propertyNames": {"const": STORAGE},
            "required": [STORAGE],
            # UNLIMITED (-1), or a byte count: see _hard_storage.
            "additionalProperties": {
                "type": "integer",
                "minimum": UNLIMITED,
                "maximum": MAX_HARD_BYTES,
            },
        }
    )


class Quota(BaseModel):
    """Harbor's ``Quota`` model."""

    id: int
    ref: dict[str, Any]
    hard: dict[str, int]
    used: dict[str, int]
    creation_time: str
    update_time: str


def _response(record: QuotaRecord) -> Quota:
    return Quota(
        id=record.project_id,
        ref={
            "id": record.project_id,
            "name": record.project_name,
            "owner_name": record.owner_name or "",
        },
        hard={STORAGE: record.hard},
        used={STORAGE: record.used},
        creation_time=iso8601(record.created_at),
        update_time=iso8601(record.updated_at),
    )


def _hard_storage(body: QuotaUpdateReq) -> int:
    """The new storage limit: -1 (unlimited) or 0 up to Harbor's ceiling of 1024 TiB."""
    unknown = sorted(set(body.hard) - {STORAGE})
    if unknown:
        raise HarborError(400, f"resource {unknown[0][:64]!r} is not supported; only 'storage'")
    if STORAGE not in body.hard:
        raise HarborError(400, "hard.storage is required")
    value = body.hard[STORAGE]
    if value != UNLIMITED and not 0 <= value <= MAX_HARD_BYTES:
        raise HarborError(
            400, f"hard.storage must be -1 (unlimited) or 0 to {MAX_HARD_BYTES} bytes"
        )
    return value


def _reference_id(value: str | None) -> int | None:
    """A ``reference_id`` filter as a project id; 0 when it can match no project."""
    if value is None or value == "":
        return None
    stripped = value.strip()
    if not stripped.isdigit() or len(stripped) > 10 or int(stripped) > MAX_ID:
        return 0
    return int(stripped)


@router.get("/quotas", response_model=list[Quota], summary="List quotas.")
async def list_quotas(
    request: Request,
    response: Response,
    principal: Admin,
    paging: Paging,
    reference: Annotated[str | None, Query(max_length=64)] = None,
    reference_id: Annotated[str | None, Query(max_length=64)] = None,
    sort: Annotated[str | None, sort_query(_SORT_KEYS)] = None,
) -> list[Quota]:
    order = cast(list[tuple[SortKey, bool]], parse_sort(sort, _SORT_KEYS))
    project_id = _reference_id(reference_id)
    if (reference not in (None, "", "project")) or project_id == 0:
        set_page_headers(request, response, paging, 0)
        return []
    total, records = await services_of(request).quotas.list(
        project_id, order, paging.offset, paging.page_size
    )
    set_page_headers(request, response, paging, total)
    return [_response(record) for record in records]


@router.get("/quotas/{quota_id}", response_model=Quota, summary="Get one quota.")
async def get_quota(request: Request, quota_id: QuotaId, principal: Caller) -> Quota:
    require_admin(request, principal, "read quotas")
    record = await services_of(request).quotas.get(quota_id)
    if record is None:
        raise HarborError(404, f"quota {quota_id} not found")
    return _response(record)


@router.put(
    "/quotas/{quota_id}",
    response_class=Response,
    summary="Change the hard limit of a quota.",
)
async def update_quota(
    request: Request, quota_id: QuotaId, body: QuotaUpdateReq, principal: Admin
) -> Response:
    hard = _hard_storage(body)
    services = services_of(request)
    before = await services.quotas.get(quota_id)
    if before is None or not await services.quotas.set_hard(quota_id, hard):
        raise HarborError(404, f"quota {quota_id} not found")
    record_change(
        request,
        principal,
        "update",
        "quota",
        before.project_name,
        project_id=quota_id,
        detail=f"hard.storage: {before.hard} -> {hard}",
    )
    return Response(status_code=200)
