"""OCI distribution spec v1.1, "Content discovery" workflow (conformance: tag listing,
referrers): tags/list and _catalog with ``n``/``last`` and ``Link`` pagination, and the
referrers API with ``artifactType`` filtering and the ``OCI-Subject`` push header."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.oci import (
    OCI_INDEX,
    Manifest,
    artifact_manifest,
    assert_error,
    digest_of,
    image_manifest,
    index_manifest,
    next_link,
    push_content,
)

TAGS = ["A", "a", "_b", "1", "latest", "Z9", "b-2", "b.1", "b_0", "v1.0.0", "TEST0", "test0"]


@pytest.fixture
def tagged(client: httpx.Client, repo: str) -> list[str]:
    """``repo`` with every tag of TAGS; returns them in byte order."""
    manifest = image_manifest()
    for tag in TAGS:
        push_content(client, repo, manifest, tag)
    return sorted(TAGS, key=str.encode)


def _tags(response: httpx.Response, repo: str) -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["name"] == repo
    tags: list[str] = body["tags"]
    return tags


# -- tags ---------------------------------------------------------------------------------------


def test_tags_list_in_byte_order(client: httpx.Client, repo: str, tagged: list[str]) -> None:
    response = client.get(f"/v2/{repo}/tags/list")
    assert _tags(response, repo) == tagged
    assert tagged[:4] == ["1", "A", "TEST0", "Z9"]
    assert "Link" not in response.headers


def test_tags_list_n_limits_and_links_to_next_page(
    client: httpx.Client, repo: str, tagged: list[str]
) -> None:
    response = client.get(f"/v2/{repo}/tags/list", params={"n": 5})
    assert _tags(response, repo) == tagged[:5]
    link = next_link(response)
    assert link is not None
    assert urlsplit(link).path == f"/v2/{repo}/tags/list"
    assert parse_qs(urlsplit(link).query) == {"n": ["5"], "last": [tagged[4]]}


def test_tags_list_follow_links(client: httpx.Client, repo: str, tagged: list[str]) -> None:
    seen: list[str] = []
    url: str | None = f"/v2/{repo}/tags/list?n=3"
    pages = 0
    while url is not None:
        response = client.get(url)
        page = _tags(response, repo)
        assert len(page) <= 3
        seen += page
        url = next_link(response)
        pages += 1
        assert pages <= len(tagged)
    assert seen == tagged
    assert pages == 4


def test_tags_list_last(client: httpx.Client, repo: str, tagged: list[str]) -> None:
    response = client.get(f"/v2/{repo}/tags/list", params={"last": "Z9"})
    assert _tags(response, repo) == tagged[tagged.index("Z9") + 1 :]
    response = client.get(f"/v2/{repo}/tags/list", params={"n": 2, "last": "_b"})
    assert _tags(response, repo) == tagged[tagged.index("_b") + 1 :][:2]
    # ``last`` need not be an existing tag
    response = client.get(f"/v2/{repo}/tags/list", params={"last": "b"})
    assert _tags(response, repo) == [t for t in tagged if t > "b"]


def test_tags_list_n_larger_than_count(client: httpx.Client, repo: str, tagged: list[str]) -> None:
    response = client.get(f"/v2/{repo}/tags/list", params={"n": len(tagged)})
    assert _tags(response, repo) == tagged
    assert "Link" not in response.headers
    response = client.get(f"/v2/{repo}/tags/list", params={"n": 1000})
    assert _tags(response, repo) == tagged


def test_tags_list_n_zero_is_empty_without_link(
    client: httpx.Client, repo: str, tagged: list[str]
) -> None:
    """spec: when n is zero, the list MUST be empty and MUST NOT include a Link header."""
    response = client.get(f"/v2/{repo}/tags/list", params={"n": 0})
    assert _tags(response, repo) == []
    assert "Link" not in response.headers


@pytest.mark.parametrize("n", ["-1", "abc", "1.5", "99999999999999999999", "0x10"])
def test_tags_list_invalid_n_is_400(client: httpx.Client, repo: str, n: str) -> None:
    push_content(client, repo, image_manifest(), "v1")
    response = client.get(f"/v2/{repo}/tags/list", params={"n": n})
    assert_error(response, 400, "PAGINATION_NUMBER_INVALID")


def test_tags_list_of_unknown_repository_is_404(client: httpx.Client, repo: str) -> None:
    assert_error(client.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")


# -- catalog ------------------------------------------------------------------------------------


@pytest.fixture
def catalog_repos(client: httpx.Client, repo: str) -> list[str]:
    names = [f"{repo}/c", f"{repo}/a", f"{repo}/b-1", f"{repo}/b"]
    for name in names:
        push_content(client, name, image_manifest(), "v1")
    return sorted(names)


def _catalog(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    repositories: list[str] = response.json()["repositories"]
    return repositories


def test_catalog_lists_repositories_in_byte_order(
    client: httpx.Client, catalog_repos: list[str]
) -> None:
    everything = _catalog(client.get("/v2/_catalog"))
    assert everything == sorted(everything, key=str.encode)
    assert [name for name in everything if name in catalog_repos] == catalog_repos


def test_catalog_pagination(client: httpx.Client, repo: str, catalog_repos: list[str]) -> None:
    response = client.get("/v2/_catalog", params={"n": 2, "last": repo})
    assert _catalog(response) == catalog_repos[:2]
    link = next_link(response)
    assert link is not None
    assert urlsplit(link).path == "/v2/_catalog"
    assert parse_qs(urlsplit(link).query) == {"n": ["2"], "last": [catalog_repos[1]]}
    second = client.get(link)
    assert _catalog(second)[:2] == catalog_repos[2:]


def test_catalog_n_zero_is_empty_without_link(
    client: httpx.Client, catalog_repos: list[str]
) -> None:
    response = client.get("/v2/_catalog", params={"n": 0})
    assert _catalog(response) == []
    assert "Link" not in response.headers


@pytest.mark.parametrize("n", ["-1", "many", "2.0"])
def test_catalog_invalid_n_is_400(client: httpx.Client, n: str) -> None:
    assert_error(client.get("/v2/_catalog", params={"n": n}), 400, "PAGINATION_NUMBER_INVALID")


# -- referrers ----------------------------------------------------------------------------------

TYPE_A = "application/vnd.portside.type-a"
TYPE_B = "application/vnd.portside.type-b+json"
NOTE = "org.opencontainers.conformance.test"


def _referrers(client: httpx.Client, repo: str, digest: str, **params: str) -> httpx.Response:
    response = client.get(f"/v2/{repo}/referrers/{digest}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == OCI_INDEX
    body = response.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    return response


def _descriptors(response: httpx.Response) -> dict[str, dict[str, object]]:
    return {d["digest"]: d for d in response.json()["manifests"]}


@pytest.fixture
def subject_with_referrers(client: httpx.Client, repo: str) -> tuple[Manifest, list[Manifest]]:
    subject = image_manifest()
    push_content(client, repo, subject, "subject")
    referrers = [
        artifact_manifest(TYPE_A, subject=subject, annotations={NOTE: "a-artifact"}),
        artifact_manifest(
            "", config_media_type=TYPE_B, subject=subject, annotations={NOTE: "b-config"}
        ),
        index_manifest(
            [image_manifest()], artifact_type=TYPE_A, subject=subject, annotations={NOTE: "idx"}
        ),
        index_manifest([image_manifest()], subject=subject, annotations={NOTE: "untyped"}),
    ]
    for referrer in referrers:
        response = push_content(client, repo, referrer)
        assert response.headers["OCI-Subject"] == subject.digest
    return subject, referrers


def test_referrers_list(
    client: httpx.Client, repo: str, subject_with_referrers: tuple[Manifest, list[Manifest]]
) -> None:
    subject, (artifact, config_typed, typed_index, untyped_index) = subject_with_referrers
    response = _referrers(client, repo, subject.digest)
    assert "OCI-Filters-Applied" not in response.headers
    found = _descriptors(response)
    assert set(found) == {m.digest for m in subject_with_referrers[1]}
    expected = [
        (artifact, TYPE_A, "a-artifact"),
        (config_typed, TYPE_B, "b-config"),  # no artifactType: the config's mediaType
        (typed_index, TYPE_A, "idx"),
        (untyped_index, None, "untyped"),  # an index without artifactType: omitted
    ]
    for manifest, artifact_type, note in expected:
        descriptor = found[manifest.digest]
        assert descriptor["mediaType"] == manifest.media_type
        assert descriptor["size"] == manifest.size
        assert descriptor.get("artifactType") == artifact_type
        assert descriptor["annotations"] == {NOTE: note}


def test_referrers_filtered_by_artifact_type(
    client: httpx.Client, repo: str, subject_with_referrers: tuple[Manifest, list[Manifest]]
) -> None:
    subject, (artifact, config_typed, typed_index, _) = subject_with_referrers
    response = _referrers(client, repo, subject.digest, artifactType=TYPE_A)
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert set(_descriptors(response)) == {artifact.digest, typed_index.digest}
    response = _referrers(client, repo, subject.digest, artifactType=TYPE_B)
    assert set(_descriptors(response)) == {config_typed.digest}
    response = _referrers(client, repo, subject.digest, artifactType="application/none")
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert response.json()["manifests"] == []


def test_referrers_of_unknown_digest_is_empty(client: httpx.Client, repo: str) -> None:
    push_content(client, repo, image_manifest(), "v1")
    for name in (repo, f"{repo}-never-pushed"):
        response = _referrers(client, name, digest_of(b"nothing"))
        assert response.json()["manifests"] == []


def test_referrer_pushed_before_its_subject(client: httpx.Client, repo: str) -> None:
    """conformance "subject missing": the subject need not exist when a referrer is pushed."""
    subject = image_manifest()
    referrer = artifact_manifest(TYPE_A, subject=subject, annotations={NOTE: "early"})
    response = push_content(client, repo, referrer)
    assert response.headers["OCI-Subject"] == subject.digest
    assert set(_descriptors(_referrers(client, repo, subject.digest))) == {referrer.digest}
    push_content(client, repo, subject, "late")
    assert set(_descriptors(_referrers(client, repo, subject.digest))) == {referrer.digest}


def test_referrers_stay_in_their_repository(client: httpx.Client, repo: str) -> None:
    subject = image_manifest()
    push_content(client, repo, subject)
    push_content(client, repo, artifact_manifest(TYPE_A, subject=subject))
    other = f"{repo}-other"
    push_content(client, other, subject)
    assert _referrers(client, other, subject.digest).json()["manifests"] == []


def test_manifest_without_subject_has_no_oci_subject_header(
    client: httpx.Client, repo: str
) -> None:
    response = push_content(client, repo, image_manifest(), "plain")
    assert "OCI-Subject" not in response.headers


def test_referrers_with_invalid_digest_is_400(client: httpx.Client, repo: str) -> None:
    push_content(client, repo, image_manifest(), "v1")
    assert_error(client.get(f"/v2/{repo}/referrers/sha256:nothex"), 400, "DIGEST_INVALID")
