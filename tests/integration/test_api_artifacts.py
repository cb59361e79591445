"""``/api/v2.0`` repositories, artifacts, tags, accessories, additions and artifact labels,
against a real server: content is pushed over ``/v2/`` and read back through the API."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.oci import (
    Blob,
    Manifest,
    artifact_manifest,
    image_manifest,
    index_manifest,
    push_content,
    to_json,
)
from tests.support.server import PortsideServer

API = "/api/v2.0"
NEVER = "0001-01-01T00:00:00.000Z"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
COSIGN = "application/vnd.dev.cosign.artifact.sig.v1+json"


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def harbor_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    errors = response.json()["errors"]
    assert isinstance(errors[0]["code"], str) and isinstance(errors[0]["message"], str)
    message: str = errors[0]["message"]
    return message


def create_project(client: httpx.Client, public: bool = False) -> str:
    name = unique("art")
    response = client.post(
        f"{API}/projects", json={"project_name": name, "metadata": {"public": str(public).lower()}}
    )
    assert response.status_code == 201, response.text
    return name


@dataclass
class User:
    name: str
    password: str
    client: httpx.Client


@pytest.fixture
def make_user(registry: PortsideServer, client: httpx.Client) -> Iterator[Any]:
    made: list[User] = []

    def make(project: str | None = None, role: int | None = None) -> User:
        name, password = unique("u"), f"Pw{secrets.token_hex(6)}Aa1"
        response = client.post(
            f"{API}/users",
            json={"username": name, "password": password, "email": f"{name}@example.com"},
        )
        assert response.status_code == 201, response.text
        if project is not None and role is not None:
            response = client.post(
                f"{API}/projects/{project}/members",
                json={"role_id": role, "member_user": {"username": name}},
            )
            assert response.status_code == 201, response.text
        user = User(name, password, httpx.Client(base_url=registry.url, auth=(name, password)))
        made.append(user)
        return user

    yield make
    for user in made:
        user.client.close()


@pytest.fixture
def anonymous(registry: PortsideServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=30) as anonymous_client:
        yield anonymous_client


def artifacts_url(project: str, repo: str) -> str:
    encoded = repo.replace("/", "%252F")
    return f"{API}/projects/{project}/repositories/{encoded}/artifacts"


@dataclass
class Content:
    project: str
    repo: str  # after the project
    image: Manifest
    index: Manifest
    chart: Manifest
    signature: Manifest


def chart_manifest() -> Manifest:
    config = Blob(to_json({"name": "demo", "version": "1.0.0", "apiVersion": "v2"}), HELM_CONFIG)
    chart = Blob(
        b"chart-" + secrets.token_bytes(64), "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
    )
    return image_manifest(config=config, layers=[chart])


@pytest.fixture
def content(client: httpx.Client) -> Content:
    """An image (tag v1), an index of two images (tag multi), a Helm chart (tag chart) and a
    cosign-style signature whose subject is the image, in a repository whose name has a slash."""
    project = create_project(client)
    repo = f"team/{unique('app')}"
    full = f"{project}/{repo}"
    image = image_manifest(layer_count=2)
    push_content(client, full, image, "v1")
    index = index_manifest([image_manifest(), image_manifest()])
    push_content(client, full, index, "multi")
    chart = chart_manifest()
    push_content(client, full, chart, "chart")
    signature = artifact_manifest(COSIGN, subject=image)
    push_content(client, full, signature)
    return Content(project, repo, image, index, chart, signature)


# -- repositories -------------------------------------------------------------------------------


def test_repositories_list_get_update_with_double_encoded_names(
    client: httpx.Client, content: Content
) -> None:
    listed = client.get(f"{API}/projects/{content.project}/repositories")
    assert listed.status_code == 200, listed.text
    assert listed.headers["X-Total-Count"] == "1"
    (repository,) = listed.json()
    assert set(repository) == {
        "id",
        "project_id",
        "name",
        "description",
        "artifact_count",
        "pull_count",
        "creation_time",
        "update_time",
    }
    assert repository["name"] == f"{content.project}/{content.repo}"
    assert repository["artifact_count"] == 3  # image, index, chart: not children, not accessories
    assert repository["creation_time"].endswith("Z")

    encoded = content.repo.replace("/", "%252F")
    url = f"{API}/projects/{content.project}/repositories/{encoded}"
    got = client.get(url)
    assert got.status_code == 200, got.text
    assert got.json()["id"] == repository["id"]
    # Encoded only once, the slash splits the path: no such route.
    single = client.get(f"{API}/projects/{content.project}/repositories/{content.repo}")
    harbor_error(single, 404)

    assert client.put(url, json={"description": "hello"}).status_code == 200
    assert client.get(url).json()["description"] == "hello"
    harbor_error(client.put(url, json={"description": "x", "bogus": 1}), 400)

    fuzzy = client.get(
        f"{API}/projects/{content.project}/repositories", params={"q": "name=~nothing-like-it"}
    )
    assert fuzzy.status_code == 200 and fuzzy.json() == []
    everywhere = client.get(f"{API}/repositories", params={"q": f"name={repository['name']}"})
    assert [r["id"] for r in everywhere.json()] == [repository["id"]]


def test_repository_delete_and_missing(client: httpx.Client, content: Content) -> None:
    encoded = content.repo.replace("/", "%252F")
    url = f"{API}/projects/{content.project}/repositories/{encoded}"
    assert client.delete(url).status_code == 200
    harbor_error(client.get(url), 404)
    harbor_error(client.delete(url), 404)
    harbor_error(client.get(f"{API}/projects/{content.project}/repositories/UPPER"), 404)
    harbor_error(client.get(f"{API}/projects/no-such-{unique('p')}/repositories"), 404)


# -- artifacts ----------------------------------------------------------------------------------


def test_artifact_listing_shapes(client: httpx.Client, content: Content) -> None:
    response = client.get(
        artifacts_url(content.project, content.repo),
        params={"with_tag": "true", "with_label": "true", "with_accessory": "true"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Total-Count"] == "3"
    listed = {a["digest"]: a for a in response.json()}
    assert set(listed) == {content.image.digest, content.index.digest, content.chart.digest}
    # Newest first.
    assert response.json()[0]["digest"] == content.chart.digest

    image = listed[content.image.digest]
    assert image["type"] == "IMAGE"
    assert image["manifest_media_type"] == content.image.media_type
    assert image["media_type"] == "application/vnd.oci.image.config.v1+json"
    assert image["size"] == content.image.size
    assert image["repository_name"] == f"{content.project}/{content.repo}"
    assert image["pull_time"] == NEVER
    assert image["extra_attrs"]["architecture"] == "amd64"
    assert image["extra_attrs"]["os"] == "linux"
    assert [t["name"] for t in image["tags"]] == ["v1"]
    tag = image["tags"][0]
    assert set(tag) == {
        "id",
        "repository_id",
        "artifact_id",
        "name",
        "push_time",
        "pull_time",
        "immutable",
    }
    assert tag["artifact_id"] == image["id"] and tag["immutable"] is False
    assert image["labels"] == []
    (accessory,) = image["accessories"]
    assert accessory["digest"] == content.signature.digest
    assert accessory["type"] == "signature.cosign"
    assert accessory["subject_artifact_id"] == image["id"]
    assert accessory["subject_artifact_digest"] == content.image.digest
    assert "build_history" in image["addition_links"]

    index = listed[content.index.digest]
    assert index["type"] == "IMAGE"
    assert index["manifest_media_type"] == content.index.media_type
    references = index["references"]
    assert [r["child_digest"] for r in references] == [c.digest for c in content.index.children]
    assert {r["platform"]["architecture"] for r in references} == {"amd64", "arm64"}
    assert all(r["parent_id"] == index["id"] and r["child_id"] > 0 for r in references)

    chart = listed[content.chart.digest]
    assert chart["type"] == "CHART"
    assert chart["media_type"] == HELM_CONFIG
    assert "values.yaml" in chart["addition_links"]


def test_artifact_filters_sort_and_paging(client: httpx.Client, content: Content) -> None:
    url = artifacts_url(content.project, content.repo)

    def digests(**params: str) -> list[str]:
        response = client.get(url, params=params)
        assert response.status_code == 200, (params, response.text)
        return [a["digest"] for a in response.json()]

    assert digests(q="tags=v1") == [content.image.digest]
    assert digests(q="tags=~mul") == [content.index.digest]
    assert digests(q="type=CHART") == [content.chart.digest]
    assert set(digests(q="type=IMAGE")) == {content.image.digest, content.index.digest}
    assert digests(q=f"digest={content.chart.digest}") == [content.chart.digest]
    assert digests(sort="push_time") == [
        content.image.digest,
        content.index.digest,
        content.chart.digest,
    ]
    first = client.get(url, params={"page_size": "2"})
    assert first.headers["X-Total-Count"] == "3"
    assert 'rel="next"' in first.headers["Link"]
    second = client.get(url, params={"page_size": "2", "page": "2"})
    assert len(second.json()) == 1 and 'rel="prev"' in second.headers["Link"]
    for bad in ({"q": "nope=1"}, {"q": "type=WHATEVER"}, {"sort": "evil"}, {"page_size": "1000"}):
        harbor_error(client.get(url, params=bad), 400)


def test_get_artifact_by_tag_or_digest(client: httpx.Client, content: Content) -> None:
    url = artifacts_url(content.project, content.repo)
    by_tag = client.get(f"{url}/v1")
    by_digest = client.get(f"{url}/{content.image.digest}")
    assert by_tag.status_code == by_digest.status_code == 200
    assert by_tag.json()["id"] == by_digest.json()["id"]
    harbor_error(client.get(f"{url}/nosuchtag"), 404)
    harbor_error(client.get(f"{url}/sha256:{'0' * 64}"), 404)
    harbor_error(client.get(f"{url}/sha256:zz"), 400)
    history = client.get(f"{url}/v1/additions/build_history")
    assert history.status_code == 200 and history.json() == []
    assert client.get(f"{url}/v1/additions/vulnerabilities").json() == {}
    harbor_error(client.get(f"{url}/v1/additions/values.yaml"), 404)
    harbor_error(client.get(f"{url}/v1/additions/../../x"), 404)
    accessories = client.get(f"{url}/v1/accessories")
    assert [a["digest"] for a in accessories.json()] == [content.signature.digest]


def test_tags_create_list_delete(client: httpx.Client, content: Content) -> None:
    url = artifacts_url(content.project, content.repo)
    created = client.post(f"{url}/v1/tags", json={"name": "stable"})
    assert created.status_code == 201, created.text
    assert created.headers["Location"].endswith("/tags/stable")
    harbor_error(client.post(f"{url}/v1/tags", json={"name": "stable"}), 409)
    harbor_error(client.post(f"{url}/v1/tags", json={"name": "bad tag!"}), 400)
    harbor_error(client.post(f"{url}/v1/tags", json={"name": "x", "evil": True}), 400)
    names = [t["name"] for t in client.get(f"{url}/v1/tags").json()]
    assert sorted(names) == ["stable", "v1"]
    # The new tag works on /v2/ at once.
    full = f"{content.project}/{content.repo}"
    pulled = client.get(
        f"/v2/{full}/manifests/stable", headers={"Accept": content.image.media_type}
    )
    assert pulled.headers["Docker-Content-Digest"] == content.image.digest
    harbor_error(client.delete(f"{url}/v1/tags/multi"), 404)  # not this artifact's
    assert client.delete(f"{url}/v1/tags/stable").status_code == 200
    harbor_error(client.delete(f"{url}/v1/tags/stable"), 404)
    assert client.get(f"/v2/{full}/manifests/stable").status_code == 404


def test_labels_on_artifacts(client: httpx.Client, content: Content) -> None:
    url = artifacts_url(content.project, content.repo)
    label = client.post(f"{API}/labels", json={"name": unique("l"), "scope": "g", "color": "#fff"})
    assert label.status_code == 201, label.text
    label_id = int(label.headers["Location"].rsplit("/", 1)[1])
    other = create_project(client)
    foreign = client.post(
        f"{API}/labels",
        json={"name": unique("l"), "scope": "p", "project_id": project_id(client, other)},
    )
    assert foreign.status_code == 201, foreign.text
    foreign_id = int(foreign.headers["Location"].rsplit("/", 1)[1])

    assert client.post(f"{url}/v1/labels", json={"id": label_id}).status_code == 200
    harbor_error(client.post(f"{url}/v1/labels", json={"id": label_id}), 409)
    harbor_error(client.post(f"{url}/v1/labels", json={"id": foreign_id}), 400)
    harbor_error(client.post(f"{url}/v1/labels", json={"id": 2_000_000_000}), 404)
    harbor_error(client.post(f"{url}/v1/labels", json={"id": "1"}), 400)
    got = client.get(f"{url}/v1", params={"with_label": "true"}).json()
    assert [lab["id"] for lab in got["labels"]] == [label_id]
    assert got["labels"][0]["scope"] == "g" and got["labels"][0]["project_id"] == 0
    filtered = client.get(url, params={"q": f"labels={label_id}"}).json()
    assert [a["digest"] for a in filtered] == [content.image.digest]
    assert client.delete(f"{url}/v1/labels/{label_id}").status_code == 200
    harbor_error(client.delete(f"{url}/v1/labels/{label_id}"), 404)
    harbor_error(client.delete(f"{url}/v1/labels/abc"), 400)


def project_id(client: httpx.Client, project: str) -> int:
    response = client.get(f"{API}/projects/{project}")
    assert response.status_code == 200, response.text
    value: int = response.json()["project_id"]
    return value


def test_copy_artifact(client: httpx.Client, content: Content, make_user: Any) -> None:
    target = create_project(client)
    url = f"{API}/projects/{target}/repositories/copy/artifacts"
    source = f"{content.project}/{content.repo}"
    copied = client.post(url, params={"from": f"{source}:multi"})
    assert copied.status_code == 201, copied.text
    assert copied.headers["Location"].endswith(f"/artifacts/{content.index.digest}")
    got = client.get(f"{url}/multi")
    assert got.status_code == 200 and got.json()["digest"] == content.index.digest
    # Children came along and are pullable.
    child = content.index.children[0]
    assert client.get(f"/v2/{target}/copy/manifests/{child.digest}").status_code == 200
    blob = child.blobs[1]
    assert client.get(f"/v2/{target}/copy/blobs/{blob.digest}").status_code == 200
    by_digest = client.post(url, params={"from": f"{source}@{content.chart.digest}"})
    assert by_digest.status_code == 201, by_digest.text

    harbor_error(client.post(url, params={"from": f"{source}:nosuch"}), 404)
    harbor_error(client.post(url, params={"from": "nonsense"}), 400)
    harbor_error(client.post(url), 400)

    # A developer of the target who cannot pull from the (private) source is refused.
    developer = make_user(target, 2)
    refused = developer.client.post(url, params={"from": f"{source}:v1"})
    harbor_error(refused, 403)
    audit = client.get(
        f"{API}/audit-logs",
        params={"q": f"resource_type=artifact,resource={target}/copy@{content.index.digest}"},
    )
    assert "create" in [entry["operation"] for entry in audit.json()]


def test_delete_artifact_and_permissions(
    client: httpx.Client, content: Content, make_user: Any
) -> None:
    url = artifacts_url(content.project, content.repo)
    developer = make_user(content.project, 2)
    harbor_error(developer.client.delete(f"{url}/v1"), 403)
    assert developer.client.get(f"{url}/v1").status_code == 200
    outsider = make_user()
    harbor_error(outsider.client.get(url), 403)
    assert client.delete(f"{url}/v1").status_code == 200
    harbor_error(client.get(f"{url}/{content.image.digest}"), 404)
    full = f"{content.project}/{content.repo}"
    assert client.get(f"/v2/{full}/manifests/v1").status_code == 404
    harbor_error(client.delete(f"{url}/v1"), 404)


def test_anonymous_reads_only_public_projects(
    client: httpx.Client, anonymous: httpx.Client, content: Content
) -> None:
    url = artifacts_url(content.project, content.repo)
    harbor_error(anonymous.get(url), 401)
    harbor_error(anonymous.get(f"{API}/projects/{content.project}/repositories"), 401)
    listed = anonymous.get(
        f"{API}/repositories", params={"page_size": "100", "q": f"name=~{content.project}"}
    )
    assert listed.status_code == 200 and listed.json() == []
    public = create_project(client, public=True)
    push_content(client, f"{public}/pub", image_manifest(), "v1")
    assert anonymous.get(artifacts_url(public, "pub")).status_code == 200
    assert anonymous.get(f"{API}/projects/{public}/repositories/pub").status_code == 200
    harbor_error(anonymous.delete(f"{artifacts_url(public, 'pub')}/v1"), 401)


def test_pull_time_and_count_are_recorded(client: httpx.Client, content: Content) -> None:
    full = f"{content.project}/{content.repo}"
    for _ in range(3):
        pulled = client.get(
            f"/v2/{full}/manifests/v1", headers={"Accept": content.image.media_type}
        )
        assert pulled.status_code == 200
    assert client.head(f"/v2/{full}/manifests/chart").status_code == 200  # HEAD is no pull
    encoded = content.repo.replace("/", "%252F")
    deadline = time.monotonic() + 15
    while True:
        repository = client.get(f"{API}/projects/{content.project}/repositories/{encoded}").json()
        if repository["pull_count"] >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert repository["pull_count"] == 3
    url = artifacts_url(content.project, content.repo)
    image = client.get(f"{url}/v1").json()
    assert image["pull_time"] != NEVER and image["pull_time"].endswith("Z")
    assert image["tags"][0]["pull_time"] == image["pull_time"]
    assert client.get(f"{url}/chart").json()["pull_time"] == NEVER


HOSTILE = [
    "%252E%252E",
    "a%2500b",
    "A" * 300,
    "%25FF",
    "x%252F%252Fy",
]


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_repository_names_are_404(client: httpx.Client, name: str) -> None:
    response = client.get(f"{API}/projects/library/repositories/{name}/artifacts")
    harbor_error(response, 404)
