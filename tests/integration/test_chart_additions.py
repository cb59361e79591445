"""Helm chart additions (``values.yaml``, ``readme.md``, ``dependencies``) against a real server:
charts are built here as Helm packages them, pushed over ``/v2/`` with Helm's media types, and
their additions read back through ``/api/v2.0``. A file the chart lacks is an empty 200, as on
Harbor. Hostile chart layers must answer a clean 404, never a 5xx."""

from __future__ import annotations

import gzip
import io
import secrets
import tarfile
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.oci import Blob, Manifest, image_manifest, push_content, to_json
from tests.support.server import PortsideServer

API = "/api/v2.0"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
VALUES_TYPE = "text/plain; charset=utf-8"
README_TYPE = "text/markdown; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
MIB = 1 << 20

CHART_YAML = b"""apiVersion: v2
name: mychart
description: A chart built by the test
version: 1.2.3
appVersion: "4.5"
dependencies:
  - name: redis
    version: 17.3.7
    repository: https://charts.bitnami.com/bitnami
    condition: redis.enabled
    tags: [cache]
  - name: common
    version: 2.x.x
    repository: oci://registry-1.docker.io/bitnamicharts
    alias: base
    import-values:
      - child: exports.data
        parent: shared
"""
VALUES_YAML = b'replicaCount: 2\nimage:\n  repository: nginx\n  tag: "1.25"\n'
README_MD = "# mychart\n\nInstalls *nginx* \u2014 with care.\n".encode()
TEMPLATE = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
EXPECTED_DEPENDENCIES = [
    {
        "name": "redis",
        "version": "17.3.7",
        "repository": "https://charts.bitnami.com/bitnami",
        "condition": "redis.enabled",
        "tags": ["cache"],
    },
    {
        "name": "common",
        "version": "2.x.x",
        "repository": "oci://registry-1.docker.io/bitnamicharts",
        "import-values": [{"child": "exports.data", "parent": "shared"}],
        "alias": "base",
    },
]


def tgz(files: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> bytes:
    """A gzip-compressed tar of ``files`` (name -> content), as ``helm package`` makes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return buffer.getvalue()


def chart_files(**overrides: bytes | None) -> dict[str, bytes]:
    files: dict[str, bytes | None] = {
        "mychart/Chart.yaml": CHART_YAML,
        "mychart/values.yaml": VALUES_YAML,
        "mychart/README.md": README_MD,
        "mychart/templates/x.yaml": TEMPLATE,
        "mychart/charts/sub/values.yaml": b"sub: chart\n",  # a subchart's: never served
    }
    files.update({f"mychart/{name.replace('__', '/')}": v for name, v in overrides.items()})
    return {name: data for name, data in files.items() if data is not None}


def chart_manifest(layer: bytes, layer_type: str = HELM_CHART) -> Manifest:
    """A Helm OCI manifest: the config carries Chart.yaml's metadata as JSON, as Helm writes."""
    config = Blob(
        to_json(
            {
                "apiVersion": "v2",
                "name": "mychart",
                "version": "1.2.3",
                "nonce": secrets.token_hex(8),  # every test's chart is a new artifact
            }
        ),
        HELM_CONFIG,
    )
    return image_manifest(config=config, layers=[Blob(layer, layer_type)])


def additions_url(repo: str, reference: str) -> str:
    project, _, rest = repo.partition("/")
    encoded = rest.replace("/", "%252F")
    return f"{API}/projects/{project}/repositories/{encoded}/artifacts/{reference}/additions"


def push_chart(client: httpx.Client, repo: str, layer: bytes, tag: str = "1.2.3") -> str:
    manifest = chart_manifest(layer)
    push_content(client, repo, manifest, tag)
    return additions_url(repo, manifest.digest)


def not_found(response: httpx.Response) -> str:
    """A Harbor error body with status 404; its message."""
    assert response.status_code == 404, (response.status_code, response.text)
    errors = response.json()["errors"]
    assert errors[0]["code"] == "NOT_FOUND"
    message: str = errors[0]["message"]
    return message


# -- a well-formed chart ------------------------------------------------------------------------


def test_chart_additions_serve_values_readme_and_dependencies(
    client: httpx.Client, repo: str
) -> None:
    repo = f"{repo}/charts"  # a slash in the name: encoded twice in the API path
    url = push_chart(client, repo, tgz(chart_files()))

    values = client.get(f"{url}/values.yaml")
    assert values.status_code == 200, values.text
    assert values.headers["content-type"] == VALUES_TYPE
    assert values.content == VALUES_YAML

    readme = client.get(f"{url}/readme.md")
    assert readme.status_code == 200, readme.text
    assert readme.headers["content-type"] == README_TYPE
    assert readme.content == README_MD

    dependencies = client.get(f"{url}/dependencies")
    assert dependencies.status_code == 200, dependencies.text
    assert dependencies.headers["content-type"] == JSON_TYPE
    assert dependencies.json() == EXPECTED_DEPENDENCIES

    # Harbor upper-cases the addition name; a second read comes from the cache, identical.
    assert client.get(f"{url}/VALUES.YAML").content == VALUES_YAML
    assert client.get(f"{url}/Readme.MD").content == README_MD
    assert client.get(f"{url}/dependencies").json() == EXPECTED_DEPENDENCIES

    # By tag too.
    by_tag = client.get(f"{additions_url(repo, '1.2.3')}/values.yaml")
    assert by_tag.status_code == 200 and by_tag.content == VALUES_YAML


def test_chart_is_classified_and_its_addition_links_resolve(
    client: httpx.Client, repo: str
) -> None:
    push_chart(client, repo, tgz(chart_files()))
    artifact = client.get(
        f"{API}/projects/library/repositories/{repo.partition('/')[2]}/artifacts/1.2.3"
    )
    assert artifact.status_code == 200, artifact.text
    body = artifact.json()
    assert body["type"] == "CHART"
    assert body["media_type"] == HELM_CONFIG
    assert set(body["addition_links"]) == {"values.yaml", "readme.md", "dependencies"}
    for name, link in body["addition_links"].items():
        assert link["absolute"] is False
        followed = client.get(link["href"])
        assert followed.status_code == 200, (name, followed.text)
    assert client.get(body["addition_links"]["readme.md"]["href"]).content == README_MD


def test_helm_v1_chart_takes_dependencies_from_requirements_yaml(
    client: httpx.Client, repo: str
) -> None:
    files = chart_files(
        **{
            "Chart.yaml": b"apiVersion: v1\nname: mychart\nversion: 0.1.0\n",
            "requirements.yaml": b"dependencies:\n- name: mysql\n  version: 1.6.9\n"
            b"  repository: https://charts.helm.sh/stable\n",
        }
    )
    url = push_chart(client, repo, tgz(files))
    response = client.get(f"{url}/dependencies")
    assert response.status_code == 200, response.text
    assert response.json() == [
        {"name": "mysql", "version": "1.6.9", "repository": "https://charts.helm.sh/stable"}
    ]


def test_chart_without_dependencies_answers_an_empty_list(client: httpx.Client, repo: str) -> None:
    url = push_chart(
        client,
        repo,
        tgz(chart_files(**{"Chart.yaml": b"apiVersion: v2\nname: a\nversion: 1.0.0\n"})),
    )
    response = client.get(f"{url}/dependencies")
    assert response.status_code == 200, response.text
    assert response.json() == []


def assert_empty(response: httpx.Response, content_type: str) -> None:
    """Harbor's answer for a file the chart lacks: 200, no body, the addition's content type."""
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.content == b""
    assert response.headers["content-type"] == content_type


def test_chart_without_readme_answers_empty_for_it_only(client: httpx.Client, repo: str) -> None:
    url = push_chart(client, repo, tgz(chart_files(**{"README.md": None})))
    assert_empty(client.get(f"{url}/readme.md"), README_TYPE)
    assert_empty(client.get(f"{url}/README.MD"), README_TYPE)
    assert client.get(f"{url}/values.yaml").content == VALUES_YAML
    assert client.get(f"{url}/dependencies").json() == EXPECTED_DEPENDENCIES


def test_chart_with_only_chart_yaml_answers_empty_files(client: httpx.Client, repo: str) -> None:
    url = push_chart(client, repo, tgz({"mychart/Chart.yaml": CHART_YAML}))
    assert_empty(client.get(f"{url}/values.yaml"), VALUES_TYPE)
    assert_empty(client.get(f"{url}/readme.md"), README_TYPE)
    assert client.get(f"{url}/dependencies").status_code == 200
    # A README below the top directory (a subchart's) is still not the chart's.
    nested = tgz({"mychart/Chart.yaml": CHART_YAML, "mychart/charts/sub/README.md": b"# sub\n"})
    url = push_chart(client, repo, nested, tag="nested")
    assert_empty(client.get(f"{url}/readme.md"), README_TYPE)


def test_additions_of_a_non_chart_artifact_are_404(client: httpx.Client, repo: str) -> None:
    image = image_manifest()
    push_content(client, repo, image, "v1")
    url = additions_url(repo, image.digest)
    for addition in ("values.yaml", "readme.md", "dependencies"):
        not_found(client.get(f"{url}/{addition}"))


def test_chart_additions_of_a_private_project_refuse_anonymous_callers(
    registry: PortsideServer, client: httpx.Client
) -> None:
    project = f"charts{secrets.token_hex(4)}"
    created = client.post(
        f"{API}/projects", json={"project_name": project, "metadata": {"public": "false"}}
    )
    assert created.status_code == 201, created.text
    url = push_chart(client, f"{project}/mychart", tgz(chart_files()))
    assert client.get(f"{url}/values.yaml").status_code == 200
    with httpx.Client(base_url=registry.url, timeout=30) as anonymous:
        for addition in ("values.yaml", "readme.md", "dependencies"):
            response = anonymous.get(f"{url}/{addition}")
            assert response.status_code == 401, response.text
            assert VALUES_YAML not in response.content


def test_concurrent_reads_of_one_chart_agree(client: httpx.Client, repo: str) -> None:
    url = push_chart(client, repo, tgz(chart_files()))

    def read(_: int) -> tuple[int, bytes]:
        response = client.get(f"{url}/values.yaml")
        return response.status_code, response.content

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(read, range(16)))
    assert answers == [(200, VALUES_YAML)] * 16


# -- hostile or broken chart layers -------------------------------------------------------------


def _zero_bomb() -> bytes:
    """A small gzip that unpacks to 200 MiB of tar: a file of zeros, then a Chart.yaml."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as zipped,
        tarfile.open(fileobj=zipped, mode="w|") as archive,
    ):
        info = tarfile.TarInfo("mychart/zeros")
        info.size = 200 * MIB
        archive.addfile(info, io.BytesIO(bytes(info.size)))
        chart = tarfile.TarInfo("mychart/Chart.yaml")
        chart.size = len(CHART_YAML)
        archive.addfile(chart, io.BytesIO(CHART_YAML))
    return buffer.getvalue()


HOSTILE = {
    "not-gzip": b"PK\x03\x04 this is a zip, not a chart" + secrets.token_bytes(64),
    "gzip-of-garbage": gzip.compress(secrets.token_bytes(4096)),
    "truncated": tgz(chart_files())[:200],
    "empty": b"",
    "climbs-out": tgz({"../../etc/Chart.yaml": CHART_YAML, **chart_files()}),
    "climbs-out-inside": tgz({"mychart/../../values.yaml": b"x: 1\n", **chart_files()}),
    "absolute-path": tgz({"/etc/passwd": b"root:x:0:0\n", **chart_files()}),
    "no-chart-yaml": tgz(chart_files(**{"Chart.yaml": None})),
    "chart-yaml-not-yaml": tgz(chart_files(**{"Chart.yaml": b"name: [unclosed\n  - {"})),
    "chart-yaml-a-list": tgz(chart_files(**{"Chart.yaml": b"- a\n- b\n"})),
    "chart-yaml-too-large": tgz(chart_files(**{"Chart.yaml": b"#" * (MIB + 1)})),
    "symlinked-files": tgz(
        {"mychart/Chart.yaml": CHART_YAML},
        symlinks={"mychart/values.yaml": "/etc/passwd", "mychart/README.md": "../../x"},
    ),
    "gzip-bomb": _zero_bomb(),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_chart_layers_answer_404_never_5xx(
    client: httpx.Client, repo: str, case: str
) -> None:
    url = push_chart(client, repo, HOSTILE[case])
    for addition in ("values.yaml", "readme.md", "dependencies"):
        response = client.get(f"{url}/{addition}")
        if case == "symlinked-files":
            # Chart.yaml is a regular file, so this is a chart; links are never followed, so
            # values.yaml and README.md count as absent (empty) and never leak the target.
            assert response.status_code == 200, response.text
            assert b"root:" not in response.content
            if addition != "dependencies":
                assert response.content == b""
            continue
        message = not_found(response)
        assert "Traceback" not in message
    # The registry still serves after the hostile read.
    assert client.get(f"{API}/ping").status_code == 200


def test_oversized_values_yaml_is_refused_and_the_rest_still_served(
    client: httpx.Client, repo: str
) -> None:
    url = push_chart(client, repo, tgz(chart_files(**{"values.yaml": b"#" * (MIB + 1)})))
    assert "larger than" in not_found(client.get(f"{url}/values.yaml"))
    assert client.get(f"{url}/readme.md").content == README_MD
    assert client.get(f"{url}/dependencies").json() == EXPECTED_DEPENDENCIES
    # Exactly at the cap is served.
    at_cap = b"#" * MIB
    url = push_chart(client, repo, tgz(chart_files(**{"values.yaml": at_cap})), tag="cap")
    response = client.get(f"{url}/values.yaml")
    assert response.status_code == 200 and response.content == at_cap


def test_chart_whose_layer_has_no_chart_media_type_uses_its_first_non_config_layer(
    client: httpx.Client, repo: str
) -> None:
    manifest = chart_manifest(tgz(chart_files()), layer_type="application/tar+gzip")
    push_content(client, repo, manifest)
    response = client.get(f"{additions_url(repo, manifest.digest)}/values.yaml")
    assert response.status_code == 200 and response.content == VALUES_YAML
    other = chart_manifest(tgz(chart_files()), layer_type="application/octet-stream")
    push_content(client, repo, other)
    response = client.get(f"{additions_url(repo, other.digest)}/readme.md")
    assert response.status_code == 200 and response.content == README_MD
