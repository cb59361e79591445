"""The one gate every ``/v2/`` request passes: who is calling, and may they do this?

Credentials come as ``Authorization: Bearer <token>`` (from ``/service/token``) or
``Authorization: Basic`` (accepted directly, as distribution does). Without them the caller is
anonymous and is asked to authenticate with a Bearer challenge naming the scope it needs.

- Bearer: the token's ``access`` claim and the access policy must both grant the action; if
  not, 401 with ``error="insufficient_scope"`` so the client can ask for a token with that scope.
- Basic: the access policy decides; refusal is 403 ``DENIED``.
- Anonymous: the access policy decides; refusal is a 401 challenge.

Every refusal of an authenticated caller, and every login, is written to the audit log.
"""

from __future__ import annotations

import base64
import binascii

import structlog
from starlette.requests import HTTPConnection

from portside.api.public_url import base_url
from portside.auth.access import ANONYMOUS, SCANNER, Principal, Scope
from portside.auth.tokens import TokenClaims, TokenError
from portside.oci.errors import ErrorCode, RegistryError

__all__ = [
    "authenticate",
    "authorize",
    "client_address",
    "login",
    "parse_basic",
    "principal_from_basic",
]

log = structlog.get_logger("portside.security")


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
    if not username.isprintable() or "\x00" in password:
        return None  # no account has such a name, and databases refuse NUL
    return username, password


def client_address(connection: HTTPConnection) -> str | None:
    return connection.client.host if connection.client else None


async def login(connection: HTTPConnection, username: str, password: str) -> Principal | None:
    """Check a username (or robot name) and password: the one place every login goes through,
    from ``/v2/``, ``/service/token`` and the management API.

    Too many recent failures for the account or the client address refuse the attempt with
    ``TOOMANYREQUESTS`` (with ``Retry-After``) before the password is looked at. Failures are
    audited, and successes once a minute per account and address.
    """
    services = connection.app.state.services
    address = client_address(connection)
    if await services.login_limiter.blocked(username, address):
        services.audit.record(
            username, "login", "user", username, "failure", address, detail="rate limited"
        )
        wait = await services.login_limiter.retry_after(username, address)
        raise RegistryError(
            ErrorCode.TOOMANYREQUESTS,
            "too many failed logins for this account or address; try again later",
            headers={"Retry-After": str(wait)},
        )
    if services.robots.is_robot_name(username):
        principal: Principal | None = await services.robots.authenticate(username, password)
    else:
        principal = await services.accounts.authenticate(username, password)
    if principal is None:
        await services.login_limiter.failed(username, address)
        services.audit.record(username, "login", "user", username, "failure", address)
        log.warning("authentication failed", username=username[:64], client=address)
    else:
        services.audit.login_succeeded(username, principal.kind, address)
    return principal


async def principal_from_basic(connection: HTTPConnection, header: str) -> Principal | None:
    credentials = parse_basic(header)
    if credentials is None:
        return None
    return await login(connection, *credentials)


async def principal_from_claims(connection: HTTPConnection, claims: TokenClaims) -> Principal:
    """The account a token was issued to, as it is now. A deleted, disabled or expired account,
    an account re-created under the same name, a user whose password was changed since, or a
    robot whose secret was refreshed since, makes the token invalid (the token's ``ver`` no
    longer matches the principal's ``version``)."""
    services = connection.app.state.services
    found: Principal | None
    if claims.kind == "anonymous":
        found = ANONYMOUS
    elif claims.kind == "scanner":
        found = SCANNER
    elif claims.kind == "robot":
        found = await services.robots.principal(claims.subject, claims.version)
    else:
        found = await services.accounts.principal(claims.subject)
    if found is None or found.id != claims.account_id or found.version != claims.version:
        raise TokenError("the token's account is no longer valid")
    return found


async def authenticate(connection: HTTPConnection) -> tuple[Principal, TokenClaims | None]:
    """Who is calling, and the token they presented if any. Raises ``UNAUTHORIZED`` for
    credentials that are present but wrong."""
    header = connection.headers.get("authorization", "")
    kind = header[:7].lower()
    if kind == "bearer ":
        services = connection.app.state.services
        try:
            claims = await services.tokens.verify(header[7:].strip())
            return await principal_from_claims(connection, claims), claims
        except TokenError:
            raise _unauthorized(connection, None, "invalid_token") from None
    if kind[:6] == "basic ":
        found = await principal_from_basic(connection, header)
        if found is None:
            raise _unauthorized(connection, None)
        return found, None
    return ANONYMOUS, None


async def authorize(connection: HTTPConnection, scope: Scope | None) -> Principal:
    """Return the caller if it may perform every action in ``scope``; with no scope, if it is
    any authenticated account. Raises ``UNAUTHORIZED`` or ``DENIED`` otherwise.

    A token is an upper bound, never the whole answer: the policy is asked as well, so a removed
    member or a disabled robot loses access before its token expires.
    """
    header = connection.headers.get("authorization", "")
    try:
        principal, claims = await authenticate(connection)
    except RegistryError as error:
        if scope is not None and error.code is ErrorCode.UNAUTHORIZED:
            bearer = header[:7].lower() == "bearer "
            raise _unauthorized(connection, scope, "invalid_token" if bearer else None) from None
        raise
    state = connection.scope.setdefault("state", {})
    state["user"] = principal.name
    state["principal"] = principal
    if scope is None:
        if not principal.is_authenticated:
            raise _unauthorized(connection, None)
        return principal
    if claims is not None and not all(
        claims.allows(scope.type, scope.name, a) for a in scope.actions
    ):
        raise _unauthorized(connection, scope, "insufficient_scope")
    if principal.kind == "scanner" and not _scanner_may_read(connection, claims):
        _audit_denial(connection, principal, scope)
        raise RegistryError(ErrorCode.DENIED, "this scanner token is limited to one artifact")
    if not await _granted(connection, principal, scope):
        _audit_denial(connection, principal, scope)
        if claims is not None:
            raise _unauthorized(connection, scope, "insufficient_scope")
        if not principal.is_authenticated:
            raise _unauthorized(connection, scope)
        raise RegistryError(ErrorCode.DENIED)
    return principal


def _scanner_may_read(connection: HTTPConnection, claims: TokenClaims | None) -> bool:
    """A scanner token reads only the manifests and blobs it lists, by digest, with GET or
    HEAD: ``/v2/<name>/manifests/<digest>`` or ``/v2/<name>/blobs/<digest>``."""
    if claims is None or connection.scope.get("method") not in ("GET", "HEAD"):
        return False
    path: str = connection.scope.get("path", "")
    head, _, reference = path.rpartition("/")
    return head.endswith(("/manifests", "/blobs")) and reference in claims.digests


def _audit_denial(connection: HTTPConnection, principal: Principal, scope: Scope) -> None:
    connection.app.state.services.audit.record(
        principal.name,
        ",".join(sorted(scope.actions)),
        scope.type,
        scope.name,
        "failure",
        client_address(connection),
        detail="access denied",
    )


async def _granted(connection: HTTPConnection, principal: Principal, scope: Scope) -> bool:
    granted = await connection.app.state.services.policy.granted(principal, scope)
    return "*" in granted or scope.actions <= granted
