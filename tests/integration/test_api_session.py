"""UI login sessions over real HTTP: ``/c/login`` and ``/c/log_out``, the ``sid`` cookie on
``/api/v2.0``, and the ``X-Harbor-CSRF-Token`` check on unsafe methods."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.requests import Request

from portside.api.harbor import session_auth
from portside.api.harbor.errors import HarborError
from portside.auth.access import Principal
from portside.auth.sessions import SessionRecord
from tests.support.server import PortsideServer

API = "/api/v2.0"
CSRF = "X-Harbor-CSRF-Token"
CSRF_REFUSAL = {"errors": [{"code": "FORBIDDEN", "message": "CSRF token invalid"}]}


# -- helpers ------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def create_user(admin: httpx.Client) -> tuple[str, str]:
    name, password = unique("su"), f"Session-{secrets.token_hex(4)}-A1"
    response = admin.post(
        f"{API}/users",
        json={"username": name, "password": password, "email": f"{name}@example.com"},
    )
    assert response.status_code == 201, response.text
    return name, password


def post_login(server: PortsideServer, principal: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/c/login",
        data={"principal": principal, "password": password},
        timeout=30,
        verify=server.verify,
    )


def cookie_attributes(response: httpx.Response) -> tuple[str, set[str]]:
    """The ``sid`` value and the (lower-cased) attributes of its Set-Cookie header."""
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith("sid=")]
    assert len(headers) == 1, response.headers
    first, *attributes = (part.strip() for part in headers[0].split(";"))
    return first.partition("=")[2], {a.lower() for a in attributes}


class Session:
    """A logged-in browser: the cookie, and the CSRF token the server handed out."""

    def __init__(self, server: PortsideServer, principal: str, password: str) -> None:
        response = post_login(server, principal, password)
        assert response.status_code == 200, response.text
        self.token, self.attributes = cookie_attributes(response)
        self.csrf = response.headers[CSRF]
        self.client = httpx.Client(
            base_url=server.url, headers={"Cookie": f"sid={self.token}"}, timeout=30
        )

    def request(self, method: str, path: str, csrf: str | None = None, **kw: Any) -> httpx.Response:
        headers = {CSRF: csrf} if csrf is not None else {}
        return self.client.request(method, f"{API}{path}", headers=headers, **kw)


def database_url(server: PortsideServer) -> str:
    """The server's database, reached synchronously from the test (psycopg2 for PostgreSQL)."""
    configured = server.env.get("PORTSIDE_DATABASE__URL")
    if not configured:
        return f"sqlite:///{(server.data_dir / 'portside.db').resolve()}"
    url = sa.make_url(configured)
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    return url.render_as_string(hide_password=False)


def session_row(server: PortsideServer, token: str) -> Any:
    engine = sa.create_engine(database_url(server))
    try:
        with engine.connect() as connection:
            return connection.execute(
                sa.text("SELECT * FROM sessions WHERE id = :id"),
                {"id": hashlib.sha256(token.encode()).hexdigest()},
            ).first()
    finally:
        engine.dispose()


def set_session_times(server: PortsideServer, token: str, **times: dt.datetime) -> None:
    url = database_url(server)
    engine = sa.create_engine(url)
    values: dict[str, object] = dict(times)
    if url.startswith("sqlite"):  # stored as naive UTC text, the way SQLAlchemy writes it
        values = {
            k: v.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f") for k, v in times.items()
        }
    assignments = ", ".join(f"{column} = :{column}" for column in times)
    try:
        with engine.begin() as connection:
            changed = connection.execute(
                sa.text(f"UPDATE sessions SET {assignments} WHERE id = :id"),
                {"id": hashlib.sha256(token.encode()).hexdigest(), **values},
            ).rowcount
            assert changed == 1
    finally:
        engine.dispose()


def as_aware(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def audit_entries(admin: httpx.Client, username: str, operation: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        response = admin.get(
            f"{API}/audit-logs",
            params={"q": f"username={username}", "page_size": 100},
        )
        assert response.status_code == 200, response.text
        found = [e for e in response.json() if e["operation"] == operation]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.fixture
def admin(registry: PortsideServer) -> Iterator[httpx.Client]:
    with registry.client() as client:
        yield client


@pytest.fixture
def user(admin: httpx.Client) -> tuple[str, str]:
    return create_user(admin)


# -- logging in ---------------------------------------------------------------------------------


def test_login_sets_a_safe_cookie_and_a_csrf_token(
    registry: PortsideServer, user: tuple[str, str]
) -> None:
    response = post_login(registry, *user)
    assert response.status_code == 200, response.text
    token, attributes = cookie_attributes(response)
    assert len(token) >= 32
    assert {"httponly", "samesite=lax", "path=/"} <= attributes
    assert "secure" not in attributes  # plain HTTP here; see the HTTPS test
    assert len(response.headers[CSRF]) >= 32
    assert "no-store" in response.headers["Cache-Control"]
    # Only the token's SHA-256 is stored, with the CSRF token and an expiry.
    row = session_row(registry, token)
    assert row is not None
    assert token not in {str(value) for value in row}
    assert row.csrf_token == response.headers[CSRF]
    expires = as_aware(row.expires_at)
    now = dt.datetime.now(dt.UTC)
    assert now + dt.timedelta(minutes=25) < expires <= now + dt.timedelta(minutes=31)


def test_session_authenticates_api_requests(
    registry: PortsideServer, user: tuple[str, str]
) -> None:
    session = Session(registry, *user)
    current = session.request("GET", "/users/current")
    assert current.status_code == 200, current.text
    assert current.json()["username"] == user[0]
    assert current.headers[CSRF] == session.csrf
    # Errors carry the token too, so the UI always has it.
    missing = session.request("GET", "/labels/999999")
    assert missing.status_code == 404
    assert missing.headers[CSRF] == session.csrf
    # Access is the user's, not more: a plain user cannot list users.
    assert session.request("GET", "/users").status_code == 403


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"principal": "admin"},
        {"password": "x"},
        {"principal": "", "password": "x"},
        {"principal": "a\x00b", "password": "x"},
        {"principal": "a" * 300, "password": "x"},
    ],
)
def test_malformed_login_forms_are_400(registry: PortsideServer, form: dict[str, str]) -> None:
    response = httpx.post(
        f"{registry.url}/c/login",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "BAD_REQUEST"
    assert "set-cookie" not in response.headers


def test_login_wants_a_form(registry: PortsideServer, user: tuple[str, str]) -> None:
    as_json = httpx.post(
        f"{registry.url}/c/login", json={"principal": user[0], "password": user[1]}, timeout=30
    )
    assert as_json.status_code == 415
    huge = httpx.post(
        f"{registry.url}/c/login",
        content=b"principal=a&password=" + b"x" * 20000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert huge.status_code == 413
    repeated = httpx.post(
        f"{registry.url}/c/login",
        content=f"principal={user[0]}&principal=admin&password={user[1]}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert repeated.status_code == 400
    assert httpx.get(f"{registry.url}/c/login", timeout=30).status_code == 405


def test_wrong_password_is_401_without_a_cookie(
    registry: PortsideServer, admin: httpx.Client, user: tuple[str, str]
) -> None:
    response = post_login(registry, user[0], "Wrong-Password-1")
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert "set-cookie" not in response.headers
    assert "www-authenticate" not in response.headers  # no browser basic-auth prompt
    assert post_login(registry, "no-such-user", "Whatever-1").status_code == 401
    failures = audit_entries(admin, user[0], "login")
    assert any(e["resource"] == user[0] for e in failures)


def test_robots_may_not_log_in(registry: PortsideServer, admin: httpx.Client) -> None:
    body = {
        "name": unique("ui-"),
        "level": "system",
        "duration": -1,
        "permissions": [
            {
                "kind": "project",
                "namespace": "*",
                "access": [{"resource": "repository", "action": "pull"}],
            }
        ],
    }
    created = admin.post(f"{API}/robots", json=body)
    assert created.status_code == 201, created.text
    robot = created.json()
    # The right secret is still refused: robots are for scripts.
    response = post_login(registry, robot["name"], robot["secret"])
    assert response.status_code == 403, response.text
    assert "set-cookie" not in response.headers
    with httpx.Client(auth=(robot["name"], robot["secret"]), timeout=30) as basic:
        assert basic.get(f"{registry.url}/v2/").status_code == 200  # the robot itself works


def test_login_is_audited(registry: PortsideServer, admin: httpx.Client) -> None:
    user = create_user(admin)
    Session(registry, *user)
    entries = audit_entries(admin, user[0], "login")
    sessions = [e for e in entries if e["resource_type"] == "session"]
    assert sessions and sessions[0]["resource"] == user[0]


def test_login_goes_through_the_failed_login_limits(tmp_path: Path) -> None:
    server = PortsideServer(
        tmp_path / "limits",
        {
            "PORTSIDE_AUTH__LOGIN_FAILURES_PER_ACCOUNT": "2 per 5 minutes",
            "PORTSIDE_AUTH__LOGIN_FAILURES_PER_ADDRESS": "100 per 5 minutes",
        },
    )
    server.start()
    try:
        for _ in range(2):
            assert post_login(server, "admin", "Wrong-Password-1").status_code == 401
        limited = post_login(server, "admin", server.password)
        assert limited.status_code == 429, limited.text
        assert int(limited.headers["Retry-After"]) > 0
        assert limited.json()["errors"][0]["code"] == "TOO_MANY_REQUESTS"
        assert "set-cookie" not in limited.headers
    finally:
        server.stop()


def test_cookie_is_secure_behind_https(tmp_path: Path) -> None:
    server = PortsideServer(
        tmp_path / "https", {"PORTSIDE_SERVER__PUBLIC_URL": "https://registry.example.com"}
    )
    server.start()
    try:
        response = post_login(server, server.username, server.password)
        assert response.status_code == 200, response.text
        _, attributes = cookie_attributes(response)
        assert {"secure", "httponly", "samesite=lax"} <= attributes
        logout = httpx.post(f"{server.url}/c/log_out", timeout=30)
        assert "secure" in cookie_attributes(logout)[1]
    finally:
        server.stop()


# -- CSRF ---------------------------------------------------------------------------------------


def test_unsafe_methods_need_the_csrf_token(registry: PortsideServer) -> None:
    session = Session(registry, registry.username, registry.password)
    name = unique("csrf-")
    body = {"name": name, "scope": "g"}
    for csrf in (None, "", "wrong", session.csrf[:-1], session.csrf + "x", session.csrf.upper()):
        refused = session.request("POST", "/labels", csrf=csrf, json=body)
        assert refused.status_code == 403, (csrf, refused.text)
        assert refused.json() == CSRF_REFUSAL
        assert refused.headers[CSRF] == session.csrf
    # Nothing was created by the refused requests.
    assert session.request("GET", "/labels", params={"name": name}).json() == []

    created = session.request("POST", "/labels", csrf=session.csrf, json=body)
    assert created.status_code == 201, created.text
    path = created.headers["Location"].removeprefix(API)
    for method, kw in (("PUT", {"json": {"name": name + "2"}}), ("DELETE", {})):
        refused = session.request(method, path, **kw)
        assert refused.status_code == 403 and refused.json() == CSRF_REFUSAL, method
    patch = session.request("PATCH", "/robots/1", json={"disable": True})
    assert patch.status_code == 403 and patch.json() == CSRF_REFUSAL
    assert session.request("PUT", path, csrf=session.csrf, json={"name": name + "2"}).is_success
    assert session.request("DELETE", path, csrf=session.csrf).status_code == 200


def test_another_sessions_token_is_refused(registry: PortsideServer) -> None:
    mine = Session(registry, registry.username, registry.password)
    other = Session(registry, registry.username, registry.password)
    assert mine.csrf != other.csrf and mine.token != other.token
    refused = mine.request("POST", "/labels", csrf=other.csrf, json={"name": "x", "scope": "g"})
    assert refused.status_code == 403 and refused.json() == CSRF_REFUSAL


def test_csrf_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check goes through hmac.compare_digest (a plain ``==`` leaks the token's prefix
    through timing); a spy proves it is called with the sent and the stored token."""
    calls: list[tuple[bytes, bytes]] = []
    real = session_auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(session_auth.hmac, "compare_digest", spy)
    record = SessionRecord("id", 7, "alice", "the-token", dt.datetime.now(dt.UTC))

    async def resolve(token: str) -> SessionRecord | None:
        return record if token == "cookie" else None

    async def principal(username: str) -> Principal | None:
        return Principal("user", username, 7)

    services = SimpleNamespace(
        sessions=SimpleNamespace(resolve=resolve),
        accounts=SimpleNamespace(principal=principal),
        audit=SimpleNamespace(record=lambda *a, **k: None),
        settings=SimpleNamespace(server=SimpleNamespace(public_url=None)),
    )
    app = SimpleNamespace(state=SimpleNamespace(services=services))

    def request(method: str, sent: str | None) -> Request:
        headers = [(b"x-harbor-csrf-token", sent.encode())] if sent is not None else []
        scope = {
            "type": "http",
            "method": method,
            "path": "/labels",
            "headers": headers,
            "query_string": b"",
            "app": app,
            "scheme": "http",
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 1),
        }
        return Request(scope)

    with pytest.raises(HarborError) as refused:
        asyncio.run(session_auth.session_caller(request("POST", "the-tokeX"), "cookie"))
    assert refused.value.status == 403 and refused.value.message == "CSRF token invalid"
    assert calls == [(b"the-tokeX", b"the-token")]
    found = asyncio.run(session_auth.session_caller(request("DELETE", "the-token"), "cookie"))
    assert found.name == "alice" and calls[-1] == (b"the-token", b"the-token")
    calls.clear()
    asyncio.run(session_auth.session_caller(request("GET", None), "cookie"))
    assert calls == []  # safe methods need no token


def test_basic_auth_needs_no_csrf_token(registry: PortsideServer, admin: httpx.Client) -> None:
    created = admin.post(f"{API}/labels", json={"name": unique("basic-"), "scope": "g"})
    assert created.status_code == 201, created.text
    assert CSRF not in created.headers
    # Basic credentials win over a cookie sent alongside: no CSRF token asked.
    user = create_user(admin)
    session = Session(registry, *user)
    with registry.client(headers={"Cookie": f"sid={session.token}"}) as both:
        response = both.post(f"{API}/labels", json={"name": unique("both-"), "scope": "g"})
        assert response.status_code == 201, response.text  # admin's, not the user's
        assert CSRF not in response.headers


# -- ending sessions ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/c/log_out", "/c/logout"])
def test_logout_ends_the_session(
    registry: PortsideServer, admin: httpx.Client, user: tuple[str, str], path: str
) -> None:
    session = Session(registry, *user)
    assert session.request("GET", "/users/current").status_code == 200
    response = session.client.post(path, headers={CSRF: session.csrf})
    assert response.status_code == 200, response.text
    value, attributes = cookie_attributes(response)
    assert value == "" and "max-age=0" in attributes
    assert session_row(registry, session.token) is None
    after = session.request("GET", "/users/current")
    assert after.status_code == 401
    assert "www-authenticate" not in after.headers
    assert audit_entries(admin, user[0], "logout")
    # Logging out without (or with a stale) session is fine too, and needs no token.
    assert httpx.post(f"{registry.url}/c/log_out", timeout=30).status_code == 200
    assert session.client.post("/c/log_out").status_code == 200


@pytest.mark.parametrize("csrf", [None, "", "not-the-token"])
def test_logout_needs_the_csrf_token(
    registry: PortsideServer, admin: httpx.Client, user: tuple[str, str], csrf: str | None
) -> None:
    """A cross-site page can make the browser POST with the cookie, but not with the token."""
    session = Session(registry, *user)
    headers = {CSRF: csrf} if csrf is not None else {}
    refused = session.client.post("/c/log_out", headers=headers)
    assert refused.status_code == 403, refused.text
    assert refused.json() == {"errors": [{"code": "FORBIDDEN", "message": "CSRF token invalid"}]}
    assert "set-cookie" not in refused.headers
    assert session_row(registry, session.token) is not None
    assert session.request("GET", "/users/current").status_code == 200
    assert audit_entries(admin, user[0], "access")


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT"])
def test_logout_is_a_post(registry: PortsideServer, user: tuple[str, str], method: str) -> None:
    session = Session(registry, *user)
    response = session.client.request(method, "/c/log_out", headers={CSRF: session.csrf})
    assert response.status_code == 405, response.text
    assert response.headers["Allow"] == "POST"
    if method != "HEAD":
        assert response.json()["errors"][0]["code"] == "METHOD_NOT_ALLOWED"
    assert session_row(registry, session.token) is not None


def test_expired_sessions_are_refused_and_purged(
    registry: PortsideServer, user: tuple[str, str]
) -> None:
    session = Session(registry, *user)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    set_session_times(registry, session.token, expires_at=past)
    refused = session.request("GET", "/users/current")
    assert refused.status_code == 401, refused.text
    value, attributes = cookie_attributes(refused)  # the stale cookie is cleared
    assert value == "" and "max-age=0" in attributes
    assert session_row(registry, session.token) is None

    # Others' expired sessions go at the next login.
    stale = Session(registry, *user)
    set_session_times(registry, stale.token, expires_at=past)
    Session(registry, *user)
    assert session_row(registry, stale.token) is None


def test_activity_slides_the_idle_deadline(registry: PortsideServer, user: tuple[str, str]) -> None:
    session = Session(registry, *user)
    now = dt.datetime.now(dt.UTC)
    set_session_times(registry, session.token, expires_at=now + dt.timedelta(minutes=2))
    assert session.request("GET", "/users/current").status_code == 200
    expires = as_aware(session_row(registry, session.token).expires_at)
    assert expires > now + dt.timedelta(minutes=25)
    # ... but never beyond 12 hours after login.
    set_session_times(
        registry,
        session.token,
        created_at=now - dt.timedelta(hours=11, minutes=50),
        expires_at=now + dt.timedelta(minutes=2),
    )
    assert session.request("GET", "/users/current").status_code == 200
    expires = as_aware(session_row(registry, session.token).expires_at)
    assert expires <= now + dt.timedelta(minutes=11)


def test_deleted_account_ends_its_sessions(registry: PortsideServer, admin: httpx.Client) -> None:
    user = create_user(admin)
    session = Session(registry, *user)
    user_id = session.request("GET", "/users/current").json()["user_id"]
    assert admin.delete(f"{API}/users/{user_id}").status_code == 200
    assert session.request("GET", "/users/current").status_code == 401


def test_a_new_password_ends_the_accounts_sessions(
    registry: PortsideServer, admin: httpx.Client
) -> None:
    user = create_user(admin)
    session = Session(registry, *user)
    user_id = session.request("GET", "/users/current").json()["user_id"]
    changed = admin.put(f"{API}/users/{user_id}/password", json={"new_password": "Changed-Pass-9"})
    assert changed.status_code == 200, changed.text
    assert session.request("GET", "/users/current").status_code == 401
    assert session_row(registry, session.token) is None


def test_forged_cookies_are_401(registry: PortsideServer) -> None:
    for value in (b"", b"x", b"a" * 500, secrets.token_urlsafe(32).encode(), "ünï".encode()):
        with httpx.Client(base_url=registry.url, timeout=30) as client:
            response = client.get(f"{API}/users/current", headers={"Cookie": b"sid=" + value})
            assert response.status_code == 401, (value, response.text)
