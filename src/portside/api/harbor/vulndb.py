"""``/api/v2.0/system/vulndb`` (Portside extension): the built-in scanner's vulnerability
database: what it holds, and importing advisories that were pushed to this registry as an
OCI artifact (the air-gapped update path). System admins only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from portside.api.harbor.access import Caller, record_change, require_admin, services_of
from portside.api.harbor.errors import HarborError
from portside.scanner.vulndb_artifact import VulnDBArtifactError, import_from_registry

__all__ = ["router"]

router = APIRouter(tags=["vulndb"])


class ImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repository: str = Field(min_length=1, max_length=255, examples=["library/vulndb"])
    reference: str = Field(min_length=1, max_length=200, examples=["2026-11-27"])


@router.get("/system/vulndb", summary="What the vulnerability database holds.")
async def vulndb_status(request: Request, principal: Caller) -> dict[str, Any]:
    require_admin(request, principal, "read the vulnerability database status")
    return await services_of(request).scans.vulndb.status()


@router.post("/system/vulndb/import", summary="Import advisories pushed as an OCI artifact.")
async def vulndb_import(request: Request, principal: Caller, body: ImportIn) -> dict[str, Any]:
    require_admin(request, principal, "import vulnerability advisories")
    services = services_of(request)
    try:
        stats = await import_from_registry(
            services.db, services.storage, services.scans.vulndb, body.repository, body.reference
        )
    except VulnDBArtifactError as error:
        raise HarborError(400, str(error)) from None
    record_change(
        request,
        principal,
        "create",
        "vulndb",
        f"{body.repository}:{body.reference}",
        detail=f"{stats.advisories} advisories",
    )
    return {
        "advisories": stats.advisories,
        "files": stats.files,
        "malformed": stats.malformed,
        "withdrawn": stats.withdrawn,
        "generation": stats.generation,
        "seconds": stats.seconds,
    }
