"""Authentication: the ``/v2/`` challenge, HTTP basic, and the Docker token flow
(docs/spec/auth/token.md, jwt.md, oauth.md in distribution), as registry clients use them."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.oci import (
    OCI_MANIFEST,
    assert_error,
    blob_path,
    image_manifest,
    jwt_claims,
    manifest_path,
    push_blob,
    push_content,
    random_blob,
)
from tests.support.server import PortsideServer


@pytest.fixture
def anonymous(registry: PortsideServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        yield client


@pytest.fixture
def admin(registry: PortsideServer) -> Iterator[httpx.Client]:
    with registry.client() as client:
        yield client


@pytest.fixture
def private_repo(admin: httpx.Client) -> str:
    """A repository name in a new private project (``library`` is public)."""
    project = f"private-{secrets.token_hex(4)}"
    response = admin.post(
        "/api/v2.0/projects", json={"project_name": project, "metadata": {"public": "false"}}
    )
    assert response.status_code == 201, response.text
    return f"{project}/t{secrets.token_hex(4)}"


def _challenge(response: httpx.Response) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate: Bearer k="v",...`` header."""
    header = response.headers["WWW-Authenticate"]
    assert header.startswith("Bearer "), header
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def _token(
    registry: PortsideServer, *scopes: str, auth: tuple[str, str] | None = None
) -> dict[str, Any]:
    params = [("service", "portside"), *(("scope", scope) for scope in scopes)]
    response = httpx.get(f"{registry.url}/service/token", params=params, auth=auth, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _admin_token(registry: PortsideServer, *scopes: str) -> str:
    token: str = _token(registry, *scopes, auth=(registry.username, registry.password))["token"]
    return token


def _bearer(registry: PortsideServer, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=registry.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


# -- /v2/ ---------------------------------------------------------------------------------------


def test_v2_without_credentials_is_a_bearer_challenge(
    registry: PortsideServer, anonymous: httpx.Client
) -> None:
    response = anonymous.get("/v2/")
    assert_error(response, 401, "UNAUTHORIZED")
    challenge = _challenge(response)
    assert challenge["realm"] == f"{registry.url}/service/token"
    assert challenge["service"] == "portside"


def test_v2_with_basic_auth(admin: httpx.Client) -> None:
    response = admin.get("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert admin.head("/v2/").status_code == 200


@pytest.mark.parametrize(
    "auth", [("admin", "wrong-password"), ("nobody", "Portside-Test-1"), ("admin", "")]
)
def test_v2_with_wrong_credentials_is_401(registry: PortsideServer, auth: tuple[str, str]) -> None:
    response = httpx.get(f"{registry.url}/v2/", auth=auth, timeout=30)
    assert_error(response, 401, "UNAUTHORIZED")


@pytest.mark.parametrize("header", ["Basic !!!not-base64", "Basic", "Digest abc", "Bearer"])
def test_v2_with_garbage_authorization_is_401(registry: PortsideServer, header: str) -> None:
    response = httpx.get(f"{registry.url}/v2/", headers={"Authorization": header}, timeout=30)
    assert_error(response, 401, "UNAUTHORIZED")


def test_anonymous_pull_of_a_public_project_works(
    admin: httpx.Client, anonymous: httpx.Client, repo: str
) -> None:
    push_content(admin, repo, image_manifest(), "v1")
    assert anonymous.get(manifest_path(repo, "v1")).status_code == 200
    response = anonymous.post(f"/v2/{repo}/blobs/uploads/")
    assert_error(response, 401, "UNAUTHORIZED")
    assert _challenge(response)["scope"] == f"repository:{repo}:push"


def test_anonymous_pull_is_challenged_with_its_scope(
    admin: httpx.Client, anonymous: httpx.Client, private_repo: str
) -> None:
    repo = private_repo
    push_content(admin, repo, image_manifest(), "v1")
    response = anonymous.get(manifest_path(repo, "v1"))
    assert_error(response, 401, "UNAUTHORIZED")
    assert _challenge(response)["scope"] == f"repository:{repo}:pull"
    response = anonymous.post(f"/v2/{repo}/blobs/uploads/")
    assert _challenge(response)["scope"] == f"repository:{repo}:push"


# -- token service ------------------------------------------------------------------------------


def test_token_for_pull_and_push(registry: PortsideServer, repo: str) -> None:
    before = int(time.time())
    body = _token(
        registry, f"repository:{repo}:pull,push", auth=(registry.username, registry.password)
    )
    assert body["token"] == body["access_token"]
    assert isinstance(body["expires_in"], int)
    assert body["expires_in"] >= 60
    issued = dt.datetime.fromisoformat(body["issued_at"].replace("Z", "+00:00"))
    assert abs(issued.timestamp() - before) < 60
    claims = jwt_claims(body["token"])
    assert claims["access"] == [{"type": "repository", "name": repo, "actions": ["pull", "push"]}]
    assert claims["sub"] == registry.username
    assert claims["aud"] == "portside"
    assert claims["exp"] - claims["iat"] == body["expires_in"]

    manifest = image_manifest()
    with _bearer(registry, body["token"]) as client:
        assert client.get("/v2/").status_code == 200
        push_content(client, repo, manifest, "v1")
        response = client.get(manifest_path(repo, "v1"))
        assert response.status_code == 200
        assert response.content == manifest.raw
        layer = manifest.blobs[1]
        assert client.get(blob_path(repo, layer.digest)).content == layer.data


def test_token_with_wrong_password_is_401(registry: PortsideServer, repo: str) -> None:
    response = httpx.get(
        f"{registry.url}/service/token",
        params={"scope": f"repository:{repo}:pull"},
        auth=(registry.username, "not-the-password"),
        timeout=30,
    )
    assert_error(response, 401, "UNAUTHORIZED")


def test_anonymous_token_grants_pull_only_on_public_projects(
    registry: PortsideServer, admin: httpx.Client, repo: str
) -> None:
    body = _token(registry, f"repository:{repo}:pull,push")
    assert jwt_claims(body["token"])["access"] == [
        {"type": "repository", "name": repo, "actions": ["pull"]}
    ]


def test_anonymous_token_grants_nothing_on_private_projects(
    registry: PortsideServer, admin: httpx.Client, private_repo: str
) -> None:
    repo = private_repo
    push_content(admin, repo, image_manifest(), "v1")
    body = _token(registry, f"repository:{repo}:pull,push")
    assert jwt_claims(body["token"])["access"] == []
    with _bearer(registry, body["token"]) as client:
        response = client.get(manifest_path(repo, "v1"))
        assert_error(response, 401, "UNAUTHORIZED")
        assert _challenge(response)["error"] == "insufficient_scope"


def test_pull_token_cannot_push(registry: PortsideServer, admin: httpx.Client, repo: str) -> None:
    manifest = image_manifest()
    for blob in manifest.blobs:
        push_blob(admin, repo, blob)
    token = _admin_token(registry, f"repository:{repo}:pull")
    assert jwt_claims(token)["access"][0]["actions"] == ["pull"]
    with _bearer(registry, token) as client:
        response = client.put(
            manifest_path(repo, "v1"), content=manifest.raw, headers={"Content-Type": OCI_MANIFEST}
        )
        assert_error(response, 401, "UNAUTHORIZED")
        challenge = _challenge(response)
        assert challenge["error"] == "insufficient_scope"
        assert challenge["scope"] == f"repository:{repo}:push"
        assert_error(client.post(f"/v2/{repo}/blobs/uploads/"), 401, "UNAUTHORIZED")
        assert_error(client.delete(blob_path(repo, manifest.blobs[0].digest)), 401)
        blob = manifest.blobs[0]
        assert client.get(blob_path(repo, blob.digest)).content == blob.data
    assert admin.get(manifest_path(repo, "v1")).status_code == 404


def test_token_is_bound_to_its_repository(registry: PortsideServer, repo: str) -> None:
    token = _admin_token(registry, f"repository:{repo}:pull,push")
    with _bearer(registry, token) as client:
        response = client.get(f"/v2/{repo}-other/tags/list")
        assert_error(response, 401, "UNAUTHORIZED")
        assert _challenge(response)["error"] == "insufficient_scope"


def test_mount_with_token_needs_pull_on_the_source(
    registry: PortsideServer, admin: httpx.Client, repo: str
) -> None:
    blob = random_blob()
    source, target = f"{repo}-source", f"{repo}-target"
    push_blob(admin, source, blob)
    params = {"mount": blob.digest, "from": source}
    narrow = _admin_token(registry, f"repository:{target}:pull,push")
    with _bearer(registry, narrow) as client:
        response = client.post(f"/v2/{target}/blobs/uploads/", params=params)
        assert response.status_code == 202, response.text
        assert client.head(blob_path(target, blob.digest)).status_code == 404
    wide = _admin_token(registry, f"repository:{target}:pull,push", f"repository:{source}:pull")
    with _bearer(registry, wide) as client:
        response = client.post(f"/v2/{target}/blobs/uploads/", params=params)
        assert response.status_code == 201, response.text
        assert client.head(blob_path(target, blob.digest)).status_code == 200


def test_mount_challenge_names_the_source(
    registry: PortsideServer, admin: httpx.Client, anonymous: httpx.Client, repo: str
) -> None:
    """A client that takes its token's scope from the challenge alone (the conformance suite's
    reggie does) must be able to mount: the challenge names pull on the source as well."""
    blob = random_blob()
    source, target = f"{repo}-source", f"{repo}-target"
    push_blob(admin, source, blob)
    params = {"mount": blob.digest, "from": source}
    response = anonymous.post(f"/v2/{target}/blobs/uploads/", params=params)
    assert_error(response, 401, "UNAUTHORIZED")
    scope = _challenge(response)["scope"]
    assert scope == f"repository:{target}:push repository:{source}:pull"
    with _bearer(registry, _admin_token(registry, scope)) as client:
        response = client.post(f"/v2/{target}/blobs/uploads/", params=params)
        assert response.status_code == 201, response.text
    assert admin.head(blob_path(target, blob.digest)).status_code == 200
    # Without a mount, or with a malformed source, the challenge names the target only.
    response = anonymous.post(f"/v2/{target}/blobs/uploads/", params={"from": source})
    assert _challenge(response)["scope"] == f"repository:{target}:push"
    response = anonymous.post(
        f"/v2/{target}/blobs/uploads/", params={"mount": blob.digest, "from": 'Bad"Name'}
    )
    assert _challenge(response)["scope"] == f"repository:{target}:push"


def test_invalid_bearer_token_is_401(registry: PortsideServer) -> None:
    token = _admin_token(registry, "repository:library/x:pull")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (forged, "not.a.jwt", "garbage"):
        with _bearer(registry, bad) as client:
            response = client.get("/v2/library/x/tags/list")
            assert_error(response, 401, "UNAUTHORIZED")
            assert _challenge(response)["error"] == "invalid_token"


def test_oauth2_password_grant(registry: PortsideServer, repo: str) -> None:
    response = httpx.post(
        f"{registry.url}/service/token",
        data={
            "grant_type": "password",
            "username": registry.username,
            "password": registry.password,
            "service": "portside",
            "scope": f"repository:{repo}:pull",
            "client_id": "portside-tests",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    access = jwt_claims(response.json()["access_token"])["access"]
    assert access == [{"type": "repository", "name": repo, "actions": ["pull"]}]


def test_catalog_needs_the_catalog_scope(registry: PortsideServer, repo: str) -> None:
    with _bearer(registry, _admin_token(registry, f"repository:{repo}:pull")) as client:
        assert_error(client.get("/v2/_catalog"), 401, "UNAUTHORIZED")
    with _bearer(registry, _admin_token(registry, "registry:catalog:*")) as client:
        response = client.get("/v2/_catalog")
        assert response.status_code == 200
        assert isinstance(response.json()["repositories"], list)


def test_token_for_unknown_service_is_400(registry: PortsideServer) -> None:
    response = httpx.get(
        f"{registry.url}/service/token",
        params={"service": "another-registry", "scope": "repository:library/x:pull"},
        auth=(registry.username, registry.password),
        timeout=30,
    )
    assert_error(response, 400)
