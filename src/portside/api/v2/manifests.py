"""Manifest GET/HEAD/PUT/DELETE, tag listing and the referrers API.

Pushes, pulls and deletes are written to the audit log, as Harbor does: a pull is a manifest
GET (not a HEAD, not a blob download). Recording only queues the entry; the project is named
and resolved to its id later, so the hot path waits for nothing.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portside.api.security import client_address
from portside.api.v2.common import Page, read_limited
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest, parse_digest
from portside.oci.errors import ErrorCode, RegistryError
from portside.oci.names import is_tag
from portside.projects.projects import project_of
from portside.registry.manifests import Reference, parse_reference
from portside.text import unsafe_json

__all__ = ["audit_artifact", "delete", "get", "put", "referrers", "tag_list"]


def audit_artifact(
    request: Request,
    name: str,
    operation: str,
    resource_type: str,
    resource: str,
    detail: str | None = None,
) -> None:
    """Queue a successful registry operation for the audit log, as the caller the gate let in."""
    principal = getattr(request.state, "principal", None)
    request.app.state.services.audit.record(
        principal.name if principal is not None else "",
        operation,
        resource_type,
        resource,
        "success",
        client_address(request),
        detail=detail,
        project=project_of(name),
    )


def _artifact(name: str, reference: Reference, digest: Digest) -> str:
    """``repo:tag`` when addressed by tag, else ``repo@digest`` (Harbor's resource names)."""
    return f"{name}:{reference.tag}" if reference.tag is not None else f"{name}@{digest}"


def _reference_to_read(value: str) -> Reference:
    """The reference of a GET or HEAD. A string that is neither a digest nor a valid tag names
    no manifest, so it is 404 like any missing one (the OCI conformance suite asks exactly
    this); TAG_INVALID is kept for pushes, where the client must fix its request."""
    if ":" not in value and not is_tag(value):
        raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"reference": value[:200]})
    return parse_reference(value)


async def _check_pull_gate(
    request: Request, name: str, digest: Digest, media_type: str, body: bytes
) -> None:
    """Refuse the pull when the project prevents vulnerable images and this one is (or is not
    scanned yet). The scanner pulling an image to scan it is never refused."""
    services = request.app.state.services
    project = await services.projects.get(project_of(name))
    if project is None or project.metadata.get("prevent_vul") != "true":
        return
    principal = request.scope.get("state", {}).get("principal")
    if principal is not None and principal.kind == "scanner":
        return
    verdict = await services.pull_gate.check(project, str(digest), media_type, body)
    if not verdict.allowed:
        services.audit.record(
            request.scope.get("state", {}).get("user", ""),
            "pull",
            "artifact",
            f"{name}@{digest}",
            "failure",
            client_address(request),
            project_id=project.id,
            detail="refused by the vulnerability policy",
        )
        raise RegistryError(ErrorCode.DENIED, verdict.reason)


async def get(request: Request, name: str) -> Response:
    manifests = request.app.state.services.manifests
    reference = _reference_to_read(request.path_params["reference"])
    record = await manifests.resolve(name, reference)
    headers = {
        "Docker-Content-Digest": str(record.digest),
        "ETag": f'"{record.digest}"',
        "Content-Length": str(record.size),
    }
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers, media_type=record.media_type)
    body = await manifests.body(record)
    await _check_pull_gate(request, name, record.digest, record.media_type, body)
    audit_artifact(
        request,
        name,
        "pull",
        "artifact",
        _artifact(name, reference, record.digest),
        str(record.digest) if reference.tag is not None else None,
    )
    return Response(body, status_code=200, headers=headers, media_type=record.media_type)


async def put(request: Request, name: str) -> Response:
    manifests = request.app.state.services.manifests
    reference = parse_reference(request.path_params["reference"])
    raw = await read_limited(request, manifests.max_bytes)
    if unsafe_json(raw):  # its strings reach database columns (artifactType, media types)
        raise RegistryError(
            ErrorCode.MANIFEST_INVALID,
            "a string in the manifest holds a NUL, another control character or an unpaired "
            "surrogate",
        )
    pushed = await manifests.put(name, reference, raw, request.headers.get("content-type"))
    headers = {
        "Location": f"/v2/{name}/manifests/{pushed.digest}",
        "Docker-Content-Digest": str(pushed.digest),
    }
    if pushed.subject is not None:
        headers["OCI-Subject"] = str(pushed.subject)
    request.app.state.services.scans.pushed(name, str(pushed.digest))
    audit_artifact(
        request,
        name,
        "push",
        "artifact",
        _artifact(name, reference, pushed.digest),
        str(pushed.digest) if reference.tag is not None else None,
    )
    return Response(status_code=201, headers=headers)


async def delete(request: Request, name: str) -> Response:
    reference = parse_reference(request.path_params["reference"])
    await request.app.state.services.manifests.delete(name, reference)
    if reference.tag is not None:
        audit_artifact(request, name, "delete", "tag", f"{name}:{reference.tag}")
    else:
        audit_artifact(request, name, "delete", "artifact", f"{name}@{reference.digest}")
    return Response(status_code=202)


async def tag_list(request: Request, name: str) -> Response:
    services = request.app.state.services
    page = Page(request, services.settings.registry.catalog_max_entries, default=None)
    names = await services.manifests.tags(name, 0 if page.empty else page.fetch, page.last)
    items, headers = page.trim(names)
    return JSONResponse({"name": name, "tags": items}, headers=headers)


async def referrers(request: Request, name: str) -> Response:
    digest = parse_digest(request.path_params["digest"])
    artifact_type = request.query_params.get("artifactType") or None
    descriptors = await request.app.state.services.manifests.referrers(name, digest, artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors}
    return JSONResponse(body, headers=headers, media_type=mt.OCI_INDEX)
