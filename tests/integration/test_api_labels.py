"""``/api/v2.0/labels`` over real HTTP: global and project labels, who may do what, hostile
input, audit, and what deleting a label does to the artifacts it was on."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.support.oci import docker_manifest, push_content
from tests.support.server import PortsideServer

API = "/api/v2.0"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
LABEL_FIELDS = {
    "id",
    "name",
    "description",
    "color",
    "scope",
    "project_id",
    "creation_time",
    "update_time",
}
GUEST, DEVELOPER, MAINTAINER = 3, 2, 4


# -- helpers ------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def assert_harbor_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    errors = response.json()["errors"]
    assert isinstance(errors, list) and errors
    assert isinstance(errors[0]["code"], str) and errors[0]["message"]


def create_project(admin: httpx.Client) -> tuple[str, int]:
    name = unique("lp-")
    response = admin.post(
        f"{API}/projects", json={"project_name": name, "metadata": {"public": "false"}}
    )
    assert response.status_code == 201, response.text
    response = admin.get(f"{API}/projects/{name}", headers={"X-Is-Resource-Name": "true"})
    assert response.status_code == 200, response.text
    return name, int(response.json()["project_id"])


def create_user(admin: httpx.Client) -> tuple[str, str]:
    name, password = unique("lu"), f"Labels-{secrets.token_hex(4)}-A1"
    response = admin.post(
        f"{API}/users",
        json={"username": name, "password": password, "email": f"{name}@example.com"},
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


def create_label(client: httpx.Client, **body: Any) -> int:
    response = client.post(f"{API}/labels", json=body)
    assert response.status_code == 201, response.text
    location = response.headers["Location"]
    assert re.fullmatch(rf"{API}/labels/\d+", location), location
    return int(location.rsplit("/", 1)[1])


def as_user(registry: PortsideServer, name: str, password: str) -> httpx.Client:
    return httpx.Client(base_url=registry.url, auth=(name, password), timeout=30)


def audit_entries(admin: httpx.Client, name: str, operation: str) -> list[dict[str, Any]]:
    """Audit writes are batched: wait a little for the entry to land."""
    deadline = time.monotonic() + 10
    while True:
        response = admin.get(
            f"{API}/audit-logs",
            params={"q": f"resource_type=label,resource={name}", "page_size": 100},
        )
        assert response.status_code == 200, response.text
        found = [e for e in response.json() if e["operation"] == operation]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def database_url(registry: PortsideServer) -> str:
    """The server's database, reached synchronously from the test (psycopg2 for PostgreSQL)."""
    configured = registry.env.get("PORTSIDE_DATABASE__URL")
    if not configured:
        return f"sqlite:///{(registry.data_dir / 'portside.db').resolve()}"
    url = sa.make_url(configured)
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    return url.render_as_string(hide_password=False)


@pytest.fixture
def admin(registry: PortsideServer) -> Iterator[httpx.Client]:
    with registry.client() as client:
        yield client


@pytest.fixture
def project(admin: httpx.Client) -> tuple[str, int]:
    return create_project(admin)


# -- global labels ------------------------------------------------------------------------------


def test_global_label_crud(admin: httpx.Client) -> None:
    name = unique("release-")
    label_id = create_label(
        admin, name=name, description="ready to ship", color="#61717D", scope="g"
    )
    got = admin.get(f"{API}/labels/{label_id}")
    assert got.status_code == 200, got.text
    body = got.json()
    assert set(body) == LABEL_FIELDS
    assert body["id"] == label_id and body["name"] == name
    assert body["description"] == "ready to ship" and body["color"] == "#61717D"
    assert body["scope"] == "g" and body["project_id"] == 0
    assert ISO_Z.match(body["creation_time"]) and ISO_Z.match(body["update_time"])

    listed = admin.get(f"{API}/labels", params={"scope": "g", "name": name})
    assert listed.status_code == 200, listed.text
    assert [label["id"] for label in listed.json()] == [label_id]
    assert listed.headers["X-Total-Count"] == "1"

    renamed = f"{name}-v2"
    # Harbor clients send the label back as they read it; read-only fields are ignored.
    updated = admin.put(
        f"{API}/labels/{label_id}", json={**body, "name": renamed, "description": "shipped"}
    )
    assert updated.status_code == 200, updated.text
    after = admin.get(f"{API}/labels/{label_id}").json()
    assert after["name"] == renamed and after["description"] == "shipped"
    assert after["creation_time"] == body["creation_time"]

    # PUT replaces: a field left out becomes empty, as in Harbor.
    assert admin.put(f"{API}/labels/{label_id}", json={"name": renamed}).status_code == 200
    assert admin.get(f"{API}/labels/{label_id}").json()["description"] == ""

    deleted = admin.delete(f"{API}/labels/{label_id}")
    assert deleted.status_code == 200, deleted.text
    assert_harbor_error(admin.get(f"{API}/labels/{label_id}"), 404)
    assert_harbor_error(admin.delete(f"{API}/labels/{label_id}"), 404)
    assert_harbor_error(admin.put(f"{API}/labels/{label_id}", json={"name": "x"}), 404)

    assert audit_entries(admin, name, "create")
    assert audit_entries(admin, renamed, "update")
    assert audit_entries(admin, renamed, "delete")


def test_global_label_names_are_unique(admin: httpx.Client) -> None:
    name = unique("dup-")
    first = create_label(admin, name=name, scope="g")
    assert_harbor_error(admin.post(f"{API}/labels", json={"name": name, "scope": "g"}), 409)
    other = create_label(admin, name=f"{name}-other", scope="g")
    assert_harbor_error(admin.put(f"{API}/labels/{other}", json={"name": name}), 409)
    # Renaming a label to its own name is no conflict.
    assert admin.put(f"{API}/labels/{first}", json={"name": name}).status_code == 200


def test_listing_pages_sorts_and_filters(admin: httpx.Client) -> None:
    prefix = unique("page-")
    ids = [create_label(admin, name=f"{prefix}-{i}", scope="g") for i in range(3)]
    first = admin.get(
        f"{API}/labels",
        params={"scope": "g", "name": prefix, "page_size": 2, "sort": "-id"},
    )
    assert first.status_code == 200, first.text
    assert [label["id"] for label in first.json()] == [ids[2], ids[1]]
    assert first.headers["X-Total-Count"] == "3"
    assert 'rel="next"' in first.headers["Link"]
    second = admin.get(
        f"{API}/labels",
        params={"scope": "g", "name": prefix, "page_size": 2, "page": 2, "sort": "-id"},
    )
    assert [label["id"] for label in second.json()] == [ids[0]]
    exact = admin.get(f"{API}/labels", params={"scope": "g", "q": f"name={prefix}-1"})
    assert [label["id"] for label in exact.json()] == [ids[1]]
    assert_harbor_error(admin.get(f"{API}/labels", params={"sort": "password"}), 400)
    assert_harbor_error(admin.get(f"{API}/labels", params={"q": "secret=1"}), 400)


# -- project labels -----------------------------------------------------------------------------


def test_project_label_crud_and_scope(admin: httpx.Client, project: tuple[str, int]) -> None:
    _, project_id = project
    name = unique("qa-")
    label_id = create_label(admin, name=name, scope="p", project_id=project_id)
    body = admin.get(f"{API}/labels/{label_id}").json()
    assert body["scope"] == "p" and body["project_id"] == project_id

    listed = admin.get(f"{API}/labels", params={"scope": "p", "project_id": project_id})
    assert [label["id"] for label in listed.json()] == [label_id]
    # Not among the global labels, and the same name may exist globally and elsewhere.
    global_names = [x["name"] for x in admin.get(f"{API}/labels", params={"name": name}).json()]
    assert global_names == []
    create_label(admin, name=name, scope="g")
    _, other_id = create_project(admin)
    create_label(admin, name=name, scope="p", project_id=other_id)
    assert_harbor_error(
        admin.post(f"{API}/labels", json={"name": name, "scope": "p", "project_id": project_id}),
        409,
    )
    # Scope and project never change through PUT.
    admin.put(f"{API}/labels/{label_id}", json={"name": name, "scope": "g", "project_id": 0})
    assert admin.get(f"{API}/labels/{label_id}").json()["scope"] == "p"


def test_project_label_needs_an_existing_project(admin: httpx.Client) -> None:
    missing = admin.post(f"{API}/labels", json={"name": "x", "scope": "p", "project_id": 999999})
    assert_harbor_error(missing, 404)
    assert_harbor_error(admin.post(f"{API}/labels", json={"name": "x", "scope": "p"}), 400)
    assert_harbor_error(admin.get(f"{API}/labels", params={"scope": "p"}), 400)
    listed = admin.get(f"{API}/labels", params={"scope": "p", "project_id": 999999})
    assert_harbor_error(listed, 404)


def test_deleting_a_project_deletes_its_labels(
    admin: httpx.Client, project: tuple[str, int]
) -> None:
    name, project_id = project
    label_id = create_label(admin, name="bye", scope="p", project_id=project_id)
    deleted = admin.delete(f"{API}/projects/{name}", headers={"X-Is-Resource-Name": "true"})
    assert deleted.status_code == 200, deleted.text
    assert_harbor_error(admin.get(f"{API}/labels/{label_id}"), 404)


# -- who may do what ----------------------------------------------------------------------------


def test_roles_decide_project_labels(
    registry: PortsideServer, admin: httpx.Client, project: tuple[str, int]
) -> None:
    project_name, project_id = project
    existing = create_label(admin, name=unique("x-"), scope="p", project_id=project_id)
    users = {}
    for role in (GUEST, DEVELOPER, MAINTAINER):
        users[role] = create_user(admin)
        add_member(admin, project_name, users[role][0], role)
    stranger = create_user(admin)

    for role, (username, password) in users.items():
        with as_user(registry, username, password) as member:
            listed = member.get(f"{API}/labels", params={"scope": "p", "project_id": project_id})
            assert listed.status_code == 200, (role, listed.text)
            assert member.get(f"{API}/labels/{existing}").status_code == 200
            body = {"name": unique("m-"), "scope": "p", "project_id": project_id}
            created = member.post(f"{API}/labels", json=body)
            update = member.put(f"{API}/labels/{existing}", json={"name": unique("r-")})
            if role == MAINTAINER:
                assert created.status_code == 201, created.text
                assert update.status_code == 200, update.text
                new_id = int(created.headers["Location"].rsplit("/", 1)[1])
                assert member.delete(f"{API}/labels/{new_id}").status_code == 200
            else:
                assert_harbor_error(created, 403)
                assert_harbor_error(update, 403)
                assert_harbor_error(member.delete(f"{API}/labels/{existing}"), 403)
            # Members may not touch global labels, but may list them.
            assert member.get(f"{API}/labels", params={"scope": "g"}).status_code == 200
            assert_harbor_error(member.post(f"{API}/labels", json={"name": "g", "scope": "g"}), 403)

    with as_user(registry, *stranger) as outsider:
        params = {"scope": "p", "project_id": project_id}
        assert_harbor_error(outsider.get(f"{API}/labels", params=params), 403)
        assert_harbor_error(outsider.get(f"{API}/labels/{existing}"), 403)
        assert_harbor_error(outsider.delete(f"{API}/labels/{existing}"), 403)
    assert admin.get(f"{API}/labels/{existing}").status_code == 200


def test_global_labels_are_for_admins_to_change(
    registry: PortsideServer, admin: httpx.Client
) -> None:
    label_id = create_label(admin, name=unique("g-"), scope="g")
    with as_user(registry, *create_user(admin)) as user:
        assert user.get(f"{API}/labels", params={"scope": "g"}).status_code == 200
        assert_harbor_error(user.post(f"{API}/labels", json={"name": "nope", "scope": "g"}), 403)
        assert_harbor_error(user.put(f"{API}/labels/{label_id}", json={"name": "nope"}), 403)
        assert_harbor_error(user.delete(f"{API}/labels/{label_id}"), 403)
    with httpx.Client(base_url=registry.url, timeout=30) as anonymous:
        assert_harbor_error(anonymous.get(f"{API}/labels"), 401)
        assert_harbor_error(anonymous.get(f"{API}/labels/{label_id}"), 401)
        assert_harbor_error(anonymous.post(f"{API}/labels", json={"name": "n"}), 401)
    assert admin.get(f"{API}/labels/{label_id}").status_code == 200


# -- hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "a" * 129},
        {"name": "tab\there"},
        {"name": "nul\x00"},
        {"name": " padded "},
        {"name": 5},
        {"name": ["x"]},
        {"name": "ok", "scope": "x"},
        {"name": "ok", "scope": "p", "project_id": -1},
        {"name": "ok", "scope": "p", "project_id": 2**40},
        {"name": "ok", "color": "red; background:url(x)"},
        {"name": "ok", "color": "#12345"},
        {"name": "ok", "description": "d" * 1025},
        {"name": "ok", "description": "nul\x00"},
        {"name": "ok", "unknown": 1},
        {"name": "ok", "project_id": "1"},
    ],
)
def test_hostile_label_bodies_are_400(admin: httpx.Client, body: dict[str, Any]) -> None:
    assert_harbor_error(admin.post(f"{API}/labels", json=body), 400)


def test_hostile_requests_are_400_or_404(admin: httpx.Client) -> None:
    label_id = create_label(admin, name=unique("h-"), scope="g")
    for path in ("/labels/0", "/labels/-1", "/labels/abc", f"/labels/{2**40}", "/labels/1%00"):
        response = admin.get(f"{API}{path}")
        assert response.status_code in (400, 404), (path, response.text)
    for params in (
        {"scope": "z"},
        {"project_id": "x"},
        {"project_id": "0"},
        {"name": "a\x00b"},
        {"q": "name=\x00"},
        {"page_size": "0"},
        {"page": "-1"},
    ):
        assert_harbor_error(admin.get(f"{API}/labels", params=params), 400)
    not_json = admin.put(
        f"{API}/labels/{label_id}", content=b"name=x", headers={"Content-Type": "text/plain"}
    )
    assert not_json.status_code in (400, 415), not_json.text
    assert_harbor_error(admin.put(f"{API}/labels/{label_id}", json={"name": "a" * 200}), 400)
    # A name with SQL wildcards is matched literally.
    assert admin.get(f"{API}/labels", params={"name": "%_"}).json() == []


def test_unicode_names_are_fine(admin: httpx.Client) -> None:
    name = unique("größe-✓-")
    label_id = create_label(admin, name=name, scope="g")
    assert admin.get(f"{API}/labels/{label_id}").json()["name"] == name


# -- artifacts ----------------------------------------------------------------------------------


def test_deleting_a_label_detaches_it_from_artifacts(
    registry: PortsideServer, admin: httpx.Client, repo: str
) -> None:
    """Labels are attached elsewhere (artifact label endpoints); the row is made directly here
    so this test depends only on labels."""
    manifest = docker_manifest()
    push_content(admin, repo, manifest)
    label_id = create_label(admin, name=unique("att-"), scope="g")
    keep_id = create_label(admin, name=unique("keep-"), scope="g")
    engine = sa.create_engine(database_url(registry))
    try:
        with engine.begin() as connection:
            manifest_id = connection.execute(
                sa.text("SELECT id FROM manifests WHERE digest = :d"), {"d": manifest.digest}
            ).scalar_one()
            for lid in (label_id, keep_id):
                connection.execute(
                    sa.text(
                        "INSERT INTO artifact_labels (manifest_id, label_id, created_at) "
                        "VALUES (:m, :l, CURRENT_TIMESTAMP)"
                    ),
                    {"m": manifest_id, "l": lid},
                )
        assert admin.delete(f"{API}/labels/{label_id}").status_code == 200
        with engine.connect() as connection:
            left = connection.execute(
                sa.text("SELECT label_id FROM artifact_labels WHERE manifest_id = :m"),
                {"m": manifest_id},
            ).scalars()
            assert list(left) == [keep_id]
    finally:
        engine.dispose()
