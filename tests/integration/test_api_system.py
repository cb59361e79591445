"""System endpoints (health, ping, systeminfo, statistics, search, permissions), the run-time
configuration (/configurations) and read-only mode, over real HTTP."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.oci import (
    assert_error,
    image_manifest,
    jwt_claims,
    manifest_path,
    push_blob,
    push_content,
    random_blob,
)
from tests.support.server import PortsideServer, free_port

API = "/api/v2.0"
READ_ONLY = "The system is in read only mode. Any modification is prohibited."


# -- helpers ------------------------------------------------------------------------------------


def _harbor_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["errors"][0]
    assert error["code"] == code and error["message"], error


def _anonymous(server: PortsideServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30)


def _new_user(admin: httpx.Client, prefix: str = "sys") -> tuple[str, str]:
    username, password = f"{prefix}-{secrets.token_hex(4)}", "Valid-Pass-1"
    created = admin.post(
        f"{API}/users",
        json={"username": username, "email": f"{username}@example.com", "password": password},
    )
    assert created.status_code == 201, created.text
    return username, password


def _new_project(admin: httpx.Client, public: bool = False) -> tuple[str, int]:
    name = f"sys-{secrets.token_hex(4)}"
    created = admin.post(
        f"{API}/projects",
        json={"project_name": name, "metadata": {"public": str(public).lower()}},
    )
    assert created.status_code == 201, created.text
    return name, int(created.headers["Location"].rsplit("/", 1)[1])


def _push_image(client: httpx.Client, repo: str) -> Any:
    manifest = image_manifest()
    push_content(client, repo, manifest, "v1")
    return manifest


def _configure(admin: httpx.Client, **values: Any) -> None:
    response = admin.put(f"{API}/configurations", json=values)
    assert response.status_code == 200, response.text


@pytest.fixture
def own(fresh_registry: PortsideServer) -> Iterator[PortsideServer]:
    """A started server of the test's own, for tests that change the global configuration."""
    fresh_registry.start()
    yield fresh_registry


@pytest.fixture
def admin(own: PortsideServer) -> Iterator[httpx.Client]:
    with own.client() as client:
        yield client


# -- ping, health, systeminfo ---------------------------------------------------------------------


def test_ping_answers_pong_to_anyone(registry: PortsideServer) -> None:
    with _anonymous(registry) as anonymous:
        response = anonymous.get(f"{API}/ping")
    assert response.status_code == 200
    assert response.text == "Pong"
    assert response.headers["Content-Type"].startswith("text/plain")


def test_health_lists_every_component_healthy(registry: PortsideServer) -> None:
    with _anonymous(registry) as anonymous:
        response = anonymous.get(f"{API}/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "healthy", body
    names = {component["name"] for component in body["components"]}
    assert names == {"core", "database", "storage", "jobservice"}, body
    assert all(c["status"] == "healthy" and "error" not in c for c in body["components"])


def test_health_reports_an_unreachable_redis(tmp_path: Path) -> None:
    """Harbor answers 200 with status unhealthy and the failing component's error."""
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    server = PortsideServer(
        tmp_path / "redis-down", env={"PORTSIDE_AUTH__LOGIN_LIMIT_STORAGE": unreachable}
    )
    server.start()
    try:
        with _anonymous(server) as anonymous:
            response = anonymous.get(f"{API}/health")
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "unhealthy", body
    components = {c["name"]: c for c in body["components"]}
    assert components["redis"]["status"] == "unhealthy"
    assert components["redis"]["error"]
    assert components["database"]["status"] == "healthy"


def test_systeminfo_shows_more_to_authenticated_callers(
    registry: PortsideServer, client: httpx.Client
) -> None:
    with _anonymous(registry) as anonymous:
        public = anonymous.get(f"{API}/systeminfo")
    assert public.status_code == 200, public.text
    info = public.json()
    assert info["auth_mode"] == "db_auth"
    assert info["registry_url"] == registry.host
    assert isinstance(info["self_registration"], bool)
    assert info["harbor_version"]
    assert "read_only" not in info and "registry_storage_provider_name" not in info
    full = client.get(f"{API}/systeminfo").json()
    assert full["read_only"] is False
    assert full["registry_storage_provider_name"] in ("filesystem", "s3")
    assert full["project_creation_restriction"] in ("adminonly", "everyone")
    assert full["external_url"] == registry.url


# -- statistics -----------------------------------------------------------------------------------


def test_statistics_for_admin_user_and_anonymous(own: PortsideServer, admin: httpx.Client) -> None:
    private, _ = _new_project(admin)
    _push_image(admin, f"{private}/app")
    _push_image(admin, f"{private}/tool")
    _push_image(admin, "library/public-app")
    username, password = _new_user(admin)

    stats = admin.get(f"{API}/statistics")
    assert stats.status_code == 200, stats.text
    assert stats.json() == {
        "private_project_count": 1,
        "private_repo_count": 2,
        "public_project_count": 1,
        "public_repo_count": 1,
        "total_project_count": 2,
        "total_repo_count": 3,
        "total_storage_consumption": stats.json()["total_storage_consumption"],
    }
    assert stats.json()["total_storage_consumption"] > 0

    with httpx.Client(base_url=own.url, auth=(username, password), timeout=30) as user:
        seen = user.get(f"{API}/statistics").json()
        assert seen["private_project_count"] == 0 and seen["total_project_count"] == 1
        assert seen["total_repo_count"] == 1 and seen["total_storage_consumption"] == 0
        member = admin.post(
            f"{API}/projects/{private}/members",
            json={"role_id": 3, "member_user": {"username": username}},
        )
        assert member.status_code == 201, member.text
        seen = user.get(f"{API}/statistics").json()
        assert seen["private_project_count"] == 1 and seen["private_repo_count"] == 2
        assert seen["total_repo_count"] == 3
    with _anonymous(own) as anonymous:
        _harbor_error(anonymous.get(f"{API}/statistics"), 401, "UNAUTHORIZED")


# -- search -------------------------------------------------------------------------------------


def test_search_finds_only_what_the_caller_may_see(
    registry: PortsideServer, client: httpx.Client
) -> None:
    tag = secrets.token_hex(4)
    private, private_id = _new_project(client)
    _push_image(client, f"{private}/needle-{tag}")
    _push_image(client, f"library/needle-{tag}")

    found = client.get(f"{API}/search", params={"q": f"needle-{tag}"})
    assert found.status_code == 200, found.text
    repos = {r["repository_name"]: r for r in found.json()["repository"]}
    assert set(repos) == {f"{private}/needle-{tag}", f"library/needle-{tag}"}
    hit = repos[f"{private}/needle-{tag}"]
    assert hit["project_id"] == private_id and hit["project_public"] is False
    assert hit["project_name"] == private and hit["artifact_count"] == 1
    assert isinstance(hit["pull_count"], int)
    projects = client.get(f"{API}/search", params={"q": private}).json()["project"]
    assert [p["name"] for p in projects] == [private]

    username, password = _new_user(client)
    with httpx.Client(base_url=registry.url, auth=(username, password), timeout=30) as user:
        seen = user.get(f"{API}/search", params={"q": f"needle-{tag}"}).json()
        assert [r["repository_name"] for r in seen["repository"]] == [f"library/needle-{tag}"]
        assert user.get(f"{API}/search", params={"q": private}).json()["project"] == []
    with _anonymous(registry) as anonymous:
        seen = anonymous.get(f"{API}/search", params={"q": f"needle-{tag}"}).json()
        assert [r["repository_name"] for r in seen["repository"]] == [f"library/needle-{tag}"]
        _harbor_error(anonymous.get(f"{API}/search"), 400, "BAD_REQUEST")


# -- the caller's permissions ----------------------------------------------------------------------


def test_current_permissions_follow_the_role(
    registry: PortsideServer, client: httpx.Client
) -> None:
    project, project_id = _new_project(client)
    username, password = _new_user(client)
    member = client.post(
        f"{API}/projects/{project}/members",
        json={"role_id": 2, "member_user": {"username": username}},
    )
    assert member.status_code == 201, member.text
    scope = {"scope": f"/project/{project_id}", "relative": "true"}
    with httpx.Client(base_url=registry.url, auth=(username, password), timeout=30) as user:
        granted = user.get(f"{API}/users/current/permissions", params=scope)
        assert granted.status_code == 200, granted.text
        pairs = {(p["resource"], p["action"]) for p in granted.json()}
        assert ("repository", "push") in pairs and ("repository", "pull") in pairs
        assert ("member", "create") not in pairs  # developers do not manage members
        absolute = user.get(
            f"{API}/users/current/permissions", params={"scope": f"/project/{project_id}"}
        ).json()
        assert {"resource": f"/project/{project_id}/repository", "action": "push"} in absolute
        assert user.get(f"{API}/users/current/permissions").json() == []
    admin_pairs = client.get(f"{API}/users/current/permissions", params=scope).json()
    assert {"resource": "member", "action": "create"} in admin_pairs
    system = client.get(f"{API}/users/current/permissions", params={"relative": "true"}).json()
    assert {"resource": "configuration", "action": "update"} in system
    with _anonymous(registry) as anonymous:
        _harbor_error(anonymous.get(f"{API}/users/current/permissions"), 401, "UNAUTHORIZED")


def test_grantable_robot_permissions(registry: PortsideServer, client: httpx.Client) -> None:
    body = client.get(f"{API}/permissions").json()
    assert body["system"] == []
    project = {(p["resource"], p["action"]) for p in body["project"]}
    assert {("repository", "pull"), ("repository", "push"), ("artifact", "delete")} <= project
    # Everything offered can be given: a robot holding all of it is accepted.
    robot = client.post(
        f"{API}/robots",
        json={
            "name": f"all-{secrets.token_hex(3)}",
            "level": "system",
            "duration": -1,
            "permissions": [{"kind": "project", "namespace": "*", "access": body["project"]}],
        },
    )
    assert robot.status_code == 201, robot.text
    with _anonymous(registry) as anonymous:
        _harbor_error(anonymous.get(f"{API}/permissions"), 401, "UNAUTHORIZED")


# -- /configurations: access and validation ------------------------------------------------------


def test_configurations_are_for_admins_only(registry: PortsideServer, client: httpx.Client) -> None:
    response = client.get(f"{API}/configurations")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["auth_mode"] == {"value": "db_auth", "editable": False}
    assert body["robot_name_prefix"]["editable"] is False
    for key, kind in {
        "project_creation_restriction": str,
        "self_registration": bool,
        "robot_token_duration": int,
        "token_expiration": int,
        "storage_per_project": int,
        "read_only": bool,
    }.items():
        assert body[key]["editable"] is True, key
        assert isinstance(body[key]["value"], kind), key
    username, password = _new_user(client)
    with httpx.Client(base_url=registry.url, auth=(username, password), timeout=30) as user:
        _harbor_error(user.get(f"{API}/configurations"), 403, "FORBIDDEN")
        _harbor_error(user.put(f"{API}/configurations", json={"read_only": True}), 403, "FORBIDDEN")
    with _anonymous(registry) as anonymous:
        _harbor_error(anonymous.get(f"{API}/configurations"), 401, "UNAUTHORIZED")
        refused = anonymous.put(f"{API}/configurations", json={"read_only": True})
        _harbor_error(refused, 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    "body",
    [
        {"no_such_key": 1},
        {"auth_mode": "ldap_auth"},
        {"robot_name_prefix": "bot$"},
        {"read_only": "true"},
        {"self_registration": 1},
        {"token_expiration": 0},
        {"token_expiration": "30"},
        {"token_expiration": 1.5},
        {"robot_token_duration": -1},
        {"storage_per_project": 0},
        {"storage_per_project": -2},
        {"project_creation_restriction": "nobody"},
        ["read_only"],
        {"token_expiration": 10, "read_only": "yes"},
    ],
)
def test_bad_configuration_changes_are_refused(client: httpx.Client, body: object) -> None:
    before = client.get(f"{API}/configurations").json()
    _harbor_error(client.put(f"{API}/configurations", json=body), 400, "BAD_REQUEST")
    assert client.get(f"{API}/configurations").json() == before  # nothing half-applied


def test_configuration_body_must_be_json(client: httpx.Client) -> None:
    response = client.put(
        f"{API}/configurations", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    _harbor_error(response, 400, "BAD_REQUEST")


# -- /configurations: each key takes effect -------------------------------------------------------


def test_token_expiration_sets_the_token_lifetime(admin: httpx.Client) -> None:
    _configure(admin, token_expiration=5)
    token = admin.get("/service/token", params={"service": "portside"}).json()
    claims = jwt_claims(token["token"])
    assert claims["exp"] - claims["iat"] == 300
    assert token["expires_in"] == 300
    assert admin.get(f"{API}/configurations").json()["token_expiration"]["value"] == 5


def test_storage_per_project_is_the_quota_of_new_projects(admin: httpx.Client) -> None:
    _configure(admin, storage_per_project=12345678)
    _, project_id = _new_project(admin)
    quota = admin.get(f"{API}/quotas/{project_id}")
    assert quota.status_code == 200, quota.text
    assert quota.json()["hard"]["storage"] == 12345678
    _configure(admin, storage_per_project=-1)
    _, unlimited_id = _new_project(admin)
    assert admin.get(f"{API}/quotas/{unlimited_id}").json()["hard"]["storage"] == -1


def test_project_creation_restriction_decides_who_creates(
    own: PortsideServer, admin: httpx.Client
) -> None:
    username, password = _new_user(admin)
    with httpx.Client(base_url=own.url, auth=(username, password), timeout=30) as user:
        name = f"mine-{secrets.token_hex(3)}"
        _harbor_error(user.post(f"{API}/projects", json={"project_name": name}), 403, "FORBIDDEN")
        _configure(admin, project_creation_restriction="everyone")
        created = user.post(f"{API}/projects", json={"project_name": name})
        assert created.status_code == 201, created.text
        _configure(admin, project_creation_restriction="adminonly")
        again = user.post(f"{API}/projects", json={"project_name": name + "-2"})
        _harbor_error(again, 403, "FORBIDDEN")


def test_self_registration_opens_account_creation(own: PortsideServer, admin: httpx.Client) -> None:
    def register(anonymous: httpx.Client) -> httpx.Response:
        name = f"self-{secrets.token_hex(3)}"
        return anonymous.post(
            f"{API}/users",
            json={"username": name, "email": f"{name}@example.com", "password": "Valid-Pass-1"},
        )

    with _anonymous(own) as anonymous:
        _harbor_error(register(anonymous), 401, "UNAUTHORIZED")
        _configure(admin, self_registration=True)
        assert anonymous.get(f"{API}/systeminfo").json()["self_registration"] is True
        assert register(anonymous).status_code == 201
        _configure(admin, self_registration=False)
        _harbor_error(register(anonymous), 401, "UNAUTHORIZED")


def test_robot_token_duration_is_the_default_robot_duration(admin: httpx.Client) -> None:
    _configure(admin, robot_token_duration=7)
    created = admin.post(
        f"{API}/robots",
        json={
            "name": f"bot{secrets.token_hex(3)}",
            "level": "system",
            "permissions": [
                {
                    "kind": "project",
                    "namespace": "*",
                    "access": [{"resource": "repository", "action": "pull"}],
                }
            ],
        },
    )
    assert created.status_code == 201, created.text
    robot = admin.get(f"{API}/robots/{created.json()['id']}").json()
    assert robot["duration"] == 7


def test_configuration_changes_are_audited(admin: httpx.Client) -> None:
    _configure(admin, token_expiration=45, read_only=False)
    deadline = time.monotonic() + 10
    entries: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        entries = admin.get(f"{API}/audit-logs", params={"q": "resource_type=configuration"}).json()
        if entries:
            break
        time.sleep(0.2)
    # read_only did not change (false -> false): only token_expiration is recorded.
    assert [(e["resource"], e["operation"]) for e in entries] == [("token_expiration", "update")]
    assert entries[0]["username"] == "admin"


# -- read-only mode -----------------------------------------------------------------------------


def _denied(response: httpx.Response) -> None:
    error = assert_error(response, 403, "DENIED")
    assert error["message"] == READ_ONLY


def test_read_only_mode_blocks_writes_and_keeps_reads(
    own: PortsideServer, admin: httpx.Client
) -> None:
    repo = "library/frozen"
    manifest = _push_image(admin, repo)
    _configure(admin, read_only=True)
    assert admin.get(f"{API}/systeminfo").json()["read_only"] is True

    # /v2 writes: monolithic upload, chunked upload start, manifest PUT, deletes.
    blob = random_blob()
    _denied(
        admin.post(
            f"/v2/{repo}/blobs/uploads/",
            params={"digest": blob.digest},
            content=blob.data,
            headers={"Content-Type": "application/octet-stream"},
        )
    )
    _denied(admin.post(f"/v2/{repo}/blobs/uploads/"))
    _denied(
        admin.put(
            manifest_path(repo, "v2"),
            content=manifest.raw,
            headers={"Content-Type": manifest.media_type},
        )
    )
    _denied(admin.delete(manifest_path(repo, manifest.digest)))
    # /api/v2.0 writes.
    _denied(admin.post(f"{API}/projects", json={"project_name": "not-now"}))
    _denied(admin.delete(f"{API}/projects/library"))
    username, password = "ro-user", "Valid-Pass-1"
    _denied(
        admin.post(
            f"{API}/users",
            json={"username": username, "email": "ro@example.com", "password": password},
        )
    )
    # Reads keep working: pulls, tokens, listings.
    pulled = admin.get(manifest_path(repo, "v1"), headers={"Accept": manifest.media_type})
    assert pulled.status_code == 200 and pulled.content == manifest.raw
    for blob_ in manifest.blobs:
        assert admin.get(f"/v2/{repo}/blobs/{blob_.digest}").status_code == 200
    token = admin.post(
        "/service/token",
        data={
            "grant_type": "password",
            "username": own.username,
            "password": own.password,
            "service": "portside",
            "scope": f"repository:{repo}:pull",
        },
    )
    assert token.status_code == 200, token.text  # a POST, but not a change: allowed
    assert admin.get("/service/token", params={"service": "portside"}).status_code == 200
    assert admin.get(f"{API}/projects").status_code == 200

    # The admin turns it off again, and writes work.
    _configure(admin, read_only=False)
    push_blob(admin, repo, blob)
    assert admin.delete(manifest_path(repo, manifest.digest)).status_code == 202


def test_read_only_mode_is_refused_to_non_admins_and_anonymous_writes_get_denied(
    own: PortsideServer, admin: httpx.Client
) -> None:
    username, password = _new_user(admin)
    _configure(admin, read_only=True)
    with httpx.Client(base_url=own.url, auth=(username, password), timeout=30) as user:
        # The only write allowed in read-only mode is still an admin's.
        _harbor_error(
            user.put(f"{API}/configurations", json={"read_only": False}), 403, "FORBIDDEN"
        )
    with _anonymous(own) as anonymous:
        _denied(anonymous.post("/v2/library/x/blobs/uploads/"))
    assert admin.get(f"{API}/configurations").json()["read_only"]["value"] is True
