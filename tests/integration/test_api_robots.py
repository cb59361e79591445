"""Robot accounts: Harbor's ``/api/v2.0/robots`` API, and robots using ``/v2/`` with basic
auth and with tokens from ``/service/token``.

Everything runs against a real server over HTTP. Users, projects and members are made through
their own Harbor endpoints. Every robot, project and user has a random name, so tests sharing the
session's server never see each other's accounts.
"""

from __future__ import annotations

import datetime as dt
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from portside.auth.robots import RobotState
from tests.support.oci import (
    assert_error,
    blob_path,
    image_manifest,
    jwt_claims,
    manifest_path,
    push_content,
)
from tests.support.server import PortsideServer

API = "/api/v2.0"
NOW = dt.datetime.now(dt.UTC)
DAY = 86400

PULL = [("repository", "pull")]
PUSH_PULL = [("repository", "pull"), ("repository", "push")]


# -- helpers ------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def access(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"resource": resource, "action": action} for resource, action in pairs]


def robot_body(
    name: str, level: str, blocks: dict[str, list[tuple[str, str]]], **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "level": level,
        "description": f"test robot {name}",
        "permissions": [
            {"kind": "project", "namespace": namespace, "access": access(pairs)}
            for namespace, pairs in blocks.items()
        ],
        **extra,
    }


def create_robot(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"{API}/robots", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert response.headers["Location"] == f"{API}/robots/{created['id']}"
    return created


def system_robot(
    admin: httpx.Client, blocks: dict[str, list[tuple[str, str]]], **extra: Any
) -> dict[str, Any]:
    return create_robot(admin, robot_body(unique("sys"), "system", blocks, **extra))


def project_robot(
    client: httpx.Client, project: str, pairs: list[tuple[str, str]], **extra: Any
) -> dict[str, Any]:
    return create_robot(client, robot_body(unique("bot"), "project", {project: pairs}, **extra))


def create_project(admin: httpx.Client, public: bool = False) -> tuple[str, int]:
    name = unique("rp-")
    response = admin.post(
        f"{API}/projects",
        json={"project_name": name, "metadata": {"public": "true" if public else "false"}},
    )
    assert response.status_code == 201, response.text
    response = admin.get(f"{API}/projects/{name}", headers={"X-Is-Resource-Name": "true"})
    assert response.status_code == 200, response.text
    return name, int(response.json()["project_id"])


def create_user(admin: httpx.Client) -> tuple[str, str]:
    name, password = unique("ru"), f"Robots-{secrets.token_hex(4)}-A1"
    response = admin.post(
        f"{API}/users",
        json={
            "username": name,
            "password": password,
            "email": f"{name}@example.com",
            "realname": name,
        },
    )
    assert response.status_code == 201, response.text
    return name, password


def add_member(admin: httpx.Client, project: str, username: str, role_id: int) -> None:
    response = admin.post(
        f"{API}/projects/{project}/members",
        json={"role_id": role_id, "member_user": {"username": username}},
        headers={"X-Is-Resource-Name": "true"},
    )
    assert response.status_code == 201, response.text


def as_account(registry: PortsideServer, name: str, secret: str) -> httpx.Client:
    return httpx.Client(base_url=registry.url, auth=(name, secret), timeout=30)


def token(registry: PortsideServer, auth: tuple[str, str], *scopes: str) -> httpx.Response:
    params = [("service", "portside"), *(("scope", scope) for scope in scopes)]
    return httpx.get(f"{registry.url}/service/token", params=params, auth=auth, timeout=30)


def bearer(registry: PortsideServer, value: str) -> httpx.Client:
    return httpx.Client(
        base_url=registry.url, headers={"Authorization": f"Bearer {value}"}, timeout=30
    )


def granted(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = jwt_claims(response.json()["token"])["access"]
    return entries


def assert_invalid_token(response: httpx.Response) -> None:
    assert_error(response, 401, "UNAUTHORIZED")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def assert_harbor_error(response: httpx.Response, status: int) -> None:
    """Harbor's ``{"errors": [{"code", "message"}]}`` with ``status``."""
    assert response.status_code == status, (response.status_code, response.text)
    errors = response.json()["errors"]
    assert isinstance(errors, list) and errors
    assert isinstance(errors[0]["code"], str) and isinstance(errors[0]["message"], str)


def audit_entries(admin: httpx.Client, robot_name: str) -> list[dict[str, Any]]:
    response = admin.get(
        f"{API}/audit-logs",
        params={"q": f"resource_type=robot,resource={robot_name}", "page_size": 100},
    )
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


@pytest.fixture
def admin(registry: PortsideServer) -> Iterator[httpx.Client]:
    with registry.client() as client:
        yield client


@pytest.fixture
def anonymous(registry: PortsideServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        yield client


# -- creating and reading -----------------------------------------------------------------------


def test_create_system_robot(registry: PortsideServer, admin: httpx.Client) -> None:
    project, _ = create_project(admin)
    name = unique("sys")
    body = robot_body(name, "system", {project: PULL, "*": [("repository", "read")]})
    before = time.time()
    created = create_robot(admin, body)
    assert created["name"] == f"robot${name}"
    assert isinstance(created["secret"], str) and len(created["secret"]) >= 32
    # absent duration: Harbor's default of 30 days
    assert abs(created["expires_at"] - (before + 30 * DAY)) < 120
    assert created["creation_time"].endswith("Z")

    response = admin.get(f"{API}/robots/{created['id']}")
    assert response.status_code == 200, response.text
    robot = response.json()
    assert "secret" not in robot
    assert created["secret"] not in response.text
    assert robot["id"] == created["id"]
    assert robot["name"] == f"robot${name}"
    assert robot["level"] == "system"
    assert robot["duration"] == 30
    assert robot["disable"] is False
    assert robot["editable"] is True
    assert robot["expires_at"] == created["expires_at"]
    assert robot["description"] == f"test robot {name}"
    assert robot["creator"] == registry.username
    assert robot["creator_type"] == "local"
    assert robot["creator_ref"] >= 1
    assert robot["creation_time"] == created["creation_time"]
    assert robot["update_time"].endswith("Z")
    by_namespace = {p["namespace"]: p for p in robot["permissions"]}
    assert set(by_namespace) == {project, "*"}
    assert by_namespace[project]["kind"] == "project"
    assert by_namespace[project]["access"] == [
        {"resource": "repository", "action": "pull", "effect": "allow"}
    ]

    listed = admin.get(f"{API}/robots", params={"page_size": 100, "q": f"name={name}"})
    assert listed.status_code == 200, listed.text
    assert [r["id"] for r in listed.json()] == [created["id"]]
    assert listed.headers["X-Total-Count"] == "1"
    assert created["secret"] not in listed.text

    operations = [e["operation"] for e in audit_entries(admin, created["name"])]
    assert "create" in operations


def test_create_project_robot_and_list_by_project(admin: httpx.Client) -> None:
    project, project_id = create_project(admin)
    created = create_robot(
        admin, robot_body("ci", "project", {project: PUSH_PULL}, duration=-1, disable=False)
    )
    assert created["name"] == f"robot${project}+ci"
    assert created["expires_at"] == -1
    other = project_robot(admin, project, PULL, duration=7)
    assert abs(other["expires_at"] - (time.time() + 7 * DAY)) < 120

    response = admin.get(
        f"{API}/robots", params={"q": f"Level=project,ProjectID={project_id}", "sort": "id"}
    )
    assert response.status_code == 200, response.text
    robots = response.json()
    assert [r["id"] for r in robots] == [created["id"], other["id"]]
    assert response.headers["X-Total-Count"] == "2"
    assert robots[0]["level"] == "project"
    assert robots[0]["duration"] == -1
    assert robots[0]["expires_at"] == -1
    assert robots[0]["permissions"] == [
        {
            "kind": "project",
            "namespace": project,
            "access": [
                {"resource": "repository", "action": "pull", "effect": "allow"},
                {"resource": "repository", "action": "push", "effect": "allow"},
            ],
        }
    ]

    paged = admin.get(
        f"{API}/robots",
        params={"q": f"Level=project,ProjectID={project_id}", "page": 2, "page_size": 1},
    )
    assert [r["id"] for r in paged.json()] == [other["id"]]
    assert paged.headers["X-Total-Count"] == "2"
    assert 'rel="prev"' in paged.headers["Link"]

    # the default listing is the system robots, as in Harbor
    system = admin.get(f"{API}/robots", params={"page_size": 100, "q": "name=~ci"})
    assert system.status_code == 200
    assert created["id"] not in [r["id"] for r in system.json()]
    assert all(r["level"] == "system" for r in system.json())


def test_name_collisions_are_409(admin: httpx.Client) -> None:
    project, _ = create_project(admin)
    other_project, _ = create_project(admin)
    name = unique("dup")
    create_robot(admin, robot_body(name, "system", {"*": PULL}))
    response = admin.post(f"{API}/robots", json=robot_body(name, "system", {project: PULL}))
    assert_harbor_error(response, 409)
    assert response.json()["errors"][0]["code"] == "CONFLICT"

    create_robot(admin, robot_body(name, "project", {project: PULL}))
    response = admin.post(f"{API}/robots", json=robot_body(name, "project", {project: PUSH_PULL}))
    assert_harbor_error(response, 409)
    # the same short name in another project is another robot
    create_robot(admin, robot_body(name, "project", {other_project: PULL}))


def test_missing_robot_is_404(admin: httpx.Client) -> None:
    missing = 2**31 - 2
    assert_harbor_error(admin.get(f"{API}/robots/{missing}"), 404)
    assert_harbor_error(admin.delete(f"{API}/robots/{missing}"), 404)
    assert_harbor_error(admin.patch(f"{API}/robots/{missing}", json={}), 404)
    body = robot_body("x", "system", {"*": PULL})
    assert_harbor_error(admin.put(f"{API}/robots/{missing}", json=body), 404)


def test_robot_in_missing_project_is_404(admin: httpx.Client) -> None:
    missing = unique("nope-")
    response = admin.post(f"{API}/robots", json=robot_body("ci", "project", {missing: PULL}))
    assert_harbor_error(response, 404)
    response = admin.post(f"{API}/robots", json=robot_body("ci", "system", {missing: PULL}))
    assert_harbor_error(response, 404)


# -- robots on /v2/ ------------------------------------------------------------------------------


def test_robot_pushes_and_pulls_with_basic_auth(
    registry: PortsideServer, admin: httpx.Client
) -> None:
    project, _ = create_project(admin)
    robot = project_robot(admin, project, PUSH_PULL)
    repo = f"{project}/app"
    manifest = image_manifest()
    with as_account(registry, robot["name"], robot["secret"]) as client:
        assert client.get("/v2/").status_code == 200
        push_content(client, repo, manifest, "v1")
        response = client.get(manifest_path(repo, "v1"))
        assert response.status_code == 200
        assert response.content == manifest.raw
        layer = manifest.blobs[1]
        assert client.get(blob_path(repo, layer.digest)).content == layer.data
    assert admin.get(manifest_path(repo, "v1")).content == manifest.raw


def test_robot_pushes_and_pulls_with_a_token(registry: PortsideServer, admin: httpx.Client) -> None:
    project, _ = create_project(admin)
    robot = project_robot(admin, project, PUSH_PULL)
    repo = f"{project}/app"
    response = token(registry, (robot["name"], robot["secret"]), f"repository:{repo}:pull,push")
    claims = jwt_claims(response.json()["token"])
    assert claims["sub"] == robot["name"]
    assert claims["kind"] == "robot"
    assert claims["ver"] == 1
    assert granted(response) == [{"type": "repository", "name": repo, "actions": ["pull", "push"]}]
    manifest = image_manifest()
    with bearer(registry, response.json()["token"]) as client:
        push_content(client, repo, manifest, "v1")
        assert client.get(manifest_path(repo, "v1")).content == manifest.raw


def test_system_robot_covers_its_namespaces(registry: PortsideServer, admin: httpx.Client) -> None:
    first, _ = create_project(admin)
    second, _ = create_project(admin)
    third, _ = create_project(admin)
    for project in (first, second, third):
        push_content(admin, f"{project}/app", image_manifest(), "v1")
    robot = system_robot(admin, {first: PUSH_PULL, second: PULL})
    with as_account(registry, robot["name"], robot["secret"]) as client:
        assert client.get(manifest_path(f"{first}/app", "v1")).status_code == 200
        assert client.get(manifest_path(f"{second}/app", "v1")).status_code == 200
        assert_error(client.get(manifest_path(f"{third}/app", "v1")), 403, "DENIED")
        push_content(client, f"{first}/new", image_manifest(), "v1")
        assert_error(client.post(f"/v2/{second}/new/blobs/uploads/"), 403, "DENIED")

    everywhere = system_robot(admin, {"*": PULL})
    with as_account(registry, everywhere["name"], everywhere["secret"]) as client:
        for project in (first, second, third):
            assert client.get(manifest_path(f"{project}/app", "v1")).status_code == 200
        assert_error(client.post(f"/v2/{first}/new/blobs/uploads/"), 403, "DENIED")


def test_pull_only_robot_cannot_push_nor_reach_other_private_projects(
    registry: PortsideServer, admin: httpx.Client
) -> None:
    project_a, _ = create_project(admin)
    project_b, _ = create_project(admin)
    repo_a, repo_b = f"{project_a}/app", f"{project_b}/app"
    push_content(admin, repo_a, image_manifest(), "v1")
    push_content(admin, repo_b, image_manifest(), "v1")
    robot = project_robot(admin, project_a, PULL)
    auth = (robot["name"], robot["secret"])

    with as_account(registry, *auth) as client:
        assert client.get(manifest_path(repo_a, "v1")).status_code == 200
        assert_error(client.post(f"/v2/{repo_a}/blobs/uploads/"), 403, "DENIED")
        assert_error(client.delete(manifest_path(repo_a, "v1")), 403, "DENIED")
        assert_error(client.get(manifest_path(repo_b, "v1")), 403, "DENIED")
        catalog = client.get("/v2/_catalog", params={"n": 1000})
        assert catalog.status_code == 200
        assert repo_a in catalog.json()["repositories"]
        assert repo_b not in catalog.json()["repositories"]

    response = token(registry, auth, f"repository:{repo_a}:pull,push,delete")
    assert granted(response) == [{"type": "repository", "name": repo_a, "actions": ["pull"]}]
    with bearer(registry, response.json()["token"]) as client:
        assert client.get(manifest_path(repo_a, "v1")).status_code == 200
        refused = client.post(f"/v2/{repo_a}/blobs/uploads/")
        assert_error(refused, 401, "UNAUTHORIZED")
        assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    assert granted(token(registry, auth, f"repository:{repo_b}:pull")) == []


def test_deny_effect_removes_a_permission(registry: PortsideServer, admin: httpx.Client) -> None:
    project, _ = create_project(admin)
    push_content(admin, f"{project}/app", image_manifest(), "v1")
    body = robot_body(unique("deny"), "system", {"*": PUSH_PULL})
    body["permissions"].append(
        {
            "kind": "project",
            "namespace": project,
            "access": [{"resource": "repository", "action": "push", "effect": "deny"}],
        }
    )
    robot = create_robot(admin, body)
    with as_account(registry, robot["name"], robot["secret"]) as client:
        assert client.get(manifest_path(f"{project}/app", "v1")).status_code == 200
        assert_error(client.post(f"/v2/{project}/app/blobs/uploads/"), 403, "DENIED")


# -- revocation: disable, refresh, delete, expiry --------------------------------------------


def test_disabled_robot_is_refused(registry: PortsideServer, admin: httpx.Client) -> None:
    project, _ = create_project(admin)
    repo = f"{project}/app"
    push_content(admin, repo, image_manifest(), "v1")
    robot = project_robot(admin, project, PULL)
    auth = (robot["name"], robot["secret"])
    issued = token(registry, auth, f"repository:{repo}:pull").json()["token"]
    with as_account(registry, *auth) as client:
        assert client.get(manifest_path(repo, "v1")).status_code == 200  # cached credentials

    current = admin.get(f"{API}/robots/{robot['id']}").json()
    response = admin.put(f"{API}/robots/{robot['id']}", json={**current, "disable": True})
    assert response.status_code == 200, response.text
    assert admin.get(f"{API}/robots/{robot['id']}").json()["disable"] is True

    with as_account(registry, *auth) as client:
        assert_error(client.get(manifest_path(repo, "v1")), 401, "UNAUTHORIZED")
    with bearer(registry, issued) as client:
        assert_invalid_token(client.get(manifest_path(repo, "v1")))
    assert_error(token(registry, auth, f"repository:{repo}:pull"), 401)

    # enabled again, the same credentials work again
    response = admin.put(f"{API}/robots/{robot['id']}", json={**current, "disable": False})
    assert response.status_code == 200, response.text
    with as_account(registry, *auth) as client:
        assert client.get(manifest_path(repo, "v1")).status_code == 200

    disabled = project_robot(admin, project, PULL, disable=True)
    with as_account(registry, disabled["name"], disabled["secret"]) as client:
        assert_error(client.get("/v2/"), 401, "UNAUTHORIZED")


def test_refreshing_the_secret_revokes_the_old_one_at_once(
    registry: PortsideServer, admin: httpx.Client
) -> None:
    project, _ = create_project(admin)
    repo = f"{project}/app"
    push_content(admin, repo, image_manifest(), "v1")
    robot = project_robot(admin, project, PULL)
    old = (robot["name"], robot["secret"])
    old_token = token(registry, old, f"repository:{repo}:pull").json()["token"]
    with as_account(registry, *old) as client:
        assert client.get(manifest_path(repo, "v1")).status_code == 200
    with bearer(registry, old_token) as client:
        assert client.get(manifest_path(repo, "v1")).status_code == 200

    response = admin.patch(f"{API}/robots/{robot['id']}", json={})
    assert response.status_code == 200, response.text
    secret = response.json()["secret"]
    assert secret and secret != robot["secret"]

    with as_account(registry, *old) as client:
        assert_error(client.get(manifest_path(repo, "v1")), 401, "UNAUTHORIZED")
    with bearer(registry, old_token) as client:
        assert_invalid_token(client.get(manifest_path(repo, "v1")))
    with as_account(registry, robot["name"], secret) as client:
        assert client.get(manifest_path(repo, "v1")).status_code == 200
    fresh = token(registry, (robot["name"], secret), f"repository:{repo}:pull")
    assert jwt_claims(fresh.json()["token"])["ver"] == 2

    # a secret of the caller's choosing must meet the password policy, and is not echoed
    for weak in ("short1A", "alllowercase1", "ALLUPPERCASE1", "NoDigitsHere", "A1" + "a" * 127):
        refused = admin.patch(f"{API}/robots/{robot['id']}", json={"secret": weak})
        assert_harbor_error(refused, 400)
    chosen = "Chosen-Secret-42"
    response = admin.patch(f"{API}/robots/{robot['id']}", json={"secret": chosen})
    assert response.status_code == 200, response.text
    assert response.json() == {}
    with as_account(registry, robot["name"], chosen) as client:
        assert client.get(manifest_path(repo, "v1")).status_code == 200
    with as_account(registry, robot["name"], secret) as client:
        assert_error(client.get("/v2/"), 401, "UNAUTHORIZED")
    assert "update" in [e["operation"] for e in audit_entries(admin, robot["name"])]


def test_deleted_robot_is_refused(registry: PortsideServer, admin: httpx.Client) -> None:
    project, _ = create_project(admin)
    repo = f"{project}/app"
    push_content(admin, repo, image_manifest(), "v1")
    robot = project_robot(admin, project, PULL)
    auth = (robot["name"], robot["secret"])
    issued = token(registry, auth, f"repository:{repo}:pull").json()["token"]
    with bearer(registry, issued) as client:
        assert client.get(manifest_path(repo, "v1")).status_code == 200

    response = admin.delete(f"{API}/robots/{robot['id']}")
    assert response.status_code == 200, response.text
    assert_harbor_error(admin.get(f"{API}/robots/{robot['id']}"), 404)
    with bearer(registry, issued) as client:
        assert_invalid_token(client.get(manifest_path(repo, "v1")))
    with as_account(registry, *auth) as client:
        assert_error(client.get("/v2/"), 401, "UNAUTHORIZED")
    assert "delete" in [e["operation"] for e in audit_entries(admin, robot["name"])]


def test_robot_state_usable() -> None:
    never = RobotState(1, "hash", 1, False, None)
    assert never.usable()
    assert never.usable(NOW + dt.timedelta(days=365 * 100))
    later = RobotState(1, "hash", 1, False, NOW + dt.timedelta(days=1))
    assert later.usable()
    assert later.usable(NOW + dt.timedelta(hours=23))
    assert not later.usable(NOW + dt.timedelta(days=1))
    assert not later.usable(NOW + dt.timedelta(days=2))
    past = RobotState(1, "hash", 1, False, NOW - dt.timedelta(seconds=1))
    assert not past.usable()
    disabled = RobotState(1, "hash", 1, True, None)
    assert not disabled.usable()


def test_expired_robot_is_refused(tmp_path: Path) -> None:
    """Expiry cannot be put in the past through the API, so the test moves it in the database;
    a one-second cache lets the server see the change."""
    server = PortsideServer(tmp_path / "portside", {"PORTSIDE_REGISTRY__CACHE_TTL_SECONDS": "1"})
    server.start()
    try:
        with server.client() as admin:
            push_content(admin, "library/app", image_manifest(), "v1")
            robot = project_robot(admin, "library", PUSH_PULL, duration=1)
            assert abs(robot["expires_at"] - (time.time() + DAY)) < 120
            auth = (robot["name"], robot["secret"])
            issued = token(server, auth, "repository:library/app:pull,push").json()["token"]
            with as_account(server, *auth) as client:
                push_content(client, "library/app", image_manifest(), "v2")

            with sqlite3.connect(server.data_dir / "portside.db") as db:
                db.execute(
                    "UPDATE robots SET expires_at = ? WHERE id = ?",
                    ("2001-01-01 00:00:00.000000", robot["id"]),
                )
            time.sleep(1.5)

            with as_account(server, *auth) as client:
                assert_error(client.get(manifest_path("library/app", "v1")), 401)
            with bearer(server, issued) as client:
                assert_invalid_token(client.get(manifest_path("library/app", "v1")))
            response = admin.get(f"{API}/robots/{robot['id']}")
            assert response.json()["expires_at"] == int(
                dt.datetime(2001, 1, 1, tzinfo=dt.UTC).timestamp()
            )
    finally:
        server.stop()


# -- updating ---------------------------------------------------------------------------------


def test_update_robot(registry: PortsideServer, admin: httpx.Client) -> None:
    project, _ = create_project(admin)
    other, _ = create_project(admin)
    repo = f"{project}/app"
    robot = project_robot(admin, project, PULL, duration=5)
    auth = (robot["name"], robot["secret"])
    with as_account(registry, *auth) as client:
        assert_error(client.post(f"/v2/{repo}/blobs/uploads/"), 403, "DENIED")

    current = admin.get(f"{API}/robots/{robot['id']}").json()
    created = dt.datetime.fromisoformat(current["creation_time"].replace("Z", "+00:00"))
    changed = {
        **current,
        "description": "now pushes",
        "duration": 10,
        "permissions": [{"kind": "project", "namespace": project, "access": access(PUSH_PULL)}],
    }
    response = admin.put(f"{API}/robots/{robot['id']}", json=changed)
    assert response.status_code == 200, response.text
    after = admin.get(f"{API}/robots/{robot['id']}").json()
    assert after["description"] == "now pushes"
    assert after["duration"] == 10
    # as in Harbor, a new duration counts from the creation time
    assert abs(after["expires_at"] - (created.timestamp() + 10 * DAY)) <= 1
    assert len(after["permissions"][0]["access"]) == 2
    # the new permission holds at once
    with as_account(registry, *auth) as client:
        push_content(client, repo, image_manifest(), "v1")

    never = admin.put(f"{API}/robots/{robot['id']}", json={**changed, "duration": -1})
    assert never.status_code == 200, never.text
    assert admin.get(f"{API}/robots/{robot['id']}").json()["expires_at"] == -1

    for refused in (
        {**changed, "name": "robot$other"},
        {**changed, "level": "system"},
        {**changed, "duration": 0},
        {**changed, "duration": -5},
        {**changed, "permissions": []},
        {
            **changed,
            "permissions": [{"kind": "project", "namespace": other, "access": access(PULL)}],
        },
        {
            **changed,
            "permissions": [{"kind": "project", "namespace": "*", "access": access(PULL)}],
        },
    ):
        assert_harbor_error(admin.put(f"{API}/robots/{robot['id']}", json=refused), 400)
    assert "update" in [e["operation"] for e in audit_entries(admin, robot["name"])]


def test_update_system_robot_permissions(registry: PortsideServer, admin: httpx.Client) -> None:
    first, _ = create_project(admin)
    second, _ = create_project(admin)
    push_content(admin, f"{second}/app", image_manifest(), "v1")
    robot = system_robot(admin, {first: PULL})
    auth = (robot["name"], robot["secret"])
    with as_account(registry, *auth) as client:
        assert_error(client.get(manifest_path(f"{second}/app", "v1")), 403, "DENIED")
    current = admin.get(f"{API}/robots/{robot['id']}").json()
    current["permissions"].append({"kind": "project", "namespace": second, "access": access(PULL)})
    assert admin.put(f"{API}/robots/{robot['id']}", json=current).status_code == 200
    with as_account(registry, *auth) as client:
        assert client.get(manifest_path(f"{second}/app", "v1")).status_code == 200


# -- hostile input -------------------------------------------------------------------------------

_VALID = robot_body("valid", "system", {"*": PULL})


def _with(**changes: Any) -> dict[str, Any]:
    return {**_VALID, **changes}


def _permission(**changes: Any) -> dict[str, Any]:
    block = {"kind": "project", "namespace": "*", "access": access(PULL), **changes}
    return _with(permissions=[block])


def _access(**changes: Any) -> dict[str, Any]:
    return _permission(access=[{"resource": "repository", "action": "pull", **changes}])


HOSTILE_BODIES = {
    "upper case name": _with(name="CI"),
    "plus in name": _with(name="a+b"),
    "dollar in name": _with(name="robot$x"),
    "slash in name": _with(name="../x"),
    "space in name": _with(name="a b"),
    "unicode look-alike": _with(name="\u0441i"),  # Cyrillic es
    "empty name": _with(name=""),
    "separator at end": _with(name="ci-"),
    "long name": _with(name="a" * 256),
    "name not a string": _with(name=["ci"]),
    "no name": {k: v for k, v in _VALID.items() if k != "name"},
    "unknown level": _with(level="admin"),
    "no level": {k: v for k, v in _VALID.items() if k != "level"},
    "duration -2": _with(duration=-2),
    "duration huge": _with(duration=2**40),
    "duration float": _with(duration=1.5),
    "duration string": _with(duration="forever"),
    "no permissions": _with(permissions=[]),
    "null permissions": _with(permissions=None),
    "permission not an object": _with(permissions=["repository:pull"]),
    "empty access": _permission(access=[]),
    "null access": _permission(access=None),
    "system kind": _permission(kind="system", namespace="/"),
    "unknown kind": _permission(kind="cluster"),
    "hostile namespace": _permission(namespace="../etc"),
    "upper-case namespace": _permission(namespace="Library"),
    "unknown resource": _access(resource="everything"),
    "unknown action": _access(action="own"),
    "wildcard resource": _access(resource="*"),
    "wildcard action": _access(action="*"),
    "action of another resource": _access(action="operate"),
    "unknown effect": _access(effect="maybe"),
    "extra access field": _access(scope="all"),
    "extra field": _with(is_admin=True),
    "control character in description": _with(description="a\x00b"),
    "long description": _with(description="d" * 1025),
    "too many blocks": _with(
        permissions=[{"kind": "project", "namespace": "*", "access": access(PULL)}] * 101
    ),
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_hostile_robot_bodies_are_400(admin: httpx.Client, body: dict[str, Any]) -> None:
    assert_harbor_error(admin.post(f"{API}/robots", json=body), 400)


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[]", b'"robot"', b"{" * 10000, b'{"name": "a\\ud800"}'],
    ids=["empty", "not json", "array", "string", "deep", "lone surrogate"],
)
def test_malformed_json_is_400(admin: httpx.Client, content: bytes) -> None:
    response = admin.post(
        f"{API}/robots", content=content, headers={"Content-Type": "application/json"}
    )
    assert_harbor_error(response, 400)


def test_project_robot_needs_exactly_its_project(admin: httpx.Client) -> None:
    first, _ = create_project(admin)
    second, _ = create_project(admin)
    two = robot_body("ci", "project", {first: PULL, second: PULL})
    assert_harbor_error(admin.post(f"{API}/robots", json=two), 400)
    everywhere = robot_body("ci", "project", {"*": PULL})
    assert_harbor_error(admin.post(f"{API}/robots", json=everywhere), 400)
    long_name = robot_body("a" * 250, "project", {first: PULL})
    assert_harbor_error(admin.post(f"{API}/robots", json=long_name), 400)


@pytest.mark.parametrize(
    "path",
    ["abc", "-1", "0", "1.5", str(2**31), str(2**70), "%00", "1%2F2"],
)
def test_hostile_robot_ids_are_400_or_404(admin: httpx.Client, path: str) -> None:
    for method in ("GET", "DELETE"):
        response = admin.request(method, f"{API}/robots/{path}")
        assert response.status_code in (400, 404), (method, path, response.text)
        assert_harbor_error(response, response.status_code)


@pytest.mark.parametrize(
    "q",
    [
        "Level=admin",
        "Level=~project",
        "Level=project",
        "Level=project,ProjectID=abc",
        "Level=project,ProjectID=-1",
        f"Level=project,ProjectID={2**40}",
        "secret=x",
        "name=a\x00b",
        "name",
    ],
)
def test_hostile_list_queries_are_400(admin: httpx.Client, q: str) -> None:
    assert_harbor_error(admin.get(f"{API}/robots", params={"q": q}), 400)


def test_hostile_list_parameters_are_400(admin: httpx.Client) -> None:
    for params in ({"sort": "secret_hash"}, {"page": "0"}, {"page_size": "100000"}):
        assert_harbor_error(admin.get(f"{API}/robots", params=params), 400)


def test_hostile_refresh_bodies_are_400(admin: httpx.Client) -> None:
    robot = system_robot(admin, {"*": PULL})
    for body in ({"secret": 42}, {"secret": "x" * 129}, {"other": "x"}, []):
        response = admin.patch(f"{API}/robots/{robot['id']}", json=body)
        assert_harbor_error(response, 400)


# -- who may manage robots --------------------------------------------------------------------


def test_anonymous_callers_get_401(anonymous: httpx.Client, admin: httpx.Client) -> None:
    robot = system_robot(admin, {"*": PULL})
    assert_harbor_error(anonymous.get(f"{API}/robots"), 401)
    assert_harbor_error(anonymous.get(f"{API}/robots/{robot['id']}"), 401)
    assert_harbor_error(anonymous.post(f"{API}/robots", json=_VALID), 401)
    assert_harbor_error(anonymous.put(f"{API}/robots/{robot['id']}", json=_VALID), 401)
    assert_harbor_error(anonymous.patch(f"{API}/robots/{robot['id']}", json={}), 401)
    assert_harbor_error(anonymous.delete(f"{API}/robots/{robot['id']}"), 401)


def test_project_admin_manages_only_their_projects_robots(
    registry: PortsideServer, admin: httpx.Client
) -> None:
    mine, mine_id = create_project(admin)
    theirs, theirs_id = create_project(admin)
    username, password = create_user(admin)
    add_member(admin, mine, username, 1)  # ProjectAdmin
    foreign = project_robot(admin, theirs, PULL)
    system = system_robot(admin, {mine: PULL})

    with as_account(registry, username, password) as user:
        robot = project_robot(user, mine, PUSH_PULL)
        assert robot["name"].startswith(f"robot${mine}+")
        listed = user.get(f"{API}/robots", params={"q": f"Level=project,ProjectID={mine_id}"})
        assert listed.status_code == 200, listed.text
        assert [r["id"] for r in listed.json()] == [robot["id"]]
        assert listed.json()[0]["creator"] == username
        assert user.get(f"{API}/robots/{robot['id']}").status_code == 200
        current = user.get(f"{API}/robots/{robot['id']}").json()
        response = user.put(f"{API}/robots/{robot['id']}", json={**current, "description": "x"})
        assert response.status_code == 200, response.text
        assert user.patch(f"{API}/robots/{robot['id']}", json={}).status_code == 200

        # not another project's robots
        refused = user.post(f"{API}/robots", json=robot_body("ci", "project", {theirs: PULL}))
        assert_harbor_error(refused, 403)
        queried = user.get(f"{API}/robots", params={"q": f"Level=project,ProjectID={theirs_id}"})
        assert_harbor_error(queried, 403)
        assert_harbor_error(user.get(f"{API}/robots/{foreign['id']}"), 403)
        foreign_body = user.put(f"{API}/robots/{foreign['id']}", json=current)
        assert_harbor_error(foreign_body, 403)
        assert_harbor_error(user.patch(f"{API}/robots/{foreign['id']}", json={}), 403)
        assert_harbor_error(user.delete(f"{API}/robots/{foreign['id']}"), 403)

        # nor system robots, even those covering their project
        refused = user.post(f"{API}/robots", json=robot_body("ci", "system", {mine: PULL}))
        assert_harbor_error(refused, 403)
        assert_harbor_error(user.get(f"{API}/robots"), 403)
        assert_harbor_error(user.get(f"{API}/robots/{system['id']}"), 403)
        assert_harbor_error(user.patch(f"{API}/robots/{system['id']}", json={}), 403)
        assert_harbor_error(user.delete(f"{API}/robots/{system['id']}"), 403)

        assert user.delete(f"{API}/robots/{robot['id']}").status_code == 200
    assert admin.get(f"{API}/robots/{foreign['id']}").status_code == 200
    assert admin.get(f"{API}/robots/{system['id']}").status_code == 200


@pytest.mark.parametrize(
    ("role_id", "can_list"),
    [(2, True), (3, True), (4, True), (5, False)],
    ids=["developer", "guest", "maintainer", "limited-guest"],
)
def test_other_roles_cannot_manage_robots(
    registry: PortsideServer, admin: httpx.Client, role_id: int, can_list: bool
) -> None:
    project, project_id = create_project(admin)
    username, password = create_user(admin)
    add_member(admin, project, username, role_id)
    robot = project_robot(admin, project, PULL)
    with as_account(registry, username, password) as user:
        listed = user.get(f"{API}/robots", params={"q": f"Level=project,ProjectID={project_id}"})
        read = user.get(f"{API}/robots/{robot['id']}")
        if can_list:
            assert listed.status_code == 200, listed.text
            assert read.status_code == 200, read.text
        else:
            assert_harbor_error(listed, 403)
            assert_harbor_error(read, 403)
        refused = user.post(f"{API}/robots", json=robot_body("ci", "project", {project: PULL}))
        assert_harbor_error(refused, 403)
        current = admin.get(f"{API}/robots/{robot['id']}").json()
        assert_harbor_error(user.put(f"{API}/robots/{robot['id']}", json=current), 403)
        assert_harbor_error(user.patch(f"{API}/robots/{robot['id']}", json={}), 403)
        assert_harbor_error(user.delete(f"{API}/robots/{robot['id']}"), 403)


def test_non_member_cannot_see_robots(registry: PortsideServer, admin: httpx.Client) -> None:
    project, project_id = create_project(admin)
    username, password = create_user(admin)
    robot = project_robot(admin, project, PULL)
    with as_account(registry, username, password) as user:
        queried = user.get(f"{API}/robots", params={"q": f"Level=project,ProjectID={project_id}"})
        assert_harbor_error(queried, 403)
        assert_harbor_error(user.get(f"{API}/robots/{robot['id']}"), 403)


def test_robots_cannot_use_the_management_api_beyond_their_permissions(
    registry: PortsideServer, admin: httpx.Client
) -> None:
    project, project_id = create_project(admin)
    robot = system_robot(admin, {"*": PUSH_PULL})
    with as_account(registry, robot["name"], robot["secret"]) as client:
        assert_harbor_error(client.get(f"{API}/users/current"), 403)
        assert_harbor_error(client.get(f"{API}/users"), 403)
        created = client.post(f"{API}/projects", json={"project_name": unique("rp-")})
        assert_harbor_error(created, 403)
        assert_harbor_error(client.post(f"{API}/robots", json=_with(name=unique("x"))), 403)
        body = robot_body("ci", "project", {project: PULL})
        assert_harbor_error(client.post(f"{API}/robots", json=body), 403)
        assert_harbor_error(client.get(f"{API}/robots"), 403)
        queried = client.get(f"{API}/robots", params={"q": f"Level=project,ProjectID={project_id}"})
        assert_harbor_error(queried, 403)
        assert_harbor_error(client.get(f"{API}/robots/{robot['id']}"), 403)
        assert_harbor_error(client.patch(f"{API}/robots/{robot['id']}", json={}), 403)
        assert_harbor_error(client.delete(f"{API}/robots/{robot['id']}"), 403)
    # the secret was not changed by any of that
    with as_account(registry, robot["name"], robot["secret"]) as client:
        assert client.get("/v2/").status_code == 200


def test_robot_managing_robots_cannot_exceed_its_own_permissions(
    registry: PortsideServer, admin: httpx.Client
) -> None:
    project, project_id = create_project(admin)
    manager = project_robot(
        admin,
        project,
        [*PULL, ("robot", "create"), ("robot", "list"), ("robot", "read"), ("robot", "delete")],
    )
    pusher = project_robot(admin, project, PUSH_PULL)
    with as_account(registry, manager["name"], manager["secret"]) as client:
        # a narrower robot: fine; a robot that may push: more than the creator holds
        narrow = project_robot(client, project, PULL)
        wider = client.post(f"{API}/robots", json=robot_body("w", "project", {project: PUSH_PULL}))
        assert_harbor_error(wider, 403)
        listed = client.get(f"{API}/robots", params={"q": f"Level=project,ProjectID={project_id}"})
        assert listed.status_code == 200, listed.text
        assert {r["id"] for r in listed.json()} == {manager["id"], pusher["id"], narrow["id"]}
        assert_harbor_error(client.delete(f"{API}/robots/{pusher['id']}"), 403)
        assert client.delete(f"{API}/robots/{narrow['id']}").status_code == 200
    created_by = next(r for r in listed.json() if r["id"] == narrow["id"])
    assert created_by["creator"] == manager["name"]
    assert created_by["creator_type"] == "robot"
    assert created_by["creator_ref"] == manager["id"]


# -- real clients -------------------------------------------------------------------------------


@pytest.mark.slow
def test_robot_with_podman_and_docker(
    registry: PortsideServer, admin: httpx.Client, tmp_path: Path
) -> None:
    from tests.integration.clients import ClientEnv, Podman, Skopeo, ToolError, docker_login
    from tests.integration.images import single_arch_image
    from tests.integration.test_clients import assert_refused_login, require_tool

    require_tool("skopeo")
    require_tool("podman")
    project, _ = create_project(admin)
    pusher = project_robot(admin, project, PUSH_PULL)
    puller = project_robot(admin, project, PULL)
    env = ClientEnv.create(tmp_path / "clients")
    layout = single_arch_image(tmp_path / "src")
    target = f"{registry.host}/{project}/app"

    skopeo = Skopeo(env)
    skopeo.login(registry.host, puller["name"], puller["secret"])
    with pytest.raises(ToolError):
        skopeo.copy(layout.ref, f"docker://{target}:seed")
    skopeo.login(registry.host, pusher["name"], pusher["secret"])
    skopeo.copy(layout.ref, f"docker://{target}:seed")

    podman = Podman(env)
    with pytest.raises(ToolError) as refused:
        podman.login(registry.host, pusher["name"], "Wrong-Secret-1")
    assert_refused_login(refused.value)
    podman.login(registry.host, pusher["name"], pusher["secret"])
    image_id = podman.pull(f"{target}:seed")
    podman.tag(image_id, f"{target}:pushed")
    digest = podman.push(f"{target}:pushed")
    assert admin.head(manifest_path(f"{project}/app", digest)).status_code == 200

    require_tool("docker")
    result = docker_login(env, registry.host, pusher["name"], pusher["secret"])
    assert "Login Succeeded" in result.text
