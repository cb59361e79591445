"""Vulnerability scanning through the API, on a real server with the shared advisory data:
scan results against expectations computed independently (``packaging``), scan on push, the
pull gate with allowlists, scan-all, and scanner registrations."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import scanning
from tests.support.layers import dist_info, image_of, tar_layer
from tests.support.oci import Blob, artifact_manifest, push_content
from tests.support.sboms import cyclonedx_problems, spdx_problems
from tests.support.server import PortsideServer
from tests.support.vulndata import pypa_expected, shared_vulndb

SPDX = "application/spdx+json"


@pytest.fixture
def project(client: httpx.Client) -> Iterator[str]:
    yield scanning.project(client)


def test_old_python_packages_give_exactly_the_advisories_that_apply(
    vulndb: PortsideServer, client: httpx.Client, project: str
) -> None:
    repository = f"{project}/python"
    image = scanning.python_image(scanning.OLD_PACKAGES)
    push_content(client, repository, image, "old")
    report = scanning.scan(client, repository, image.digest)
    expected = pypa_expected(scanning.OLD_PACKAGES)
    assert len(expected) > 20  # the data really covers these releases
    assert scanning.findings(report) == expected
    assert report["artifact"]["digest"] == image.digest
    found = scanning.overview(client, repository, image.digest)
    assert found["summary"]["total"] == len(report["vulnerabilities"])
    for item in report["vulnerabilities"]:
        assert item["severity"] in ("Unknown", "Low", "Medium", "High", "Critical")
        assert item["version"] == scanning.OLD_PACKAGES[item["package"]]


def test_a_later_layer_that_replaces_a_package_is_what_counts(
    vulndb: PortsideServer, client: httpx.Client, project: str
) -> None:
    old = dist_info("flask", "0.12")
    new = dist_info("flask", "2.3.3")
    folder = next(iter(old)).rsplit("/", 1)[0]
    parent, _, base = folder.rpartition("/")
    image = image_of(
        [
            tar_layer({**old, **dist_info("requests", "2.19.1")}),
            tar_layer({f"{parent}/.wh.{base}": b"", **new}),
        ]
    )
    repository = f"{project}/layered"
    push_content(client, repository, image, "v1")
    report = scanning.scan(client, repository, image.digest)
    expected = pypa_expected({"flask": "2.3.3", "requests": "2.19.1"})
    assert scanning.findings(report) == expected
    assert all(
        item["package"] != "flask" or item["version"] == "2.3.3"
        for item in report["vulnerabilities"]
    )


def test_an_image_without_known_packages_has_a_clean_report(
    vulndb: PortsideServer, client: httpx.Client, project: str
) -> None:
    image = image_of([tar_layer({"app/main.sh": b"echo hi\n"}, compression="zstd")])
    repository = f"{project}/clean"
    push_content(client, repository, image, "v1")
    report = scanning.scan(client, repository, image.digest)
    assert report["vulnerabilities"] == []
    assert scanning.overview(client, repository, image.digest)["summary"]["total"] == 0


def test_artifacts_that_are_not_images_cannot_be_scanned(
    client: httpx.Client, project: str
) -> None:
    repository = f"{project}/notes"
    note = artifact_manifest("application/vnd.example.note")
    push_content(client, repository, note, "v1")
    response = client.post(f"{scanning.artifact_path(repository, note.digest)}/scan")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "BAD_REQUEST"


def test_an_artifact_never_scanned_has_no_report(client: httpx.Client, project: str) -> None:
    image = scanning.python_image({"requests": "2.19.1"})
    repository = f"{project}/unscanned"
    push_content(client, repository, image, "v1")
    path = scanning.artifact_path(repository, image.digest)
    addition = client.get(f"{path}/additions/vulnerabilities")
    assert addition.status_code == 200
    assert addition.json() == {}
    assert scanning.overview(client, repository, image.digest) == {}


def test_projects_that_scan_on_push_scan_without_being_asked(
    vulndb: PortsideServer, client: httpx.Client
) -> None:
    project = scanning.project(client, auto_scan="true")
    repository = f"{project}/auto"
    image = scanning.python_image({"urllib3": "1.24.1"})
    push_content(client, repository, image, "v1")
    overview = scanning.wait_for_scan(client, repository, image.digest)
    assert overview["scan_status"] == "Success"
    assert overview["summary"]["total"] == len(pypa_expected({"urllib3": "1.24.1"}))


def test_a_guest_may_not_start_a_scan(
    registry: PortsideServer, client: httpx.Client, project: str
) -> None:
    image = scanning.python_image({"requests": "2.19.1"})
    repository = f"{project}/guarded"
    push_content(client, repository, image, "v1")
    user = f"guest{secrets.token_hex(3)}"
    password = "Guest-Pass-1"
    created = client.post(
        "/api/v2.0/users",
        json={
            "username": user,
            "password": password,
            "email": f"{user}@example.com",
            "realname": user,
        },
    )
    assert created.status_code == 201, created.text
    member = client.post(
        f"/api/v2.0/projects/{project}/members",
        json={"role_id": 3, "member_user": {"username": user}},
    )
    assert member.status_code == 201, member.text
    with httpx.Client(base_url=registry.url, auth=(user, password)) as guest:
        response = guest.post(f"{scanning.artifact_path(repository, image.digest)}/scan")
        assert response.status_code == 403
        assert guest.get(scanning.artifact_path(repository, image.digest)).status_code == 200


# -- the pull gate -----------------------------------------------------------------------------


def _pull(client: httpx.Client, repository: str, reference: str) -> httpx.Response:
    return client.get(
        f"/v2/{repository}/manifests/{reference}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )


def test_the_gate_refuses_unscanned_and_vulnerable_images_until_allowlisted(
    vulndb: PortsideServer, client: httpx.Client
) -> None:
    # The shared advisories carry no severity (every finding is Unknown), so the gate is set
    # to its strictest level, "none": every finding counts.
    project = scanning.project(client, prevent_vul="true", severity="none")
    repository = f"{project}/gated"
    image = scanning.python_image({"requests": "2.19.1", "django": "2.2.0"})
    push_content(client, repository, image, "v1")

    refused = _pull(client, repository, "v1")
    assert refused.status_code == 403
    error = refused.json()["errors"][0]
    assert error["code"] == "DENIED"
    assert "not been scanned" in error["message"]

    report = scanning.scan(client, repository, image.digest)
    blocking = sorted({v["id"] for v in report["vulnerabilities"]})
    assert blocking, "the test image needs findings"
    refused = _pull(client, repository, "v1")
    assert refused.status_code == 403
    message = refused.json()["errors"][0]["message"]
    assert f"{len(blocking)} vulnerabilities" in message
    assert "severity None" in message

    # The system allowlist (which projects reuse by default) lifts exactly those CVEs.
    allow = {"items": [{"cve_id": cve} for cve in blocking], "expires_at": None}
    assert client.put("/api/v2.0/system/CVEAllowlist", json=allow).status_code == 200
    try:
        assert _pull(client, repository, "v1").status_code == 200
        allow["expires_at"] = int(time.time()) - 10  # expired: allows nothing
        assert client.put("/api/v2.0/system/CVEAllowlist", json=allow).status_code == 200
        assert _pull(client, repository, "v1").status_code == 403
    finally:
        client.put("/api/v2.0/system/CVEAllowlist", json={"items": []})


def test_the_gate_never_blocks_artifacts_a_scanner_cannot_judge(client: httpx.Client) -> None:
    project = scanning.project(client, prevent_vul="true", severity="low")
    repository = f"{project}/signed"
    note = artifact_manifest("application/vnd.example.signature")
    push_content(client, repository, note, "sig")
    assert _pull(client, repository, "sig").status_code == 200


def test_the_gate_ignores_projects_without_the_policy(
    vulndb: PortsideServer, client: httpx.Client, project: str
) -> None:
    repository = f"{project}/open"
    image = scanning.python_image({"django": "2.2.0"})
    push_content(client, repository, image, "v1")
    assert _pull(client, repository, "v1").status_code == 200


# -- allowlist and scanner settings --------------------------------------------------------------


def test_the_system_allowlist_validates_ids_and_is_admin_only(
    registry: PortsideServer, client: httpx.Client
) -> None:
    bad = client.put("/api/v2.0/system/CVEAllowlist", json={"items": [{"cve_id": "not ok!"}]})
    assert bad.status_code == 400
    current = client.get("/api/v2.0/system/CVEAllowlist")
    assert current.status_code == 200
    assert set(current.json()) >= {"id", "project_id", "expires_at", "items"}
    assert current.json()["project_id"] == 0


def test_the_builtin_scanner_is_registered_and_cannot_be_removed(client: httpx.Client) -> None:
    scanners = client.get("/api/v2.0/scanners")
    assert scanners.status_code == 200
    builtin = next(s for s in scanners.json() if s["name"] == "Portside")
    assert builtin["is_default"] is True
    assert client.delete(f"/api/v2.0/scanners/{builtin['uuid']}").status_code == 403
    metadata = client.get(f"/api/v2.0/scanners/{builtin['uuid']}/metadata")
    assert metadata.status_code == 200
    types = {c.get("type") for c in metadata.json()["capabilities"]}
    assert types == {"vulnerability", "sbom"}


def test_scanner_registrations_are_validated(client: httpx.Client) -> None:
    name = f"ext{secrets.token_hex(3)}"
    assert (
        client.post("/api/v2.0/scanners", json={"name": name, "url": "ftp://x"}).status_code == 400
    )
    created = client.post(
        "/api/v2.0/scanners",
        json={
            "name": name,
            "url": "http://127.0.0.1:9/",
            "auth": "Bearer",
            "access_credential": "s3cret",
        },
    )
    assert created.status_code == 201, created.text
    uuid = created.headers["Location"].rsplit("/", 1)[1]
    try:
        found = client.get(f"/api/v2.0/scanners/{uuid}").json()
        assert found["access_credential"] == "*****"  # never read back
        duplicate = client.post("/api/v2.0/scanners", json={"name": name, "url": "http://x"})
        assert duplicate.status_code == 409
        ping = client.post(
            "/api/v2.0/scanners/ping", json={"name": name, "url": "http://127.0.0.1:9"}
        )
        hostile = client.post(
            "/api/v2.0/scanners", json={"name": "bad\u0000name", "url": "http://127.0.0.1:9"}
        )
        assert hostile.status_code == 400
        # A NUL is refused at the request boundary, before any lookup.
        assert client.get("/api/v2.0/scanners/not-a-uuid%00").status_code == 400
        assert (
            client.put(
                f"/api/v2.0/projects/{scanning.project(client)}/scanner", json={"uuid": "x\u0000"}
            ).status_code
            == 400
        )
        assert ping.status_code == 400  # nothing listens on port 9
    finally:
        assert client.delete(f"/api/v2.0/scanners/{uuid}").status_code == 200


# -- scan-all ---------------------------------------------------------------------------------


def test_scan_all_scans_every_image_and_can_be_scheduled(
    vulndb: PortsideServer, client: httpx.Client, project: str
) -> None:
    images = [
        scanning.python_image({"requests": "2.19.1"}),
        scanning.python_image({"flask": "0.12"}),
    ]
    repository = f"{project}/many"
    for number, image in enumerate(images):
        push_content(client, repository, image, f"v{number}")
    started = client.post(
        "/api/v2.0/system/scanAll/schedule", json={"schedule": {"type": "Manual"}}
    )
    assert started.status_code == 201, started.text
    for image in images:
        assert scanning.wait_for_scan(client, repository, image.digest)["scan_status"] == "Success"
    metrics = client.get("/api/v2.0/scans/all/metrics").json()
    assert metrics["total"] >= 2

    daily = client.put("/api/v2.0/system/scanAll/schedule", json={"schedule": {"type": "Daily"}})
    assert daily.status_code == 200
    schedule = client.get("/api/v2.0/system/scanAll/schedule").json()["schedule"]
    assert schedule["type"] == "Daily"
    assert schedule["cron"] == "0 0 0 * * *"
    assert schedule["next_scheduled_time"].endswith("T00:00:00.000Z")
    bad = client.put(
        "/api/v2.0/system/scanAll/schedule",
        json={"schedule": {"type": "Custom", "cron": "every day"}},
    )
    assert bad.status_code == 400
    client.put("/api/v2.0/system/scanAll/schedule", json={"schedule": {"type": "None"}})


# -- SBOMs ----------------------------------------------------------------------------------


def _sbom_referrers(client: httpx.Client, repository: str, digest: str) -> list[dict[str, Any]]:
    found = client.get(f"/v2/{repository}/referrers/{digest}")
    assert found.status_code == 200
    return [m for m in found.json()["manifests"] if m.get("artifactType") == SPDX]


def _wait_for_sbom(client: httpx.Client, repository: str, digest: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if found := _sbom_referrers(client, repository, digest):
            return found[0]
        time.sleep(0.2)
    raise AssertionError("no SBOM accessory appeared")


def _ended_sbom_generation(client: httpx.Client, path: str) -> dict[str, Any]:
    """The artifact (with its accessories and SBOM overview) once its SBOM generation has
    ended. The job stores the accessory first and is marked done after, so the accessory
    can be listed while the overview still says the job is running."""
    deadline = time.monotonic() + 60
    while True:
        found = client.get(path, params={"with_accessory": "true", "with_sbom_overview": "true"})
        assert found.status_code == 200, found.text
        artifact: dict[str, Any] = found.json()
        overview = artifact.get("sbom_overview") or {}
        if overview.get("scan_status") in ("Success", "Error", "Stopped"):
            return artifact
        assert time.monotonic() < deadline, f"the SBOM generation did not end: {overview}"
        time.sleep(0.2)


def test_a_generated_sbom_is_stored_as_a_valid_spdx_accessory_of_the_image(
    client: httpx.Client, project: str
) -> None:
    repository = f"{project}/sbom"
    image = scanning.python_image({"requests": "2.19.1", "flask": "0.12"})
    push_content(client, repository, image, "v1")
    path = scanning.artifact_path(repository, image.digest)
    queued = client.post(f"{path}/scan", json={"scan_type": "sbom"})
    assert queued.status_code == 202, queued.text
    accessory = _wait_for_sbom(client, repository, image.digest)

    manifest = client.get(
        f"/v2/{repository}/manifests/{accessory['digest']}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).json()
    assert manifest["subject"]["digest"] == image.digest
    assert manifest["config"]["mediaType"] == "application/vnd.goharbor.harbor.sbom.v1"
    layer = manifest["layers"][0]
    document = client.get(f"/v2/{repository}/blobs/{layer['digest']}").json()
    assert spdx_problems(document) == []
    names = {p["name"] for p in document["packages"]}
    assert {"requests", "flask"} <= names

    listed = _ended_sbom_generation(client, path)
    assert listed["sbom_overview"]["scan_status"] == "Success"
    assert listed["sbom_overview"]["sbom_digest"] == accessory["digest"]
    assert [(a["digest"], a["type"]) for a in listed["accessories"]] == [
        (accessory["digest"], "sbom.harbor")
    ]

    # Generating again replaces the accessory instead of piling them up.
    assert client.post(f"{path}/scan", json={"scan_type": "sbom"}).status_code == 202
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = _sbom_referrers(client, repository, image.digest)
        if len(current) == 1 and current[0]["digest"] != accessory["digest"]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the SBOM was not replaced: {current}")


def test_sboms_are_served_on_demand_in_both_formats(client: httpx.Client, project: str) -> None:
    repository = f"{project}/formats"
    image = scanning.python_image({"django": "2.2.0"})
    push_content(client, repository, image, "v1")
    path = scanning.artifact_path(repository, "v1")
    cyclonedx = client.get(f"{path}/sbom", params={"format": "cyclonedx"})
    assert cyclonedx.status_code == 200
    assert cyclonedx.headers["content-type"].startswith("application/vnd.cyclonedx+json")
    assert cyclonedx_problems(cyclonedx.json()) == []
    spdx = client.get(f"{path}/sbom")
    assert spdx.status_code == 200
    assert spdx_problems(spdx.json()) == []
    assert client.get(f"{path}/sbom", params={"format": "xml"}).status_code == 400


def test_projects_may_generate_sboms_on_push(client: httpx.Client) -> None:
    project = scanning.project(client, auto_sbom_generation="true")
    repository = f"{project}/autosbom"
    image = scanning.python_image({"pyyaml": "5.3"})
    push_content(client, repository, image, "v1")
    _wait_for_sbom(client, repository, image.digest)


# -- stopping, events -------------------------------------------------------------------------


def _events(server: PortsideServer, kind: str, digest: str) -> list[dict[str, Any]]:
    """The logged events of one kind about one digest, once at least one is there.

    The server writes its log from a thread that gathers lines for a moment,
    so an event shows up shortly after the request that caused it.
    """
    return server.log_entries(
        lambda entry: (
            entry.get("event") == "event"
            and entry.get("type") == kind
            and entry.get("digest") == digest
        )
    )


def test_a_finished_scan_is_announced(
    vulndb: PortsideServer, client: httpx.Client, project: str
) -> None:
    repository = f"{project}/announced"
    image = scanning.python_image({"requests": "2.19.1"})
    push_content(client, repository, image, "v1")
    scanning.scan(client, repository, image.digest)
    assert _events(vulndb, "SCANNING_COMPLETED", image.digest)


def test_a_queued_scan_can_be_stopped(fresh_registry: PortsideServer) -> None:
    # No workers on this server: a scan stays queued until it is stopped.
    fresh_registry.env = {"PORTSIDE_SCANNER__WORKERS": "0", "PORTSIDE_LOG__FORMAT": "json"}
    fresh_registry.start()
    with fresh_registry.client() as client:
        project = scanning.project(client)
        repository = f"{project}/queued"
        image = scanning.python_image({"flask": "0.12"})
        push_content(client, repository, image, "v1")
        path = scanning.artifact_path(repository, image.digest)
        assert client.post(f"{path}/scan/stop").status_code == 400  # nothing to stop yet
        assert client.post(f"{path}/scan").status_code == 202
        assert scanning.overview(client, repository, image.digest)["scan_status"] == "Pending"
        assert (
            client.post(f"{path}/scan/stop", json={"scan_type": "vulnerability"}).status_code == 202
        )
        assert scanning.overview(client, repository, image.digest)["scan_status"] == "Stopped"
        assert client.post(f"{path}/scan/stop").status_code == 400
        assert client.get(f"{path}/additions/vulnerabilities").json() == {}
    stopped = _events(fresh_registry, "SCANNING_STOPPED", image.digest)
    assert len(stopped) == 1 and stopped[0]["operator"] == "admin"


def test_an_image_with_a_corrupt_layer_fails_its_scan_cleanly(
    client: httpx.Client, project: str
) -> None:
    broken = Blob(b"\x1f\x8b not really gzip " * 8, "application/vnd.oci.image.layer.v1.tar+gzip")
    image = image_of([broken])
    repository = f"{project}/corrupt"
    push_content(client, repository, image, "v1")
    path = scanning.artifact_path(repository, image.digest)
    assert client.post(f"{path}/scan").status_code == 202
    ended = scanning.wait_for_scan(client, repository, image.digest)
    assert ended["scan_status"] == "Error"
    sbom = client.get(f"{path}/sbom")
    assert sbom.status_code == 400
    assert (
        "cannot" in sbom.json()["errors"][0]["message"]
        or "SBOM" in sbom.json()["errors"][0]["message"]
    )


def test_a_project_may_keep_its_own_allowlist(vulndb: PortsideServer, client: httpx.Client) -> None:
    project = scanning.project(
        client, prevent_vul="true", severity="none", reuse_sys_cve_allowlist="false"
    )
    repository = f"{project}/own-list"
    image = scanning.python_image({"flask": "0.12"})
    push_content(client, repository, image, "v1")
    report = scanning.scan(client, repository, image.digest)
    cves = sorted({v["id"] for v in report["vulnerabilities"]})
    assert cves
    assert _pull(client, repository, "v1").status_code == 403
    # The system list does not apply to this project ...
    system = {"items": [{"cve_id": cve} for cve in cves]}
    assert client.put("/api/v2.0/system/CVEAllowlist", json=system).status_code == 200
    try:
        assert _pull(client, repository, "v1").status_code == 403
    finally:
        client.put("/api/v2.0/system/CVEAllowlist", json={"items": []})
    # ... its own does, set through Harbor's project body.
    body = {"cve_allowlist": {"items": [{"cve_id": cve} for cve in cves[:-1]]}}
    assert client.put(f"/api/v2.0/projects/{project}", json=body).status_code == 200
    refused = _pull(client, repository, "v1")
    assert refused.status_code == 403
    assert "1 vulnerabilities" in refused.json()["errors"][0]["message"]
    body = {"cve_allowlist": {"items": [{"cve_id": cve} for cve in cves]}}
    assert client.put(f"/api/v2.0/projects/{project}", json=body).status_code == 200
    assert _pull(client, repository, "v1").status_code == 200
    shown = client.get(f"/api/v2.0/projects/{project}").json()["cve_allowlist"]
    assert [item["cve_id"] for item in shown["items"]] == cves
    assert shown["project_id"] > 0
    bad = {"cve_allowlist": {"items": [{"cve_id": "no good"}]}}
    assert client.put(f"/api/v2.0/projects/{project}", json=bad).status_code == 400


# -- scans the advisories do not cover -----------------------------------------------------------

EMPTY_DATABASE = "the vulnerability database is empty"


def _ended(client: httpx.Client, repository: str, digest: str) -> dict[str, Any]:
    response = client.post(f"{scanning.artifact_path(repository, digest)}/scan")
    assert response.status_code == 202, response.text
    return scanning.wait_for_scan(client, repository, digest)


def _report(client: httpx.Client, repository: str, digest: str) -> dict[str, Any]:
    found = client.get(f"{scanning.artifact_path(repository, digest)}/additions/vulnerabilities")
    assert found.status_code == 200
    return dict(found.json()[scanning.REPORT])


def test_an_image_whose_os_has_no_advisories_is_not_reported_clean(
    vulndb: PortsideServer, client: httpx.Client
) -> None:
    # Only PyPI and Debian advisories were imported: the Alpine packages cannot be checked,
    # the Python ones can.
    project = scanning.project(client, prevent_vul="true", severity="critical")
    repository = f"{project}/alpine"
    image = scanning.alpine_image(dist_info("requests", "2.19.1"))
    push_content(client, repository, image, "v1")
    ended = _ended(client, repository, image.digest)
    assert ended["scan_status"] == "Error", ended
    assert "no advisories for Alpine:v3.19 (2 packages)" in ended["message"]
    assert "portside vulndb import" in ended["message"]
    report = _report(client, repository, image.digest)
    assert report["coverage"] == {
        "complete": False,
        "database_empty": False,
        "missing_ecosystems": {"Alpine:v3.19": 2},
        "message": ended["message"],
    }
    assert scanning.findings(report) == pypa_expected({"requests": "2.19.1"})  # still found
    path = scanning.artifact_path(repository, image.digest)
    log = client.get(f"{path}/scan/{ended['report_id']}/log")
    assert "Alpine:v3.19" in log.text

    # The pull gate treats it as not scanned (none of its findings is critical).
    refused = _pull(client, repository, "v1")
    assert refused.status_code == 403
    message = refused.json()["errors"][0]["message"]
    assert "not been scanned successfully" in message and "Alpine:v3.19" in message


def test_a_scan_without_any_advisories_is_not_reported_clean(
    fresh_registry: PortsideServer,
) -> None:
    fresh_registry.env = {"PORTSIDE_LOG__FORMAT": "json"}
    fresh_registry.start()
    with fresh_registry.client() as client:
        project = scanning.project(client, prevent_vul="true", severity="low")
        repository = f"{project}/app"
        image = scanning.python_image(scanning.OLD_PACKAGES)
        push_content(client, repository, image, "1.0")
        ended = _ended(client, repository, image.digest)
        assert ended["scan_status"] == "Error", ended
        assert EMPTY_DATABASE in ended["message"]
        assert "severity" not in ended  # never "None", which reads as clean
        report = _report(client, repository, image.digest)
        assert report["coverage"]["database_empty"] is True
        assert report["coverage"]["complete"] is False
        assert report["vulnerabilities"] == []
        refused = _pull(client, repository, "1.0")
        assert refused.status_code == 403, refused.text
        assert EMPTY_DATABASE in refused.json()["errors"][0]["message"]

        # Once advisories are there, the same scan succeeds and finds what applies.
        done = fresh_registry.run_command("vulndb", "import", str(shared_vulndb() / "pypa"))
        assert done.returncode == 0, done.stderr
        assert _ended(client, repository, image.digest)["scan_status"] == "Success"
        report = _report(client, repository, image.digest)
        assert "coverage" not in report  # a complete scan's report has Harbor's fields only
        assert scanning.findings(report) == pypa_expected(scanning.OLD_PACKAGES)


def test_serve_warns_while_the_vulnerability_database_is_empty(
    fresh_registry: PortsideServer,
) -> None:
    fresh_registry.env = {"PORTSIDE_LOG__FORMAT": "json"}
    fresh_registry.start()

    def warnings() -> list[dict[str, Any]]:
        return fresh_registry.log_entries(
            lambda entry: (
                entry.get("level") == "warning" and EMPTY_DATABASE in str(entry.get("event"))
            )
        )

    (warning,) = warnings()
    assert "portside vulndb import" in warning["event"]
    done = fresh_registry.run_command("vulndb", "import", str(shared_vulndb() / "debian-bookworm"))
    assert done.returncode == 0, done.stderr
    fresh_registry.restart()
    fresh_registry.stop()  # every line written
    assert len(warnings()) == 1  # the restart, with advisories, did not warn again


# -- severities --------------------------------------------------------------------------------


def test_unrated_findings_are_unknown_and_take_a_rating_from_their_cves_other_records(
    vulndb: PortsideServer, client: httpx.Client, project: str
) -> None:
    # No PyPA record of requests 2.19.1 carries a severity, nor does any other record of its
    # CVEs: the overall severity is Unknown, never None.
    repository = f"{project}/unrated"
    image = scanning.python_image({"requests": "2.19.1"})
    push_content(client, repository, image, "v1")
    report = scanning.scan(client, repository, image.digest)
    assert {item["severity"] for item in report["vulnerabilities"]} == {"Unknown"}
    assert report["severity"] == "Unknown"
    assert scanning.overview(client, repository, image.digest)["severity"] == "Unknown"

    # PYSEC-2022-230 (lxml, CVE-2022-2309) has none either, but Debian's record of the same
    # CVE (for libxml2) is rated: the finding takes that, and names where it came from.
    image = scanning.python_image({"lxml": "4.9.0"})
    push_content(client, repository, image, "v2")
    report = scanning.scan(client, repository, image.digest)
    (item,) = report["vulnerabilities"]
    assert (item["id"], item["severity"]) == ("CVE-2022-2309", "Medium")
    assert item["vendor_attributes"]["severity_source"] == "DEBIAN-CVE-2022-2309-libxml2"
    assert scanning.overview(client, repository, image.digest)["severity"] == "Medium"
