"""UI login sessions, Harbor-style: ``POST /c/login``, ``/c/log_out`` and the CSRF check.

- ``POST /c/login`` takes the form fields ``principal`` and ``password``
  (``application/x-www-form-urlencoded``), checks them through
  :func:`portside.api.security.login` (failed-login limits and audit, like every login), and
  answers 200 with a ``sid`` cookie (HttpOnly, SameSite=Lax, Path=/, Secure over HTTPS) and the
  session's CSRF token in ``X-Harbor-CSRF-Token``. Robot accounts may not log in here (403):
  they are for scripts, which use basic auth or tokens.
- ``POST /c/log_out`` (and ``/c/logout``) ends the session and clears the cookie. It needs the
  session's CSRF token in ``X-Harbor-CSRF-Token``, like every unsafe request made with the
  cookie (403 without it); ``GET`` answers 405 with ``Allow: POST``.
- On ``/api/v2.0`` the cookie is accepted as credentials, with a CSRF check: see
  :mod:`portside.api.harbor.session_auth`.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from portside.api.harbor.errors import HarborError, error_response
from portside.api.harbor.session_auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    require_csrf_token,
    session_cookie,
)
from portside.api.security import client_address, login
from portside.api.services import Services
from portside.oci.errors import ErrorCode, RegistryError

__all__ = ["ANY_METHOD", "login_session", "logout_session"]

# What the logout routes accept, so that the handler itself refuses all but POST.
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_MAX_FORM_BYTES = 8192
_FORM_TYPE = "application/x-www-form-urlencoded"


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _read_form(request: Request) -> dict[str, list[str]]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != _FORM_TYPE:
        raise HarborError(415, f"send the credentials as {_FORM_TYPE}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise HarborError(413, "the login form is too large")
    try:
        return parse_qs(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=16, errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        raise HarborError(400, "malformed login form") from None


def _field(form: dict[str, list[str]], name: str, limit: int) -> str:
    values = form.get(name, [])
    if len(values) != 1 or not values[0]:
        raise HarborError(400, f"the form needs exactly one non-empty {name!r} field")
    value = values[0]
    if len(value) > limit or "\x00" in value:
        raise HarborError(400, f"invalid {name!r}")
    return value


async def login_session(request: Request) -> Response:
    """``POST /c/login``: check the credentials and start a session."""
    try:
        return await _login(request)
    except HarborError as error:
        return error_response(error.status, error.message, error.code, error.headers)


async def _login(request: Request) -> Response:
    services = _services(request)
    address = client_address(request)
    form = await _read_form(request)
    username = _field(form, "principal", 255)
    password = _field(form, "password", 1024)
    if services.robots.is_robot_name(username):
        services.audit.record(
            username, "login", "session", username, "failure", address, detail="robot account"
        )
        raise HarborError(403, "robot accounts cannot log in to the UI; use basic auth")
    try:
        principal = await login(request, username, password)
    except RegistryError as error:
        if error.code is ErrorCode.TOOMANYREQUESTS:
            raise HarborError(429, error.message, headers=error.headers) from None
        raise
    if principal is None:
        raise HarborError(401, "invalid username or password")
    if principal.kind != "user" or principal.id is None:
        raise HarborError(403, "only user accounts can log in to the UI")
    session = await services.sessions.create(principal.id)
    services.audit.record(
        principal.name, "login", "session", principal.name, "success", address, detail="UI session"
    )
    response = Response(status_code=200)
    response.headers.append("Set-Cookie", session_cookie(request, session.token))
    response.headers[CSRF_HEADER] = session.csrf_token
    response.headers["Cache-Control"] = "no-store"
    return response


async def logout_session(request: Request) -> Response:
    """``POST /c/log_out``: end the session and clear the cookie."""
    try:
        return await _logout(request)
    except HarborError as error:
        return error_response(error.status, error.message, error.code, error.headers)


async def _logout(request: Request) -> Response:
    """A live session ends only with its CSRF token, so a cross-site page (or an ``<img>``
    pointing here) cannot log the user out. A cookie naming no live session is just cleared,
    with 200, so a stale tab can always log out."""
    if request.method != "POST":
        raise HarborError(405, "log out with POST and the CSRF token", headers={"Allow": "POST"})
    services = _services(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    record = await services.sessions.resolve(token) if token else None
    if record is not None:
        require_csrf_token(request, record)
        await services.sessions.delete(token)
        services.audit.record(
            record.username,
            "logout",
            "session",
            record.username,
            "success",
            client_address(request),
        )
    response = Response(status_code=200)
    response.headers.append("Set-Cookie", session_cookie(request, "", clear=True))
    response.headers["Cache-Control"] = "no-store"
    return response
