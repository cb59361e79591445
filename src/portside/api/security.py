"""The one gate every ``/v2/`` request passes: who is calling, and may they do this?

Credentials come as ``Authorization: Bearer <token>`` (from ``/service/token``) or
``Authorization: Basic`` (accepted directly, as distribution does). Without them the caller is
anonymous and is asked to authenticate with a Bearer challenge naming the scope it needs.

- Bearer: the token's ``access`` claim must grant the action; if not, 401 with
  ``error="insufficient_scope"`` so the client can ask for a token with that scope.
- Basic: the access policy decides; refusal is 403 ``DENIED``.
- Anonymous: the access policy decides; refusal is a 401 challenge.
"""

from __future__ import annotations

import base64
import binascii

import structlog
from starlette.requests import HTTPConnection

from portside.auth.access import ANONYMOUS, Principal, Scope
from portside.auth.tokens import TokenError
from portside.oci.errors import ErrorCode, RegistryError

__all__ = ["authorize", "base_url", "parse_basic", "principal_from_basic"]

log = structlog.get_logger("portside.security")


def base_url(connection: HTTPConnection) -> str:
    """The URL clients use to reach us: configured, or taken from the request."""
    configured = connection.app.state.services.settings.server.public_url
    if configured:
        return str(configured).rstrip("/")
    return f"{connection.url.scheme}://{connection.url.netloc}"


def _challenge(connection: HTTPConnection, scope: Scope | None, error: str | None) -> str:
    services = connection.app.state.services
    parts = [
        f'realm="{base_url(connection)}/service/token"',
        f'service="{services.settings.auth.token_service}"',
    ]
    if scope is not None:
        parts.append(f'scope="{scope}"')
    if error:
        parts.append(f'error="{error}"')
    return "Bearer " + ",".join(parts)


def _unauthorized(
    connection: HTTPConnection, scope: Scope | None, error: str | None = None
) -> RegistryError:
    return RegistryError(
        ErrorCode.UNAUTHORIZED,
        detail=[
            {"Type": scope.type, "Name": scope.name, "Action": a} for a in sorted(scope.actions)
        ]
        if scope
        else None,
        headers={"WWW-Authenticate": _challenge(connection, scope, error)},
    )


def parse_basic(header: str) -> tuple[str, str] | None:
    """Username and password from a ``Basic`` header value, or None if it is malformed."""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep or not username or len(username) > 255 or len(password) > 1024:
        return None
    return username, password


async def principal_from_basic(connection: HTTPConnection, header: str) -> Principal | None:
    credentials = parse_basic(header)
    if credentials is None:
        return None
    principal: Principal | None = await connection.app.state.services.accounts.authenticate(
        *credentials
    )
    if principal is None:
        log.warning(
            "authentication failed",
            username=credentials[0][:64],
            client=connection.client.host if connection.client else None,
        )
    return principal


async def authorize(connection: HTTPConnection, scope: Scope | None) -> Principal:
    """Return the caller if it may perform every action in ``scope``; with no scope, if it is
    any authenticated account. Raises ``UNAUTHORIZED`` or ``DENIED`` otherwise."""
    services = connection.app.state.services
    header = connection.headers.get("authorization", "")
    kind = header[:7].lower()
    if kind == "bearer ":
        try:
            claims = await services.tokens.verify(header[7:].strip())
        except TokenError:
            raise _unauthorized(connection, scope, "invalid_token") from None
        if scope is not None and not all(
            claims.allows(scope.type, scope.name, a) for a in scope.actions
        ):
            raise _unauthorized(connection, scope, "insufficient_scope")
        principal = Principal("user", claims.subject)
    elif kind[:6] == "basic ":
        found = await principal_from_basic(connection, header)
        if found is None:
            raise _unauthorized(connection, scope)
        principal = found
        if scope is not None and not await _granted(connection, principal, scope):
            raise RegistryError(ErrorCode.DENIED)
    else:
        if scope is None or not await _granted(connection, ANONYMOUS, scope):
            raise _unauthorized(connection, scope)
        principal = ANONYMOUS
    connection.scope.setdefault("state", {})["user"] = principal.name
    return principal


async def _granted(connection: HTTPConnection, principal: Principal, scope: Scope) -> bool:
    granted = await connection.app.state.services.policy.granted(principal, scope)
    return "*" in granted or scope.actions <= granted
