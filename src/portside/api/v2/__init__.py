"""The OCI distribution API (``/v2/``): the route table, with the access each route needs.

Every route names the action it requires; :func:`_guarded` runs the access gate before the
handler, so no handler can forget it, and a route without an action cannot be declared. Pushes
must go into an existing project; the refusal says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from portside.api.security import authorize
from portside.api.v2 import base, blobs, manifests, uploads
from portside.api.v2.common import body_cut_off
from portside.auth.access import Scope
from portside.oci.errors import ErrorCode, RegistryError
from portside.oci.names import validate_name
from portside.projects.projects import project_of

__all__ = ["CLIENT_CLOSED_REQUEST", "routes"]

log = structlog.get_logger("portside.v2")

# The access log's status for a request whose client went away before its body ended (nginx's
# 499): no answer reaches anyone, and 0 would read as a request the server never finished.
CLIENT_CLOSED_REQUEST = 499

Handler = Callable[[Request, str], Awaitable[Response]]
Action = Literal["pull", "push", "delete"]


def _guarded(handler: Handler, action: Action) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if b"%2f" in request.scope.get("raw_path", b"").lower():
            raise RegistryError(ErrorCode.NAME_INVALID, "encoded '/' in the request path")
        name = validate_name(request.path_params["name"])
        scope = Scope("repository", name, frozenset({action}))
        try:
            principal = await authorize(request, scope)
        except RegistryError as error:
            _name_mount_source(request, scope, error)
            # A caller with credentials pushing outside any project learns why it failed.
            if action == "push" and "authorization" in request.headers:
                await _require_project(request, name)
            raise error from None
        if action == "push" and principal.is_admin:
            await _require_project(request, name)
        request.state.principal = principal
        try:
            return await handler(request, name)
        except Exception:
            # Whatever the client going away surfaced as below, it is no server error.
            received = body_cut_off(request)
            if received is None:
                raise
            log.info(
                "client went away before the end of the body",
                method=request.method,
                path=request.url.path,
                bytes_received=received,
            )
            return Response(status_code=CLIENT_CLOSED_REQUEST)

    endpoint.__name__ = handler.__name__
    return endpoint


def _name_mount_source(request: Request, scope: Scope, error: RegistryError) -> None:
    """Add pull on a mount's ``from`` repository to the challenge, as distribution does: a
    client that asks for a token with the challenge's scope alone would otherwise get one that
    cannot read the source, and its mount would quietly become an upload."""
    source = request.query_params.get("from")
    challenge = error.headers.get("WWW-Authenticate")
    if request.method != "POST" or "mount" not in request.query_params:
        return
    if source is None or challenge is None or f'scope="{scope}"' not in challenge:
        return
    try:
        source_scope = Scope("repository", validate_name(source), frozenset({"pull"}))
    except RegistryError:
        return  # the handler refuses a malformed source; there is nothing to name
    # Scopes in one challenge are separated by spaces (distribution's token auth).
    error.headers["WWW-Authenticate"] = challenge.replace(
        f'scope="{scope}"', f'scope="{scope} {source_scope}"'
    )


async def _require_project(request: Request, repository: str) -> None:
    project = project_of(repository)
    if await request.app.state.services.projects.get(project) is None:
        raise RegistryError(
            ErrorCode.NAME_UNKNOWN,
            f"project {project!r} does not exist; create it before pushing to it",
            detail={"project": project},
        )


def _route(path: str, handler: Handler, methods: list[str], action: Action) -> Route:
    return Route(path, _guarded(handler, action), methods=methods)


def routes() -> list[Route]:
    """The routes, the pulls' first: Starlette tries them in order, and a blob HEAD that had to
    fail six upload patterns first spent a twelfth of its time matching (py-spy). No path
    matches two of these patterns, so the order changes nothing else."""
    uploads_path = "/v2/{name:path}/blobs/uploads/{upload_id}"
    return [
        _route("/v2/{name:path}/blobs/{digest}", blobs.get, ["GET", "HEAD"], "pull"),
        _route("/v2/{name:path}/manifests/{reference}", manifests.get, ["GET", "HEAD"], "pull"),
        _route("/v2/{name:path}/manifests/{reference}", manifests.put, ["PUT"], "push"),
        _route("/v2/{name:path}/blobs/uploads/", uploads.start, ["POST"], "push"),
        _route(uploads_path, uploads.append, ["PATCH"], "push"),
        _route(uploads_path, uploads.finish, ["PUT"], "push"),
        _route(uploads_path, uploads.status, ["GET"], "push"),
        _route(uploads_path, uploads.cancel, ["DELETE"], "push"),
        _route("/v2/{name:path}/blobs/uploads", uploads.start, ["POST"], "push"),
        _route("/v2/{name:path}/tags/list", manifests.tag_list, ["GET"], "pull"),
        _route("/v2/{name:path}/referrers/{digest}", manifests.referrers, ["GET"], "pull"),
        _route("/v2/{name:path}/blobs/{digest}", blobs.delete, ["DELETE"], "delete"),
        _route("/v2/{name:path}/manifests/{reference}", manifests.delete, ["DELETE"], "delete"),
        Route("/v2/", base.api_version, methods=["GET", "HEAD"]),
        Route("/v2/_catalog", base.catalog, methods=["GET"]),
    ]
