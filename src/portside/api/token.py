"""``/service/token``: the Docker registry token service (docs/spec/auth/token.md, oauth.md).

GET takes HTTP basic credentials (or none, for anonymous) and ``scope`` parameters; POST takes
the OAuth2 password grant that containerd uses. Either way the token grants only the subset of
each requested scope that the access policy allows.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portside.api.security import client_address, login, principal_from_basic
from portside.auth.access import ANONYMOUS, Principal, Scope, ScopeError
from portside.oci.errors import ErrorCode, RegistryError
from portside.oci.names import validate_name

__all__ = ["token_get", "token_post"]

log = structlog.get_logger("portside.token")
_MAX_SCOPES = 32
_MAX_FORM_BYTES = 16 << 10


def _scopes(values: list[str]) -> list[Scope]:
    """Requested scopes; each parameter may hold several, separated by spaces."""
    scopes = []
    for value in values:
        for item in value.split():
            try:
                scopes.append(Scope.parse(item))
            except ScopeError as exc:
                raise RegistryError(ErrorCode.UNSUPPORTED, str(exc), status=400) from None
    if len(scopes) > _MAX_SCOPES:
        raise RegistryError(ErrorCode.UNSUPPORTED, "too many scopes", status=400)
    return scopes


def _valid_name(name: str) -> bool:
    try:
        validate_name(name)
    except RegistryError:
        return False
    return True


def _unauthorized(request: Request) -> RegistryError:
    realm = request.app.state.services.settings.auth.realm
    return RegistryError(
        ErrorCode.UNAUTHORIZED,
        "invalid username or password",
        headers={"WWW-Authenticate": f'Basic realm="{realm}"'},
    )


async def _respond(
    request: Request, principal: Principal, scopes: list[Scope], service: str | None
) -> Response:
    services = request.app.state.services
    if service is not None and service != services.settings.auth.token_service:
        raise RegistryError(ErrorCode.UNSUPPORTED, f"unknown service {service[:64]!r}", status=400)
    granted = []
    for scope in scopes:
        if scope.type == "repository" and not _valid_name(scope.name):
            continue
        actions = await services.policy.granted(principal, scope)
        if actions:
            granted.append(Scope(scope.type, scope.name, actions))
    issued = services.tokens.issue(principal, granted)
    if principal.is_authenticated:
        services.audit.record(
            principal.name,
            "login",
            principal.kind,
            principal.name,
            "success",
            client_address(request),
            detail="token: " + " ".join(str(s) for s in granted),
        )
    log.info(
        "token issued",
        user=principal.name or "anonymous",
        requested=[str(s) for s in scopes],
        granted=[str(s) for s in granted],
    )
    request.scope.setdefault("state", {})["user"] = principal.name
    return JSONResponse(
        {
            "token": issued.token,
            "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": issued.issued_at.isoformat().replace("+00:00", "Z"),
        },
        headers={"Cache-Control": "no-store"},
    )


async def token_get(request: Request) -> Response:
    header = request.headers.get("authorization", "")
    principal = ANONYMOUS
    if header:
        found = None
        if header[:6].lower() == "basic ":
            found = await principal_from_basic(request, header)
        if found is None:
            raise _unauthorized(request)
        principal = found
    scopes = _scopes(request.query_params.getlist("scope"))
    return await _respond(request, principal, scopes, request.query_params.get("service"))


async def token_post(request: Request) -> Response:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise RegistryError(ErrorCode.SIZE_INVALID, "form too large", status=413)
    try:
        form = parse_qs(body.decode("utf-8"), max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise RegistryError(ErrorCode.UNSUPPORTED, "malformed form body", status=400) from None
    if form.get("grant_type") != ["password"]:
        raise RegistryError(
            ErrorCode.UNSUPPORTED, "only grant_type=password is supported", status=400
        )
    username, password = form.get("username", [""])[0], form.get("password", [""])[0]
    principal = await login(request, username[:255], password[:1024]) if username else None
    if principal is None:
        raise _unauthorized(request)
    scopes = _scopes(form.get("scope", []))
    return await _respond(request, principal, scopes, form.get("service", [None])[0])
