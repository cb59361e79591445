"""Harbor's CVE export (``/api/v2.0/export/cve``) on a real server: images with old Python
packages are scanned, exported, and the downloaded CSV is compared with their reports."""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from portside.scanner.report import CSV_COLUMNS
from tests.support import scanning
from tests.support.oci import index_manifest, push_content
from tests.support.server import PortsideServer

API = "/api/v2.0"
HEADERS = {"X-Scan-Data-Type": scanning.REPORT}
Row = tuple[str, str, str, str, str]  # CVE, Package, Current Version, Repository, Digest


@dataclass(frozen=True)
class Scanned:
    project: str
    project_id: int
    reports: dict[tuple[str, str], dict[str, Any]]  # (repository, digest) -> report
    tags: dict[tuple[str, str], str]

    def rows(self, repositories: set[str] | None = None) -> list[Row]:
        return sorted(
            (item["id"], item["package"], item["version"], repository, digest)
            for (repository, digest), report in self.reports.items()
            if repositories is None or repository.partition("/")[2] in repositories
            for item in report["vulnerabilities"]
        )


@pytest.fixture(scope="module")
def scanned(vulndb: PortsideServer) -> Iterator[Scanned]:
    """Two repositories with an old-package image each, scanned."""
    with vulndb.client() as client:
        project = scanning.project(client)
        project_id = client.get(f"{API}/projects/{project}").json()["project_id"]
        images = {
            f"{project}/web": (scanning.python_image({"requests": "2.19.1"}), "v1"),
            f"{project}/api": (scanning.python_image({"django": "2.2.0", "pyyaml": "5.3"}), "v2"),
        }
        reports, tags = {}, {}
        for repository, (image, tag) in images.items():
            push_content(client, repository, image, tag)
            report = scanning.scan(client, repository, image.digest)
            assert report["vulnerabilities"], "the test images need findings"
            reports[(repository, image.digest)] = report
            tags[(repository, image.digest)] = tag
        yield Scanned(project, project_id, reports, tags)


def start(client: httpx.Client, project_ids: list[int], **filters: Any) -> int:
    response = client.post(
        f"{API}/export/cve", json={"projects": project_ids, **filters}, headers=HEADERS
    )
    assert response.status_code == 200, response.text
    execution_id = response.json()["id"]
    assert isinstance(execution_id, int)
    return execution_id


def wait(client: httpx.Client, execution_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = client.get(f"{API}/export/cve/execution/{execution_id}")
        assert response.status_code == 200, response.text
        execution: dict[str, Any] = response.json()
        if execution["status"] != "Running":
            return execution
        time.sleep(0.1)
    raise AssertionError(f"export {execution_id} did not finish")


def download(client: httpx.Client, execution_id: int) -> list[Row]:
    response = client.get(f"{API}/export/cve/download/{execution_id}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert disposition == f'attachment; filename="scandata_export_{execution_id}.csv"'
    reader = csv.DictReader(io.StringIO(response.text))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    rows = list(reader)
    assert {row["Scanner"] for row in rows} == {"Portside"}
    return sorted(
        (
            row["CVE"],
            row["Package"],
            row["Current Version"],
            row["Repository"],
            row["Artifact Digest"],
        )
        for row in rows
    )


def export(client: httpx.Client, project_ids: list[int], **filters: Any) -> list[Row]:
    execution_id = start(client, project_ids, **filters)
    execution = wait(client, execution_id)
    assert execution["status"] == "Success", execution
    if not execution["file_present"]:
        assert execution["status_text"] == "No vulnerabilities found or matched"
        missing = client.get(f"{API}/export/cve/download/{execution_id}")
        assert missing.status_code == 404
        return []
    return download(client, execution_id)


def test_the_csv_lists_every_finding_of_the_projects_artifacts(
    client: httpx.Client, scanned: Scanned
) -> None:
    execution_id = start(client, [scanned.project_id], job_name="all of it")
    execution = wait(client, execution_id)
    assert execution["status"] == "Success", execution
    assert execution["file_present"] is True
    assert execution["user_name"] == "admin"
    assert execution["trigger"] == "MANUAL"
    assert execution["status_text"] == ""
    assert execution["end_time"] >= execution["start_time"]
    assert set(execution) == {
        "id",
        "user_id",
        "status",
        "trigger",
        "start_time",
        "end_time",
        "status_text",
        "user_name",
        "file_present",
    }
    rows = download(client, execution_id)
    assert rows == scanned.rows()  # exactly the report items: none lost, none repeated
    assert download(client, execution_id) == rows  # the file is kept after a download
    listed = client.get(f"{API}/export/cve/executions")
    assert listed.status_code == 200
    assert execution_id in [item["id"] for item in listed.json()["items"]]
    audit = client.get(f"{API}/audit-logs", params={"q": "operation=create"}).json()
    assert any(
        e["resource_type"] == "export-cve" and e["resource"] == f"execution {execution_id}"
        for e in audit
    )


def test_repository_tag_label_and_cve_filters(client: httpx.Client, scanned: Scanned) -> None:
    pid = [scanned.project_id]
    assert export(client, pid, repositories="web") == scanned.rows({"web"})
    assert export(client, pid, repositories="{web,api}") == scanned.rows()
    assert export(client, pid, repositories="w*") == scanned.rows({"web"})
    assert export(client, pid, repositories="nothing-here") == []
    assert export(client, pid, tags="v2") == scanned.rows({"api"})
    assert export(client, pid, tags="v*") == scanned.rows()

    wanted = sorted({row[0] for row in scanned.rows()})[:2]
    by_cve = export(client, pid, cveIds="{" + ",".join(wanted) + "}")
    assert by_cve == [row for row in scanned.rows() if row[0] in wanted]
    assert by_cve

    label = client.post(
        f"{API}/labels",
        json={"name": f"x{secrets.token_hex(3)}", "scope": "p", "project_id": scanned.project_id},
    )
    assert label.status_code == 201, label.text
    label_id = int(label.headers["Location"].rsplit("/", 1)[1])
    (repository, digest) = next(k for k in scanned.reports if k[0].endswith("/api"))
    attached = client.post(
        f"{scanning.artifact_path(repository, digest)}/labels", json={"id": label_id}
    )
    assert attached.status_code == 200, attached.text
    assert export(client, pid, labels=[label_id]) == scanned.rows({"api"})


def test_an_index_is_exported_as_its_platforms(
    vulndb: PortsideServer, client: httpx.Client
) -> None:
    project = scanning.project(client)
    project_id = client.get(f"{API}/projects/{project}").json()["project_id"]
    platforms = [
        scanning.python_image({"urllib3": "1.24.1"}),
        scanning.python_image({"jinja2": "2.10"}),
    ]
    index = index_manifest(platforms)
    repository = f"{project}/multi"
    push_content(client, repository, index, "v1")
    scanning.scan(client, repository, index.digest)
    expected = sorted(
        (item["id"], item["package"], item["version"], repository, platform.digest)
        for platform in platforms
        for item in client.get(
            f"{scanning.artifact_path(repository, platform.digest)}/additions/vulnerabilities"
        ).json()[scanning.REPORT]["vulnerabilities"]
    )
    assert expected
    assert export(client, [project_id]) == expected
    assert export(client, [project_id], tags="v1") == expected  # platforms carry the index's tag
    assert export(client, [project_id], tags="v9") == []


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"projects": [1]}, {}),
        ({"projects": [1]}, {"X-Scan-Data-Type": "application/json"}),
        ({"projects": []}, HEADERS),
        ({}, HEADERS),
        ({"projects": ["1"]}, HEADERS),
        ({"projects": [0]}, HEADERS),
        ({"projects": [2**40]}, HEADERS),
        ({"projects": [1], "repositories": "{web"}, HEADERS),
        ({"projects": [1], "tags": "[v"}, HEADERS),
        ({"projects": [1], "cveIds": "CVE-1, CVE-2"}, HEADERS),
        ({"projects": [1], "labels": ["x"]}, HEADERS),
        ({"projects": [1], "job_name": "a\u0000b"}, HEADERS),
        (b'{"projects": [1], "job_name": "\\ud800"}', HEADERS),  # a lone surrogate
    ],
)
def test_malformed_requests_are_400(
    client: httpx.Client, body: dict[str, Any] | bytes, headers: dict[str, str]
) -> None:
    if isinstance(body, bytes):
        headers = {**headers, "Content-Type": "application/json"}
        response = client.post(f"{API}/export/cve", content=body, headers=headers)
    else:
        response = client.post(f"{API}/export/cve", json=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "BAD_REQUEST"


def test_missing_projects_and_executions_are_404(client: httpx.Client) -> None:
    missing = client.post(f"{API}/export/cve", json={"projects": [2**31 - 1]}, headers=HEADERS)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "NOT_FOUND"
    for path in ("execution", "download"):
        response = client.get(f"{API}/export/cve/{path}/{2**31 - 1}")
        assert response.status_code == 404, response.text
        assert response.json()["errors"][0]["code"] == "NOT_FOUND"


def _user(client: httpx.Client) -> tuple[str, str]:
    name, password = f"exp{secrets.token_hex(3)}", "Export-Pass-1"
    created = client.post(
        f"{API}/users",
        json={"username": name, "password": password, "email": f"{name}@example.com"},
    )
    assert created.status_code == 201, created.text
    return name, password


def _member(client: httpx.Client, project: str, name: str, role_id: int) -> None:
    added = client.post(
        f"{API}/projects/{project}/members",
        json={"role_id": role_id, "member_user": {"username": name}},
    )
    assert added.status_code == 201, added.text


def _robot(client: httpx.Client, project: str, actions: list[str]) -> tuple[str, str]:
    created = client.post(
        f"{API}/robots",
        json={
            "name": f"exp{secrets.token_hex(3)}",
            "level": "project",
            "duration": -1,
            "permissions": [
                {
                    "kind": "project",
                    "namespace": project,
                    "access": [{"resource": "export-cve", "action": a} for a in actions],
                }
            ],
        },
    )
    assert created.status_code == 201, created.text
    return created.json()["name"], created.json()["secret"]


def test_only_callers_allowed_to_export_may_and_only_their_own_exports_are_theirs(
    registry: PortsideServer, client: httpx.Client, scanned: Scanned
) -> None:
    pid = [scanned.project_id]
    body = {"projects": pid}
    outsider = _user(client)
    guest = _user(client)
    _member(client, scanned.project, guest[0], 3)
    admins_export = start(client, pid)
    wait(client, admins_export)

    for credentials in (outsider, guest):
        with httpx.Client(base_url=registry.url, auth=credentials, timeout=30) as caller:
            refused = caller.post(f"{API}/export/cve", json=body, headers=HEADERS)
            assert refused.status_code == 403, refused.text
            assert refused.json()["errors"][0]["code"] == "FORBIDDEN"
            for path in ("execution", "download"):
                other = caller.get(f"{API}/export/cve/{path}/{admins_export}")
                assert other.status_code == 403, other.text
            assert caller.get(f"{API}/export/cve/executions").json() == {"items": []}

    # A robot given export-cve in the project may export it, and sees only its own exports.
    with httpx.Client(
        base_url=registry.url, auth=_robot(client, scanned.project, ["create", "read"]), timeout=30
    ) as robot:
        own = start(robot, pid, repositories="web")
        assert wait(robot, own)["status"] == "Success"
        assert download(robot, own) == scanned.rows({"web"})
        for path in ("execution", "download"):
            other = robot.get(f"{API}/export/cve/{path}/{admins_export}")
            assert other.status_code == 403, other.text
        listed = robot.get(f"{API}/export/cve/executions").json()["items"]
        assert [item["id"] for item in listed] == [own]
    assert wait(client, own)["status"] == "Success"  # a system admin may read anyone's

    # Reading is not exporting: read alone does not let a robot start one.
    with httpx.Client(
        base_url=registry.url, auth=_robot(client, scanned.project, ["read"]), timeout=30
    ) as reader:
        assert reader.post(f"{API}/export/cve", json=body, headers=HEADERS).status_code == 403


def test_a_developer_may_export(
    registry: PortsideServer, client: httpx.Client, scanned: Scanned
) -> None:
    developer = _user(client)
    _member(client, scanned.project, developer[0], 2)
    with httpx.Client(base_url=registry.url, auth=developer, timeout=30) as caller:
        own = start(caller, [scanned.project_id])
        assert wait(caller, own)["status"] == "Success"
        assert download(caller, own) == scanned.rows()


@pytest.mark.slow
async def test_harbors_python_client_exports_and_downloads(
    registry: PortsideServer, scanned: Scanned
) -> None:
    """harborapi (strictly validated, see test_harborapi) runs the whole export."""
    from harborapi.models import ScanDataExportRequest

    from tests.integration.test_harborapi import StrictHarborClient

    client = StrictHarborClient(
        url=f"{registry.url}{API}",
        username=registry.username,
        secret=registry.password,
        retry=None,
    )
    wanted = sorted({row[0] for row in scanned.rows({"api"})})[0]
    criteria = ScanDataExportRequest(
        job_name="harborapi", projects=[scanned.project_id], repositories="api", cveIds=wanted
    )
    job = await client.export_scan_data(criteria)
    deadline = time.monotonic() + 60
    while (execution := await client.get_scan_export(job.id)).status == "Running":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert execution.status == "Success" and execution.file_present is True
    assert execution.user_name == registry.username
    assert job.id in [e.id for e in (await client.get_scan_exports()).items or []]
    content = (await client.download_scan_export(job.id)).content.decode()
    rows = list(csv.DictReader(io.StringIO(content)))
    assert {(row["CVE"], row["Repository"]) for row in rows} == {(wanted, f"{scanned.project}/api")}
    assert client.problems == {}
