"""``/api/v2.0/projects`` and ``/api/v2.0/projects/{p}/members`` over real HTTP: Harbor's shapes,
who may see and change what, and that membership changes decide ``/v2/`` access at once.

Users are made through ``POST /api/v2.0/users``, groups through ``/api/v2.0/usergroups``; every
name is unique to its test, so tests share the session's registry.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.oci import (
    Manifest,
    image_manifest,
    manifest_path,
    push_content,
    random_blob,
)
from tests.support.server import PortsideServer

API = "/api/v2.0"
PROJECT_FIELDS = {
    "project_id",
    "owner_id",
    "name",
    "registry_id",
    "creation_time",
    "update_time",
    "deleted",
    "owner_name",
    "togglable",
    "current_user_role_id",
    "current_user_role_ids",
    "repo_count",
    "metadata",
    "cve_allowlist",
}
ROLE_NAMES = {1: "projectAdmin", 2: "developer", 3: "guest", 4: "maintainer", 5: "limitedGuest"}
PROJECT_ADMIN, DEVELOPER, GUEST, MAINTAINER, LIMITED_GUEST = 1, 2, 3, 4, 5


# -- helpers ------------------------------------------------------------------------------------


def unique(prefix: str = "p") -> str:
    return f"{prefix}{secrets.token_hex(5)}"


def assert_harbor_error(response: httpx.Response, status: int, code: str | None = None) -> str:
    """Harbor's ``{"errors": [{"code", "message"}]}`` with ``status``; returns the message."""
    assert response.status_code == status, (response.status_code, response.text)
    errors = response.json()["errors"]
    assert isinstance(errors, list) and len(errors) == 1, errors
    assert isinstance(errors[0]["message"], str)
    if code is not None:
        assert errors[0]["code"] == code, errors
    message: str = errors[0]["message"]
    return message


def id_from_location(response: httpx.Response, prefix: str) -> int:
    location = response.headers["Location"]
    assert location.startswith(prefix), (location, prefix)
    return int(location.rsplit("/", 1)[1])


class User:
    """A user account made through the API, with a client sending its credentials."""

    def __init__(self, server: PortsideServer, admin: httpx.Client) -> None:
        self.name = unique("u")
        self.password = f"Pw{secrets.token_hex(6)}Aa1"
        response = admin.post(
            f"{API}/users",
            json={
                "username": self.name,
                "password": self.password,
                "email": f"{self.name}@example.com",
                "realname": self.name,
            },
        )
        assert response.status_code == 201, response.text
        self.id = id_from_location(response, f"{API}/users/")
        self.client = httpx.Client(base_url=server.url, auth=(self.name, self.password), timeout=30)


@pytest.fixture
def users(registry: PortsideServer, client: httpx.Client) -> Iterator[Any]:
    """A factory of fresh users; their clients are closed afterwards."""
    made: list[User] = []

    def make() -> User:
        user = User(registry, client)
        made.append(user)
        return user

    yield make
    for user in made:
        user.client.close()


@pytest.fixture
def anonymous(registry: PortsideServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=30) as anonymous_client:
        yield anonymous_client


def create_project(client: httpx.Client, public: bool = False, **body: Any) -> tuple[str, int]:
    name = body.pop("project_name", None) or unique()
    payload = {"project_name": name, "metadata": {"public": str(public).lower()}, **body}
    response = client.post(f"{API}/projects", json=payload)
    assert response.status_code == 201, response.text
    return name, id_from_location(response, f"{API}/projects/")


def add_member(client: httpx.Client, project: str, user: User, role: int) -> int:
    response = client.post(
        f"{API}/projects/{project}/members",
        json={"role_id": role, "member_user": {"username": user.name}},
    )
    assert response.status_code == 201, response.text
    return id_from_location(response, f"{API}/projects/{project}/members/")


def members_of(client: httpx.Client, project: str) -> dict[str, dict[str, Any]]:
    response = client.get(f"{API}/projects/{project}/members", params={"page_size": 100})
    assert response.status_code == 200, response.text
    return {member["entity_name"]: member for member in response.json()}


def try_push(client: httpx.Client, repo: str, manifest: Manifest, tag: str = "v1") -> int:
    """Push ``manifest`` with monolithic blob uploads; the first failing status, or 201."""
    for blob in manifest.blobs:
        response = client.post(
            f"/v2/{repo}/blobs/uploads/",
            params={"digest": blob.digest},
            content=blob.data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if response.status_code != 201:
            return response.status_code
    response = client.put(
        manifest_path(repo, tag),
        content=manifest.raw,
        headers={"Content-Type": manifest.media_type},
    )
    return response.status_code


def audit_entries(client: httpx.Client, resource_type: str, resource: str) -> list[str]:
    response = client.get(
        f"{API}/audit-logs",
        params={"q": f"resource_type={resource_type},resource={resource}", "page_size": 100},
    )
    assert response.status_code == 200, response.text
    return [entry["operation"] for entry in response.json()]


# -- create, read, update, delete ---------------------------------------------------------------


def test_library_is_public_and_readable_by_anyone(anonymous: httpx.Client) -> None:
    response = anonymous.get(f"{API}/projects/library")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "library"
    assert body["metadata"]["public"] == "true"
    assert body["current_user_role_ids"] == []
    assert body["togglable"] is False


def test_project_lifecycle(client: httpx.Client, anonymous: httpx.Client) -> None:
    name = unique()
    response = client.post(
        f"{API}/projects",
        json={"project_name": name, "metadata": {"public": "false", "auto_scan": "true"}},
    )
    assert response.status_code == 201, response.text
    assert response.content == b""
    project_id = id_from_location(response, f"{API}/projects/")

    by_id = client.get(f"{API}/projects/{project_id}")
    assert by_id.status_code == 200, by_id.text
    body = by_id.json()
    assert set(body) >= PROJECT_FIELDS, set(body)
    assert body["project_id"] == project_id
    assert body["name"] == name
    assert body["owner_name"] == "admin"
    assert isinstance(body["owner_id"], int)
    assert body["deleted"] is False
    assert body["registry_id"] is None
    assert body["repo_count"] == 0
    assert body["metadata"] == {"public": "false", "auto_scan": "true"}
    assert body["creation_time"].endswith("Z") and "T" in body["creation_time"]
    assert body["update_time"].endswith("Z")
    # Harbor makes the creator the project's ProjectAdmin
    assert body["current_user_role_id"] == PROJECT_ADMIN
    assert body["current_user_role_ids"] == [PROJECT_ADMIN]
    assert body["togglable"] is True
    assert client.get(f"{API}/projects/{name}").json() == body
    admin_member = members_of(client, name)["admin"]
    assert admin_member["role_id"] == PROJECT_ADMIN
    assert admin_member["role_name"] == "projectAdmin"
    assert admin_member["entity_type"] == "u"

    assert client.head(f"{API}/projects", params={"project_name": name}).status_code == 200

    response = client.put(
        f"{API}/projects/{project_id}",
        json={"metadata": {"public": "true", "severity": "High", "auto_scan": "false"}},
    )
    assert response.status_code == 200, response.text
    updated = client.get(f"{API}/projects/{name}").json()
    assert updated["metadata"] == {"public": "true", "auto_scan": "false", "severity": "high"}
    assert updated["update_time"] >= body["update_time"]
    # public at once, for everyone
    assert anonymous.get(f"{API}/projects/{name}").status_code == 200

    deletable = client.get(f"{API}/projects/{name}/_deletable")
    assert deletable.status_code == 200
    assert deletable.json() == {"deletable": True}
    assert client.delete(f"{API}/projects/{name}").status_code == 200
    assert_harbor_error(client.get(f"{API}/projects/{name}"), 404, "NOT_FOUND")
    assert_harbor_error(client.get(f"{API}/projects/{project_id}"), 404, "NOT_FOUND")
    assert client.head(f"{API}/projects", params={"project_name": name}).status_code == 404
    assert_harbor_error(client.delete(f"{API}/projects/{name}"), 404, "NOT_FOUND")
    # the name is free again
    create_project(client, project_name=name)

    operations = audit_entries(client, "project", name)
    assert operations.count("create") == 2
    assert "update" in operations and "delete" in operations


def test_duplicate_name_is_409(client: httpx.Client) -> None:
    name, _ = create_project(client)
    response = client.post(f"{API}/projects", json={"project_name": name})
    assert_harbor_error(response, 409, "CONFLICT")


def test_location_can_name_the_project(client: httpx.Client) -> None:
    name = unique()
    response = client.post(
        f"{API}/projects",
        json={"project_name": name},
        headers={"X-Resource-Name-In-Location": "true"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"{API}/projects/{name}"


def test_legacy_public_flag_and_defaults(client: httpx.Client, anonymous: httpx.Client) -> None:
    public = unique()
    response = client.post(f"{API}/projects", json={"project_name": public, "public": True})
    assert response.status_code == 201, response.text
    assert client.get(f"{API}/projects/{public}").json()["metadata"] == {"public": "true"}
    assert anonymous.get(f"{API}/projects/{public}").status_code == 200

    private = unique()
    response = client.post(f"{API}/projects", json={"project_name": private})
    assert response.status_code == 201, response.text
    assert client.get(f"{API}/projects/{private}").json()["metadata"] == {"public": "false"}
    assert_harbor_error(anonymous.get(f"{API}/projects/{private}"), 401, "UNAUTHORIZED")


def test_is_resource_name_header_reads_digits_as_a_name(client: httpx.Client) -> None:
    digits = str(secrets.randbelow(10**9) + 10**9) + "0"  # 11 digits: never an id here
    response = client.post(f"{API}/projects", json={"project_name": digits})
    assert response.status_code == 201, response.text
    project_id = id_from_location(response, f"{API}/projects/")
    # as an id it is out of range: not found, never an error
    assert_harbor_error(client.get(f"{API}/projects/{digits}"), 404)
    by_name = client.get(f"{API}/projects/{digits}", headers={"X-Is-Resource-Name": "true"})
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["project_id"] == project_id


# -- who may create -----------------------------------------------------------------------------


def test_only_admins_create_projects_by_default(users: Any, anonymous: httpx.Client) -> None:
    user = users()
    response = user.client.post(f"{API}/projects", json={"project_name": unique()})
    assert_harbor_error(response, 403, "FORBIDDEN")
    response = anonymous.post(f"{API}/projects", json={"project_name": unique()})
    assert_harbor_error(response, 401, "UNAUTHORIZED")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_everyone_may_create_projects_when_configured(fresh_registry: PortsideServer) -> None:
    fresh_registry.env = {
        "PORTSIDE_AUTH__PROJECT_CREATION_RESTRICTION": "everyone",
        "PORTSIDE_QUOTA__DEFAULT_PROJECT_BYTES": "1048576",
    }
    fresh_registry.start()
    with fresh_registry.client() as admin:
        user = User(fresh_registry, admin)
        try:
            name = unique()
            # a user's storage_limit is ignored: the system default applies, as in Harbor
            response = user.client.post(
                f"{API}/projects", json={"project_name": name, "storage_limit": -1}
            )
            assert response.status_code == 201, response.text
            project = user.client.get(f"{API}/projects/{name}").json()
            assert project["owner_name"] == user.name
            assert project["current_user_role_ids"] == [PROJECT_ADMIN]
            summary = user.client.get(f"{API}/projects/{name}/summary").json()
            assert summary["quota"]["hard"]["storage"] == 1048576
            assert summary["project_admin_count"] == 1
            # the creator administers it: members, settings, deletion
            other = User(fresh_registry, admin)
            assert add_member(user.client, name, other, GUEST) > 0
            response = user.client.put(
                f"{API}/projects/{name}", json={"metadata": {"public": "true"}}
            )
            assert response.status_code == 200, response.text
            # an admin may choose the quota; 0 means the default
            big = unique()
            response = admin.post(
                f"{API}/projects", json={"project_name": big, "storage_limit": 5 * 2**30}
            )
            assert response.status_code == 201, response.text
            summary = admin.get(f"{API}/projects/{big}/summary").json()
            assert summary["quota"]["hard"]["storage"] == 5 * 2**30
            default = unique()
            response = admin.post(
                f"{API}/projects", json={"project_name": default, "storage_limit": 0}
            )
            assert response.status_code == 201, response.text
            summary = admin.get(f"{API}/projects/{default}/summary").json()
            assert summary["quota"]["hard"]["storage"] == 1048576
            assert user.client.delete(f"{API}/projects/{name}").status_code == 200
            other.client.close()
        finally:
            user.client.close()


# -- hostile input ------------------------------------------------------------------------------

BAD_NAMES = [
    "Upper",
    "..",
    ".hidden",
    "a" * 300,
    "a--b",
    "a_",
    "ab/c",
    "pröject",
    "\uff50roject",  # fullwidth look-alike
    "a b",
    "a\x00b",
    "",
    "-a",
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=range(len(BAD_NAMES)))
def test_invalid_project_names_are_400(client: httpx.Client, name: str) -> None:
    response = client.post(f"{API}/projects", json={"project_name": name})
    assert_harbor_error(response, 400, "BAD_REQUEST")


BAD_BODIES: list[Any] = [
    {"project_name": 123},
    {"project_name": None},
    {"project_name": ["x"]},
    {"public": "yes"},
    {"metadata": {"public": True}},
    {"metadata": {"public": "maybe"}},
    {"metadata": {"public": 1}},
    {"metadata": "public"},
    {"metadata": {"auto_scan": "yes"}},
    {"metadata": {"severity": "extreme"}},
    {"metadata": {"unknown_key": "true"}},
    {"metadata": {"retention_id": "7"}},
    {"metadata": {"public": "x" * 100_000}},
    {"storage_limit": -5},
    {"storage_limit": "10"},
    {"storage_limit": 2**64},
    {"storage_limit": 1.5},
    {"registry_id": 1},
    {"retention_days": 7},
    {"cve_allowlist": {"items": [{"cve_id": "not a CVE id!"}]}},
    {"cve_allowlist": {"items": "CVE-2019-10164"}},
    {"cve_allowlist": {"expires_at": "tomorrow"}},
    {"surprise": True},
]


@pytest.mark.parametrize("extra", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_invalid_project_bodies_are_400(client: httpx.Client, extra: dict[str, Any]) -> None:
    name = unique()
    response = client.post(f"{API}/projects", json={"project_name": name, **extra})
    assert_harbor_error(response, 400, "BAD_REQUEST")
    assert client.head(f"{API}/projects", params={"project_name": name}).status_code == 404


RAW_BODIES = [
    b"",
    b"{",
    b"[]",
    b'"project"',
    b"null",
    b"\xff\xfe\x00",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"project_name": "a", "project_name": {"nested": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
]


@pytest.mark.parametrize("raw", RAW_BODIES, ids=range(len(RAW_BODIES)))
def test_hostile_json_is_400(client: httpx.Client, raw: bytes) -> None:
    response = client.post(
        f"{API}/projects", content=raw, headers={"Content-Type": "application/json"}
    )
    assert_harbor_error(response, 400)


BAD_REFERENCES = [
    "Upper",
    "%2e%2e",
    "a" * 300,
    "99999999999",
    "2147483648",
    "-1",
    "%D9%A1%D9%A2",  # Arabic-Indic digits, which str.isdigit() accepts
    "%C2%B2",  # superscript two, likewise
    "a%00b",
    "a%2Fb",
    "%F0%9F%90%B3",
]


@pytest.mark.parametrize("reference", BAD_REFERENCES, ids=range(len(BAD_REFERENCES)))
def test_hostile_project_references_are_404(client: httpx.Client, reference: str) -> None:
    for method, suffix in [
        ("GET", ""),
        ("PUT", ""),
        ("DELETE", ""),
        ("GET", "/summary"),
        ("GET", "/_deletable"),
        ("GET", "/metadatas"),
        ("GET", "/members"),
        ("GET", "/members/1"),
    ]:
        body = {"metadata": {"public": "true"}} if method == "PUT" else None
        response = client.request(method, f"{API}/projects/{reference}{suffix}", json=body)
        assert response.status_code in (400, 404), (method, suffix, response.text)
        assert_harbor_error(response, response.status_code)


def test_hostile_list_filters_are_400_never_500(client: httpx.Client) -> None:
    for params in [
        {"name": "a\x00b"},
        {"owner": "x" * 1000},
        {"q": "name=~a\x00"},
        {"q": "bogus=1"},
        {"q": "project_id=99999999999"},
        {"q": "project_id=abc"},
        {"q": "public=perhaps"},
        {"q": "owner=~adm"},
        {"sort": "password"},
        {"public": "perhaps"},
        {"page": "0"},
        {"page_size": "100000"},
        {"page": "x"},
    ]:
        assert_harbor_error(client.get(f"{API}/projects", params=params), 400)
    # No project has such a name, and the request boundary refuses a NUL before asking.
    head = client.head(f"{API}/projects", params={"project_name": "a\x00b"})
    assert head.status_code == 400
    assert client.head(f"{API}/projects").status_code == 400


# -- listing and visibility ---------------------------------------------------------------------


def test_visibility_for_anonymous_outsider_member_and_admin(
    client: httpx.Client, anonymous: httpx.Client, users: Any
) -> None:
    tag = secrets.token_hex(4)
    private, _ = create_project(client, public=False, project_name=f"vis{tag}-private")
    public, _ = create_project(client, public=True, project_name=f"vis{tag}-public")
    member, outsider = users(), users()
    add_member(client, private, member, GUEST)

    def listed(who: httpx.Client, **params: str) -> list[str]:
        response = who.get(f"{API}/projects", params={"name": f"vis{tag}", **params})
        assert response.status_code == 200, response.text
        assert int(response.headers["X-Total-Count"]) == len(response.json())
        return [project["name"] for project in response.json()]

    assert listed(anonymous) == [public]
    assert listed(outsider.client) == [public]
    assert listed(member.client) == [private, public]
    assert listed(client) == [private, public]
    assert listed(member.client, public="false") == [private]
    assert listed(member.client, public="true") == [public]
    assert listed(anonymous, public="false") == []
    assert listed(outsider.client, public="false") == []

    assert_harbor_error(anonymous.get(f"{API}/projects/{private}"), 401)
    assert_harbor_error(outsider.client.get(f"{API}/projects/{private}"), 403, "FORBIDDEN")
    seen = member.client.get(f"{API}/projects/{private}")
    assert seen.status_code == 200, seen.text
    assert seen.json()["current_user_role_id"] == GUEST
    assert seen.json()["togglable"] is False
    assert client.get(f"{API}/projects/{private}").status_code == 200
    # the existence check needs credentials, but says nothing more
    assert anonymous.head(f"{API}/projects", params={"project_name": private}).status_code == 401
    assert (
        outsider.client.head(f"{API}/projects", params={"project_name": private}).status_code == 200
    )
    # summary of a public project: anyone, but without members or quota
    summary = anonymous.get(f"{API}/projects/{public}/summary")
    assert summary.status_code == 200, summary.text
    assert summary.json() == {"repo_count": 0, "chart_count": 0}
    assert_harbor_error(outsider.client.get(f"{API}/projects/{private}/summary"), 403)


def test_list_filters_sorting_and_pages(client: httpx.Client) -> None:
    tag = secrets.token_hex(4)
    names = [f"lst{tag}-{i}" for i in range(5)]
    for i, name in enumerate(names):
        create_project(client, public=i % 2 == 0, project_name=name)

    def names_of(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [project["name"] for project in response.json()]

    first = client.get(f"{API}/projects", params={"name": f"lst{tag}", "page_size": 2})
    assert names_of(first) == names[:2]
    assert first.headers["X-Total-Count"] == "5"
    assert 'rel="next"' in first.headers["Link"]
    last = client.get(f"{API}/projects", params={"name": f"lst{tag}", "page_size": 2, "page": 3})
    assert names_of(last) == names[4:]
    assert 'rel="prev"' in last.headers["Link"] and 'rel="next"' not in last.headers["Link"]

    descending = client.get(f"{API}/projects", params={"name": f"lst{tag}", "sort": "-name"})
    assert names_of(descending) == names[::-1]
    by_q = client.get(f"{API}/projects", params={"q": f"name=~lst{tag},public=true"})
    assert names_of(by_q) == [names[0], names[2], names[4]]
    exact = client.get(f"{API}/projects", params={"q": f"name={names[3]}"})
    assert names_of(exact) == [names[3]]
    owned = client.get(f"{API}/projects", params={"name": f"lst{tag}", "owner": "admin"})
    assert names_of(owned) == names
    nobody = client.get(f"{API}/projects", params={"name": f"lst{tag}", "owner": "nobody"})
    assert names_of(nobody) == []
    # LIKE wildcards in a name filter are literal
    assert names_of(client.get(f"{API}/projects", params={"name": "%"})) == []
    assert names_of(client.get(f"{API}/projects", params={"name": "_"})) == []


# -- members ------------------------------------------------------------------------------------


def test_every_role_can_be_assigned_and_changed(client: httpx.Client, users: Any) -> None:
    project, project_id = create_project(client)
    people = {role: users() for role in ROLE_NAMES}
    member_ids = {role: add_member(client, project, people[role], role) for role in ROLE_NAMES}
    for role, mid in member_ids.items():
        response = client.get(f"{API}/projects/{project}/members/{mid}")
        assert response.status_code == 200, response.text
        assert response.json() == {
            "id": mid,
            "project_id": project_id,
            "entity_name": people[role].name,
            "role_name": ROLE_NAMES[role],
            "role_id": role,
            "entity_id": people[role].id,
            "entity_type": "u",
        }
        seen = people[role].client.get(f"{API}/projects/{project}").json()
        assert seen["current_user_role_ids"] == [role]

    summary = client.get(f"{API}/projects/{project}/summary").json()
    assert summary["project_admin_count"] == 2  # admin, as creator, and one more
    for field in ("maintainer_count", "developer_count", "guest_count", "limited_guest_count"):
        assert summary[field] == 1, (field, summary)

    # every role can become every other role
    mid = member_ids[LIMITED_GUEST]
    for role in (GUEST, DEVELOPER, MAINTAINER, PROJECT_ADMIN, LIMITED_GUEST):
        response = client.put(f"{API}/projects/{project}/members/{mid}", json={"role_id": role})
        assert response.status_code == 200, response.text
        assert client.get(f"{API}/projects/{project}/members/{mid}").json()["role_id"] == role

    found = client.get(
        f"{API}/projects/{project}/members", params={"entityname": people[GUEST].name}
    )
    assert [m["entity_name"] for m in found.json()] == [people[GUEST].name]
    paged = client.get(f"{API}/projects/{project}/members", params={"page_size": 2})
    assert paged.headers["X-Total-Count"] == "6" and len(paged.json()) == 2

    response = client.delete(f"{API}/projects/{project}/members/{mid}")
    assert response.status_code == 200
    assert_harbor_error(client.get(f"{API}/projects/{project}/members/{mid}"), 404)
    assert_harbor_error(client.delete(f"{API}/projects/{project}/members/{mid}"), 404)
    operations = audit_entries(client, "member", f"{project}/{people[LIMITED_GUEST].name}")
    assert operations.count("create") == 1
    assert operations.count("update") == 5
    assert operations.count("delete") == 1


def test_member_by_user_id_and_group(client: httpx.Client, users: Any) -> None:
    project, _ = create_project(client)
    user = users()
    response = client.post(
        f"{API}/projects/{project}/members",
        json={"role_id": GUEST, "member_user": {"user_id": user.id}},
    )
    assert response.status_code == 201, response.text

    group_name = unique("g")
    response = client.post(f"{API}/usergroups", json={"group_name": group_name, "group_type": 2})
    assert response.status_code == 201, response.text
    group_id = id_from_location(response, f"{API}/usergroups/")
    in_group = users()
    response = client.put(f"{API}/usergroups/{group_id}/members/{in_group.id}")
    assert response.status_code == 200, response.text
    # not yet a member: the private project is refused
    manifest = image_manifest()
    assert try_push(in_group.client, f"{project}/app", manifest) == 403

    response = client.post(
        f"{API}/projects/{project}/members",
        json={"role_id": DEVELOPER, "member_group": {"group_name": group_name}},
    )
    assert response.status_code == 201, response.text
    group_member = members_of(client, project)[group_name]
    assert group_member["entity_type"] == "g"
    assert group_member["entity_id"] == group_id
    assert group_member["role_name"] == "developer"
    # the group's role reaches its users at once
    assert try_push(in_group.client, f"{project}/app", manifest) == 201
    seen = in_group.client.get(f"{API}/projects/{project}").json()
    assert seen["current_user_role_ids"] == [DEVELOPER]
    response = client.post(
        f"{API}/projects/{project}/members",
        json={"role_id": GUEST, "member_group": {"id": group_id}},
    )
    assert_harbor_error(response, 409, "CONFLICT")


@pytest.mark.parametrize(
    "body",
    [
        {"role_id": 0, "member_user": {"username": "admin"}},
        {"role_id": 6, "member_user": {"username": "admin"}},
        {"role_id": "1", "member_user": {"username": "admin"}},
        {"role_id": None, "member_user": {"username": "admin"}},
        {"member_user": {"username": "admin"}},
        {"role_id": 2},
        {"role_id": 2, "member_user": {}},
        {"role_id": 2, "member_user": {"username": "admin"}, "member_group": {"id": 1}},
        {"role_id": 2, "member_user": {"user_id": 2**40}},
        {"role_id": 2, "member_user": {"user_id": "1"}},
        {"role_id": 2, "member_user": {"username": "a\x00b"}},
        {"role_id": 2, "member_user": {"username": "admin", "password": "x"}},
        {"role_id": 2, "member_user": "admin"},
        [],
    ],
    ids=range(14),
)
def test_invalid_member_bodies_are_400(client: httpx.Client, body: Any) -> None:
    project, _ = create_project(client)
    response = client.post(f"{API}/projects/{project}/members", json=body)
    assert_harbor_error(response, 400, "BAD_REQUEST")


def test_member_errors(client: httpx.Client, users: Any) -> None:
    project, _ = create_project(client)
    other_project, _ = create_project(client)
    user = users()
    mid = add_member(client, project, user, GUEST)
    response = client.post(
        f"{API}/projects/{project}/members",
        json={"role_id": DEVELOPER, "member_user": {"username": user.name}},
    )
    assert_harbor_error(response, 409, "CONFLICT")
    for member in [
        {"member_user": {"username": unique("nobody")}},
        {"member_user": {"user_id": 2**31 - 1}},
        {"member_group": {"group_name": unique("nogroup")}},
        {"member_group": {"id": 2**31 - 1}},
    ]:
        response = client.post(f"{API}/projects/{project}/members", json={"role_id": 2, **member})
        assert_harbor_error(response, 404, "NOT_FOUND")
    # a member id of another project is not found through this one
    assert_harbor_error(client.get(f"{API}/projects/{other_project}/members/{mid}"), 404)
    response = client.put(f"{API}/projects/{other_project}/members/{mid}", json={"role_id": 1})
    assert_harbor_error(response, 404)
    assert_harbor_error(client.delete(f"{API}/projects/{other_project}/members/{mid}"), 404)
    assert client.get(f"{API}/projects/{project}/members/{mid}").json()["role_id"] == GUEST
    for bad in ["0", "-1", "abc", "99999999999", "1.5"]:
        assert_harbor_error(client.get(f"{API}/projects/{project}/members/{bad}"), 400)
    for bad_role in [{"role_id": 9}, {"role_id": "2"}, {}, {"role_id": 2, "x": 1}]:
        response = client.put(f"{API}/projects/{project}/members/{mid}", json=bad_role)
        assert_harbor_error(response, 400)
    assert_harbor_error(
        client.get(f"{API}/projects/{project}/members", params={"entityname": "a\x00"}), 400
    )


def test_who_may_manage_members(client: httpx.Client, anonymous: httpx.Client, users: Any) -> None:
    project, _ = create_project(client)
    people = {role: users() for role in ROLE_NAMES}
    for role, person in people.items():
        add_member(client, project, person, role)
    outsider, newcomer = users(), users()
    members_url = f"{API}/projects/{project}/members"
    new_member = {"role_id": GUEST, "member_user": {"username": newcomer.name}}

    for role in (DEVELOPER, GUEST, MAINTAINER, LIMITED_GUEST):
        assert_harbor_error(people[role].client.post(members_url, json=new_member), 403)
    assert_harbor_error(outsider.client.post(members_url, json=new_member), 403)
    assert_harbor_error(anonymous.post(members_url, json=new_member), 401)
    # Guest and above list members; LimitedGuest cannot see them
    for role in (PROJECT_ADMIN, MAINTAINER, DEVELOPER, GUEST):
        assert people[role].client.get(members_url).status_code == 200
    assert_harbor_error(people[LIMITED_GUEST].client.get(members_url), 403)
    assert_harbor_error(outsider.client.get(members_url), 403)
    assert_harbor_error(anonymous.get(members_url), 401)

    # a ProjectAdmin member manages members, but cannot touch other projects
    response = people[PROJECT_ADMIN].client.post(members_url, json=new_member)
    assert response.status_code == 201, response.text
    mid = id_from_location(response, f"{members_url}/")
    assert_harbor_error(
        people[MAINTAINER].client.put(f"{members_url}/{mid}", json={"role_id": 1}), 403
    )
    assert_harbor_error(people[MAINTAINER].client.delete(f"{members_url}/{mid}"), 403)
    response = people[PROJECT_ADMIN].client.put(f"{members_url}/{mid}", json={"role_id": 2})
    assert response.status_code == 200
    elsewhere, _ = create_project(client)
    response = people[PROJECT_ADMIN].client.post(
        f"{API}/projects/{elsewhere}/members", json=new_member
    )
    assert_harbor_error(response, 403)

    # project settings: ProjectAdmin only; deletion likewise
    settings = {"metadata": {"auto_scan": "true"}}
    for role in (MAINTAINER, DEVELOPER, GUEST, LIMITED_GUEST):
        response = people[role].client.put(f"{API}/projects/{project}", json=settings)
        assert_harbor_error(response, 403)
        assert_harbor_error(people[role].client.delete(f"{API}/projects/{project}"), 403)
        assert_harbor_error(people[role].client.get(f"{API}/projects/{project}/_deletable"), 403)
    response = people[PROJECT_ADMIN].client.put(f"{API}/projects/{project}", json=settings)
    assert response.status_code == 200, response.text
    assert people[PROJECT_ADMIN].client.get(f"{API}/projects/{project}").json()["togglable"]
    response = people[PROJECT_ADMIN].client.delete(f"{API}/projects/{project}")
    assert response.status_code == 200, response.text


# -- membership decides /v2/ access -------------------------------------------------------------


def test_removed_member_loses_push_at_once(
    registry: PortsideServer, client: httpx.Client, users: Any
) -> None:
    project, _ = create_project(client)
    developer = users()
    mid = add_member(client, project, developer, DEVELOPER)
    repo = f"{project}/app"
    assert try_push(developer.client, repo, image_manifest()) == 201

    # a token fetched while still a member
    response = httpx.get(
        f"{registry.url}/service/token",
        params={"service": "portside", "scope": f"repository:{repo}:pull,push"},
        auth=(developer.name, developer.password),
    )
    assert response.status_code == 200, response.text
    token = response.json()["token"]

    assert client.delete(f"{API}/projects/{project}/members/{mid}").status_code == 200

    blob = random_blob()
    refused = developer.client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": blob.digest}, content=blob.data
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["errors"][0]["code"] == "DENIED"
    assert developer.client.get(f"/v2/{repo}/tags/list").status_code == 403
    with httpx.Client(
        base_url=registry.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as bearer:
        response = bearer.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": blob.digest}, content=blob.data
        )
        assert response.status_code == 401, response.text
        assert "insufficient_scope" in response.headers["WWW-Authenticate"]
        assert bearer.get(f"/v2/{repo}/tags/list").status_code == 401


def test_role_change_takes_effect_at_once(client: httpx.Client, users: Any) -> None:
    project, _ = create_project(client)
    user = users()
    mid = add_member(client, project, user, GUEST)
    repo = f"{project}/app"
    manifest = image_manifest()
    assert try_push(user.client, repo, manifest) == 403
    response = client.put(f"{API}/projects/{project}/members/{mid}", json={"role_id": DEVELOPER})
    assert response.status_code == 200
    assert try_push(user.client, repo, manifest) == 201
    response = client.put(f"{API}/projects/{project}/members/{mid}", json={"role_id": GUEST})
    assert response.status_code == 200
    assert try_push(user.client, repo, image_manifest()) == 403
    assert user.client.get(manifest_path(repo, "v1")).status_code == 200


def test_developer_pushes_but_cannot_delete(client: httpx.Client, users: Any) -> None:
    project, _ = create_project(client)
    developer, maintainer = users(), users()
    add_member(client, project, developer, DEVELOPER)
    add_member(client, project, maintainer, MAINTAINER)
    repo = f"{project}/app"
    manifest = image_manifest()
    push_content(developer.client, repo, manifest, "v1")
    assert developer.client.get(manifest_path(repo, "v1")).status_code == 200

    refused = developer.client.delete(manifest_path(repo, manifest.digest))
    assert refused.status_code == 403, refused.text
    assert refused.json()["errors"][0]["code"] == "DENIED"
    assert developer.client.get(manifest_path(repo, manifest.digest)).status_code == 200
    assert maintainer.client.delete(manifest_path(repo, manifest.digest)).status_code == 202


def test_private_project_refuses_non_members(
    client: httpx.Client, anonymous: httpx.Client, users: Any
) -> None:
    project, _ = create_project(client)
    repo = f"{project}/app"
    manifest = image_manifest()
    push_content(client, repo, manifest, "v1")
    outsider = users()
    for who, status in [(outsider.client, 403), (anonymous, 401)]:
        assert who.get(manifest_path(repo, "v1")).status_code == status
        assert try_push(who, repo, image_manifest()) == status
        assert who.delete(manifest_path(repo, manifest.digest)).status_code == status
    # a LimitedGuest may pull, but not push
    limited = users()
    add_member(client, project, limited, LIMITED_GUEST)
    assert limited.client.get(manifest_path(repo, "v1")).status_code == 200
    assert try_push(limited.client, repo, image_manifest()) == 403


def test_public_switch_takes_effect_at_once(client: httpx.Client, anonymous: httpx.Client) -> None:
    project, _ = create_project(client)
    repo = f"{project}/app"
    push_content(client, repo, image_manifest(), "v1")
    assert anonymous.get(manifest_path(repo, "v1")).status_code == 401
    response = client.put(f"{API}/projects/{project}", json={"metadata": {"public": "true"}})
    assert response.status_code == 200
    assert anonymous.get(manifest_path(repo, "v1")).status_code == 200
    assert try_push(anonymous, repo, image_manifest()) == 401
    response = client.put(f"{API}/projects/{project}/metadatas/public", json={"public": "false"})
    assert response.status_code == 200, response.text
    assert anonymous.get(manifest_path(repo, "v1")).status_code == 401


# -- delete, summary, metadata ------------------------------------------------------------------


def test_project_with_repositories_cannot_be_deleted(client: httpx.Client) -> None:
    project, _ = create_project(client)
    repo = f"{project}/app"
    manifest = image_manifest(layer_count=2)
    push_content(client, repo, manifest, "v1")

    summary = client.get(f"{API}/projects/{project}/summary")
    assert summary.status_code == 200, summary.text
    body = summary.json()
    assert body["repo_count"] == 1
    assert body["quota"] == {
        "hard": {"storage": -1},
        # unique blobs, the manifest itself included, as Harbor counts them
        "used": {"storage": sum(blob.size for blob in manifest.blobs) + manifest.size},
    }
    assert body["project_admin_count"] == 1
    assert client.get(f"{API}/projects/{project}").json()["repo_count"] == 1

    deletable = client.get(f"{API}/projects/{project}/_deletable").json()
    assert deletable["deletable"] is False
    assert "repositories" in deletable["message"]
    message = assert_harbor_error(client.delete(f"{API}/projects/{project}"), 412, "PRECONDITION")
    assert "repositories" in message
    assert client.get(manifest_path(repo, "v1")).status_code == 200


def test_metadata_endpoints(client: httpx.Client, users: Any) -> None:
    project, _ = create_project(client)
    base = f"{API}/projects/{project}/metadatas"
    assert client.get(base).json() == {"public": "false"}
    assert client.get(f"{base}/").json() == {"public": "false"}

    response = client.post(base, json={"auto_scan": "TRUE", "severity": "Critical"})
    assert response.status_code == 200, response.text
    assert client.get(base).json() == {
        "public": "false",
        "auto_scan": "true",
        "severity": "critical",
    }
    assert_harbor_error(client.post(base, json={"auto_scan": "false"}), 409, "CONFLICT")
    assert client.get(f"{base}/auto_scan").json() == {"auto_scan": "true"}
    assert_harbor_error(client.get(f"{base}/prevent_vul"), 404)
    assert_harbor_error(client.get(f"{base}/bogus"), 400)

    response = client.put(f"{base}/auto_scan", json={"auto_scan": "false"})
    assert response.status_code == 200, response.text
    assert client.get(f"{base}/auto_scan").json() == {"auto_scan": "false"}
    assert_harbor_error(client.put(f"{base}/prevent_vul", json={"prevent_vul": "true"}), 404)
    for bad in [
        {"severity": "high"},
        {"auto_scan": "true", "severity": "low"},
        {"auto_scan": "maybe"},
        {"auto_scan": True},
        {},
    ]:
        assert_harbor_error(client.put(f"{base}/auto_scan", json=bad), 400)
    for bad in [{}, {"bogus": "1"}, {"public": 1}, {"severity": "worst"}, ["public"]]:
        assert_harbor_error(client.post(base, json=bad), 400)

    assert client.delete(f"{base}/severity").status_code == 200
    assert_harbor_error(client.delete(f"{base}/severity"), 404)
    assert_harbor_error(client.delete(f"{base}/bogus"), 400)
    assert "severity" not in client.get(base).json()

    # metadata needs Maintainer; a Developer may not even read it
    developer, maintainer = users(), users()
    add_member(client, project, developer, DEVELOPER)
    add_member(client, project, maintainer, MAINTAINER)
    assert_harbor_error(developer.client.get(base), 403)
    assert_harbor_error(developer.client.post(base, json={"prevent_vul": "true"}), 403)
    assert maintainer.client.post(base, json={"prevent_vul": "true"}).status_code == 200
    assert client.get(f"{API}/projects/{project}").json()["metadata"]["prevent_vul"] == "true"


def test_robots_cannot_create_projects(client: httpx.Client, registry: PortsideServer) -> None:
    name = unique("r")
    response = client.post(
        f"{API}/robots",
        json={
            "name": name,
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
    )
    assert response.status_code == 201, response.text
    robot = response.json()
    with httpx.Client(
        base_url=registry.url, auth=(robot["name"], robot["secret"]), timeout=30
    ) as as_robot:
        response = as_robot.post(f"{API}/projects", json={"project_name": unique()})
        assert_harbor_error(response, 403)
