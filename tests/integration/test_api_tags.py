"""Tag ids (Harbor's ``Tag.id``) through ``/api/v2.0``, on every backend of the ``registry``
fixture: real integers, unique, the same on every call, kept when a tag moves to another
artifact, and new when a tag is deleted and created again."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.test_api_artifacts import artifacts_url, create_project, unique
from tests.support.oci import image_manifest, push_content


def _tags(client: httpx.Client, url: str, reference: str, **params: str) -> list[dict[str, Any]]:
    response = client.get(f"{url}/{reference}/tags", params=params)
    assert response.status_code == 200, response.text
    tags: list[dict[str, Any]] = response.json()
    return tags


def _ids(client: httpx.Client, url: str, reference: str) -> dict[str, int]:
    return {t["name"]: t["id"] for t in _tags(client, url, reference)}


def _setup(client: httpx.Client) -> tuple[str, str, str]:
    """A repository with one image tagged a, b and c; returns (full name, artifacts url, digest)."""
    project = create_project(client)
    repo = unique("tags")
    full = f"{project}/{repo}"
    image = image_manifest()
    for tag in ("a", "b", "c"):
        push_content(client, full, image, tag)
    return full, artifacts_url(project, repo), image.digest


def test_tag_ids_are_unique_integers_stable_across_calls(client: httpx.Client) -> None:
    _, url, digest = _setup(client)
    _, other_url, other_digest = _setup(client)
    ids = _ids(client, url, digest)
    assert set(ids) == {"a", "b", "c"}
    assert all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids.values())
    other = _ids(client, other_url, other_digest)
    # Unique across the registry, not only within a repository.
    assert len(set(ids.values()) | set(other.values())) == 6
    assert _ids(client, url, digest) == ids
    # The same ids in every view of the tag: the artifact, the listing, by tag reference.
    for path, params in [
        (f"{url}/{digest}", {"with_tag": "true"}),
        (f"{url}/b", {"with_tag": "true"}),
    ]:
        artifact = client.get(path, params=params).json()
        assert {t["name"]: t["id"] for t in artifact["tags"]} == ids
    (listed,) = client.get(url, params={"with_tag": "true"}).json()
    assert {t["name"]: t["id"] for t in listed["tags"]} == ids
    # Tags made through the API get ids the same way as tags pushed over /v2/.
    created = client.post(f"{url}/{digest}/tags", json={"name": "d"})
    assert created.status_code == 201, created.text
    with_d = _ids(client, url, digest)
    assert with_d["d"] not in set(ids.values()) | set(other.values())
    assert {k: v for k, v in with_d.items() if k != "d"} == ids


def test_deleted_and_recreated_tag_gets_a_new_id(client: httpx.Client) -> None:
    full, url, digest = _setup(client)
    before = _ids(client, url, digest)
    assert client.delete(f"{url}/{digest}/tags/b").status_code == 200
    assert client.post(f"{url}/{digest}/tags", json={"name": "b"}).status_code == 201
    recreated = _ids(client, url, digest)
    assert recreated["b"] not in before.values()
    assert recreated["a"] == before["a"] and recreated["c"] == before["c"]
    # Deleted over /v2/ and pushed again: new again.
    deleted = client.delete(f"/v2/{full}/manifests/c")
    assert deleted.status_code == 202, deleted.text
    push_content(client, full, image_manifest(), "c")
    moved_away = client.get(f"{url}/c", params={"with_tag": "true"}).json()
    (tag_c,) = moved_away["tags"]
    assert tag_c["id"] not in set(before.values()) | set(recreated.values())


def test_moved_tag_keeps_its_id(client: httpx.Client) -> None:
    """Pushing a tag that exists moves it to the new manifest, as Harbor does: same tag, same id."""
    full, url, digest = _setup(client)
    before = _ids(client, url, digest)
    newer = image_manifest()
    push_content(client, full, newer, "a")
    (tag_a,) = client.get(f"{url}/{newer.digest}", params={"with_tag": "true"}).json()["tags"]
    assert tag_a["name"] == "a" and tag_a["id"] == before["a"]
    assert _ids(client, url, digest) == {"b": before["b"], "c": before["c"]}


def test_tag_listing_sorts_by_id_name_and_push_time(client: httpx.Client) -> None:
    _, url, digest = _setup(client)
    ids = _ids(client, url, digest)
    by_id = [t["name"] for t in _tags(client, url, digest, sort="id")]
    assert by_id == sorted(ids, key=ids.__getitem__)
    by_id_desc = [t["name"] for t in _tags(client, url, digest, sort="-id")]
    assert by_id_desc == by_id[::-1]
    assert [t["name"] for t in _tags(client, url, digest, sort="-name")] == ["c", "b", "a"]
    pushed = [t["push_time"] for t in _tags(client, url, digest, sort="push_time,name")]
    assert pushed == sorted(pushed)
    params = {"sort": "name", "page_size": "2", "page": "2"}
    page = client.get(f"{url}/{digest}/tags", params=params)
    assert [t["name"] for t in page.json()] == ["c"]
    assert page.headers["X-Total-Count"] == "3"
    bad = client.get(f"{url}/{digest}/tags", params={"sort": "evil"})
    assert bad.status_code == 400
