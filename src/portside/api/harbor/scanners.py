"""``/api/v2.0/scanners`` and ``/projects/{p}/scanner``: scanner registrations (Harbor's
``ScannerRegistration``), the system default, and each project's scanner.

Registrations are system settings: only system admins list, add, change, ping or delete them.
A project's scanner is read with ``scanner:read`` and chosen with ``scanner:create`` in that
project (ProjectAdmins), as in Harbor. The built-in scanner cannot be changed or deleted.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from portside.api.harbor import documented
from portside.api.harbor.access import (
    Caller,
    record_change,
    require_admin,
    require_project,
    services_of,
)
from portside.api.harbor.errors import HarborError
from portside.api.harbor.listing import Key, Paging, Term, parse_query, q_query, set_page_headers
from portside.audit.log import iso8601
from portside.auth.rbac import Permission
from portside.db.queries import now
from portside.scanner.adapter_api import AdapterError, builtin_metadata
from portside.scanner.registrations import (
    BUILTIN_URL,
    Registration,
    RegistrationConflict,
)

__all__ = ["router"]

router = APIRouter(tags=["scanner"])

RegistrationId = Annotated[str, Path(max_length=64, description="The registration's uuid.")]
AuthType = Literal["", "Basic", "Bearer", "X-ScannerAdapter-API-Key"]


class RegistrationIn(BaseModel):
    """Harbor's ``ScannerRegistrationReq``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(min_length=1, max_length=255)
    description: str = Field("", max_length=1024)
    url: str = documented.url()
    auth: AuthType = ""
    access_credential: str = Field("", max_length=1024)
    skip_cert_verify: StrictBool = Field(False, alias="skip_certVerify")
    use_internal_addr: StrictBool = False
    disabled: StrictBool = False


class PingIn(BaseModel):
    """Harbor's ``ScannerRegistrationSettings``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    url: str = documented.url()
    auth: AuthType = ""
    access_credential: str = Field("", max_length=1024)


class DefaultIn(BaseModel):
    """Harbor's ``IsDefault``."""

    model_config = ConfigDict(extra="forbid")
    is_default: StrictBool


class ProjectScannerIn(BaseModel):
    """Harbor's ``ProjectScanner``."""

    model_config = ConfigDict(extra="forbid")
    uuid: str = Field(min_length=1, max_length=64)


class RegistrationOut(BaseModel):
    """Harbor's ``ScannerRegistration``."""

    model_config = ConfigDict(populate_by_name=True)
    uuid: str
    name: str
    description: str
    url: str
    disabled: bool
    is_default: bool
    auth: str
    access_credential: str
    skip_certVerify: bool
    use_internal_addr: bool
    create_time: str
    update_time: str
    adapter: str = ""
    vendor: str = ""
    version: str = ""
    health: str = ""


def _check_text(body: BaseModel) -> None:
    """Names, descriptions and credentials are shown and sent on: no control characters."""
    for field, value in body.model_dump().items():
        if isinstance(value, str) and not value.isprintable():
            raise HarborError(400, f"{field} must not contain control characters")


def _check_url(url: str) -> str:
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        raise HarborError(400, "url must be an http:// or https:// URL")
    return url.rstrip("/")


def _masked(registration: Registration) -> str:
    # Credentials are write-only: a reader learns whether one is set, not what it is.
    return "*****" if registration.access_credential else ""


def _out(registration: Registration, health: str = "") -> dict[str, Any]:
    return {
        "uuid": registration.uuid,
        "name": registration.name,
        "description": registration.description,
        "url": registration.url,
        "disabled": registration.disabled,
        "is_default": registration.is_default,
        "auth": registration.auth,
        "access_credential": _masked(registration),
        "skip_certVerify": registration.skip_cert_verify,
        "use_internal_addr": registration.use_internal_addr,
        "create_time": iso8601(registration.created_at),
        "update_time": iso8601(registration.updated_at),
        "adapter": "Portside" if registration.builtin else "",
        "vendor": "Portside" if registration.builtin else "",
        "version": "",
        "health": health,
    }


async def _registration(request: Request, registration_id: str) -> Registration:
    try:
        uuid.UUID(registration_id)
    except ValueError:
        raise HarborError(404, f"scanner registration {registration_id[:64]!r} not found") from None
    found = await services_of(request).scans.registrations.get(registration_id)
    if found is None:
        raise HarborError(404, f"scanner registration {registration_id[:64]!r} not found")
    return found


async def _metadata(request: Request, registration: Registration) -> dict[str, Any]:
    scans = services_of(request).scans
    if registration.builtin:
        status = await scans.vulndb.status()
        imported = status.get("imported_at")
        return builtin_metadata(scans.version, str(imported) if imported else None)
    from portside.scanner.adapter_client import AdapterClient  # httpx: only when used

    return await AdapterClient(registration).metadata()


def _matches(registration: Registration, terms: dict[str, Term]) -> bool:
    for key, term in terms.items():
        value = str(getattr(registration, key))
        if term.kind == "fuzzy" and not any(v in value for v in term.values):
            return False
        if term.kind in ("exact", "any") and value not in term.values:
            return False
    return True


@router.get("/scanners", response_model=list[RegistrationOut], summary="List scanners.")
async def list_scanners(
    request: Request,
    response: Response,
    principal: Caller,
    page: Paging,
    q: Annotated[str | None, q_query({"name": Key(), "description": Key(), "url": Key()})] = None,
) -> list[dict[str, Any]]:
    require_admin(request, principal, "list scanners")
    terms = parse_query(q, {"name", "description", "url"})
    found = [r for r in await services_of(request).scans.registrations.list() if _matches(r, terms)]
    set_page_headers(request, response, page, len(found))
    return [_out(r) for r in found[page.offset : page.offset + page.page_size]]


@router.post("/scanners", status_code=201, summary="Register a scanner.")
async def create_scanner(request: Request, principal: Caller, body: RegistrationIn) -> Response:
    require_admin(request, principal, "register scanners")
    _check_text(body)
    values = body.model_dump()
    values["url"] = _check_url(body.url)
    try:
        created = await services_of(request).scans.registrations.create(values)
    except RegistrationConflict as error:
        raise HarborError(409, str(error)) from None
    record_change(request, principal, "create", "scanner", created.name)
    location = f"{request.scope.get('root_path', '')}/scanners/{created.uuid}"
    return Response(status_code=201, headers={"Location": location})


@router.post("/scanners/ping", summary="Check that a scanner adapter answers.")
async def ping_scanner(request: Request, principal: Caller, body: PingIn) -> Response:
    require_admin(request, principal, "ping scanners")
    _check_text(body)
    if body.url == BUILTIN_URL:
        return Response(status_code=200)
    probe = Registration(
        uuid="",
        name=body.name,
        description="",
        url=_check_url(body.url),
        auth=body.auth,
        access_credential=body.access_credential,
        skip_cert_verify=False,
        use_internal_addr=False,
        disabled=False,
        is_default=False,
        created_at=now(),
        updated_at=now(),
    )
    try:
        from portside.scanner.adapter_client import AdapterClient

        await AdapterClient(probe).metadata()
    except AdapterError as error:
        raise HarborError(400, str(error)) from None
    return Response(status_code=200)


@router.get("/scanners/{registration_id}", response_model=RegistrationOut, summary="Get a scanner.")
async def get_scanner(
    request: Request, principal: Caller, registration_id: RegistrationId
) -> dict[str, Any]:
    require_admin(request, principal, "read scanners")
    return _out(await _registration(request, registration_id))


@router.put("/scanners/{registration_id}", summary="Change a scanner registration.")
async def update_scanner(
    request: Request, principal: Caller, registration_id: RegistrationId, body: RegistrationIn
) -> Response:
    require_admin(request, principal, "change scanners")
    registration = await _registration(request, registration_id)
    if registration.builtin:
        raise HarborError(403, "the built-in scanner cannot be changed")
    _check_text(body)
    values = body.model_dump()
    values["url"] = _check_url(body.url)
    if body.access_credential == "*****":  # the masked value read back: keep the secret
        values.pop("access_credential")
    try:
        await services_of(request).scans.registrations.update(registration_id, values)
    except RegistrationConflict as error:
        raise HarborError(409, str(error)) from None
    record_change(request, principal, "update", "scanner", body.name)
    return Response(status_code=200)


@router.delete(
    "/scanners/{registration_id}", response_model=RegistrationOut, summary="Delete a scanner."
)
async def delete_scanner(
    request: Request, principal: Caller, registration_id: RegistrationId
) -> dict[str, Any]:
    require_admin(request, principal, "delete scanners")
    registration = await _registration(request, registration_id)
    if registration.builtin:
        raise HarborError(403, "the built-in scanner cannot be deleted")
    await services_of(request).scans.registrations.delete(registration_id)
    record_change(request, principal, "delete", "scanner", registration.name)
    return _out(registration)


@router.patch("/scanners/{registration_id}", summary="Make a scanner the system default.")
async def set_default_scanner(
    request: Request, principal: Caller, registration_id: RegistrationId, body: DefaultIn
) -> Response:
    require_admin(request, principal, "choose the default scanner")
    registration = await _registration(request, registration_id)
    if not body.is_default:
        raise HarborError(400, "make another scanner the default instead")
    if registration.disabled:
        raise HarborError(400, "a disabled scanner cannot be the default")
    await services_of(request).scans.registrations.set_default(registration_id)
    record_change(request, principal, "update", "scanner", registration.name, detail="default")
    return Response(status_code=200)


@router.get("/scanners/{registration_id}/metadata", summary="A scanner adapter's metadata.")
async def scanner_metadata(
    request: Request, principal: Caller, registration_id: RegistrationId
) -> dict[str, Any]:
    require_admin(request, principal, "read scanners")
    registration = await _registration(request, registration_id)
    try:
        return await _metadata(request, registration)
    except AdapterError as error:
        raise HarborError(502, str(error)) from None


@router.get(
    "/projects/{project_name_or_id}/scanner",
    response_model=RegistrationOut,
    summary="The scanner of a project.",
)
async def project_scanner(
    request: Request, principal: Caller, project_name_or_id: str
) -> dict[str, Any]:
    project = await require_project(
        request, principal, project_name_or_id, Permission("scanner", "read")
    )
    registration = await services_of(request).scans.registrations.for_project(project.id)
    if registration is None:
        raise HarborError(404, "no scanner serves this project")
    return _out(registration)


@router.put("/projects/{project_name_or_id}/scanner", summary="Choose a project's scanner.")
async def set_project_scanner(
    request: Request, principal: Caller, project_name_or_id: str, body: ProjectScannerIn
) -> Response:
    project = await require_project(
        request, principal, project_name_or_id, Permission("scanner", "create")
    )
    registration = await _registration(request, body.uuid)
    if registration.disabled:
        raise HarborError(400, "a disabled scanner cannot serve a project")
    await services_of(request).scans.registrations.set_for_project(project.id, body.uuid)
    record_change(request, principal, "update", "scanner", registration.name, project_id=project.id)
    return Response(status_code=200)


@router.get(
    "/projects/{project_name_or_id}/scanner/candidates",
    response_model=list[RegistrationOut],
    summary="Scanners a project may choose.",
)
async def project_scanner_candidates(
    request: Request, response: Response, principal: Caller, project_name_or_id: str, page: Paging
) -> list[dict[str, Any]]:
    await require_project(request, principal, project_name_or_id, Permission("scanner", "create"))
    found = [r for r in await services_of(request).scans.registrations.list() if not r.disabled]
    set_page_headers(request, response, page, len(found))
    return [_out(r) for r in found[page.offset : page.offset + page.page_size]]
