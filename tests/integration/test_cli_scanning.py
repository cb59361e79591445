"""``portside scan``, ``scan-all``, ``sbom get`` and ``cve-allowlist`` against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import scanning
from tests.support.oci import push_content
from tests.support.sboms import cyclonedx_problems
from tests.support.server import PortsideServer
from tests.support.vulndata import pypa_expected


def _cli(registry: PortsideServer, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTSIDE_")}
    env.update(
        HOME=str(home),
        PORTSIDE_URL=registry.url,
        PORTSIDE_USERNAME=registry.username,
        PORTSIDE_PASSWORD=registry.password,
    )
    done = subprocess.run(
        [sys.executable, "-m", "portside.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture
def pushed(client: httpx.Client) -> tuple[str, Any]:
    project = scanning.project(client)
    repository = f"{project}/cli"
    image = scanning.python_image({"requests": "2.19.1"})
    push_content(client, repository, image, "v1")
    return repository, image


def test_scan_waits_and_lists_the_findings(
    vulndb: PortsideServer, tmp_path: Path, pushed: tuple[str, Any]
) -> None:
    repository, _ = pushed
    done = _cli(vulndb, tmp_path, "scan", f"{repository}:v1")
    assert done.returncode == 0, done.stderr
    expected = pypa_expected({"requests": "2.19.1"})
    assert f"{len(expected)} vulnerabilities" in done.stdout
    for cve, _package in expected:
        assert cve in done.stdout
    as_json = _cli(vulndb, tmp_path, "scan", "--report", f"{repository}:v1", "-o", "json")
    assert as_json.returncode == 0
    report = json.loads(as_json.stdout)
    assert {(v["id"], v["package"]) for v in report["vulnerabilities"]} == expected


def test_scan_of_a_missing_artifact_is_a_clear_error(
    registry: PortsideServer, tmp_path: Path
) -> None:
    done = _cli(registry, tmp_path, "scan", "library/nothing-here:v1")
    assert done.returncode == 1
    assert "not found" in done.stderr


def test_sbom_get_writes_a_valid_cyclonedx_file(
    registry: PortsideServer, tmp_path: Path, pushed: tuple[str, Any]
) -> None:
    repository, _ = pushed
    target = tmp_path / "bom.json"
    done = _cli(
        registry,
        tmp_path,
        "sbom",
        "get",
        f"{repository}:v1",
        "--format",
        "cyclonedx",
        "-f",
        str(target),
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(target.read_text())
    assert cyclonedx_problems(document) == []
    assert any(c["name"] == "requests" for c in document["components"])


def test_scan_all_and_its_schedule(registry: PortsideServer, tmp_path: Path) -> None:
    assert _cli(registry, tmp_path, "scan-all", "--schedule", "weekly").returncode == 0
    status = _cli(registry, tmp_path, "scan-all", "--status", "-o", "json")
    assert status.returncode == 0
    assert json.loads(status.stdout)["schedule"]["type"] == "Weekly"
    bad = _cli(registry, tmp_path, "scan-all", "--schedule", "sometimes")
    assert bad.returncode == 1
    assert "cron" in bad.stderr
    assert _cli(registry, tmp_path, "scan-all", "--schedule", "none").returncode == 0


def test_cve_allowlist_set_and_show(registry: PortsideServer, tmp_path: Path) -> None:
    try:
        done = _cli(
            registry,
            tmp_path,
            "cve-allowlist",
            "set",
            "CVE-2023-4911",
            "CVE-2024-2961",
            "--expires-in-days",
            "30",
        )
        assert done.returncode == 0, done.stderr
        shown = _cli(registry, tmp_path, "cve-allowlist", "show", "-o", "json")
        items = [i["cve_id"] for i in json.loads(shown.stdout)["items"]]
        assert items == ["CVE-2023-4911", "CVE-2024-2961"]
        assert json.loads(shown.stdout)["expires_at"] > 0
        bad = _cli(registry, tmp_path, "cve-allowlist", "set", "not valid!")
        assert bad.returncode == 1
        assert "invalid CVE id" in bad.stderr
    finally:
        _cli(registry, tmp_path, "cve-allowlist", "set")


def test_scan_without_advisories_is_never_an_all_clear(
    fresh_registry: PortsideServer, tmp_path: Path
) -> None:
    fresh_registry.start()  # nothing imported
    with fresh_registry.client() as client:
        project = scanning.project(client)
        repository = f"{project}/app"
        push_content(client, repository, scanning.python_image({"requests": "2.19.1"}), "1.0")
    done = _cli(fresh_registry, tmp_path, "scan", f"{repository}:1.0")
    assert done.returncode == 1, done.stdout
    assert "no known vulnerabilities" not in done.stdout.lower()
    assert "INCOMPLETE" in done.stdout
    assert "the vulnerability database is empty" in done.stderr
    assert "portside vulndb import" in done.stderr
    as_json = _cli(fresh_registry, tmp_path, "scan", "--report", f"{repository}:1.0", "-o", "json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["coverage"]["database_empty"] is True
