"""Conventions every ``/api/v2.0`` route shares: error envelope, request ids, body limit."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import PortsideServer


def _harbor_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errors"][0]["code"] == code, body
    assert body["errors"][0]["message"]


def test_request_id_is_echoed_or_created(client: httpx.Client) -> None:
    response = client.get("/api/v2.0/projects", headers={"X-Request-Id": "abc-123"})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "abc-123"
    made_up = client.get("/api/v2.0/projects").headers["X-Request-Id"]
    assert len(made_up) == 36


def test_unknown_route_and_method_use_harbors_envelope(client: httpx.Client) -> None:
    _harbor_error(client.get("/api/v2.0/no-such-thing"), 404, "NOT_FOUND")
    _harbor_error(client.patch("/api/v2.0/projects"), 405, "METHOD_NOT_ALLOWED")


def test_oversized_body_is_refused_before_parsing(client: httpx.Client) -> None:
    big = b'{"project_name": "' + b"a" * (2 << 20) + b'"}'
    response = client.post(
        "/api/v2.0/projects", content=big, headers={"Content-Type": "application/json"}
    )
    _harbor_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_oversized_chunked_body_is_refused(registry: PortsideServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"project_name": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    with registry.client() as client:
        response = client.post(
            "/api/v2.0/projects", content=chunks(), headers={"Content-Type": "application/json"}
        )
    _harbor_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_malformed_json_is_a_bad_request(client: httpx.Client) -> None:
    response = client.post(
        "/api/v2.0/projects", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    _harbor_error(response, 400, "BAD_REQUEST")


def test_openapi_document_is_served(registry: PortsideServer) -> None:
    response = httpx.get(f"{registry.url}/api/v2.0/openapi.json", timeout=30)
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/projects" in paths and "/robots" in paths and "/users" in paths


# -- deny by default ---------------------------------------------------------------------------

# What an anonymous caller may do at all: read public projects and their listings.
_ANONYMOUS_ALLOWED = {
    ("get", "/projects"),
    ("get", "/projects/{project_name_or_id}"),
    ("get", "/projects/{project_name_or_id}/summary"),
    ("get", "/repositories"),  # lists public projects' repositories only
    # System questions Harbor answers anonymously; search lists public projects only.
    ("get", "/health"),
    ("get", "/ping"),
    ("get", "/systeminfo"),
    ("get", "/search"),
}


def _routes(registry: PortsideServer) -> list[tuple[str, str]]:
    spec = httpx.get(f"{registry.url}/api/v2.0/openapi.json", timeout=30).json()
    return [(method, path) for path, ops in spec["paths"].items() for method in ops]


def _fill(path: str, project: str) -> str:
    values = {
        "project_name_or_id": project,
        "project_name": project,
        "meta_name": "public",
        "user_id": "1",
        "group_id": "1",
        "mid": "1",
        "robot_id": "1",
        "quota_id": "1",
        "repository_name": "r",
        "reference": "latest",
        "tag_name": "t",
        "label_id": "1",
        "addition": "build_history",
        "report_id": "00000000-0000-0000-0000-000000000000",
        "registration_id": "00000000-0000-0000-0000-000000000000",
        "execution_id": "1",
    }
    for key, value in values.items():
        path = path.replace("{" + key + "}", value)
    assert "{" not in path, f"no value for a parameter of {path}: add it above"
    return path


@pytest.fixture
def private_project(client: httpx.Client) -> str:
    name = f"deny-{secrets.token_hex(4)}"
    response = client.post(
        "/api/v2.0/projects", json={"project_name": name, "metadata": {"public": "false"}}
    )
    assert response.status_code == 201, response.text
    return name


def test_every_route_refuses_anonymous_callers(
    registry: PortsideServer, private_project: str
) -> None:
    """Every documented route, called without credentials on a private project (or at system
    level), is refused with 401: nothing is open unless listed in _ANONYMOUS_ALLOWED."""
    routes = _routes(registry)
    assert len(routes) > 30
    with httpx.Client(base_url=f"{registry.url}/api/v2.0", timeout=30) as anonymous:
        for method, path in routes:
            if (method, path) in _ANONYMOUS_ALLOWED:
                continue
            response = anonymous.request(method.upper(), _fill(path, private_project), json={})
            assert response.status_code == 401, (method, path, response.status_code)


def _bodies(tag: str, project_id: int) -> dict[tuple[str, str], object]:
    """Valid bodies for the write routes, so a refusal proves the access check, not validation."""
    return {
        ("post", "/users"): {
            "username": f"new-{tag}",
            "email": f"new-{tag}@example.com",
            "password": "Valid-Pass-1",
        },
        ("put", "/users/{user_id}"): {"realname": "changed"},
        ("put", "/users/{user_id}/password"): {
            "old_password": "Wrong-Pass-1",
            "new_password": "Valid-Pass-2",
        },
        ("put", "/users/{user_id}/sysadmin"): {"sysadmin_flag": True},
        ("post", "/usergroups"): {"group_name": f"g-{tag}"},
        ("put", "/usergroups/{group_id}"): {"group_name": f"g2-{tag}"},
        ("post", "/projects"): {"project_name": f"p-{tag}"},
        ("put", "/projects/{project_name_or_id}"): {"metadata": {"public": "true"}},
        ("post", "/projects/{project_name_or_id}/metadatas"): {"auto_scan": "true"},
        ("put", "/projects/{project_name_or_id}/metadatas/{meta_name}"): {"public": "true"},
        ("post", "/projects/{project_name_or_id}/members"): {
            "role_id": 1,
            "member_user": {"username": "admin"},
        },
        ("put", "/projects/{project_name_or_id}/members/{mid}"): {"role_id": 1},
        ("post", "/robots"): {
            "name": f"r-{tag}",
            "level": "system",
            "duration": -1,
            "permissions": [
                {
                    "kind": "project",
                    "namespace": "*",
                    "access": [{"resource": "repository", "action": "pull"}],
                }
            ],
        },
        ("put", "/robots/{robot_id}"): {"name": "x", "level": "system", "permissions": []},
        ("patch", "/robots/{robot_id}"): {},
        ("put", "/quotas/{quota_id}"): {"hard": {"storage": 1}},
        ("post", "/labels"): {"name": f"l-{tag}", "scope": "g"},
        ("put", "/labels/{label_id}"): {"name": f"l2-{tag}"},
        ("put", "/projects/{project_name}/repositories/{repository_name}"): {"description": "d"},
        (
            "post",
            "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags",
        ): {"name": "t2"},
        (
            "post",
            "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/labels",
        ): {"id": 1},
        ("post", "/scanners"): {"name": f"s-{tag}", "url": "http://127.0.0.1:9"},
        ("put", "/scanners/{registration_id}"): {"name": f"s-{tag}", "url": "http://127.0.0.1:9"},
        ("patch", "/scanners/{registration_id}"): {"is_default": True},
        ("post", "/scanners/ping"): {"name": "s", "url": "http://127.0.0.1:9"},
        ("put", "/projects/{project_name_or_id}/scanner"): {"uuid": "x"},
        ("post", "/system/scanAll/schedule"): {"schedule": {"type": "Manual"}},
        ("put", "/system/scanAll/schedule"): {"schedule": {"type": "None"}},
        ("put", "/system/CVEAllowlist"): {"items": []},
        ("post", "/export/cve"): {"projects": [project_id]},
        ("post", "/system/vulndb/import"): {"repository": "library/vulndb", "reference": "x"},
    }


# Headers some write routes require, sent so that a refusal is the access check's.
_HEADERS = {
    ("post", "/export/cve"): {
        "X-Scan-Data-Type": "application/vnd.security.vulnerability.report; version=1.1"
    },
}


def test_every_route_refuses_a_user_without_any_role(
    registry: PortsideServer, client: httpx.Client, private_project: str
) -> None:
    """A logged-in user who is a member of nothing is refused (403, or 404 for what it may not
    know exists) on every route of a private project and at system level, except the few that
    concern their own account or list only what they may see."""
    tag = secrets.token_hex(3)
    username, password = f"nobody-{tag}", "Nobody-Pass-1"
    created = client.post(
        "/api/v2.0/users",
        json={"username": username, "email": f"{username}@example.com", "password": password},
    )
    assert created.status_code == 201, created.text
    own = {("get", "/users/current"), ("get", "/users/search"), ("get", "/usergroups/search")}
    own |= {("get", "/projects"), ("head", "/projects"), ("get", "/audit-logs")}
    own |= {("get", "/labels")}  # global labels are listed for every user, as in Harbor
    # System information and the caller's own permissions are for every logged-in user.
    own |= _ANONYMOUS_ALLOWED | {("get", "/statistics"), ("get", "/users/current/permissions")}
    own |= {("get", "/permissions")}  # the static list of what robots may be given
    # The system CVE allowlist applies to every project, so every user may read it.
    own |= {("get", "/system/CVEAllowlist")}
    own |= {("get", "/export/cve/executions")}  # lists only the caller's own exports
    project_id = client.get(f"/api/v2.0/projects/{private_project}").json()["project_id"]
    bodies = _bodies(tag, project_id)
    params = {"username": "admin", "groupname": "g", "project_name": private_project}
    with httpx.Client(
        base_url=f"{registry.url}/api/v2.0", auth=(username, password), timeout=30
    ) as nobody:
        for method, path in _routes(registry):
            if (method, path) in own:
                continue
            response = nobody.request(
                method.upper(),
                _fill(path, private_project),
                json=bodies.get((method, path), {}),
                params=params,
                headers=_HEADERS.get((method, path)),
            )
            assert response.status_code in (403, 404), (method, path, response.text)
