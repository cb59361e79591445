"""Scanning through the API in tests: projects, scans awaited to their end, reports."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx

from tests.support.layers import dist_info, image_of, tar_layer
from tests.support.oci import Manifest

__all__ = [
    "OLD_PACKAGES",
    "REPORT",
    "alpine_image",
    "artifact_path",
    "findings",
    "overview",
    "project",
    "python_image",
    "scan",
    "wait_for_scan",
]

REPORT = "application/vnd.security.vulnerability.report; version=1.1"
OLD_PACKAGES = {
    "requests": "2.19.1",
    "urllib3": "1.24.1",
    "jinja2": "2.10",
    "django": "2.2.0",
    "flask": "0.12",
    "pyyaml": "5.3",
}


def project(client: httpx.Client, **metadata: str) -> str:
    name = f"scan{secrets.token_hex(4)}"
    body = {"project_name": name, "metadata": {"public": "false", **metadata}}
    assert client.post("/api/v2.0/projects", json=body).status_code == 201
    return name


def artifact_path(repository: str, reference: str) -> str:
    project, _, name = repository.partition("/")
    return f"/api/v2.0/projects/{project}/repositories/{name}/artifacts/{reference}"


def overview(client: httpx.Client, repository: str, digest: str) -> dict[str, Any]:
    found = client.get(artifact_path(repository, digest), params={"with_scan_overview": "true"})
    assert found.status_code == 200, found.text
    return dict((found.json().get("scan_overview") or {}).get(REPORT) or {})


def wait_for_scan(
    client: httpx.Client, repository: str, digest: str, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = overview(client, repository, digest)
        if found.get("scan_status") in ("Success", "Error", "Stopped"):
            return found
        time.sleep(0.2)
    raise AssertionError(f"the scan of {digest} did not finish: {found}")


def scan(client: httpx.Client, repository: str, digest: str) -> dict[str, Any]:
    response = client.post(f"{artifact_path(repository, digest)}/scan")
    assert response.status_code == 202, response.text
    ended = wait_for_scan(client, repository, digest)
    assert ended["scan_status"] == "Success", ended
    report = client.get(f"{artifact_path(repository, digest)}/additions/vulnerabilities")
    assert report.status_code == 200
    return dict(report.json()[REPORT])


def findings(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(v["id"], v["package"]) for v in report["vulnerabilities"]}


def python_image(packages: dict[str, str]) -> Manifest:
    files: dict[str, bytes] = {}
    for name, version in packages.items():
        files.update(dist_info(name, version))
    return image_of([tar_layer({"etc/hostname": b"test\n"}), tar_layer(files)])


def alpine_image(extra: dict[str, bytes] | None = None) -> Manifest:
    """An Alpine 3.19 image with two apk packages (musl, busybox), and ``extra`` files."""
    installed = (
        "P:musl\nV:1.2.4_git20230717-r4\nA:x86_64\no:musl\n\n"
        "P:busybox\nV:1.36.1-r15\nA:x86_64\no:busybox\n\n"
    )
    release = b'ID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'
    files = {"etc/os-release": release, "lib/apk/db/installed": installed.encode()}
    return image_of([tar_layer({**files, **(extra or {})})])
