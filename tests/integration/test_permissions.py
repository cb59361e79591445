"""The role-by-action table of ``docs/permissions.md``, one test per cell, against a real server.

The two Markdown tables in the doc (a public and a private project) are parsed at collection
time and every cell becomes a test case, so the doc is the single statement of who may do what
and cannot drift from what is tested. Each case makes the real HTTP requests a client would:
``/v2/`` with Bearer tokens from ``/service/token`` (and, for a few rows, basic auth), the
management API with basic auth. A cell passes only if the answer is exactly one of the two
outcomes the doc defines for its row: the allowed result, or a well-formed refusal (401/403 in
the OCI or Harbor envelope, or the item left out of a listing). Anything else (a 500, a 404, an
allowed action that did nothing) fails whichever way the cell reads.

The world (users with each role, a public, a private and a scratch project, two robots, content)
is built once per backend through the management API and shared by the module's cells.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.oci import (
    OCI_MANIFEST,
    Blob,
    Manifest,
    artifact_manifest,
    image_manifest,
    push_blob,
    push_content,
    random_blob,
)
from tests.support.server import PortsideServer

__all__ = [
    "CALLERS",
    "DOC",
    "NARROW_ROBOT_ACCESS",
    "ROLE_IDS",
    "WIDE_ROBOT_ACCESS",
    "Row",
    "permission_tables",
]

DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"

CALLERS = (
    "admin",
    "projectAdmin",
    "maintainer",
    "developer",
    "guest",
    "limitedGuest",
    "non-member",
    "anonymous",
    "robot-narrow",
    "robot-wide",
)
# Harbor's role ids (POST /projects/{p}/members "role_id").
ROLE_IDS = {"projectAdmin": 1, "developer": 2, "guest": 3, "maintainer": 4, "limitedGuest": 5}
USERS = (*ROLE_IDS, "non-member")
ROBOTS = ("robot-narrow", "robot-wide")
TABLES = {"public": "### Public project", "private": "### Private project"}

# The robots' permissions on each tested project, as the doc's caller list states them.
Access = tuple[tuple[str, str], ...]
NARROW_ROBOT_ACCESS: Access = (("repository", "pull"),)
WIDE_ROBOT_ACCESS: Access = (
    ("repository", "pull"),
    ("repository", "push"),
    ("repository", "delete"),
    ("artifact", "read"),
    ("artifact", "list"),
    ("artifact", "create"),
    ("artifact", "delete"),
    ("tag", "list"),
    ("tag", "create"),
    ("tag", "delete"),
    ("member", "list"),
    ("robot", "list"),
    ("log", "list"),
    ("project", "read"),
)
# On the scratch project (the mount destination) both robots may push.
SCRATCH_ROBOT_ACCESS: Access = (("repository", "pull"), ("repository", "push"))

# /v2/ rows also checked with basic credentials instead of a token.
BASIC_V2_ROWS = ("v2.pull", "v2.tags", "v2.push", "v2.delete-manifest")
PASSWORD = "Perm-Table-1x"


# -- the doc ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One action of a table: the permission that alone decides it (if the doc names one) and
    the expected answer per caller (True: allow)."""

    action: str
    permission: tuple[str, str] | None
    cells: dict[str, bool]


def _split(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _parse_table(lines: list[str], where: str) -> dict[str, Row]:
    header, separator, *body = lines
    columns = _split(header)
    if columns[0] != "action" or tuple(columns[1:]) != CALLERS:
        raise ValueError(f"{where}: header must be 'action' then {CALLERS}, not {columns}")
    if not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", separator.strip()):
        raise ValueError(f"{where}: second line is not a separator: {separator!r}")
    rows: dict[str, Row] = {}
    for line in body:
        cells = _split(line)
        match = re.match(r"`([a-z0-9.-]+)`", cells[0])
        if match is None or len(cells) != len(columns):
            raise ValueError(f"{where}: malformed row {line!r}")
        action = match[1]
        permission = re.search(r"\(`([a-z-]+):([a-z-]+)`\)", cells[0])
        values = cells[1:]
        if any(value not in ("allow", "deny") for value in values):
            raise ValueError(f"{where}: {action}: cells must be 'allow' or 'deny': {values}")
        if action in rows:
            raise ValueError(f"{where}: {action} appears twice")
        rows[action] = Row(
            action,
            (permission[1], permission[2]) if permission else None,
            {caller: value == "allow" for caller, value in zip(CALLERS, values, strict=True)},
        )
    return rows


def permission_tables(text: str | None = None) -> dict[str, dict[str, Row]]:
    """``{"public": {action: Row}, "private": {...}}`` from ``docs/permissions.md``: the first
    Markdown table after each of the two headings."""
    text = DOC.read_text(encoding="utf-8") if text is None else text
    lines = text.splitlines()
    tables = {}
    for name, heading in TABLES.items():
        if heading not in lines:
            raise ValueError(f"{DOC.name}: no {heading!r} heading")
        after = lines[lines.index(heading) + 1 :]
        block = itertools.takewhile(lambda line: line.startswith("|") or not line.strip(), after)
        tables[name] = _parse_table([line for line in block if line.strip()], heading)
    return tables


@dataclass(frozen=True)
class Cell:
    """One test case: a table's cell, and how /v2/ calls authenticate (management calls always
    use basic credentials)."""

    table: str
    action: str
    caller: str
    allowed: bool
    auth: str = "bearer"

    @property
    def id(self) -> str:
        suffix = "-basic" if self.auth == "basic" else ""
        return f"{self.table}:{self.action}:{self.caller}{suffix}"


def _cells() -> list[Cell]:
    cells = []
    for table, rows in permission_tables().items():
        for row in rows.values():
            for caller, allowed in row.cells.items():
                cells.append(Cell(table, row.action, caller, allowed))
                if row.action in BASIC_V2_ROWS and caller != "anonymous":
                    cells.append(Cell(table, row.action, caller, allowed, "basic"))
    return cells


CELLS = _cells()


# -- the world ----------------------------------------------------------------------------------


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass
class Project:
    name: str
    id: int
    public: bool
    repo: str
    image: Manifest
    referrer: Manifest

    @property
    def layer(self) -> Blob:
        return self.image.blobs[1]


@dataclass
class World:
    server: PortsideServer
    service: str
    admin: httpx.Client
    credentials: dict[str, tuple[str, str] | None]
    projects: dict[str, Project]
    scratch: str
    usernames: dict[str, str]
    spare: str
    robot_error: str | None = None
    _clients: dict[str, httpx.Client] = field(default_factory=dict)
    _tokens: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)
    _quota_ids: dict[int, int] = field(default_factory=dict)

    def client(self, caller: str) -> httpx.Client:
        """A client sending ``caller``'s basic credentials (none for anonymous)."""
        if caller in ROBOTS and self.robot_error:
            pytest.fail(f"the robots could not be created: {self.robot_error}")
        if caller not in self._clients:
            self._clients[caller] = httpx.Client(
                base_url=self.server.url, auth=self.credentials[caller], timeout=30
            )
        return self._clients[caller]

    def token(self, caller: str, scopes: tuple[str, ...]) -> str:
        """A Bearer token for ``scopes``, fetched as a client does (basic auth on the realm)."""
        key = (caller, scopes)
        if key not in self._tokens:
            query = httpx.QueryParams([("service", self.service), *(("scope", s) for s in scopes)])
            response = self.client(caller).get("/service/token", params=query)
            assert response.status_code == 200, (caller, scopes, response.text)
            self._tokens[key] = response.json()["token"]
        return self._tokens[key]

    def v2(
        self,
        caller: str,
        auth: str,
        method: str,
        path: str,
        scopes: tuple[str, ...],
        **kwargs: Any,
    ) -> httpx.Response:
        """A ``/v2/`` request as ``caller``, with a token for ``scopes`` or basic credentials."""
        client = self.client(caller)
        if auth == "basic":
            return client.request(method, path, **kwargs)
        headers = {
            **kwargs.pop("headers", {}),
            "Authorization": f"Bearer {self.token(caller, scopes)}",
        }
        return client.request(method, path, headers=headers, auth=None, **kwargs)

    def quota_id(self, project: Project) -> int:
        if project.id not in self._quota_ids:
            response = self.admin.get(
                "/api/v2.0/quotas",
                params={"reference": "project", "reference_id": str(project.id)},
            )
            assert response.status_code == 200, response.text
            found = [q for q in response.json() if str(q["ref"]["id"]) == str(project.id)]
            assert len(found) == 1, response.json()
            self._quota_ids[project.id] = int(found[0]["id"])
        return self._quota_ids[project.id]


def created(response: httpx.Response) -> httpx.Response:
    assert response.status_code == 201, (response.request.url, response.status_code, response.text)
    return response


def create_user(admin: httpx.Client, username: str) -> None:
    created(
        admin.post(
            "/api/v2.0/users",
            json={
                "username": username,
                "email": f"{username}@example.com",
                "realname": username,
                "password": PASSWORD,
                "comment": "permission table",
            },
        )
    )


def create_project(admin: httpx.Client, name: str, public: bool) -> int:
    created(
        admin.post(
            "/api/v2.0/projects",
            json={"project_name": name, "metadata": {"public": str(public).lower()}},
        )
    )
    response = admin.get(f"/api/v2.0/projects/{name}")
    assert response.status_code == 200, response.text
    return int(response.json()["project_id"])


def add_member(admin: httpx.Client, project: str, username: str, role_id: int) -> int:
    """Make ``username`` a member; returns the member id (from the Location header)."""
    response = created(
        admin.post(
            f"/api/v2.0/projects/{project}/members",
            json={"role_id": role_id, "member_user": {"username": username}},
        )
    )
    location = response.headers.get("Location", "")
    match = re.search(r"/members/(\d+)$", location)
    assert match, f"no member id in Location {location!r}"
    return int(match[1])


def robot_permissions(
    blocks: dict[str, Access],
) -> list[dict[str, Any]]:
    return [
        {
            "kind": "project",
            "namespace": namespace,
            "access": [{"resource": r, "action": a} for r, a in access],
        }
        for namespace, access in blocks.items()
    ]


def create_robot(admin: httpx.Client, name: str, blocks: dict[str, Access]) -> tuple[str, str]:
    """A system-level robot with ``blocks`` (namespace -> access); returns (full name, secret)."""
    response = created(
        admin.post(
            "/api/v2.0/robots",
            json={
                "name": name,
                "description": "permission table",
                "level": "system",
                "duration": -1,
                "disable": False,
                "permissions": robot_permissions(blocks),
            },
        )
    )
    body = response.json()
    return body["name"], body["secret"]


def _token_service(server: PortsideServer) -> str:
    challenge = httpx.get(f"{server.url}/v2/").headers.get("WWW-Authenticate", "")
    match = re.search(r'service="([^"]*)"', challenge)
    assert match, f"no service in the /v2/ challenge {challenge!r}"
    return match[1]


def build_world(server: PortsideServer, admin: httpx.Client) -> World:
    suffix = secrets.token_hex(3)
    usernames = {caller: f"perm-{caller.lower()}-{suffix}" for caller in USERS}
    spare = f"perm-spare-{suffix}"
    for username in (*usernames.values(), spare):
        create_user(admin, username)
    projects: dict[str, Project] = {}
    for table in TABLES:
        name = f"perm-{table}-{suffix}"
        project_id = create_project(admin, name, public=table == "public")
        for caller, role_id in ROLE_IDS.items():
            add_member(admin, name, usernames[caller], role_id)
        repo = f"{name}/app"
        image = image_manifest()
        push_content(admin, repo, image, "v1")
        referrer = artifact_manifest("application/vnd.portside.test.sig", subject=image)
        push_content(admin, repo, referrer)
        projects[table] = Project(name, project_id, table == "public", repo, image, referrer)
    scratch = f"perm-scratch-{suffix}"
    create_project(admin, scratch, public=False)
    for username in usernames.values():
        add_member(admin, scratch, username, ROLE_IDS["developer"])
    credentials: dict[str, tuple[str, str] | None] = {
        "admin": (server.username, server.password),
        "anonymous": None,
        **{caller: (usernames[caller], PASSWORD) for caller in USERS},
    }
    robot_error = None
    try:
        robot_access: dict[str, Access] = {
            "robot-narrow": NARROW_ROBOT_ACCESS,
            "robot-wide": WIDE_ROBOT_ACCESS,
        }
        for caller, access in robot_access.items():
            blocks: dict[str, Access] = {p.name: access for p in projects.values()}
            blocks[scratch] = SCRATCH_ROBOT_ACCESS
            credentials[caller] = create_robot(admin, f"perm-{caller}-{suffix}", blocks)
    except AssertionError as error:
        robot_error = str(error)
    return World(
        server,
        _token_service(server),
        admin,
        credentials,
        projects,
        scratch,
        usernames,
        spare,
        robot_error,
    )


@pytest.fixture(scope="module")
def world(registry: PortsideServer) -> Iterator[World]:
    with registry.client() as admin:
        built = build_world(registry, admin)
        try:
            yield built
        finally:
            for client in built._clients.values():
                client.close()


# -- outcomes -----------------------------------------------------------------------------------


def _envelope(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.headers.get("Content-Type", "").startswith("application/json"), (
        response.status_code,
        response.headers,
        response.text,
    )
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"], body
    for error in body["errors"]:
        assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), body
    errors: list[dict[str, Any]] = body["errors"]
    return errors


def v2_outcome(response: httpx.Response, caller: str, auth: str, ok: tuple[int, ...]) -> bool:
    """True when ``response`` is the allowed answer, False when it is a proper /v2/ refusal:
    401 UNAUTHORIZED for anonymous callers and tokens, 403 DENIED for basic credentials."""
    if response.status_code in ok:
        return True
    if response.request.method == "HEAD":
        assert response.status_code in (401, 403), (response.status_code, response.headers)
        return False
    expected = (
        (401, "UNAUTHORIZED") if caller == "anonymous" or auth == "bearer" else (403, "DENIED")
    )
    assert (response.status_code, _envelope(response)[0]["code"]) == expected, (
        f"neither {ok} nor the refusal {expected}: {response.status_code} {response.text}"
    )
    if response.status_code == 401:
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer "), response.headers
    return False


def api_outcome(response: httpx.Response, caller: str, ok: tuple[int, ...]) -> bool:
    """True when allowed; False for Harbor's refusal: 401 anonymous, 403 otherwise."""
    if response.status_code in ok:
        return True
    expected = 401 if caller == "anonymous" else 403
    assert response.status_code == expected, (
        f"neither {ok} nor the refusal {expected}: {response.status_code} {response.text}"
    )
    _envelope(response)
    return False


def listing_outcome(response: httpx.Response, caller: str, listed: Callable[[Any], bool]) -> bool:
    """For listings: True when the item is listed; a refusal or a listing without it is False."""
    if response.status_code == 200:
        return listed(response.json())
    assert response.status_code in (401, 403), (response.status_code, response.text)
    _envelope(response)
    return False


# -- /v2/ actions -------------------------------------------------------------------------------

Check = Callable[[World, Project, str, str], bool]
CHECKS: dict[str, Check] = {}


def check(action: str) -> Callable[[Check], Check]:
    def register(function: Check) -> Check:
        CHECKS[action] = function
        return function

    return register


def _pull(repo: str, actions: str = "pull") -> tuple[str, ...]:
    return (f"repository:{repo}:{actions}",)


@check("v2.pull")
def v2_pull(world: World, p: Project, caller: str, auth: str) -> bool:
    response = world.v2(
        caller,
        auth,
        "GET",
        f"/v2/{p.repo}/manifests/v1",
        _pull(p.repo),
        headers={"Accept": OCI_MANIFEST},
    )
    allowed = v2_outcome(response, caller, auth, (200,))
    assert not allowed or response.content == p.image.raw
    return allowed


@check("v2.blob-head")
def v2_blob_head(world: World, p: Project, caller: str, auth: str) -> bool:
    path = f"/v2/{p.repo}/blobs/{p.layer.digest}"
    response = world.v2(caller, auth, "HEAD", path, _pull(p.repo))
    allowed = v2_outcome(response, caller, auth, (200,))
    assert not allowed or int(response.headers["Content-Length"]) == p.layer.size
    return allowed


@check("v2.tags")
def v2_tags(world: World, p: Project, caller: str, auth: str) -> bool:
    response = world.v2(caller, auth, "GET", f"/v2/{p.repo}/tags/list", _pull(p.repo))
    allowed = v2_outcome(response, caller, auth, (200,))
    assert not allowed or "v1" in response.json()["tags"]
    return allowed


@check("v2.referrers")
def v2_referrers(world: World, p: Project, caller: str, auth: str) -> bool:
    path = f"/v2/{p.repo}/referrers/{p.image.digest}"
    response = world.v2(caller, auth, "GET", path, _pull(p.repo))
    allowed = v2_outcome(response, caller, auth, (200,))
    if allowed:
        digests = [m["digest"] for m in response.json()["manifests"]]
        assert p.referrer.digest in digests, response.json()
    return allowed


@check("v2.catalog")
def v2_catalog(world: World, p: Project, caller: str, auth: str) -> bool:
    # Names sort after their project's name, so the project's repositories come first.
    response = world.v2(
        caller,
        auth,
        "GET",
        "/v2/_catalog",
        ("registry:catalog:*",),
        params={"n": "100", "last": p.name},
    )
    return listing_outcome(response, caller, lambda body: p.repo in body["repositories"])


@check("v2.push")
def v2_push(world: World, p: Project, caller: str, auth: str) -> bool:
    repo = f"{p.name}/{_name('push')}"
    scopes = _pull(repo, "pull,push")
    image = image_manifest()
    outcomes = []
    for blob in image.blobs:
        response = world.v2(
            caller,
            auth,
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            scopes,
            params={"digest": blob.digest},
            content=blob.data,
            headers={"Content-Type": "application/octet-stream"},
        )
        outcomes.append(v2_outcome(response, caller, auth, (201,)))
    response = world.v2(
        caller,
        auth,
        "PUT",
        f"/v2/{repo}/manifests/t1",
        scopes,
        content=image.raw,
        headers={"Content-Type": image.media_type},
    )
    outcomes.append(v2_outcome(response, caller, auth, (201,)))
    assert len(set(outcomes)) == 1, f"blob and manifest pushes disagree: {outcomes}"
    stored = world.admin.get(f"/v2/{repo}/manifests/t1", headers={"Accept": OCI_MANIFEST})
    assert stored.status_code == (200 if outcomes[0] else 404), stored.text
    return outcomes[0]


def _fresh_image(world: World, p: Project, tag: str = "v1") -> tuple[str, Manifest]:
    repo = f"{p.name}/{_name('del')}"
    image = image_manifest()
    push_content(world.admin, repo, image, tag)
    return repo, image


def _exists(world: World, path: str) -> bool:
    response = world.admin.head(path, headers={"Accept": OCI_MANIFEST})
    assert response.status_code in (200, 404), (path, response.status_code)
    return response.status_code == 200


@check("v2.delete-manifest")
def v2_delete_manifest(world: World, p: Project, caller: str, auth: str) -> bool:
    repo, image = _fresh_image(world, p)
    path = f"/v2/{repo}/manifests/{image.digest}"
    response = world.v2(caller, auth, "DELETE", path, _pull(repo, "delete"))
    allowed = v2_outcome(response, caller, auth, (202,))
    assert _exists(world, path) is not allowed
    return allowed


@check("v2.delete-tag")
def v2_delete_tag(world: World, p: Project, caller: str, auth: str) -> bool:
    repo, image = _fresh_image(world, p, "gone")
    # Docker clients ask for "*" when deleting.
    response = world.v2(caller, auth, "DELETE", f"/v2/{repo}/manifests/gone", _pull(repo, "*"))
    allowed = v2_outcome(response, caller, auth, (202,))
    assert _exists(world, f"/v2/{repo}/manifests/gone") is not allowed
    assert _exists(world, f"/v2/{repo}/manifests/{image.digest}")  # only the tag goes
    return allowed


@check("v2.delete-blob")
def v2_delete_blob(world: World, p: Project, caller: str, auth: str) -> bool:
    repo = f"{p.name}/{_name('blob')}"
    blob = random_blob(300)
    push_blob(world.admin, repo, blob)
    path = f"/v2/{repo}/blobs/{blob.digest}"
    response = world.v2(caller, auth, "DELETE", path, _pull(repo, "delete"))
    allowed = v2_outcome(response, caller, auth, (202,))
    assert _exists(world, path) is not allowed
    return allowed


@check("v2.mount")
def v2_mount(world: World, p: Project, caller: str, auth: str) -> bool:
    destination = f"{world.scratch}/{_name('mnt')}"
    scopes = (f"repository:{destination}:pull,push", f"repository:{p.repo}:pull")
    response = world.v2(
        caller,
        auth,
        "POST",
        f"/v2/{destination}/blobs/uploads/",
        scopes,
        params={"mount": p.layer.digest, "from": p.repo},
        headers={"Content-Length": "0"},
    )
    linked = _exists(world, f"/v2/{destination}/blobs/{p.layer.digest}")
    if response.status_code == 202:  # not mounted: an ordinary upload started instead
        assert not linked
        world.v2(caller, auth, "DELETE", response.headers["Location"], scopes)
        return False
    allowed = v2_outcome(response, caller, auth, (201,))
    assert linked is allowed
    return allowed


# -- management actions -------------------------------------------------------------------------


@check("api.project-get")
def api_project_get(world: World, p: Project, caller: str, auth: str) -> bool:
    response = world.client(caller).get(f"/api/v2.0/projects/{p.name}")
    allowed = api_outcome(response, caller, (200,))
    assert not allowed or response.json()["name"] == p.name
    return allowed


@check("api.project-list")
def api_project_list(world: World, p: Project, caller: str, auth: str) -> bool:
    response = world.client(caller).get(
        "/api/v2.0/projects", params={"name": p.name, "page_size": "100"}
    )
    return listing_outcome(response, caller, lambda body: p.name in [x["name"] for x in body])


@check("api.project-summary")
def api_project_summary(world: World, p: Project, caller: str, auth: str) -> bool:
    response = world.client(caller).get(f"/api/v2.0/projects/{p.name}/summary")
    allowed = api_outcome(response, caller, (200,))
    assert not allowed or response.json()["repo_count"] >= 1
    return allowed


@check("api.summary-quota")
def api_summary_quota(world: World, p: Project, caller: str, auth: str) -> bool:
    response = world.client(caller).get(f"/api/v2.0/projects/{p.name}/summary")
    return listing_outcome(response, caller, lambda body: body.get("quota") is not None)


@check("api.project-update")
def api_project_update(world: World, p: Project, caller: str, auth: str) -> bool:
    body = {"metadata": {"public": str(p.public).lower()}}  # the value it has: nothing changes
    response = world.client(caller).put(f"/api/v2.0/projects/{p.name}", json=body)
    return api_outcome(response, caller, (200,))


@check("api.project-delete")
def api_project_delete(world: World, p: Project, caller: str, auth: str) -> bool:
    if caller in ROBOTS:
        # A robot's permissions name the world's projects; a wrongful delete of this one fails
        # with 412 (it holds repositories) and so fails the cell either way.
        target = p.name
    else:
        target = _name(f"{p.name}-d")
        create_project(world.admin, target, p.public)
        if caller in ROLE_IDS:
            add_member(world.admin, target, world.usernames[caller], ROLE_IDS[caller])
    response = world.client(caller).delete(f"/api/v2.0/projects/{target}")
    allowed = api_outcome(response, caller, (200,))
    still = world.admin.get(f"/api/v2.0/projects/{target}").status_code
    assert still == (404 if allowed else 200), still
    return allowed


def _spare_membership(world: World, p: Project, member: bool) -> int | None:
    """Put the world's spare user in (as a guest) or out of ``p``, as the admin; returns its
    member id when in. One spare user serves every member cell: creating users is slow."""
    listed = world.admin.get(
        f"/api/v2.0/projects/{p.name}/members", params={"entityname": world.spare}
    )
    assert listed.status_code == 200, listed.text
    found = [m for m in listed.json() if m["entity_name"] == world.spare]
    for entry in found:
        if not member or entry["role_id"] != ROLE_IDS["guest"]:
            response = world.admin.delete(f"/api/v2.0/projects/{p.name}/members/{entry['id']}")
            assert response.status_code == 200, response.text
        else:
            return int(entry["id"])
    return add_member(world.admin, p.name, world.spare, ROLE_IDS["guest"]) if member else None


def _member_role(world: World, p: Project, member_id: int) -> int | None:
    response = world.admin.get(f"/api/v2.0/projects/{p.name}/members/{member_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return int(response.json()["role_id"])


@check("api.member-list")
def api_member_list(world: World, p: Project, caller: str, auth: str) -> bool:
    response = world.client(caller).get(f"/api/v2.0/projects/{p.name}/members")
    allowed = api_outcome(response, caller, (200,))
    if allowed:
        names = {m["entity_name"] for m in response.json()}
        assert world.usernames["developer"] in names, names
    return allowed


@check("api.member-add")
def api_member_add(world: World, p: Project, caller: str, auth: str) -> bool:
    _spare_membership(world, p, member=False)
    response = world.client(caller).post(
        f"/api/v2.0/projects/{p.name}/members",
        json={"role_id": ROLE_IDS["guest"], "member_user": {"username": world.spare}},
    )
    allowed = api_outcome(response, caller, (201,))
    listed = world.admin.get(
        f"/api/v2.0/projects/{p.name}/members", params={"entityname": world.spare}
    )
    assert listed.status_code == 200, listed.text
    assert (world.spare in [m["entity_name"] for m in listed.json()]) is allowed
    return allowed


@check("api.member-update")
def api_member_update(world: World, p: Project, caller: str, auth: str) -> bool:
    member_id = _spare_membership(world, p, member=True)
    response = world.client(caller).put(
        f"/api/v2.0/projects/{p.name}/members/{member_id}",
        json={"role_id": ROLE_IDS["limitedGuest"]},
    )
    allowed = api_outcome(response, caller, (200,))
    assert member_id is not None
    expected_role = ROLE_IDS["limitedGuest"] if allowed else ROLE_IDS["guest"]
    assert _member_role(world, p, member_id) == expected_role
    return allowed


@check("api.member-remove")
def api_member_remove(world: World, p: Project, caller: str, auth: str) -> bool:
    member_id = _spare_membership(world, p, member=True)
    response = world.client(caller).delete(f"/api/v2.0/projects/{p.name}/members/{member_id}")
    allowed = api_outcome(response, caller, (200,))
    assert member_id is not None
    assert (_member_role(world, p, member_id) is None) is allowed
    return allowed


@check("api.robot-list")
def api_robot_list(world: World, p: Project, caller: str, auth: str) -> bool:
    response = world.client(caller).get(
        "/api/v2.0/robots", params={"q": f"Level=project,ProjectID={p.id}"}
    )
    allowed = api_outcome(response, caller, (200,))
    assert not allowed or isinstance(response.json(), list)
    return allowed


@check("api.robot-create")
def api_robot_create(world: World, p: Project, caller: str, auth: str) -> bool:
    response = world.client(caller).post(
        "/api/v2.0/robots",
        json={
            "name": _name("made"),
            "level": "project",
            "duration": -1,
            "permissions": robot_permissions({p.name: NARROW_ROBOT_ACCESS}),
        },
    )
    allowed = api_outcome(response, caller, (201,))
    assert not allowed or response.json()["secret"]
    return allowed


@check("api.log-list")
def api_log_list(world: World, p: Project, caller: str, auth: str) -> bool:
    response = world.client(caller).get(f"/api/v2.0/projects/{p.name}/logs")
    allowed = api_outcome(response, caller, (200,))
    assert not allowed or isinstance(response.json(), list)
    return allowed


@check("api.audit-project")
def api_audit_project(world: World, p: Project, caller: str, auth: str) -> bool:
    # The world's pushes into the project are its entries; a listing includes everything
    # recorded before it.
    response = world.client(caller).get(
        "/api/v2.0/audit-logs", params={"q": f"resource=~{p.name}/", "page_size": "100"}
    )

    def has_project_entries(body: Any) -> bool:
        return any(str(entry["resource"]).startswith(f"{p.name}/") for entry in body)

    return listing_outcome(response, caller, has_project_entries)


@check("api.audit-list")
def api_audit_list(world: World, p: Project, caller: str, auth: str) -> bool:
    response = world.client(caller).get("/api/v2.0/audit-logs", params={"page_size": "1"})
    allowed = api_outcome(response, caller, (200,))
    assert not allowed or isinstance(response.json(), list)
    return allowed


@check("api.quota-read")
def api_quota_read(world: World, p: Project, caller: str, auth: str) -> bool:
    response = world.client(caller).get(f"/api/v2.0/quotas/{world.quota_id(p)}")
    allowed = api_outcome(response, caller, (200,))
    assert not allowed or "storage" in response.json()["hard"]
    return allowed


@check("api.quota-update")
def api_quota_update(world: World, p: Project, caller: str, auth: str) -> bool:
    response = world.client(caller).put(
        f"/api/v2.0/quotas/{world.quota_id(p)}", json={"hard": {"storage": -1}}
    )
    return api_outcome(response, caller, (200,))


@check("api.project-create")
def api_project_create(world: World, p: Project, caller: str, auth: str) -> bool:
    name = _name("perm-made")
    response = world.client(caller).post(
        "/api/v2.0/projects", json={"project_name": name, "metadata": {"public": "false"}}
    )
    allowed = api_outcome(response, caller, (201,))
    assert world.admin.get(f"/api/v2.0/projects/{name}").status_code == (200 if allowed else 404)
    return allowed


@check("api.user-list")
def api_user_list(world: World, p: Project, caller: str, auth: str) -> bool:
    response = world.client(caller).get("/api/v2.0/users")
    return api_outcome(response, caller, (200,))


@check("api.user-create")
def api_user_create(world: World, p: Project, caller: str, auth: str) -> bool:
    username = _name("perm-made")
    response = world.client(caller).post(
        "/api/v2.0/users",
        json={
            "username": username,
            "email": f"{username}@example.com",
            "realname": username,
            "password": PASSWORD,
        },
    )
    allowed = api_outcome(response, caller, (201,))
    found = world.admin.get("/api/v2.0/users", params={"q": f"username={username}"})
    assert found.status_code == 200, found.text
    assert (username in [u["username"] for u in found.json()]) is allowed
    return allowed


@check("api.usergroup-list")
def api_usergroup_list(world: World, p: Project, caller: str, auth: str) -> bool:
    response = world.client(caller).get("/api/v2.0/usergroups")
    return api_outcome(response, caller, (200,))


# -- the tests ----------------------------------------------------------------------------------


def test_every_row_of_the_doc_has_a_check() -> None:
    for table, rows in permission_tables().items():
        assert set(rows) == set(CHECKS), (table, set(rows) ^ set(CHECKS))


@pytest.mark.parametrize("cell", CELLS, ids=[cell.id for cell in CELLS])
def test_cell(world: World, cell: Cell) -> None:
    checker = CHECKS.get(cell.action)
    assert checker is not None, f"no check for {cell.action}"
    allowed = checker(world, world.projects[cell.table], cell.caller, cell.auth)
    expected = "allow" if cell.allowed else "deny"
    assert allowed is cell.allowed, f"{cell.caller} should get {expected} for {cell.action}"
