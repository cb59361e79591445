"""``/api/v2.0/users`` and ``/api/v2.0/usergroups`` over real HTTP.

Most tests share the session's ``registry`` and use unique names. Failed logins count against the
client address's rate limit for the whole session, so only a few tests here present wrong
credentials to it; tests that need a setting, an empty account table, direct database access or
many failures start a server of their own.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.oci import random_blob
from tests.support.server import PortsideServer

API = "/api/v2.0"
PASSWORD = "Secret-123"
HARBOR_CODES = {
    "BAD_REQUEST",
    "PAYLOAD_TOO_LARGE",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "CONFLICT",
}


# -- helpers ------------------------------------------------------------------------------------


@dataclass
class Account:
    id: int
    username: str
    password: str
    email: str


def unique(prefix: str = "u") -> str:
    return f"{prefix}{secrets.token_hex(5)}"


def make_user(admin: httpx.Client, **fields: Any) -> Account:
    """Create a user through the API as ``admin``; asserts 201 and Harbor's Location."""
    username = fields.pop("username", None) or unique()
    body = {
        "username": username,
        "password": PASSWORD,
        "email": f"{username}@example.com",
        "realname": "Test User",
        **fields,
    }
    response = admin.post(f"{API}/users", json=body)
    assert response.status_code == 201, response.text
    location = response.headers["Location"]
    match = re.fullmatch(rf"{re.escape(API)}/users/(\d+)", location)
    assert match, location
    return Account(int(match[1]), username, body["password"], body["email"])


def client_for(server: PortsideServer, account: Account | None) -> httpx.Client:
    """A client with ``account``'s basic credentials, or an anonymous one."""
    auth = (account.username, account.password) if account else None
    return httpx.Client(base_url=server.url, auth=auth, timeout=30, verify=server.verify)


def assert_harbor_error(response: httpx.Response, status: int) -> str:
    """Assert ``status`` and Harbor's error envelope; returns the message."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    errors = response.json()["errors"]
    assert isinstance(errors, list) and errors
    assert errors[0]["code"] in HARBOR_CODES
    if status in (400, 401, 403, 404, 409):
        expected = {
            400: "BAD_REQUEST",
            401: "UNAUTHORIZED",
            403: "FORBIDDEN",
            404: "NOT_FOUND",
            409: "CONFLICT",
        }
        assert errors[0]["code"] == expected[status], errors
    assert isinstance(errors[0]["message"], str) and errors[0]["message"]
    message: str = errors[0]["message"]
    return message


def v2_status(server: PortsideServer, username: str, password: str) -> int:
    """The status of ``GET /v2/`` with these basic credentials (200 or 401)."""
    return httpx.get(f"{server.url}/v2/", auth=(username, password), timeout=30).status_code


ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


@pytest.fixture
def admin(client: httpx.Client) -> httpx.Client:
    return client


@pytest.fixture
def alice(registry: PortsideServer, admin: httpx.Client) -> Account:
    return make_user(admin)


@pytest.fixture
def bob(registry: PortsideServer, admin: httpx.Client) -> Account:
    return make_user(admin)


@pytest.fixture
def own_server(fresh_registry: PortsideServer) -> Iterator[PortsideServer]:
    """A started server of the test's own (SQLite)."""
    fresh_registry.start()
    yield fresh_registry


# -- creating and reading -----------------------------------------------------------------------


def test_create_then_read_user(registry: PortsideServer, admin: httpx.Client) -> None:
    username = unique()
    created = make_user(admin, username=username, realname="Alice Liddell", comment="from the test")
    response = admin.get(f"{API}/users/{created.id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == created.id
    assert body["username"] == username
    assert body["email"] == f"{username}@example.com"
    assert body["realname"] == "Alice Liddell"
    assert body["comment"] == "from the test"
    assert body["sysadmin_flag"] is False
    assert body["admin_role_in_auth"] is False
    assert ISO_Z.fullmatch(body["creation_time"]), body
    assert ISO_Z.fullmatch(body["update_time"]), body
    assert not {k for k in body if "password" in k or "hash" in k}, body
    # The new account works for the registry at once.
    assert v2_status(registry, username, PASSWORD) == 200


def test_admin_may_create_an_admin(registry: PortsideServer, admin: httpx.Client) -> None:
    account = make_user(admin, sysadmin_flag=True)
    with client_for(registry, account) as new_admin:
        assert new_admin.get(f"{API}/users").status_code == 200


def test_current_user(registry: PortsideServer, alice: Account) -> None:
    with client_for(registry, alice) as user:
        response = user.get(f"{API}/users/current")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["user_id"], body["username"], body["sysadmin_flag"]) == (
        alice.id,
        alice.username,
        False,
    )
    with client_for(registry, None) as anonymous:
        assert_harbor_error(anonymous.get(f"{API}/users/current"), 401)


def test_current_admin(admin: httpx.Client) -> None:
    body = admin.get(f"{API}/users/current").json()
    assert body["username"] == "admin"
    assert body["sysadmin_flag"] is True


def test_list_users_pages_filters_and_sorts(admin: httpx.Client) -> None:
    prefix = unique("ls")
    made = [make_user(admin, username=f"{prefix}-{n}") for n in ("b", "a", "c")]
    q = {"q": f"username=~{prefix}", "page_size": "2"}

    first = admin.get(f"{API}/users", params={**q, "sort": "username"})
    assert first.status_code == 200, first.text
    assert first.headers["X-Total-Count"] == "3"
    assert [u["username"] for u in first.json()] == [f"{prefix}-a", f"{prefix}-b"]
    assert 'rel="next"' in first.headers["Link"]
    second = admin.get(f"{API}/users", params={**q, "sort": "username", "page": "2"})
    assert [u["username"] for u in second.json()] == [f"{prefix}-c"]
    assert 'rel="prev"' in second.headers["Link"]
    assert 'rel="next"' not in second.headers["Link"]

    descending = admin.get(f"{API}/users", params={**q, "sort": "-username", "page_size": "10"})
    assert [u["username"] for u in descending.json()] == [
        f"{prefix}-c",
        f"{prefix}-b",
        f"{prefix}-a",
    ]
    exact = admin.get(f"{API}/users", params={"q": f"username={prefix}-b"})
    assert [u["user_id"] for u in exact.json()] == [made[0].id]
    by_email = admin.get(f"{API}/users", params={"q": f"email={prefix}-c@example.com"})
    assert [u["username"] for u in by_email.json()] == [f"{prefix}-c"]
    by_id = admin.get(f"{API}/users", params={"q": f"user_id={made[1].id}"})
    assert [u["username"] for u in by_id.json()] == [f"{prefix}-a"]
    # Harbor's plain username= parameter is a substring filter.
    plain = admin.get(f"{API}/users", params={"username": prefix, "page_size": "10"})
    assert plain.headers["X-Total-Count"] == "3"
    # Wildcards in the filter are literal characters.
    assert admin.get(f"{API}/users", params={"q": "username=~%_%"}).json() == []


@pytest.mark.parametrize(
    "params",
    [
        {"q": "password=x"},
        {"q": "username"},
        {"q": "user_id=abc"},
        {"q": "user_id=99999999999999999999"},
        {"sort": "password_hash"},
        {"page": "0"},
        {"page_size": "1000"},
        {"page": "abc"},
        {"q": "username=\x00"},
        {"username": "a\x00b"},
    ],
)
def test_list_users_bad_parameters(admin: httpx.Client, params: dict[str, str]) -> None:
    assert_harbor_error(admin.get(f"{API}/users", params=params), 400)


def test_search_users_is_for_every_user(registry: PortsideServer, alice: Account) -> None:
    with client_for(registry, alice) as user:
        response = user.get(f"{API}/users/search", params={"username": alice.username})
    assert response.status_code == 200, response.text
    assert response.json() == [{"user_id": alice.id, "username": alice.username}]
    assert response.headers["X-Total-Count"] == "1"
    with client_for(registry, None) as anonymous:
        assert_harbor_error(anonymous.get(f"{API}/users/search", params={"username": "a"}), 401)
    with client_for(registry, alice) as user:
        assert_harbor_error(user.get(f"{API}/users/search"), 400)


def test_search_users_pages(registry: PortsideServer, admin: httpx.Client) -> None:
    prefix = unique("sr")
    for n in range(3):
        make_user(admin, username=f"{prefix}{n}")
    response = admin.get(f"{API}/users/search", params={"username": prefix, "page_size": "2"})
    assert response.headers["X-Total-Count"] == "3"
    assert [u["username"] for u in response.json()] == [f"{prefix}0", f"{prefix}1"]
    assert 'rel="next"' in response.headers["Link"]


# -- who may do what ----------------------------------------------------------------------------


def test_only_admins_list_users(registry: PortsideServer, alice: Account) -> None:
    with client_for(registry, alice) as user:
        assert_harbor_error(user.get(f"{API}/users"), 403)
    with client_for(registry, None) as anonymous:
        response = anonymous.get(f"{API}/users")
    assert_harbor_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_read_self_or_as_admin(
    registry: PortsideServer, admin: httpx.Client, alice: Account, bob: Account
) -> None:
    with client_for(registry, alice) as user:
        assert user.get(f"{API}/users/{alice.id}").json()["username"] == alice.username
        assert_harbor_error(user.get(f"{API}/users/{bob.id}"), 403)
        # A user cannot probe which ids exist.
        assert_harbor_error(user.get(f"{API}/users/{2**31 - 1}"), 403)
    with client_for(registry, None) as anonymous:
        assert_harbor_error(anonymous.get(f"{API}/users/{alice.id}"), 401)
    assert admin.get(f"{API}/users/{bob.id}").json()["username"] == bob.username
    assert_harbor_error(admin.get(f"{API}/users/{2**31 - 1}"), 404)


def test_update_profile_self_or_admin(
    registry: PortsideServer, admin: httpx.Client, alice: Account, bob: Account
) -> None:
    with client_for(registry, alice) as user:
        response = user.put(
            f"{API}/users/{alice.id}", json={"realname": "Alice B", "comment": "hello"}
        )
        assert response.status_code == 200, response.text
        body = user.get(f"{API}/users/current").json()
        assert (body["realname"], body["comment"], body["email"]) == (
            "Alice B",
            "hello",
            alice.email,
        )
        assert_harbor_error(user.put(f"{API}/users/{bob.id}", json={"comment": "x"}), 403)
    with client_for(registry, None) as anonymous:
        assert_harbor_error(anonymous.put(f"{API}/users/{bob.id}", json={"comment": "x"}), 401)
    new_email = f"{unique()}@example.org"
    assert admin.put(f"{API}/users/{bob.id}", json={"email": new_email}).status_code == 200
    assert admin.get(f"{API}/users/{bob.id}").json()["email"] == new_email
    assert admin.get(f"{API}/users/{bob.id}").json()["comment"] == ""
    assert_harbor_error(admin.put(f"{API}/users/{2**31 - 1}", json={"comment": "x"}), 404)


@pytest.mark.parametrize(
    "profile",
    [
        {"email": "not-an-email"},
        {"email": ""},
        {"email": "a@b"},
        {"email": "x" * 250 + "@example.com"},
        {"email": "a\x00b@example.com"},
        {"realname": ""},
        {"realname": "a$b"},
        {"realname": "r" * 256},
        {"comment": "c" * 31},
        {"comment": "bell\x07"},
        {"username": "renamed"},
        {"sysadmin_flag": True},
        {"email": 5},
        {"realname": ["x"]},
    ],
)
def test_update_profile_rejects(admin: httpx.Client, alice: Account, profile: Any) -> None:
    assert_harbor_error(admin.put(f"{API}/users/{alice.id}", json=profile), 400)
    body = admin.get(f"{API}/users/{alice.id}").json()
    assert (body["email"], body["realname"], body["sysadmin_flag"]) == (
        alice.email,
        "Test User",
        False,
    )


def test_user_cannot_grant_themself_admin(registry: PortsideServer, alice: Account) -> None:
    with client_for(registry, alice) as user:
        response = user.put(f"{API}/users/{alice.id}/sysadmin", json={"sysadmin_flag": True})
        assert_harbor_error(response, 403)
        assert user.get(f"{API}/users/current").json()["sysadmin_flag"] is False
        assert_harbor_error(user.get(f"{API}/users"), 403)


def test_sysadmin_flag_takes_effect_at_once(
    registry: PortsideServer, admin: httpx.Client, alice: Account
) -> None:
    with client_for(registry, alice) as user:
        assert_harbor_error(user.get(f"{API}/users"), 403)
        grant = admin.put(f"{API}/users/{alice.id}/sysadmin", json={"sysadmin_flag": True})
        assert grant.status_code == 200, grant.text
        assert user.get(f"{API}/users").status_code == 200
        assert user.get(f"{API}/users/current").json()["sysadmin_flag"] is True
        revoke = admin.put(f"{API}/users/{alice.id}/sysadmin", json={"sysadmin_flag": False})
        assert revoke.status_code == 200, revoke.text
        assert_harbor_error(user.get(f"{API}/users"), 403)
    for body in ({}, {"sysadmin_flag": "true"}, {"sysadmin_flag": 1}, {"flag": True}):
        assert_harbor_error(admin.put(f"{API}/users/{alice.id}/sysadmin", json=body), 400)
    missing = admin.put(f"{API}/users/{2**31 - 1}/sysadmin", json={"sysadmin_flag": True})
    assert_harbor_error(missing, 404)


def test_delete_user_revokes_credentials_at_once(
    registry: PortsideServer, admin: httpx.Client
) -> None:
    account = make_user(admin)
    with client_for(registry, account) as user:
        assert user.get(f"{API}/users/current").status_code == 200
        assert v2_status(registry, account.username, account.password) == 200
        response = admin.delete(f"{API}/users/{account.id}")
        assert response.status_code == 200, response.text
        assert v2_status(registry, account.username, account.password) == 401
        assert_harbor_error(user.get(f"{API}/users/current"), 401)
    assert_harbor_error(admin.get(f"{API}/users/{account.id}"), 404)
    assert_harbor_error(admin.delete(f"{API}/users/{account.id}"), 404)
    # The name is free again.
    assert make_user(admin, username=account.username).username == account.username


def test_delete_user_permissions(
    registry: PortsideServer, admin: httpx.Client, alice: Account, bob: Account
) -> None:
    with client_for(registry, alice) as user:
        assert_harbor_error(user.delete(f"{API}/users/{bob.id}"), 403)
        assert_harbor_error(user.delete(f"{API}/users/{alice.id}"), 403)
    with client_for(registry, None) as anonymous:
        assert_harbor_error(anonymous.delete(f"{API}/users/{bob.id}"), 401)
    assert admin.get(f"{API}/users/{bob.id}").status_code == 200
    me = admin.get(f"{API}/users/current").json()["user_id"]
    assert_harbor_error(admin.delete(f"{API}/users/{me}"), 403)


def test_admin_cannot_delete_the_builtin_admin(
    registry: PortsideServer, admin: httpx.Client
) -> None:
    other_admin = make_user(admin, sysadmin_flag=True)
    builtin = admin.get(f"{API}/users/current").json()["user_id"]
    with client_for(registry, other_admin) as second:
        assert_harbor_error(second.delete(f"{API}/users/{builtin}"), 403)
    assert admin.get(f"{API}/users/current").status_code == 200


# -- passwords ----------------------------------------------------------------------------------


def test_change_own_password(registry: PortsideServer, admin: httpx.Client) -> None:
    account = make_user(admin)
    new_password = "Changed-456"
    with client_for(registry, account) as user:
        url = f"{API}/users/{account.id}/password"
        assert_harbor_error(user.put(url, json={"new_password": new_password}), 400)
        response = user.put(url, json={"old_password": PASSWORD, "new_password": PASSWORD})
        assert "same" in assert_harbor_error(response, 400)
        response = user.put(url, json={"old_password": PASSWORD, "new_password": new_password})
        assert response.status_code == 200, response.text
        # The old password stops working at once, on the API and on /v2/.
        assert_harbor_error(user.get(f"{API}/users/current"), 401)
    assert v2_status(registry, account.username, PASSWORD) == 401
    assert v2_status(registry, account.username, new_password) == 200
    account.password = new_password
    with client_for(registry, account) as user:
        assert user.get(f"{API}/users/current").json()["username"] == account.username


def test_wrong_old_password_is_refused(registry: PortsideServer, admin: httpx.Client) -> None:
    account = make_user(admin)
    with client_for(registry, account) as user:
        response = user.put(
            f"{API}/users/{account.id}/password",
            json={"old_password": "Wrong-pass-1", "new_password": "Changed-456"},
        )
        assert_harbor_error(response, 403)
    assert v2_status(registry, account.username, PASSWORD) == 200


def test_admin_sets_password_without_old_one(
    registry: PortsideServer, admin: httpx.Client, alice: Account
) -> None:
    response = admin.put(f"{API}/users/{alice.id}/password", json={"new_password": "Reset-789x"})
    assert response.status_code == 200, response.text
    assert v2_status(registry, alice.username, "Reset-789x") == 200
    missing = admin.put(f"{API}/users/{2**31 - 1}/password", json={"new_password": "Reset-789x"})
    assert_harbor_error(missing, 404)


def test_admin_changing_own_password_needs_old_one(admin: httpx.Client) -> None:
    me = admin.get(f"{API}/users/current").json()["user_id"]
    response = admin.put(f"{API}/users/{me}/password", json={"new_password": "Another-Pass-1"})
    assert_harbor_error(response, 400)
    assert admin.get(f"{API}/users/current").status_code == 200


def test_users_cannot_change_each_others_passwords(
    registry: PortsideServer, alice: Account, bob: Account
) -> None:
    with client_for(registry, alice) as user:
        response = user.put(
            f"{API}/users/{bob.id}/password",
            json={"old_password": bob.password, "new_password": "Stolen-123"},
        )
        assert_harbor_error(response, 403)
    with client_for(registry, None) as anonymous:
        response = anonymous.put(
            f"{API}/users/{bob.id}/password", json={"new_password": "Stolen-123"}
        )
        assert_harbor_error(response, 401)
    assert v2_status(registry, bob.username, bob.password) == 200


BAD_PASSWORDS = [
    pytest.param("Short1A", id="too-short"),
    pytest.param("Aa1" + "x" * 126, id="too-long"),
    pytest.param("lowercase123", id="no-upper"),
    pytest.param("UPPERCASE123", id="no-lower"),
    pytest.param("NoDigitsHere", id="no-digit"),
    pytest.param("ÄÖÜäöü١٢٣", id="non-ascii-classes"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("password", BAD_PASSWORDS)
def test_password_policy_on_create(admin: httpx.Client, password: str) -> None:
    response = admin.post(
        f"{API}/users",
        json={"username": unique(), "password": password, "email": f"{unique()}@example.com"},
    )
    assert "uppercase" in assert_harbor_error(response, 400)


@pytest.mark.parametrize("password", BAD_PASSWORDS)
def test_password_policy_on_change(
    registry: PortsideServer, admin: httpx.Client, alice: Account, password: str
) -> None:
    response = admin.put(f"{API}/users/{alice.id}/password", json={"new_password": password})
    assert_harbor_error(response, 400)
    assert v2_status(registry, alice.username, alice.password) == 200


@pytest.mark.parametrize(
    "password", ["Abcdefg1", "Aa1" + "x" * 125, "Pass word 1!", "Ünïcode-Pass-9"]
)
def test_password_policy_accepts(
    registry: PortsideServer, admin: httpx.Client, password: str
) -> None:
    account = make_user(admin, password=password)
    assert v2_status(registry, account.username, password) == 200


# -- usernames, duplicates and hostile input ----------------------------------------------------


@pytest.mark.parametrize(
    "username",
    [
        "",
        "a,b",
        'a"b',
        "a~b",
        "a#b",
        "a%b",
        "a$b",
        "a:b",
        "a\x00b",
        "a\nb",
        " leading",
        "trailing ",
        "robot$impostor",
        "x" * 256,
    ],
)
def test_username_rules(admin: httpx.Client, username: str) -> None:
    response = admin.post(
        f"{API}/users",
        json={"username": username, "password": PASSWORD, "email": f"{unique()}@example.com"},
    )
    assert_harbor_error(response, 400)


def test_longest_username_is_accepted(registry: PortsideServer, admin: httpx.Client) -> None:
    username = unique() + "x" * 244
    assert len(username) == 255
    account = make_user(admin, username=username, email=f"{unique()}@example.com")
    assert v2_status(registry, username, account.password) == 200


def test_duplicates_conflict(admin: httpx.Client, alice: Account) -> None:
    response = admin.post(
        f"{API}/users",
        json={"username": alice.username, "password": PASSWORD, "email": f"{unique()}@x.org"},
    )
    assert_harbor_error(response, 409)
    response = admin.post(
        f"{API}/users",
        json={"username": unique(), "password": PASSWORD, "email": alice.email.upper()},
    )
    assert_harbor_error(response, 409)
    other = make_user(admin)
    assert_harbor_error(admin.put(f"{API}/users/{other.id}", json={"email": alice.email}), 409)
    # Keeping one's own address is not a conflict.
    assert admin.put(f"{API}/users/{alice.id}", json={"email": alice.email}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b'"username"',
        b"null",
        b"12",
        b'{"username": "x", "password": "Secret-123"}',
        b'{"username": 12, "password": "Secret-123", "email": "a@example.com"}',
        b'{"username": ["a"], "password": "Secret-123", "email": "a@example.com"}',
        b'{"username": "ok", "password": 12345678, "email": "a@example.com"}',
        b'{"username": "ok", "password": "Secret-123", "email": "a@example.com", "extra": 1}',
        b'{"username": "ok", "password": "Secret-123", "email": {"$ne": null}}',
        b'{"username": "ok", "password": "Secret-123", "email": "a@example.com",'
        b' "sysadmin_flag": "yes"}',
        b"\xff\xfe",
        b"",
    ],
)
def test_hostile_create_bodies(admin: httpx.Client, body: bytes) -> None:
    response = admin.post(
        f"{API}/users", content=body, headers={"Content-Type": "application/json"}
    )
    assert_harbor_error(response, 400)


def test_huge_values_are_refused(admin: httpx.Client) -> None:
    huge = "A1a" * 100_000  # under the 1 MiB body limit: refused by validation
    for field in ("username", "password", "email", "realname", "comment"):
        body = {"username": unique(), "password": PASSWORD, "email": f"{unique()}@example.com"}
        body[field] = huge
        assert_harbor_error(admin.post(f"{API}/users", json=body), 400)
        body[field] = huge * 4  # over it: refused before parsing
        assert_harbor_error(admin.post(f"{API}/users", json=body), 413)


def test_deeply_nested_json_is_refused(admin: httpx.Client) -> None:
    body = b'{"username": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    response = admin.post(
        f"{API}/users", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "path",
    [
        "/users/abc",
        "/users/1.5",
        "/users/-1",
        "/users/0",
        "/users/99999999999999999999999",
        "/users/%00",
        "/users/abc/password",
        "/users/abc/sysadmin",
        "/usergroups/abc",
        "/usergroups/-3",
        "/usergroups/99999999999999999999999",
        "/usergroups/abc/members",
        "/usergroups/1/members/abc",
    ],
)
def test_bad_ids_never_fail_the_server(admin: httpx.Client, path: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = admin.request(method, f"{API}{path}", json={})
        assert response.status_code in (400, 404, 405), (method, path, response.text)
        assert_harbor_error(response, response.status_code)


# -- self-registration --------------------------------------------------------------------------


def test_self_registration_is_off_by_default(registry: PortsideServer, alice: Account) -> None:
    body = {"username": unique(), "password": PASSWORD, "email": f"{unique()}@example.com"}
    with client_for(registry, None) as anonymous:
        assert_harbor_error(anonymous.post(f"{API}/users", json=body), 401)
    with client_for(registry, alice) as user:
        assert_harbor_error(user.post(f"{API}/users", json=body), 403)
    assert v2_status(registry, body["username"], PASSWORD) == 401


def test_self_registration_when_enabled(fresh_registry: PortsideServer) -> None:
    fresh_registry.env = {"PORTSIDE_AUTH__SELF_REGISTRATION": "true"}
    fresh_registry.start()
    username = unique()
    body = {
        "username": username,
        "password": PASSWORD,
        "email": f"{username}@example.com",
        "sysadmin_flag": True,
    }
    with client_for(fresh_registry, None) as anonymous:
        response = anonymous.post(f"{API}/users", json=body)
        assert response.status_code == 201, response.text
        assert response.headers["Location"].startswith(f"{API}/users/")
        # Validation still applies.
        bad = {**body, "username": unique(), "email": f"{unique()}@x.org", "password": "weak"}
        assert_harbor_error(anonymous.post(f"{API}/users", json=bad), 400)
        assert_harbor_error(anonymous.post(f"{API}/users", json=body), 409)
    account = Account(0, username, PASSWORD, body["email"])
    with client_for(fresh_registry, account) as user:
        me = user.get(f"{API}/users/current").json()
        assert me["sysadmin_flag"] is False
        assert_harbor_error(user.get(f"{API}/users"), 403)
        # A registered user may register another account too; never an admin one.
        other = {**body, "username": unique(), "email": f"{unique()}@example.com"}
        assert user.post(f"{API}/users", json=other).status_code == 201
    with fresh_registry.client() as admin:
        users = admin.get(f"{API}/users", params={"page_size": "100"}).json()
        assert [u["username"] for u in users if u["sysadmin_flag"]] == ["admin"]


# -- the last admin, audit ----------------------------------------------------------------------


def test_last_admin_keeps_the_flag(own_server: PortsideServer) -> None:
    with own_server.client() as admin:
        me = admin.get(f"{API}/users/current").json()["user_id"]
        response = admin.put(f"{API}/users/{me}/sysadmin", json={"sysadmin_flag": False})
        assert_harbor_error(response, 403)
        assert admin.get(f"{API}/users").status_code == 200
        second = make_user(admin, sysadmin_flag=True)
        response = admin.put(f"{API}/users/{me}/sysadmin", json={"sysadmin_flag": False})
        assert response.status_code == 200, response.text
        assert_harbor_error(admin.get(f"{API}/users"), 403)
    with client_for(own_server, second) as new_admin:
        response = new_admin.put(f"{API}/users/{second.id}/sysadmin", json={"sysadmin_flag": False})
        assert_harbor_error(response, 403)


def _audit_rows(server: PortsideServer, resource_type: str) -> list[tuple[str, ...]]:
    with sqlite3.connect(f"file:{server.data_dir / 'portside.db'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT username, operation, resource, result, client_ip FROM audit_logs"
            " WHERE resource_type = ? ORDER BY id",
            (resource_type,),
        ).fetchall()
    return [tuple(str(v) for v in row) for row in rows]


def _wait_for_audit(
    server: PortsideServer, resource_type: str, count: int
) -> list[tuple[str, ...]]:
    """The entries of ``resource_type`` other than logins, once ``count`` have arrived."""
    deadline = time.monotonic() + 10
    while True:
        rows = [r for r in _audit_rows(server, resource_type) if r[1] != "login"]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_changes_are_audited(own_server: PortsideServer) -> None:
    with own_server.client() as admin:
        account = make_user(admin, username="audited")
        admin.put(f"{API}/users/{account.id}", json={"comment": "x"}).raise_for_status()
        admin.put(
            f"{API}/users/{account.id}/password", json={"new_password": "Other-pass-1"}
        ).raise_for_status()
        admin.put(
            f"{API}/users/{account.id}/sysadmin", json={"sysadmin_flag": True}
        ).raise_for_status()
        admin.delete(f"{API}/users/{account.id}").raise_for_status()
        group = admin.post(f"{API}/usergroups", json={"group_name": "auditors"})
        group_id = int(group.headers["Location"].rsplit("/", 1)[1])
        admin.put(f"{API}/usergroups/{group_id}", json={"group_name": "auditors2"})
        admin.delete(f"{API}/usergroups/{group_id}").raise_for_status()
    user_rows = _wait_for_audit(own_server, "user", 5)
    operations = [(r[0], r[1], r[2], r[3]) for r in user_rows if r[2] == "audited"]
    assert operations == [
        ("admin", "create", "audited", "success"),
        ("admin", "update", "audited", "success"),
        ("admin", "password", "audited", "success"),
        ("admin", "update", "audited", "success"),
        ("admin", "delete", "audited", "success"),
    ], user_rows
    assert all(r[4] == "127.0.0.1" for r in user_rows if r[2] == "audited")
    group_rows = _wait_for_audit(own_server, "usergroup", 3)
    assert [(r[1], r[2]) for r in group_rows] == [
        ("create", "auditors"),
        ("update", "auditors2"),
        ("delete", "auditors2"),
    ]


# -- user groups --------------------------------------------------------------------------------


def make_group(admin: httpx.Client, name: str | None = None, **fields: Any) -> tuple[int, str]:
    name = name or unique("g")
    response = admin.post(f"{API}/usergroups", json={"group_name": name, **fields})
    assert response.status_code == 201, response.text
    match = re.fullmatch(rf"{re.escape(API)}/usergroups/(\d+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match[1]), name


def test_user_group_crud(admin: httpx.Client) -> None:
    group_id, name = make_group(admin, group_type=2)
    assert admin.get(f"{API}/usergroups/{group_id}").json() == {
        "id": group_id,
        "group_name": name,
        "group_type": 2,
        "ldap_group_dn": "",
    }
    listed = admin.get(f"{API}/usergroups", params={"group_name": name})
    assert listed.headers["X-Total-Count"] == "1"
    assert [g["id"] for g in listed.json()] == [group_id]
    assert_harbor_error(admin.post(f"{API}/usergroups", json={"group_name": name}), 409)

    renamed = name + "-renamed"
    response = admin.put(f"{API}/usergroups/{group_id}", json={"group_name": renamed})
    assert response.status_code == 200, response.text
    assert admin.get(f"{API}/usergroups/{group_id}").json()["group_name"] == renamed
    other_id, other_name = make_group(admin)
    conflict = admin.put(f"{API}/usergroups/{other_id}", json={"group_name": renamed})
    assert_harbor_error(conflict, 409)

    assert admin.delete(f"{API}/usergroups/{group_id}").status_code == 200
    assert_harbor_error(admin.get(f"{API}/usergroups/{group_id}"), 404)
    assert_harbor_error(admin.delete(f"{API}/usergroups/{group_id}"), 404)
    assert_harbor_error(admin.put(f"{API}/usergroups/{group_id}", json={"group_name": "z"}), 404)
    assert admin.get(f"{API}/usergroups/{other_id}").json()["group_name"] == other_name


def test_user_group_list_pages(admin: httpx.Client) -> None:
    prefix = unique("gp")
    ids = [make_group(admin, f"{prefix}-{n}")[0] for n in range(3)]
    first = admin.get(f"{API}/usergroups", params={"group_name": prefix, "page_size": "2"})
    assert first.headers["X-Total-Count"] == "3"
    assert [g["id"] for g in first.json()] == ids[:2]
    assert 'rel="next"' in first.headers["Link"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"group_name": ""},
        {"group_name": "   "},
        {"group_name": "g" * 256},
        {"group_name": "a\x00b"},
        {"group_name": 5},
        {"group_name": "ok", "group_type": 1},
        {"group_name": "ok", "group_type": 3},
        {"group_name": "ok", "group_type": "2"},
        {"group_name": "ok", "ldap_group_dn": "d" * 513},
        {"group_name": "ok", "members": []},
    ],
)
def test_user_group_rejects(admin: httpx.Client, body: Any) -> None:
    assert_harbor_error(admin.post(f"{API}/usergroups", json=body), 400)


def test_user_group_permissions(registry: PortsideServer, alice: Account) -> None:
    with registry.client() as admin:
        group_id, name = make_group(admin)
    calls = [
        ("GET", "/usergroups", None),
        ("POST", "/usergroups", {"group_name": unique("g")}),
        ("GET", f"/usergroups/{group_id}", None),
        ("PUT", f"/usergroups/{group_id}", {"group_name": unique("g")}),
        ("DELETE", f"/usergroups/{group_id}", None),
        ("GET", f"/usergroups/{group_id}/members", None),
        ("PUT", f"/usergroups/{group_id}/members/{alice.id}", None),
        ("DELETE", f"/usergroups/{group_id}/members/{alice.id}", None),
    ]
    with client_for(registry, alice) as user, client_for(registry, None) as anonymous:
        for method, path, body in calls:
            assert_harbor_error(user.request(method, f"{API}{path}", json=body), 403)
            assert_harbor_error(anonymous.request(method, f"{API}{path}", json=body), 401)
        # Searching is open to every user, and shows no DN.
        found = user.get(f"{API}/usergroups/search", params={"groupname": name})
        assert found.status_code == 200, found.text
        assert found.json() == [{"id": group_id, "group_name": name, "group_type": 2}]
        assert found.headers["X-Total-Count"] == "1"
        assert_harbor_error(user.get(f"{API}/usergroups/search"), 400)
        response = anonymous.get(f"{API}/usergroups/search", params={"groupname": name})
        assert_harbor_error(response, 401)
    with registry.client() as admin:
        assert admin.get(f"{API}/usergroups/{group_id}").json()["group_name"] == name


def test_user_group_members(admin: httpx.Client, alice: Account, bob: Account) -> None:
    group_id, _ = make_group(admin)
    members = f"{API}/usergroups/{group_id}/members"
    assert admin.get(members).json() == []
    for account in (bob, alice, alice):  # adding twice is fine
        response = admin.put(f"{members}/{account.id}")
        assert response.status_code == 200, response.text
    listed = admin.get(members)
    assert listed.headers["X-Total-Count"] == "2"
    expected = sorted(
        ({"user_id": a.id, "username": a.username} for a in (alice, bob)),
        key=lambda m: str(m["username"]),
    )
    assert listed.json() == expected
    assert admin.delete(f"{members}/{alice.id}").status_code == 200
    assert_harbor_error(admin.delete(f"{members}/{alice.id}"), 404)
    assert [m["user_id"] for m in admin.get(members).json()] == [bob.id]
    assert_harbor_error(admin.put(f"{members}/{2**31 - 1}"), 404)
    assert_harbor_error(admin.put(f"{API}/usergroups/{2**31 - 1}/members/{bob.id}"), 404)
    assert_harbor_error(admin.get(f"{API}/usergroups/{2**31 - 1}/members"), 404)
    # Deleting a user takes them out of their groups.
    assert admin.delete(f"{API}/users/{bob.id}").status_code == 200
    assert admin.get(members).json() == []


def _library_id(server: PortsideServer) -> int:
    with sqlite3.connect(f"file:{server.data_dir / 'portside.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT id FROM projects WHERE name = 'library'").fetchone()
    return int(row[0])


def _grant_group_role(server: PortsideServer, group_id: int, role: int) -> None:
    """Make the group a member of ``library`` directly in the database (the members API is
    another module's; this test is about group membership reaching the policy)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(server.data_dir / "portside.db", timeout=10) as db:
        db.execute(
            "INSERT INTO project_members"
            " (project_id, entity_id, entity_type, role, created_at, updated_at)"
            " VALUES (?, ?, 'g', ?, ?, ?)",
            (_library_id(server), group_id, role, stamp, stamp),
        )


def _push_status(server: PortsideServer, account: Account) -> int:
    blob = random_blob()
    with client_for(server, account) as user:
        response = user.post(
            f"/v2/library/{unique('r')}/blobs/uploads/",
            params={"digest": blob.digest},
            content=blob.data,
            headers={"Content-Type": "application/octet-stream"},
        )
    return response.status_code


def test_group_roles_follow_membership_at_once(own_server: PortsideServer) -> None:
    with own_server.client() as admin:
        account = make_user(admin)
        group_id, _ = make_group(admin)
        _grant_group_role(own_server, group_id, role=2)  # developer
        assert _push_status(own_server, account) == 403
        admin.put(f"{API}/usergroups/{group_id}/members/{account.id}").raise_for_status()
        assert _push_status(own_server, account) == 201
        admin.delete(f"{API}/usergroups/{group_id}/members/{account.id}").raise_for_status()
        assert _push_status(own_server, account) == 403
        admin.put(f"{API}/usergroups/{group_id}/members/{account.id}").raise_for_status()
        assert _push_status(own_server, account) == 201
        # Deleting the group removes its project roles too.
        admin.delete(f"{API}/usergroups/{group_id}").raise_for_status()
        assert _push_status(own_server, account) == 403
    with sqlite3.connect(f"file:{own_server.data_dir / 'portside.db'}?mode=ro", uri=True) as db:
        left = db.execute(
            "SELECT COUNT(*) FROM project_members WHERE entity_type = 'g' AND entity_id = ?",
            (group_id,),
        ).fetchone()
    assert left == (0,)
