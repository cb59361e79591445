"""Blob upload handlers: POST (start, monolithic, mount), PATCH, PUT, GET status, DELETE."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response

from portside.api.security import authorize
from portside.api.v2.common import content_length, request_body
from portside.auth.access import Principal, Scope
from portside.oci.digest import Digest, parse_digest
from portside.oci.errors import ErrorCode, RegistryError
from portside.oci.names import validate_name
from portside.registry.uploads import ContentRange, UploadStatus, parse_content_range

__all__ = ["append", "cancel", "finish", "start", "status"]


def _upload_headers(upload: UploadStatus) -> dict[str, str]:
    return {**upload.headers(), "Content-Length": "0"}


def _created(name: str, digest: Digest) -> Response:
    return Response(
        status_code=201,
        headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": str(digest)},
    )


def _upload_id(request: Request) -> uuid.UUID:
    raw = request.path_params["upload_id"]
    try:
        if len(raw) != 36:
            raise ValueError(raw)
        return uuid.UUID(raw)
    except ValueError:
        raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, detail={"uuid": raw[:64]}) from None


async def _may_pull(request: Request, principal: Principal, repository: str) -> bool:
    """Whether the caller may read ``repository``, asked of the same access policy."""
    services = request.app.state.services
    scope = Scope("repository", repository, frozenset({"pull"}))
    return "pull" in await services.policy.granted(principal, scope)


async def _try_mount(request: Request, name: str, digest: Digest) -> Response | None:
    """Cross-repository mount; None when it cannot be done (then an upload starts instead)."""
    services = request.app.state.services
    principal: Principal = request.state.principal
    source = request.query_params.get("from")
    if source is not None:
        candidates = [validate_name(source)]
    else:  # automatic mount: any repository holding the blob that the caller may read
        candidates = await services.blobs.repositories_with(digest)
    for candidate in candidates:
        if candidate == name:
            continue
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            # A token grants exactly what it lists; the source must be in it.
            try:
                await authorize(request, Scope("repository", candidate, frozenset({"pull"})))
            except RegistryError:
                continue
        elif not await _may_pull(request, principal, candidate):
            continue
        if await services.uploads.mount(name, digest, candidate) is not None:
            return _created(name, digest)
    if source is None and await services.blobs.size_in(name, digest) is not None:
        return _created(name, digest)  # already here
    return None


async def start(request: Request, name: str) -> Response:
    services = request.app.state.services
    mount = request.query_params.get("mount")
    if mount is not None:
        mounted = await _try_mount(request, name, parse_digest(mount))
        if mounted is not None:
            return mounted
    digest_param = request.query_params.get("digest")
    digest = parse_digest(digest_param) if digest_param is not None else None
    upload = await services.uploads.start(name)
    if digest is not None:  # monolithic upload: the body is the whole blob
        await services.uploads.finish(
            name, upload.id, digest, request_body(request), content_length(request)
        )
        return _created(name, digest)
    return Response(status_code=202, headers=_upload_headers(upload))


async def status(request: Request, name: str) -> Response:
    upload = await request.app.state.services.uploads.status(name, _upload_id(request))
    return Response(status_code=204, headers=_upload_headers(upload))


def _chunk_range(request: Request, length: int | None) -> ContentRange | None:
    """The chunk's ``Content-Range``, of a PATCH or of a closing PUT that carries the last one."""
    header = request.headers.get("content-range")
    content_range = parse_content_range(header) if header else None
    if content_range is not None and length is None:
        # A chunk must say its size up front (spec: "Chunked upload"), so a body that disagrees
        # with its range is refused before any of it is stored.
        raise RegistryError(
            ErrorCode.SIZE_INVALID, "a chunk with Content-Range needs Content-Length"
        )
    return content_range


async def append(request: Request, name: str) -> Response:
    length = content_length(request)
    content_range = _chunk_range(request, length)
    upload = await request.app.state.services.uploads.append(
        name, _upload_id(request), request_body(request), content_range, length
    )
    return Response(status_code=202, headers=_upload_headers(upload))


async def finish(request: Request, name: str) -> Response:
    digest_param = request.query_params.get("digest")
    if not digest_param:
        raise RegistryError(ErrorCode.DIGEST_INVALID, "the digest query parameter is required")
    digest = parse_digest(digest_param)
    length = content_length(request)
    content_range = _chunk_range(request, length)
    await request.app.state.services.uploads.finish(
        name, _upload_id(request), digest, request_body(request), length, content_range
    )
    return _created(name, digest)


async def cancel(request: Request, name: str) -> Response:
    await request.app.state.services.uploads.cancel(name, _upload_id(request))
    return Response(status_code=204)
