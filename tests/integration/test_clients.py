"""Real clients (skopeo, podman, buildah, oras-py, docker CLI) against a running registry.

Every test needs the ``registry`` fixture (provided by the integration conftest for Portside, or
by ``_reference_plugin`` for distribution 2.8.2): ``.host``, ``.url``, ``.username``,
``.password`` (an admin who may do everything) and ``.restart()``.  Each test works in its own
repository, ``library/<test-name>-<random>``, and its own client configuration (see clients.py),
and asserts on concrete digests and content computed by the test itself.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import tarfile
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import pytest

from tests.support.oras import oras_client

from .clients import Buildah, ClientEnv, Podman, Skopeo, ToolError, docker_login, registry_get
from .images import (
    OCI_INDEX,
    OCI_MANIFEST,
    Platform,
    multi_arch_image,
    read_blob,
    read_layout_image,
    sha256_digest,
    single_arch_image,
)

pytestmark = pytest.mark.slow

DOCKER_V2S2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"


class Registry(Protocol):
    """The ``registry`` fixture's contract."""

    host: str
    url: str
    username: str
    password: str

    def restart(self) -> None: ...


def require_tool(name: str) -> None:
    """Skip when ``name`` is not installed, except in CI where a missing tool is a failure."""
    if shutil.which(name) is None:
        message = f"{name} not installed (run .ci/install-system-deps.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def assert_refused_login(error: ToolError) -> None:
    """The login failed because the credentials were refused (401), not for any other reason."""
    stderr = error.stderr.lower()
    assert "unauthorized" in stderr or "invalid username/password" in stderr, error


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name no other test (or earlier run) uses: library/<test-name>-<random>."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_")).strip("-")
    return f"library/{name[:60]}-{secrets.token_hex(4)}"


@pytest.fixture
def client_env(tmp_path: Path) -> ClientEnv:
    return ClientEnv.create(tmp_path / "clients")


@pytest.fixture
def skopeo(client_env: ClientEnv, registry: Registry) -> Skopeo:
    """skopeo logged in to the registry as admin."""
    require_tool("skopeo")
    tool = Skopeo(client_env)
    tool.login(registry.host, registry.username, registry.password)
    return tool


def remote(registry: Registry, repo: str, reference: str = "v1") -> str:
    """``docker://host/repo:tag`` or ``docker://host/repo@digest``."""
    separator = "@" if reference.startswith("sha256:") else ":"
    return f"docker://{registry.host}/{repo}{separator}{reference}"


# --- skopeo -------------------------------------------------------------------------------------


def test_skopeo_copy_oci_format(skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path):
    layout = single_arch_image(tmp_path / "src")
    skopeo.copy(layout.ref, remote(registry, repo), "--format", "oci", "--preserve-digests")

    raw = skopeo.inspect_raw(remote(registry, repo))
    # The OCI manifest must come back byte for byte: same digest as the one we wrote.
    assert sha256_digest(raw) == layout.top_digest
    manifest = json.loads(raw)
    assert manifest["mediaType"] == OCI_MANIFEST
    info = skopeo.inspect(remote(registry, repo))
    assert info["Digest"] == layout.top_digest
    assert info["Layers"] == list(layout.images[0].layer_digests)
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    # and by digest as well as by tag
    assert skopeo.inspect_raw(remote(registry, repo, layout.top_digest)) == raw


def test_skopeo_copy_docker_v2s2(skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path):
    layout = single_arch_image(tmp_path / "src")
    image = layout.images[0]
    skopeo.copy(layout.ref, remote(registry, repo), "--format", "v2s2")

    raw = skopeo.inspect_raw(remote(registry, repo))
    manifest = json.loads(raw)
    # skopeo converted the manifest; blobs are the same bytes under Docker media types.
    assert manifest["mediaType"] == DOCKER_V2S2
    assert manifest["config"] == {
        "mediaType": DOCKER_CONFIG,
        "digest": image.config_digest,
        "size": manifest["config"]["size"],
    }
    assert [layer["digest"] for layer in manifest["layers"]] == list(image.layer_digests)
    assert {layer["mediaType"] for layer in manifest["layers"]} == {DOCKER_LAYER}
    digest = skopeo.inspect(remote(registry, repo))["Digest"]
    assert digest == sha256_digest(raw)
    assert skopeo.inspect_raw(remote(registry, repo, digest)) == raw


def test_skopeo_copy_all_multi_arch(skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path):
    layout = multi_arch_image(tmp_path / "src")
    skopeo.copy(layout.ref, remote(registry, repo), "--all", "--preserve-digests")

    raw = skopeo.inspect_raw(remote(registry, repo))
    assert sha256_digest(raw) == layout.top_digest
    index = json.loads(raw)
    assert index["mediaType"] == OCI_INDEX
    listed = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in index["manifests"]
    }
    assert listed == {str(image.platform): image.manifest_digest for image in layout.images}
    # the registry's own word on the digest: Docker-Content-Digest of the tag
    response = registry_get(
        registry.url,
        f"/v2/{repo}/manifests/v1",
        registry.username,
        registry.password,
        headers={"Accept": OCI_INDEX},
    )
    assert response.status_code == 200, response.text
    assert response.headers["docker-content-digest"] == sha256_digest(raw)
    assert response.content == raw
    # every child manifest is served by digest, byte for byte
    for image in layout.images:
        child = skopeo.inspect_raw(remote(registry, repo, image.manifest_digest))
        assert sha256_digest(child) == image.manifest_digest
    # a platform-specific pull resolves through the index to the right child's layers
    skopeo.copy(remote(registry, repo), f"oci:{tmp_path / 'arm'}:v1", "--override-arch", "arm64")
    arm = read_layout_image(tmp_path / "arm", "v1")
    arm_source = next(i for i in layout.images if i.platform == Platform("linux", "arm64"))
    assert arm.layer_digests == arm_source.layer_digests
    assert arm.config_digest == arm_source.config_digest


def test_skopeo_list_tags(skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path):
    layout = single_arch_image(tmp_path / "src")
    tags = ["v1", "v2", "latest", "1.0.0-rc.1"]
    for tag in tags:
        skopeo.copy(layout.ref, remote(registry, repo, tag), "--preserve-digests")

    listed = skopeo.list_tags(f"docker://{registry.host}/{repo}")
    assert sorted(listed) == sorted(tags)
    for tag in tags:
        assert skopeo.inspect(remote(registry, repo, tag))["Digest"] == layout.top_digest


def test_skopeo_delete(skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path):
    keep = single_arch_image(tmp_path / "keep")
    gone = single_arch_image(tmp_path / "gone")
    skopeo.copy(keep.ref, remote(registry, repo, "keep"), "--preserve-digests")
    skopeo.copy(gone.ref, remote(registry, repo, "gone"), "--preserve-digests")
    assert skopeo.inspect(remote(registry, repo, "gone"))["Digest"] == gone.top_digest

    skopeo.delete(remote(registry, repo, gone.top_digest))

    for reference in (gone.top_digest, "gone"):
        with pytest.raises(ToolError) as failure:
            skopeo.inspect_raw(remote(registry, repo, reference))
        assert "manifest unknown" in failure.value.stderr.lower()
    assert skopeo.list_tags(f"docker://{registry.host}/{repo}") == ["keep"]
    assert skopeo.inspect(remote(registry, repo, "keep"))["Digest"] == keep.top_digest


def test_skopeo_copy_back(skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path):
    layout = single_arch_image(tmp_path / "src", layers=3)
    image = layout.images[0]
    skopeo.copy(layout.ref, remote(registry, repo), "--preserve-digests")

    back = tmp_path / "back"
    skopeo.copy(remote(registry, repo), f"oci:{back}:copied", "--preserve-digests")
    copied = read_layout_image(back, "copied")  # verifies every blob against its digest
    assert copied.manifest_digest == layout.top_digest
    assert copied.layer_digests == image.layer_digests
    assert copied.config_digest == image.config_digest
    for digest in image.layer_digests:
        assert read_blob(back, digest) == read_blob(layout.path, digest)


def test_content_survives_restart(skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path):
    layout = single_arch_image(tmp_path / "src")
    skopeo.copy(layout.ref, remote(registry, repo), "--preserve-digests")

    registry.restart()

    back = tmp_path / "back"
    skopeo.copy(remote(registry, repo), f"oci:{back}:v1", "--preserve-digests")
    assert read_layout_image(back, "v1").layer_digests == layout.images[0].layer_digests
    assert skopeo.list_tags(f"docker://{registry.host}/{repo}") == ["v1"]


# --- podman -------------------------------------------------------------------------------------


def test_podman_login_push_pull(
    skopeo: Skopeo, client_env: ClientEnv, registry: Registry, repo: str, tmp_path: Path
):
    require_tool("podman")
    layout = single_arch_image(tmp_path / "src")
    image = layout.images[0]
    skopeo.copy(layout.ref, remote(registry, repo, "seed"), "--preserve-digests")
    podman = Podman(client_env)

    with pytest.raises(ToolError) as refused:
        podman.login(registry.host, registry.username, registry.password + "-wrong")
    assert_refused_login(refused.value)
    podman.login(registry.host, registry.username, registry.password)
    assert registry.host in json.loads(client_env.auth_file.read_text())["auths"]

    # podman's image ID is the config digest, so the pull must have fetched our exact config
    image_id = podman.pull(f"{registry.host}/{repo}:seed")
    assert image_id == image.config_digest.removeprefix("sha256:")

    pushed_ref = f"{registry.host}/{repo}:pushed"
    podman.tag(image_id, pushed_ref)
    pushed = podman.push(pushed_ref)
    info = skopeo.inspect(remote(registry, repo, "pushed"))
    assert info["Digest"] == pushed
    assert sha256_digest(skopeo.inspect_raw(remote(registry, repo, pushed))) == pushed

    # round trip through an empty store: pull by digest yields the same image
    podman.remove_all_images()
    assert podman.image_ids() == []
    assert podman.pull(f"{registry.host}/{repo}@{pushed}") == image_id


# --- buildah ------------------------------------------------------------------------------------


def test_buildah_build_from_scratch_and_push(
    skopeo: Skopeo, client_env: ClientEnv, registry: Registry, repo: str, tmp_path: Path
):
    require_tool("buildah")
    content = f"hello from buildah {secrets.token_hex(16)}\n".encode()
    buildah = Buildah(client_env)
    buildah.login(registry.host, registry.username, registry.password)

    digest = buildah.build_from_scratch_and_push(
        {"hello.txt": content}, f"{registry.host}/{repo}:v1"
    )

    info = skopeo.inspect(remote(registry, repo))
    assert info["Digest"] == digest
    assert len(info["Layers"]) == 1
    assert sha256_digest(skopeo.inspect_raw(remote(registry, repo))) == digest
    # the single layer holds exactly the file we COPYed
    back = tmp_path / "back"
    skopeo.copy(remote(registry, repo), f"oci:{back}:v1")
    layer = read_blob(back, read_layout_image(back, "v1").layer_digests[0])
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:*") as tar:
        member = tar.extractfile("hello.txt")
        assert member is not None
        assert member.read() == content


# --- oras (in-process, oras-py) -----------------------------------------------------------------

ARTIFACT_CONFIG = "application/vnd.portside.test.config.v1+json"
SIGNATURE_CONFIG = "application/vnd.portside.test.signature.v1+json"
SBOM_ARTIFACT = "application/vnd.portside.test.sbom.v1+json"


def _put_manifest(client: Any, registry: Registry, repo: str, body: bytes, tag: str) -> str:
    """PUT exact manifest bytes with oras-py's authenticated session; returns the digest."""
    url = f"{registry.url}/v2/{repo}/manifests/{tag}"
    response = client.do_request(url, "PUT", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201, response.text
    assert response.headers["docker-content-digest"] == sha256_digest(body)
    return sha256_digest(body)


def test_oras_artifacts_and_referrers(
    registry: Registry, repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import oras.oci

    # oras-py reads and writes ~/.docker/config.json: keep it inside the test's directory
    monkeypatch.setenv("HOME", str(tmp_path))
    docker_config = str(tmp_path / "oras-config.json")
    client = oras_client(registry.host)
    client.login(
        registry.username, registry.password, hostname=registry.host, config_path=docker_config
    )

    artifact = tmp_path / "artifact.txt"
    artifact.write_bytes(os.urandom(64).hex().encode())
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"purpose": "portside test", "nonce": secrets.token_hex(8)}))
    target = f"{registry.host}/{repo}:artifact"
    response = client.push(
        target=target,
        files=[f"{artifact}:text/plain"],
        manifest_config=f"{config}:{ARTIFACT_CONFIG}",
        disable_path_validation=True,
        config_path=docker_config,
        quiet=True,
    )
    assert response.status_code == 201, response.text
    fetched = registry_get(
        registry.url,
        f"/v2/{repo}/manifests/artifact",
        registry.username,
        registry.password,
        headers={"Accept": OCI_MANIFEST},
    )
    assert fetched.status_code == 200, fetched.text
    subject_digest = sha256_digest(fetched.content)
    assert response.headers["docker-content-digest"] == subject_digest
    assert json.loads(fetched.content)["config"]["mediaType"] == ARTIFACT_CONFIG

    # referrer 1: oras-py's own subject support; its artifact type is its config media type
    subject = oras.oci.Subject(OCI_MANIFEST, subject_digest, len(fetched.content))
    signature = tmp_path / "signature.txt"
    signature.write_text(f"signed {subject_digest}")
    sig_config = tmp_path / "sig-config.json"
    sig_config.write_text("{}")
    response = client.push(
        target=f"{registry.host}/{repo}:signature",
        files=[f"{signature}:text/plain"],
        manifest_config=f"{sig_config}:{SIGNATURE_CONFIG}",
        subject=subject,
        disable_path_validation=True,
        config_path=docker_config,
        quiet=True,
    )
    assert response.status_code == 201, response.text
    signature_digest = response.headers["docker-content-digest"]

    # referrer 2: explicit artifactType with the empty config, exact bytes, exact bytes we control
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps({"packages": [], "nonce": secrets.token_hex(8)}))
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    container = client.get_container(f"{registry.host}/{repo}")
    layers = []
    for path, media_type in ((sbom, "application/json"), (empty, EMPTY_CONFIG)):
        descriptor = oras.oci.NewLayer(str(path), media_type=media_type)
        upload = client.upload_blob(str(path), container, descriptor)
        # 200: oras-py found the blob already there (the empty config) and skipped the upload
        assert upload.status_code in (200, 201), upload.text
        layers.append(descriptor)
    sbom_manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SBOM_ARTIFACT,
        "config": layers[1],
        "layers": [layers[0]],
        "subject": {
            "mediaType": OCI_MANIFEST,
            "digest": subject_digest,
            "size": len(fetched.content),
        },
    }
    sbom_digest = _put_manifest(client, registry, repo, json.dumps(sbom_manifest).encode(), "sbom")

    # The referrers API (OCI distribution spec 1.1) lists both, with their artifact types.
    # distribution 2.8.2 (the dev reference) has no referrers API: this fails there with 404.
    referrers = registry_get(
        registry.url, f"/v2/{repo}/referrers/{subject_digest}", registry.username, registry.password
    )
    assert referrers.status_code == 200, referrers.text
    assert referrers.headers["content-type"].startswith(OCI_INDEX)
    listed = {m["digest"]: m for m in referrers.json()["manifests"]}
    assert set(listed) == {signature_digest, sbom_digest}
    assert listed[signature_digest]["artifactType"] == SIGNATURE_CONFIG
    assert listed[sbom_digest]["artifactType"] == SBOM_ARTIFACT
    assert listed[sbom_digest]["mediaType"] == OCI_MANIFEST

    filtered = registry_get(
        registry.url,
        # encoded as real clients do: a bare "+" in a query string means a space
        f"/v2/{repo}/referrers/{subject_digest}?artifactType={quote(SBOM_ARTIFACT, safe='')}",
        registry.username,
        registry.password,
    )
    assert filtered.status_code == 200, filtered.text
    # filtering is a SHOULD in the spec; when the registry says it applied it, it must be right
    if "artifactType" in filtered.headers.get("oci-filters-applied", ""):
        assert [m["digest"] for m in filtered.json()["manifests"]] == [sbom_digest]


# --- docker CLI ---------------------------------------------------------------------------------


def test_docker_login(client_env: ClientEnv, registry: Registry):
    require_tool("docker")
    with pytest.raises(ToolError) as refused:
        docker_login(client_env, registry.host, registry.username, registry.password + "-wrong")
    assert_refused_login(refused.value)
    config = client_env.docker_config / "config.json"
    assert not config.exists() or registry.host not in json.loads(config.read_text())["auths"]

    result = docker_login(client_env, registry.host, registry.username, registry.password)
    assert "Login Succeeded" in result.text
    assert registry.host in json.loads(config.read_text())["auths"]
