"""Manifest GET/HEAD/PUT/DELETE, tag listing and the referrers API."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portside.api.v2.common import Page, read_limited
from portside.oci import mediatypes as mt
from portside.oci.digest import parse_digest
from portside.registry.manifests import parse_reference

__all__ = ["delete", "get", "put", "referrers", "tag_list"]


async def get(request: Request, name: str) -> Response:
    manifests = request.app.state.services.manifests
    reference = parse_reference(request.path_params["reference"])
    record = await manifests.resolve(name, reference)
    headers = {
        "Docker-Content-Digest": str(record.digest),
        "ETag": f'"{record.digest}"',
        "Content-Length": str(record.size),
    }
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers, media_type=record.media_type)
    body = await manifests.body(record)
    return Response(body, status_code=200, headers=headers, media_type=record.media_type)


async def put(request: Request, name: str) -> Response:
    manifests = request.app.state.services.manifests
    reference = parse_reference(request.path_params["reference"])
    raw = await read_limited(request, manifests.max_bytes)
    pushed = await manifests.put(name, reference, raw, request.headers.get("content-type"))
    headers = {
        "Location": f"/v2/{name}/manifests/{pushed.digest}",
        "Docker-Content-Digest": str(pushed.digest),
    }
    if pushed.subject is not None:
        headers["OCI-Subject"] = str(pushed.subject)
    return Response(status_code=201, headers=headers)


async def delete(request: Request, name: str) -> Response:
    reference = parse_reference(request.path_params["reference"])
    await request.app.state.services.manifests.delete(name, reference)
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
