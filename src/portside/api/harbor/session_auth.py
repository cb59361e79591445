"""The UI session on ``/api/v2.0``: the ``sid`` cookie as credentials, and the CSRF check.

A request without an ``Authorization`` header but with the cookie runs as the session's user
(:func:`session_caller`, called by :func:`portside.api.harbor.access.caller`). Every response to
it carries ``X-Harbor-CSRF-Token`` (:class:`CsrfTokenHeader`); POST, PUT, PATCH and DELETE must
send that token back in the same header, or are refused with 403 ``CSRF token invalid``. The
browser attaches cookies to cross-site requests, but a cross-site page can neither read the
token nor set the header. Requests with basic credentials need no token: a forged cross-site
request cannot add them. Logging in and out is :mod:`portside.api.session`; logging out needs
the token too (:func:`require_csrf_token`).
"""

from __future__ import annotations

import hmac

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portside.api.harbor.errors import HarborError
from portside.api.security import client_address
from portside.api.services import Services
from portside.auth.access import Principal
from portside.auth.sessions import SessionRecord

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "CsrfTokenHeader",
    "require_csrf_token",
    "session_caller",
    "session_cookie",
]

SESSION_COOKIE = "sid"
CSRF_HEADER = "X-Harbor-CSRF-Token"
_STATE_KEY = "csrf_token"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _secure(request: Request) -> bool:
    """Mark the cookie Secure when the browser reached us over HTTPS: directly, or through a
    TLS-terminating proxy named in ``server.public_url``."""
    public_url = _services(request).settings.server.public_url or ""
    return request.url.scheme == "https" or str(public_url).startswith("https://")


def session_cookie(request: Request, value: str, *, clear: bool = False) -> str:
    """The ``Set-Cookie`` value for the session cookie (or for clearing it)."""
    parts = [f"{SESSION_COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if clear:
        parts.append("Max-Age=0")
    if _secure(request):
        parts.append("Secure")
    return "; ".join(parts)


def _expired(request: Request, message: str) -> HarborError:
    """401 for a cookie that no longer names a live session, with the cookie cleared. No
    ``WWW-Authenticate``: a browser would pop up a basic-auth prompt over the UI."""
    return HarborError(
        401, message, headers={"Set-Cookie": session_cookie(request, "", clear=True)}
    )


async def session_caller(request: Request, token: str) -> Principal:
    """The user behind a session cookie on ``/api/v2.0``, with the CSRF check for unsafe
    methods. Raises 401 for an unknown or expired session or a deleted account, 403 for a
    missing or wrong CSRF token."""
    services = _services(request)
    record = await services.sessions.resolve(token)
    if record is None:
        raise _expired(request, "the session has expired or is invalid; log in again")
    principal = await services.accounts.principal(record.username)
    if principal is None or principal.id != record.user_id:
        await services.sessions.delete(token)
        raise _expired(request, "the session's account no longer exists")
    state = request.scope.setdefault("state", {})
    state[_STATE_KEY] = record.csrf_token
    state["user"] = principal.name
    if request.method in _UNSAFE_METHODS:
        require_csrf_token(request, record)
    return principal


def require_csrf_token(request: Request, record: SessionRecord) -> None:
    """Raise 403 ``CSRF token invalid`` (and audit it) unless the request sends the session's
    CSRF token in :data:`CSRF_HEADER`; compared in constant time."""
    sent = request.headers.get(CSRF_HEADER, "").encode("latin-1")
    if hmac.compare_digest(sent, record.csrf_token.encode("ascii")):
        return
    _services(request).audit.record(
        record.username,
        "access",
        "api",
        f"{request.method} {request.url.path}"[:255],
        "failure",
        client_address(request),
        detail="CSRF token invalid",
    )
    raise HarborError(403, "CSRF token invalid")


class CsrfTokenHeader:
    """ASGI middleware of the API: every response to a session-authenticated request carries
    the session's CSRF token, errors included, so the UI always has the current one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_token(message: Message) -> None:
            if message["type"] == "http.response.start":
                token = scope.get("state", {}).get(_STATE_KEY)
                if token:
                    MutableHeaders(scope=message)[CSRF_HEADER] = token
            await send(message)

        await self.app(scope, receive, send_with_token)
