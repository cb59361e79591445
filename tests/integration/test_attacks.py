"""Attacks on the access model, against a real server on both backends.

Each test first shows the honest path works (the genuine token pulls, the robot's secret logs
in), then that the forged, stolen, stale or crafted variant is refused with a proper error, and
that nothing was read or written in a project the attacker may not touch.

- token scope escalation: push on another project's repository is left out of the token;
- forged JWTs: ``alg: none``, a tampered payload or signature, another key (same or other kid);
- tokens of disabled, expired, deleted and secret-refreshed robots;
- hostile repository names: ``..``, encoded slashes, upper case, look-alike letters, over-long;
- mounting a blob from a private project the caller cannot read;
- a member removed (or a user deleted) while holding a token;
- a quota exceeded mid-push, and concurrent pushes racing for the last bytes of a quota.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.oci import (
    OCI_LAYER,
    OCI_MANIFEST,
    Blob,
    Manifest,
    image_manifest,
    jwt_claims,
    push_blob,
    push_content,
    random_blob,
    raw_request,
)
from tests.support.server import PortsideServer

PASSWORD = "Attack-Test-1x"
CACHE_TTL_SECONDS = 10  # registry.cache_ttl_seconds, the default the fixture servers run with


# -- setting the scene ---------------------------------------------------------------------------


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _created(response: httpx.Response) -> httpx.Response:
    assert response.status_code == 201, (response.request.url, response.status_code, response.text)
    return response


@dataclass
class Arena:
    """Two private projects: ``a`` where ``dev`` is a Developer, ``b`` where it is nobody."""

    server: PortsideServer
    admin: httpx.Client
    service: str
    a: str
    b: str
    b_image: Manifest
    dev: tuple[str, str]

    def create_user(self, username: str) -> int:
        response = _created(
            self.admin.post(
                "/api/v2.0/users",
                json={
                    "username": username,
                    "email": f"{username}@example.com",
                    "realname": username,
                    "password": PASSWORD,
                },
            )
        )
        return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])

    def create_project(self, name: str, public: bool = False) -> int:
        _created(
            self.admin.post(
                "/api/v2.0/projects",
                json={"project_name": name, "metadata": {"public": str(public).lower()}},
            )
        )
        return int(self.admin.get(f"/api/v2.0/projects/{name}").json()["project_id"])

    def add_member(self, project: str, username: str, role_id: int) -> int:
        response = _created(
            self.admin.post(
                f"/api/v2.0/projects/{project}/members",
                json={"role_id": role_id, "member_user": {"username": username}},
            )
        )
        return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])

    def create_robot(self, project: str, access: list[tuple[str, str]]) -> dict[str, Any]:
        response = _created(
            self.admin.post(
                "/api/v2.0/robots",
                json={
                    "name": _name("bot"),
                    "level": "project",
                    "duration": -1,
                    "permissions": [
                        {
                            "kind": "project",
                            "namespace": project,
                            "access": [{"resource": r, "action": a} for r, a in access],
                        }
                    ],
                },
            )
        )
        body: dict[str, Any] = response.json()
        return body

    def token_response(self, auth: tuple[str, str] | None, *scopes: str) -> httpx.Response:
        query = httpx.QueryParams([("service", self.service), *(("scope", s) for s in scopes)])
        return httpx.get(f"{self.server.url}/service/token", params=query, auth=auth, timeout=30)

    def token(self, auth: tuple[str, str] | None, *scopes: str) -> str:
        response = self.token_response(auth, *scopes)
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    def bearer(self, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return httpx.request(
            method, f"{self.server.url}{path}", headers=headers, timeout=30, **kwargs
        )


@pytest.fixture(scope="module")
def arena(registry: PortsideServer) -> Iterator[Arena]:
    with registry.client() as admin:
        challenge = httpx.get(f"{registry.url}/v2/").headers["WWW-Authenticate"]
        service = challenge.split('service="', 1)[1].split('"', 1)[0]
        scene = Arena(
            registry, admin, service, _name("atk-a"), _name("atk-b"), image_manifest(), ("", "")
        )
        scene.create_project(scene.a)
        scene.create_project(scene.b)
        dev = _name("atk-dev")
        scene.create_user(dev)
        scene.add_member(scene.a, dev, 2)
        scene.dev = (dev, PASSWORD)
        push_content(admin, f"{scene.a}/app", image_manifest(), "v1")
        push_content(admin, f"{scene.b}/app", scene.b_image, "v1")
        yield scene


def assert_oci_refusal(response: httpx.Response, status: int = 401) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    if response.request.method != "HEAD":
        body = response.json()
        assert body["errors"][0]["code"] in ("UNAUTHORIZED", "DENIED"), body


def assert_invalid_token(response: httpx.Response) -> None:
    assert_oci_refusal(response, 401)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"], response.headers


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return header


# -- token scope -----------------------------------------------------------------------------------


def test_push_on_another_projects_repository_is_left_out_of_the_token(arena: Arena) -> None:
    mine, theirs = f"{arena.a}/app", f"{arena.b}/app"
    token = arena.token(
        arena.dev,
        f"repository:{theirs}:pull,push",
        f"repository:{mine}:pull,push",
        f"repository:{arena.b}/new:push",
    )
    assert jwt_claims(token)["access"] == [
        {"type": "repository", "name": mine, "actions": ["pull", "push"]}
    ]
    # The token does what it lists, and nothing in the other project.
    assert arena.bearer(token, "GET", f"/v2/{mine}/manifests/v1").status_code == 200
    assert_oci_refusal(arena.bearer(token, "GET", f"/v2/{theirs}/manifests/v1"))
    blob = random_blob(128)
    refused = arena.bearer(
        token,
        "POST",
        f"/v2/{theirs}/blobs/uploads/",
        params={"digest": blob.digest},
        content=blob.data,
    )
    assert_oci_refusal(refused)
    assert arena.admin.head(f"/v2/{theirs}/blobs/{blob.digest}").status_code == 404
    # Basic credentials are refused the same push.
    with httpx.Client(base_url=arena.server.url, auth=arena.dev) as dev:
        assert_oci_refusal(
            dev.post(
                f"/v2/{theirs}/blobs/uploads/", params={"digest": blob.digest}, content=blob.data
            ),
            403,
        )


# -- forged tokens ---------------------------------------------------------------------------------


@pytest.fixture
def genuine(arena: Arena) -> str:
    """A real token of ``dev`` for pull on its own project; proven to work."""
    token = arena.token(arena.dev, f"repository:{arena.a}/app:pull")
    assert arena.bearer(token, "GET", f"/v2/{arena.a}/app/manifests/v1").status_code == 200
    return token


def _escalated_claims(arena: Arena, genuine: str) -> dict[str, Any]:
    """The genuine token's claims, now claiming the admin and everything in project ``b``."""
    claims = jwt_claims(genuine)
    claims["sub"] = "admin"
    claims["access"] = [
        {"type": "repository", "name": f"{arena.b}/app", "actions": ["pull", "push", "delete"]}
    ]
    return claims


def _target(arena: Arena) -> str:
    return f"/v2/{arena.b}/app/manifests/v1"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(arena: Arena, genuine: str, alg: str) -> None:
    header = {**_header(genuine), "alg": alg}
    body = (
        _b64(json.dumps(header).encode())
        + "."
        + _b64(json.dumps(_escalated_claims(arena, genuine)).encode())
    )
    for signature in ("", genuine.split(".")[2]):
        assert_invalid_token(arena.bearer(f"{body}.{signature}", "GET", _target(arena)))


def test_hs256_signed_token_is_refused(arena: Arena, genuine: str) -> None:
    """Algorithm confusion: a MAC keyed with something public (here the kid) is not a signature."""
    kid = _header(genuine)["kid"]
    forged = jwt.encode(
        _escalated_claims(arena, genuine), kid, algorithm="HS256", headers={"kid": kid}
    )
    assert_invalid_token(arena.bearer(forged, "GET", _target(arena)))


def test_tampered_payload_is_refused(arena: Arena, genuine: str) -> None:
    header, _, signature = genuine.split(".")
    payload = _b64(json.dumps(_escalated_claims(arena, genuine)).encode())
    assert_invalid_token(arena.bearer(f"{header}.{payload}.{signature}", "GET", _target(arena)))
    # Even a change that widens nothing breaks the signature.
    claims = jwt_claims(genuine)
    claims["jti"] = "x" + str(claims.get("jti", ""))
    payload = _b64(json.dumps(claims).encode())
    own = f"/v2/{arena.a}/app/manifests/v1"
    assert_invalid_token(arena.bearer(f"{header}.{payload}.{signature}", "GET", own))


def test_tampered_signature_is_refused(arena: Arena, genuine: str) -> None:
    header, payload, signature = genuine.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    own = f"/v2/{arena.a}/app/manifests/v1"
    for forged in (
        f"{header}.{payload}.{_b64(bytes(raw))}",
        f"{header}.{payload}.{signature[:-4]}",
        f"{header}.{payload}.",
        f"{header}.{payload}",
    ):
        assert_invalid_token(arena.bearer(forged, "GET", own))


@pytest.mark.parametrize("kid", ["same", "random", "absent"])
def test_token_signed_with_another_key_is_refused(arena: Arena, genuine: str, kid: str) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    headers = {
        "same": {"kid": _header(genuine)["kid"]},
        "random": {"kid": secrets.token_hex(16)},
        "absent": {},
    }[kid]
    claims = _escalated_claims(arena, genuine)
    forged = jwt.encode(claims, other, algorithm="ES256", headers=headers)
    assert_invalid_token(arena.bearer(forged, "GET", _target(arena)))
    # The same claims for the caller's own repository: still not signed by the registry.
    claims["sub"] = arena.dev[0]
    claims["access"] = [{"type": "repository", "name": f"{arena.a}/app", "actions": ["pull"]}]
    forged = jwt.encode(claims, other, algorithm="ES256", headers=headers)
    assert_invalid_token(arena.bearer(forged, "GET", f"/v2/{arena.a}/app/manifests/v1"))


# -- robots ----------------------------------------------------------------------------------------


@dataclass
class RobotUse:
    id: int
    name: str
    secret: str
    token: str
    path: str


@pytest.fixture
def robot(arena: Arena) -> RobotUse:
    """A project robot of ``a`` holding a token, proven to work."""
    created = arena.create_robot(arena.a, [("repository", "pull"), ("repository", "push")])
    path = f"/v2/{arena.a}/app/manifests/v1"
    token = arena.token((created["name"], created["secret"]), f"repository:{arena.a}/app:pull")
    assert arena.bearer(token, "GET", path).status_code == 200
    return RobotUse(int(created["id"]), created["name"], created["secret"], token, path)


def _assert_robot_shut_out(arena: Arena, robot: RobotUse, secret: str | None = None) -> None:
    assert_invalid_token(arena.bearer(robot.token, "GET", robot.path))
    credentials = (robot.name, secret or robot.secret)
    assert arena.token_response(credentials, f"repository:{arena.a}/app:pull").status_code == 401
    refused = httpx.get(f"{arena.server.url}{robot.path}", auth=credentials, timeout=30)
    assert_oci_refusal(refused, 401)


def test_disabled_robots_token_is_refused(arena: Arena, robot: RobotUse) -> None:
    current = arena.admin.get(f"/api/v2.0/robots/{robot.id}")
    assert current.status_code == 200, current.text
    response = arena.admin.put(
        f"/api/v2.0/robots/{robot.id}", json={**current.json(), "disable": True}
    )
    assert response.status_code == 200, response.text
    _assert_robot_shut_out(arena, robot)


def test_deleted_robots_token_is_refused(arena: Arena, robot: RobotUse) -> None:
    assert arena.admin.delete(f"/api/v2.0/robots/{robot.id}").status_code == 200
    _assert_robot_shut_out(arena, robot)


def test_refreshed_robots_old_token_and_secret_are_refused(arena: Arena, robot: RobotUse) -> None:
    response = arena.admin.patch(f"/api/v2.0/robots/{robot.id}", json={})
    assert response.status_code == 200, response.text
    new_secret = response.json()["secret"]
    assert new_secret != robot.secret
    _assert_robot_shut_out(arena, robot)
    token = arena.token((robot.name, new_secret), f"repository:{arena.a}/app:pull")
    assert arena.bearer(token, "GET", robot.path).status_code == 200


def _sync_database_url(server: PortsideServer) -> str:
    url = server.env.get("PORTSIDE_DATABASE__URL")
    if url:
        return url.replace("+asyncpg", "+psycopg2")
    return f"sqlite:///{(server.data_dir / 'portside.db').resolve()}"


def test_expired_robots_token_is_refused_within_the_cache_window(
    arena: Arena, robot: RobotUse
) -> None:
    """Expiry needs no change through the API, so it is seen when the robot cache next looks
    (``registry.cache_ttl_seconds``), long before the token itself expires."""
    engine = sa.create_engine(_sync_database_url(arena.server))
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    try:
        with engine.begin() as connection:
            updated = connection.execute(
                sa.text("UPDATE robots SET expires_at = :past WHERE id = :id"),
                {"past": past, "id": robot.id},
            )
            assert updated.rowcount == 1
    finally:
        engine.dispose()
    deadline = time.monotonic() + CACHE_TTL_SECONDS + 5
    while arena.bearer(robot.token, "GET", robot.path).status_code == 200:
        assert time.monotonic() < deadline, "an expired robot's token still works"
        time.sleep(0.5)
    _assert_robot_shut_out(arena, robot)


# -- hostile repository names ----------------------------------------------------------------------


def _lookalike(name: str) -> str:
    """``name`` with its first Latin 'a' or 'e' replaced by the Cyrillic look-alike."""
    for latin, cyrillic in (("a", "\u0430"), ("e", "\u0435")):
        if latin in name:
            return name.replace(latin, cyrillic, 1)
    raise AssertionError(name)


def _hostile_names(arena: Arena) -> dict[str, str]:
    """Raw (already URL-encoded where meant) repository-name parts of a request target."""
    a, b = arena.a, arena.b
    return {
        "dotdot": f"{a}/../{b}/app",
        "dotdot-encoded": f"{a}/%2e%2e/{b}/app",
        "dotdot-double-encoded": f"{a}/%252e%252e/{b}/app",
        "dot": f"{a}/./app",
        "encoded-slash": f"{a}%2Fapp",
        "encoded-slash-lower": f"{a}%2fapp",
        "encoded-slash-other-project": f"{a}/..%2F{b}/app",
        "double-encoded-slash": f"{a}%252Fapp",
        "upper-case": f"{a}/App",
        "upper-case-project": f"{a.upper()}/app",
        "cyrillic-project": quote(_lookalike(a)) + "/app",
        "cyrillic-repo": f"{a}/" + quote("\u0430pp"),
        "over-long": f"{a}/" + "x" * 300,
        "much-over-long": f"{a}/" + "x" * 4000,
        "empty-component": f"{a}//app",
        "backslash": f"{a}%5C..%5C{b}%5Capp",
    }


HOSTILE = [
    "dotdot",
    "dotdot-encoded",
    "dotdot-double-encoded",
    "dot",
    "encoded-slash",
    "encoded-slash-lower",
    "encoded-slash-other-project",
    "double-encoded-slash",
    "upper-case",
    "upper-case-project",
    "cyrillic-project",
    "cyrillic-repo",
    "over-long",
    "much-over-long",
    "empty-component",
    "backslash",
]


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("who", ["developer", "admin"])
def test_hostile_repository_names_are_refused(arena: Arena, kind: str, who: str) -> None:
    name = _hostile_names(arena)[kind]
    auth = arena.dev if who == "developer" else (arena.server.username, arena.server.password)
    blob = random_blob(64)
    requests: list[tuple[str, str, bytes | None, dict[str, str]]] = [
        ("GET", f"/v2/{name}/manifests/v1", None, {"Accept": OCI_MANIFEST}),
        ("HEAD", f"/v2/{name}/manifests/v1", None, {"Accept": OCI_MANIFEST}),
        ("GET", f"/v2/{name}/tags/list", None, {}),
        ("GET", f"/v2/{name}/blobs/{arena.b_image.blobs[0].digest}", None, {}),
        ("POST", f"/v2/{name}/blobs/uploads/?digest={blob.digest}", blob.data, {}),
        ("PUT", f"/v2/{name}/manifests/v2", arena.b_image.raw, {"Content-Type": OCI_MANIFEST}),
        ("DELETE", f"/v2/{name}/manifests/{arena.b_image.digest}", None, {}),
    ]
    for method, target, body, headers in requests:
        response = raw_request(arena.server.url, method, target, headers, body, auth)
        where = f"{method} {target[:120]}"
        assert 400 <= response.status_code < 500, (where, response.status_code, response.text)
        if method != "HEAD":
            assert response.headers["Content-Type"].startswith("application/json"), where
            assert response.json()["errors"][0]["code"], where
    # Nothing reached project b: its content is intact and nothing new appeared there.
    assert arena.admin.get(f"/v2/{arena.b}/app/manifests/v1").status_code == 200
    assert arena.admin.head(f"/v2/{arena.b}/app/blobs/{blob.digest}").status_code == 404
    assert arena.admin.get(f"/v2/{arena.b}/app/manifests/v2").status_code == 404


# Decoded, an encoded slash is an ordinary valid name; every other decoded name is invalid.
@pytest.mark.parametrize(
    "kind",
    [k for k in HOSTILE if not k.startswith("encoded-slash")] + ["encoded-slash-other-project"],
)
def test_token_service_grants_nothing_on_hostile_names(arena: Arena, kind: str) -> None:
    """Names /v2/ would refuse are never granted; in particular none that leads into ``b``."""
    name = _hostile_names(arena)[kind]
    response = arena.token_response(arena.dev, f"repository:{unquote(name)}:pull,push")
    if response.status_code == 200:
        assert jwt_claims(response.json()["token"])["access"] == [], kind
    else:
        assert response.status_code == 400, (response.status_code, response.text)


# -- mount -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth_kind", ["bearer", "basic"])
@pytest.mark.parametrize("explicit_source", [True, False], ids=["from", "automatic"])
def test_mount_from_a_private_project_the_caller_cannot_read_does_not_happen(
    arena: Arena, auth_kind: str, explicit_source: bool
) -> None:
    destination = f"{arena.a}/{_name('mnt')}"
    layer = arena.b_image.blobs[1]
    params = {"mount": layer.digest}
    if explicit_source:
        params["from"] = f"{arena.b}/app"
    path = f"/v2/{destination}/blobs/uploads/"
    if auth_kind == "bearer":
        token = arena.token(
            arena.dev, f"repository:{destination}:pull,push", f"repository:{arena.b}/app:pull"
        )
        response = arena.bearer(token, "POST", path, params=params)
    else:
        response = httpx.post(f"{arena.server.url}{path}", params=params, auth=arena.dev)
    assert response.status_code == 202, response.text  # an upload starts instead
    assert response.headers["Location"].startswith(f"/v2/{destination}/blobs/uploads/")
    assert arena.admin.head(f"/v2/{destination}/blobs/{layer.digest}").status_code == 404
    # The caller can still not read it from its own project either.
    with httpx.Client(base_url=arena.server.url, auth=arena.dev) as dev:
        assert dev.head(f"/v2/{destination}/blobs/{layer.digest}").status_code == 404


def test_mount_from_a_readable_project_does_happen(arena: Arena) -> None:
    """The control for the test above: with pull on the source the same request mounts."""
    destination = f"{arena.a}/{_name('mnt')}"
    layer = arena.b_image.blobs[1]
    response = arena.admin.post(
        f"/v2/{destination}/blobs/uploads/",
        params={"mount": layer.digest, "from": f"{arena.b}/app"},
    )
    assert response.status_code == 201, response.text
    assert arena.admin.head(f"/v2/{destination}/blobs/{layer.digest}").status_code == 200


# -- revocation while holding a token --------------------------------------------------------------


def test_member_removed_while_holding_a_token_is_refused_at_once(arena: Arena) -> None:
    username = _name("atk-leaver")
    arena.create_user(username)
    member_id = arena.add_member(arena.a, username, 2)
    credentials = (username, PASSWORD)
    repo = f"{arena.a}/app"
    token = arena.token(credentials, f"repository:{repo}:pull,push")
    assert arena.bearer(token, "GET", f"/v2/{repo}/manifests/v1").status_code == 200
    response = arena.admin.delete(f"/api/v2.0/projects/{arena.a}/members/{member_id}")
    assert response.status_code == 200, response.text
    # The very next request: the removing replica dropped its cached decision.
    assert_oci_refusal(arena.bearer(token, "GET", f"/v2/{repo}/manifests/v1"))
    blob = random_blob(64)
    pushed = arena.bearer(
        token,
        "POST",
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": blob.digest},
        content=blob.data,
    )
    assert_oci_refusal(pushed)
    assert arena.admin.head(f"/v2/{repo}/blobs/{blob.digest}").status_code == 404
    assert jwt_claims(arena.token(credentials, f"repository:{repo}:pull,push"))["access"] == []


def test_deleted_user_while_holding_a_token_is_refused_at_once(arena: Arena) -> None:
    username = _name("atk-gone")
    user_id = arena.create_user(username)
    arena.add_member(arena.a, username, 2)
    repo = f"{arena.a}/app"
    token = arena.token((username, PASSWORD), f"repository:{repo}:pull")
    assert arena.bearer(token, "GET", f"/v2/{repo}/manifests/v1").status_code == 200
    assert arena.admin.delete(f"/api/v2.0/users/{user_id}").status_code == 200
    assert_invalid_token(arena.bearer(token, "GET", f"/v2/{repo}/manifests/v1"))


# -- quotas ----------------------------------------------------------------------------------------


def _quota_id(arena: Arena, project_id: int) -> int:
    response = arena.admin.get(
        "/api/v2.0/quotas", params={"reference": "project", "reference_id": str(project_id)}
    )
    assert response.status_code == 200, response.text
    (quota,) = [q for q in response.json() if str(q["ref"]["id"]) == str(project_id)]
    return int(quota["id"])


def _limited_project(arena: Arena, hard: int) -> tuple[str, int]:
    name = _name("atk-quota")
    quota_id = _quota_id(arena, arena.create_project(name))
    response = arena.admin.put(f"/api/v2.0/quotas/{quota_id}", json={"hard": {"storage": hard}})
    assert response.status_code == 200, response.text
    return name, quota_id


def _used(arena: Arena, quota_id: int) -> int:
    response = arena.admin.get(f"/api/v2.0/quotas/{quota_id}")
    assert response.status_code == 200, response.text
    return int(response.json()["used"]["storage"])


def _assert_quota_refusal(response: httpx.Response, hard: int) -> None:
    assert response.status_code == 403, (response.status_code, response.text)
    error = response.json()["errors"][0]
    assert error["code"] == "DENIED", error
    assert str(hard) in error["message"], error  # the message gives the numbers


def test_quota_exceeded_mid_push_keeps_nothing(arena: Arena) -> None:
    hard = 4096
    project, quota_id = _limited_project(arena, hard)
    repo = f"{project}/app"
    first, second, third = random_blob(3000), random_blob(2000), random_blob(2000)
    fits = arena.admin.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": first.digest}, content=first.data
    )
    assert fits.status_code == 201, fits.text
    # Monolithic: refused, not kept.
    refused = arena.admin.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": second.digest}, content=second.data
    )
    _assert_quota_refusal(refused, hard)
    assert arena.admin.head(f"/v2/{repo}/blobs/{second.digest}").status_code == 404
    # Chunked: the data may arrive, but the blob is refused when it would be kept.
    started = arena.admin.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    patched = arena.admin.patch(
        location,
        content=third.data,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"0-{third.size - 1}",
        },
    )
    if patched.status_code == 202:
        closed = arena.admin.put(patched.headers["Location"], params={"digest": third.digest})
        _assert_quota_refusal(closed, hard)
    else:
        _assert_quota_refusal(patched, hard)
    assert arena.admin.head(f"/v2/{repo}/blobs/{third.digest}").status_code == 404
    assert _used(arena, quota_id) <= hard


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_pushes_racing_for_the_last_bytes_of_a_quota(arena: Arena, round_: int) -> None:
    hard = 3000
    project, quota_id = _limited_project(arena, hard)
    blobs = [random_blob(2000) for _ in range(2)]
    barrier = threading.Barrier(len(blobs))
    results: list[httpx.Response] = []

    def push(index: int) -> None:
        blob = blobs[index]
        with arena.server.client() as client:
            barrier.wait()
            results.append(
                client.post(
                    f"/v2/{project}/r{index}/blobs/uploads/",
                    params={"digest": blob.digest},
                    content=blob.data,
                )
            )

    threads = [threading.Thread(target=push, args=(i,)) for i in range(len(blobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201, 403], [(r.status_code, r.text) for r in results]
    _assert_quota_refusal(next(r for r in results if r.status_code == 403), hard)
    kept = [
        arena.admin.head(f"/v2/{project}/r{i}/blobs/{blob.digest}").status_code == 200
        for i, blob in enumerate(blobs)
    ]
    assert sum(kept) == 1, kept
    assert _used(arena, quota_id) == 2000


# -- hostile text: NUL, other control characters, lone surrogates ---------------------------------

NUL_REQUESTS = {
    # Anonymous: refused before anything looks at who is calling.
    "repository query": ("anonymous", "/api/v2.0/repositories?q=name%3D~%00"),
    "search": ("anonymous", "/api/v2.0/search?q=%00"),
    "path": ("anonymous", "/api/v2.0/projects/a%00b"),
    "other control character": ("anonymous", "/api/v2.0/repositories?q=name%3D~a%1Bb"),
    # As admin, so the request would reach the database.
    "artifact query": ("admin", "/api/v2.0/projects/{a}/repositories/app/artifacts?q=tags%3D~%00"),
    "audit log query": ("admin", "/api/v2.0/audit-logs?q=operation%3D%00"),
    "user search": ("admin", "/api/v2.0/users/search?username=a%00"),
}


def _assert_harbor_bad_request(response: httpx.Response) -> None:
    assert response.status_code == 400, (response.request.url, response.status_code, response.text)
    error = response.json()["errors"][0]
    assert error["code"] == "BAD_REQUEST", error
    assert "control character" in error["message"], error


def _assert_oci_bad_request(response: httpx.Response, code: str = "UNSUPPORTED") -> None:
    assert response.status_code == 400, (response.request.url, response.status_code, response.text)
    error = response.json()["errors"][0]
    assert error["code"] == code, error
    assert "control character" in error["message"], error


@pytest.mark.parametrize("kind", list(NUL_REQUESTS))
def test_hostile_text_in_management_requests_is_refused(arena: Arena, kind: str) -> None:
    who, target = NUL_REQUESTS[kind]
    auth = (arena.server.username, arena.server.password) if who == "admin" else None
    response = raw_request(arena.server.url, "GET", target.format(a=arena.a), auth=auth)
    _assert_harbor_bad_request(response)


def test_hostile_text_in_registry_requests_is_refused(arena: Arena) -> None:
    url, auth = arena.server.url, (arena.server.username, arena.server.password)
    _assert_oci_bad_request(raw_request(url, "GET", "/v2/_catalog?last=%00", auth=auth))
    _assert_oci_bad_request(raw_request(url, "GET", "/v2/_catalog?last=%00"))  # anonymous
    _assert_oci_bad_request(
        raw_request(url, "GET", f"/v2/{arena.a}/a%00b/manifests/v1", auth=auth), "NAME_INVALID"
    )
    _assert_oci_bad_request(
        raw_request(url, "GET", f"/v2/{arena.a}/app/tags/list?last=%00", auth=auth)
    )
    # The honest request still works.
    assert raw_request(url, "GET", "/v2/_catalog?last=a", auth=auth).status_code == 200


def test_hostile_text_in_token_requests_is_refused(arena: Arena) -> None:
    url = arena.server.url
    token_url = f"{url}/service/token?service={arena.service}"
    _assert_oci_bad_request(httpx.get(token_url, auth=("a\x00", "pw"), timeout=30))
    _assert_oci_bad_request(httpx.get(token_url, auth=(arena.dev[0], "pw\x00"), timeout=30))
    _assert_oci_bad_request(httpx.get(f"{token_url}&scope=repository:a%00:pull", timeout=30))
    for username in ("a\x00", "a\x07"):
        form = {"grant_type": "password", "username": username, "password": "pw"}
        _assert_oci_bad_request(httpx.post(f"{url}/service/token", data=form, timeout=30))
    # The form body raw, with a NUL byte rather than its escape.
    raw = b"grant_type=password&username=a\x00&password=pw"
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    response = httpx.post(f"{url}/service/token", content=raw, headers=form_type, timeout=30)
    _assert_oci_bad_request(response)
    # Honest logins still work, by GET and POST.
    assert httpx.get(token_url, auth=arena.dev, timeout=30).status_code == 200
    form = {"grant_type": "password", "username": arena.dev[0], "password": arena.dev[1]}
    assert httpx.post(f"{url}/service/token", data=form, timeout=30).status_code == 200


@pytest.mark.parametrize(
    "escape", ["\\u0000", "\\u001b", "\\b", "\\ud800", "\\udc00x", "\\u007f"], ids=repr
)
def test_hostile_text_in_json_bodies_is_refused(arena: Arena, escape: str) -> None:
    path = f"/api/v2.0/projects/{arena.a}/repositories/app"
    body = ('{"description": "before ' + escape + ' after"}').encode()
    response = arena.admin.put(path, content=body, headers={"Content-Type": "application/json"})
    _assert_harbor_bad_request(response)
    # In a key, nested, and without a content type (FastAPI parses that as JSON too).
    nested = ('{"project_name": "x", "metadata": {"public' + escape + '": "true"}}').encode()
    _assert_harbor_bad_request(arena.admin.post("/api/v2.0/projects", content=nested))
    assert arena.admin.get(path).json().get("description", "") == ""


def test_text_that_only_looks_hostile_is_kept(arena: Arena) -> None:
    """An escaped backslash before ``u0000`` is the six characters ``\\u0000``, and tabs,
    line breaks and characters outside the BMP (a surrogate pair) are ordinary text."""
    path = f"/api/v2.0/projects/{arena.a}/repositories/app"
    for description in ("literal \\u0000 here", "two\nlines\tand\r\n a \U0001f600"):
        assert arena.admin.put(path, json={"description": description}).status_code == 200
        assert arena.admin.get(path).json()["description"] == description
    assert arena.admin.put(path, json={"description": ""}).status_code == 200


@pytest.mark.parametrize(
    "hostile",
    [{"artifact_type": "application/vnd.x\x00y"}, {"annotations": {"note": "a \x1b b"}}],
    ids=["artifactType", "annotation"],
)
def test_hostile_text_in_a_manifest_is_refused(arena: Arena, hostile: dict[str, Any]) -> None:
    """A manifest is JSON whose strings reach database columns: on PostgreSQL an artifactType
    with a NUL was a 500."""
    manifest = image_manifest(**hostile)
    assert "\\u00" in manifest.raw.decode()
    for blob in manifest.blobs:
        push_blob(arena.admin, f"{arena.a}/hostile", blob)
    response = arena.admin.put(
        f"/v2/{arena.a}/hostile/manifests/v1",
        content=manifest.raw,
        headers={"Content-Type": manifest.media_type},
    )
    _assert_oci_bad_request(response, "MANIFEST_INVALID")


def test_blob_bytes_are_not_text(arena: Arena) -> None:
    """Blobs are content, stored byte for byte, NULs and escapes included; so is a manifest
    whose strings hold tabs, line breaks and a surrogate pair."""
    blob = Blob(b"\x00\\u0000 not text \x00" + secrets.token_bytes(16), OCI_LAYER)
    manifest = image_manifest(layers=[blob], annotations={"note": "a\tb\nc \U0001f600"})
    assert "\\ud83d\\ude00" in manifest.raw.decode()
    push_content(arena.admin, f"{arena.a}/bytes", manifest, "v1")
    pulled = arena.admin.get(f"/v2/{arena.a}/bytes/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert pulled.status_code == 200 and pulled.content == manifest.raw
    layer = arena.admin.get(f"/v2/{arena.a}/bytes/blobs/{blob.digest}")
    assert layer.content == blob.data
