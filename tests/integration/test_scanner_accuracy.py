"""Scanner accuracy on real images: a debootstrapped Debian 12 and real ``pip`` installs, pushed
by skopeo into a real Portside and scanned with the shared advisories. Every report must hold
exactly the findings computed independently (``dpkg --compare-versions`` and ``packaging``, in
:mod:`tests.support.vulndata`): no misses, no false positives.

Reports name dpkg *binary* packages (libc6); the advisories name *source* packages (glibc). The
binaries are mapped back to their sources with the image's own dpkg status file.
"""

from __future__ import annotations

import email.parser
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.clients import ClientEnv, Skopeo
from tests.support import scanning
from tests.support.debian import (
    Layer,
    binary_sources,
    debian_rootfs_fixture,  # noqa: F401 (a fixture)
    image_descriptor,
    pack_layer,
    rewrite_sources,
    tracked_versions,
    write_layout,
)
from tests.support.server import PortsideServer
from tests.support.vulndata import debian_expected, pypa_expected, shared_vulndb

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo"),
]

PIP = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile"]
SITE_PACKAGES = "usr/lib/python3.11/site-packages"
PIP_REQUIREMENTS = (
    "requests==2.19.1",
    "urllib3==1.24.1",
    "jinja2==2.10",
    "django==2.2.0",
    "flask==0.12",
)
# Sources moved back to their bookworm 12.0 versions in the "older" variant: together they
# cover the mapping's hard cases (several binaries per source, epochs only on some binaries
# of util-linux and shadow, binNMU +b1 binaries of libcap2).
OLDER_SOURCES = ("glibc", "gnutls28", "libcap2", "shadow", "systemd", "util-linux", "xz-utils")
SCAN_TIMEOUT = 120  # seconds; the first scan of a fresh Debian layer on 2 busy cores


@dataclass(frozen=True)
class Images:
    """The OCI layout holding every test image, and what each image's dpkg status says."""

    layout: Path
    status: Mapping[str, str]  # tag -> the dpkg status file of that image
    python: Mapping[str, str]  # installed distribution name -> version (from dist-info)
    older: frozenset[str]
    index: str  # digest of the multi-platform index
    platforms: Mapping[str, str]  # architecture -> manifest digest


def _record_sources() -> dict[str, int]:
    """{source: number of Debian records} of the shared data."""
    counts: dict[str, int] = {}
    for path in (shared_vulndb() / "debian-bookworm").glob("*.json"):
        for affected in json.loads(path.read_text()).get("affected", []):
            name = affected.get("package", {}).get("name")
            if name:
                counts[name] = counts.get(name, 0) + 1
    return counts


def _status_layer(folder: Path, status: str) -> Layer:
    tree = folder / "tree"
    (tree / "var/lib/dpkg").mkdir(parents=True)
    (tree / "var/lib/dpkg/status").write_text(status)
    return pack_layer(tree, folder / "layer.tar.gz")


def _pip_layer(folder: Path) -> tuple[Layer, dict[str, str]]:
    """The requirements installed by real pip where Debian's python3.11 looks for them; returns
    the layer and the versions pip actually installed, read from the dist-info folders."""
    site = folder / "tree" / SITE_PACKAGES
    subprocess.run(
        [*PIP, "--target", str(site), *PIP_REQUIREMENTS],
        check=True,
        capture_output=True,
        timeout=600,
    )
    installed: dict[str, str] = {}
    for metadata in sorted(site.glob("*.dist-info/METADATA")):
        headers = email.parser.Parser().parsestr(metadata.read_text(), headersonly=True)
        installed[headers["Name"]] = headers["Version"]
    return pack_layer(folder / "tree", folder / "layer.tar.gz"), installed


@pytest.fixture(scope="module")
def images(debian_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Images:
    work = tmp_path_factory.mktemp("accuracy")
    layout = work / "layout"
    status = (debian_rootfs / "var/lib/dpkg/status").read_text()
    installed = set(binary_sources(status).values())
    tracked = tracked_versions(shared_vulndb() / "debian-bookworm" / "packages.tsv")
    assert set(OLDER_SOURCES) <= installed, "minbase no longer installs these sources"

    older = rewrite_sources(status, {s: tracked[s][0] for s in OLDER_SOURCES})
    newest = rewrite_sources(status, {s: tracked[s][1] for s in installed if s in tracked})
    base = pack_layer(debian_rootfs, work / "base.tar.gz")
    older_layer = _status_layer(work / "older", older)
    newest_layer = _status_layer(work / "newest", newest)
    python_layer, python = _pip_layer(work / "python")

    statuses = {"12": status, "12-older": older, "12-newest": newest, "python": status}
    write_layout(layout, "12", [image_descriptor(layout, [base])])
    write_layout(layout, "12-older", [image_descriptor(layout, [base, older_layer])])
    write_layout(layout, "12-newest", [image_descriptor(layout, [base, newest_layer])])
    write_layout(layout, "python", [image_descriptor(layout, [base, python_layer])])
    amd64 = image_descriptor(layout, [base, python_layer], "amd64", label="multi")
    arm64 = image_descriptor(layout, [base, older_layer], "arm64", label="multi")
    index = write_layout(layout, "multi", [amd64, arm64])
    return Images(
        layout,
        statuses,
        python,
        frozenset(OLDER_SOURCES),
        index,
        {"amd64": str(amd64["digest"]), "arm64": str(arm64["digest"])},
    )


@pytest.fixture
def skopeo(tmp_path: Path) -> Skopeo:
    return Skopeo(ClientEnv.create(tmp_path / "clients"))


def _push(
    skopeo: Skopeo, server: PortsideServer, images: Images, tag: str, repository: str
) -> None:
    flags = ["--dest-creds", f"{server.username}:{server.password}", "--preserve-digests"]
    if tag == "multi":
        flags.append("--all")
    skopeo.copy(f"oci:{images.layout}:{tag}", f"docker://{server.host}/{repository}:{tag}", *flags)


def _digest(client: httpx.Client, repository: str, tag: str) -> str:
    found = client.get(scanning.artifact_path(repository, tag))
    assert found.status_code == 200, found.text
    return str(found.json()["digest"])


def _report(client: httpx.Client, repository: str, digest: str) -> dict[str, Any]:
    path = scanning.artifact_path(repository, digest)
    found = client.get(f"{path}/additions/vulnerabilities")
    assert found.status_code == 200, found.text
    return dict(found.json()[scanning.REPORT])


def _scan(client: httpx.Client, repository: str, digest: str) -> dict[str, Any]:
    started = time.monotonic()
    queued = client.post(f"{scanning.artifact_path(repository, digest)}/scan")
    assert queued.status_code == 202, queued.text
    ended = scanning.wait_for_scan(client, repository, digest, timeout=SCAN_TIMEOUT)
    assert ended["scan_status"] == "Success", ended
    print(f"scan of {repository}@{digest[:19]}: {time.monotonic() - started:.1f} s")
    return _report(client, repository, digest)


def _split(report: Mapping[str, Any], status: str) -> tuple[set[tuple[str, str]], set[str]]:
    """The report's (CVE, source) pairs of dpkg packages, and its other package names."""
    sources = binary_sources(status)
    debian: set[tuple[str, str]] = set()
    others: set[tuple[str, str]] = set()
    for cve, package in scanning.findings(dict(report)):
        if package in sources:
            debian.add((cve, sources[package]))
        else:
            others.add((cve, package))
    return debian, {package for _, package in others}


def _debian_findings(report: Mapping[str, Any], status: str) -> set[tuple[str, str]]:
    debian, others = _split(report, status)
    assert others == set(), "findings for packages the image's dpkg does not list"
    return debian


@pytest.mark.parametrize("tag", ["12", "12-older", "12-newest"])
def test_debian_findings_are_exactly_what_dpkg_computes(
    vulndb: PortsideServer, client: httpx.Client, skopeo: Skopeo, images: Images, tag: str
) -> None:
    repository = f"{scanning.project(client)}/debian"
    _push(skopeo, vulndb, images, tag, repository)
    report = _scan(client, repository, _digest(client, repository, tag))
    status = images.status[tag]
    expected = debian_expected(status)
    assert _debian_findings(report, status) == expected

    if tag == "12-older":
        # At 12.0 every record of these sources applies, whatever the archive holds today.
        counts = _record_sources()
        older = {pair for pair in expected if pair[1] in images.older}
        assert len(older) == sum(counts.get(s, 0) for s in images.older)
        assert len(older) > 50
    if tag == "12-newest":
        assert expected == set()
        assert report["vulnerabilities"] == []


def test_python_on_debian_gets_both_sets_of_findings(
    vulndb: PortsideServer, client: httpx.Client, skopeo: Skopeo, images: Images
) -> None:
    assert {name.lower() for name in images.python} == {r.split("==")[0] for r in PIP_REQUIREMENTS}
    repository = f"{scanning.project(client)}/python"
    _push(skopeo, vulndb, images, "python", repository)
    report = _scan(client, repository, _digest(client, repository, "python"))

    debian, others = _split(report, images.status["python"])
    assert debian == debian_expected(images.status["python"])
    assert others <= set(images.python)
    python = {pair for pair in scanning.findings(report) if pair[1] in images.python}
    expected = pypa_expected(images.python)
    assert len(expected) > 20
    assert python == expected
    for item in report["vulnerabilities"]:
        if item["package"] in images.python:
            assert item["version"] == images.python[item["package"]]


def _pull(client: httpx.Client, repository: str, digest: str) -> httpx.Response:
    accept = "application/vnd.oci.image.manifest.v1+json"
    return client.get(f"/v2/{repository}/manifests/{digest}", headers={"Accept": accept})


def test_an_index_reports_the_union_and_each_platform_its_own(
    vulndb: PortsideServer, client: httpx.Client, skopeo: Skopeo, images: Images
) -> None:
    project = scanning.project(client, prevent_vul="true", severity="none")
    repository = f"{project}/multi"
    _push(skopeo, vulndb, images, "multi", repository)
    assert _digest(client, repository, "multi") == images.index
    union = scanning.findings(_scan(client, repository, images.index))

    amd64 = _report(client, repository, images.platforms["amd64"])
    arm64 = _report(client, repository, images.platforms["arm64"])
    status = images.status["python"]
    amd64_debian, others = _split(amd64, status)
    assert amd64_debian == debian_expected(status)
    assert others <= set(images.python)
    python = {pair for pair in scanning.findings(amd64) if pair[1] in images.python}
    assert python == pypa_expected(images.python)
    older = images.status["12-older"]
    assert _debian_findings(arm64, older) == debian_expected(older)
    assert union == scanning.findings(amd64) | scanning.findings(arm64)
    for platform, report in (("amd64", amd64), ("arm64", arm64)):
        assert report["artifact"]["digest"] == images.platforms[platform]

    # The pull gate judges each platform on its own report.
    amd64_ids = sorted({cve for cve, _ in scanning.findings(amd64)})
    arm64_ids = sorted({cve for cve, _ in scanning.findings(arm64)})
    for platform, ids in (("amd64", amd64_ids), ("arm64", arm64_ids)):
        refused = _pull(client, repository, images.platforms[platform])
        assert refused.status_code == 403
        assert f"{len(ids)} vulnerabilities" in refused.json()["errors"][0]["message"]
    assert set(arm64_ids) - set(amd64_ids), "the platforms need different findings"
    allow = {"items": [{"cve_id": cve} for cve in amd64_ids], "expires_at": None}
    assert client.put("/api/v2.0/system/CVEAllowlist", json=allow).status_code == 200
    try:
        assert _pull(client, repository, images.platforms["amd64"]).status_code == 200
        assert _pull(client, repository, images.platforms["arm64"]).status_code == 403
    finally:
        client.put("/api/v2.0/system/CVEAllowlist", json={"items": []})
