"""Access control as real clients see it: skopeo, podman and the docker CLI.

- a Developer pushes with skopeo and podman, and skopeo's delete is refused;
- anonymous ``skopeo inspect`` works on a public project and fails on a private one;
- a robot's name and secret work for ``docker login`` and ``podman push``.

Every tool runs in its own isolated configuration (tests/integration/clients.py); what the tools
did is checked over HTTP as the admin, against digests the test computed itself.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.server import PortsideServer

from .clients import ClientEnv, Podman, Skopeo, ToolError, docker_login
from .images import sha256_digest, single_arch_image
from .test_clients import assert_refused_login, require_tool

pytestmark = pytest.mark.slow

PASSWORD = "Client-Access-1x"


@dataclass
class Scene:
    """A public and a private project; ``developer`` is a Developer in both."""

    server: PortsideServer
    admin: httpx.Client
    public: str
    private: str
    developer: tuple[str, str]

    def remote(self, repo: str, reference: str = "v1") -> str:
        separator = "@" if reference.startswith("sha256:") else ":"
        return f"docker://{self.server.host}/{repo}{separator}{reference}"

    def manifest_status(self, repo: str, reference: str) -> int:
        response = self.admin.head(
            f"/v2/{repo}/manifests/{reference}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        return response.status_code


def _created(response: httpx.Response) -> httpx.Response:
    assert response.status_code == 201, (response.request.url, response.status_code, response.text)
    return response


@pytest.fixture(scope="module")
def scene(registry: PortsideServer) -> Iterator[Scene]:
    suffix = secrets.token_hex(4)
    with registry.client() as admin:
        developer = f"clients-dev-{suffix}"
        _created(
            admin.post(
                "/api/v2.0/users",
                json={
                    "username": developer,
                    "email": f"{developer}@example.com",
                    "realname": developer,
                    "password": PASSWORD,
                },
            )
        )
        projects = {}
        for kind in ("public", "private"):
            name = f"clients-{kind}-{suffix}"
            _created(
                admin.post(
                    "/api/v2.0/projects",
                    json={
                        "project_name": name,
                        "metadata": {"public": str(kind == "public").lower()},
                    },
                )
            )
            _created(
                admin.post(
                    f"/api/v2.0/projects/{name}/members",
                    json={"role_id": 2, "member_user": {"username": developer}},
                )
            )
            projects[kind] = name
        yield Scene(registry, admin, projects["public"], projects["private"], (developer, PASSWORD))


@pytest.fixture
def client_env(tmp_path: Path) -> ClientEnv:
    return ClientEnv.create(tmp_path / "clients")


def _assert_refused(error: ToolError) -> None:
    """The tool failed because the registry refused it access, not for another reason."""
    stderr = error.stderr.lower()
    words = ("unauthorized", "denied", "authentication required", "forbidden", "401", "403")
    assert any(word in stderr for word in words), error


def test_developer_pushes_with_skopeo_and_podman_then_skopeo_delete_is_refused(
    scene: Scene, client_env: ClientEnv, tmp_path: Path
) -> None:
    require_tool("skopeo")
    require_tool("podman")
    repo = f"{scene.private}/app"
    layout = single_arch_image(tmp_path / "src")
    skopeo = Skopeo(client_env)
    skopeo.login(scene.server.host, *scene.developer)
    skopeo.copy(layout.ref, scene.remote(repo), "--preserve-digests")
    assert sha256_digest(skopeo.inspect_raw(scene.remote(repo))) == layout.top_digest
    assert scene.manifest_status(repo, layout.top_digest) == 200

    podman = Podman(client_env)
    podman.login(scene.server.host, *scene.developer)
    image_id = podman.pull(f"{scene.server.host}/{repo}:v1")
    assert image_id == layout.images[0].config_digest.removeprefix("sha256:")
    pushed_ref = f"{scene.server.host}/{repo}:podman"
    podman.tag(image_id, pushed_ref)
    pushed = podman.push(pushed_ref)
    assert scene.manifest_status(repo, pushed) == 200

    with pytest.raises(ToolError) as refused:
        skopeo.delete(scene.remote(repo, layout.top_digest))
    _assert_refused(refused.value)
    assert scene.manifest_status(repo, layout.top_digest) == 200
    assert scene.manifest_status(repo, "v1") == 200

    # The control: the admin's skopeo deletes the same manifest.
    admin_env = ClientEnv.create(tmp_path / "admin")
    admin_skopeo = Skopeo(admin_env)
    admin_skopeo.login(scene.server.host, scene.server.username, scene.server.password)
    admin_skopeo.delete(scene.remote(repo, layout.top_digest))
    assert scene.manifest_status(repo, layout.top_digest) == 404


def test_anonymous_skopeo_inspect_works_on_public_and_fails_on_private(
    scene: Scene, client_env: ClientEnv, tmp_path: Path
) -> None:
    require_tool("skopeo")
    pusher = Skopeo(ClientEnv.create(tmp_path / "pusher"))
    pusher.login(scene.server.host, *scene.developer)
    layouts = {}
    for project in (scene.public, scene.private):
        layouts[project] = single_arch_image(tmp_path / project)
        pusher.copy(layouts[project].ref, scene.remote(f"{project}/seen"), "--preserve-digests")

    anonymous = Skopeo(client_env)  # never logged in
    assert json.loads(client_env.auth_file.read_text()) == {"auths": {}}
    info = anonymous.inspect(scene.remote(f"{scene.public}/seen"))
    assert info["Digest"] == layouts[scene.public].top_digest
    assert info["Layers"] == list(layouts[scene.public].images[0].layer_digests)

    with pytest.raises(ToolError) as refused:
        anonymous.inspect(scene.remote(f"{scene.private}/seen"))
    _assert_refused(refused.value)
    with pytest.raises(ToolError) as refused:
        anonymous.inspect_raw(
            scene.remote(f"{scene.private}/seen", layouts[scene.private].top_digest)
        )
    _assert_refused(refused.value)


def test_robot_credentials_work_with_docker_login_and_podman_push(
    scene: Scene, client_env: ClientEnv, tmp_path: Path
) -> None:
    require_tool("docker")
    require_tool("podman")
    require_tool("skopeo")
    response = _created(
        scene.admin.post(
            "/api/v2.0/robots",
            json={
                "name": f"ci{secrets.token_hex(3)}",
                "level": "project",
                "duration": -1,
                "permissions": [
                    {
                        "kind": "project",
                        "namespace": scene.private,
                        "access": [
                            {"resource": "repository", "action": "pull"},
                            {"resource": "repository", "action": "push"},
                        ],
                    }
                ],
            },
        )
    )
    robot, secret = response.json()["name"], response.json()["secret"]
    assert robot.startswith("robot$")

    with pytest.raises(ToolError) as refused:
        docker_login(client_env, scene.server.host, robot, secret + "x")
    assert_refused_login(refused.value)
    result = docker_login(client_env, scene.server.host, robot, secret)
    assert "Login Succeeded" in result.text
    config = json.loads((client_env.docker_config / "config.json").read_text())
    assert scene.server.host in config["auths"]

    # Seed an image as the developer, then the robot pulls it and pushes it under a new tag.
    repo = f"{scene.private}/robot"
    layout = single_arch_image(tmp_path / "src")
    seeder = Skopeo(ClientEnv.create(tmp_path / "seeder"))
    seeder.login(scene.server.host, *scene.developer)
    seeder.copy(layout.ref, scene.remote(repo, "seed"), "--preserve-digests")

    podman = Podman(client_env)
    podman.login(scene.server.host, robot, secret)
    image_id = podman.pull(f"{scene.server.host}/{repo}:seed")
    pushed_ref = f"{scene.server.host}/{repo}:by-robot"
    podman.tag(image_id, pushed_ref)
    pushed = podman.push(pushed_ref)
    assert scene.manifest_status(repo, "by-robot") == 200
    assert scene.manifest_status(repo, pushed) == 200

    # The robot's permissions end at its project: a push into the public project is refused.
    elsewhere = f"{scene.server.host}/{scene.public}/robot:by-robot"
    podman.tag(image_id, elsewhere)
    with pytest.raises(ToolError) as refused:
        podman.push(elsewhere)
    _assert_refused(refused.value)
    assert scene.manifest_status(f"{scene.public}/robot", "by-robot") == 404
