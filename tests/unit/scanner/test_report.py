"""Harbor's vulnerability report, scan overview and CSV export.

No package ships the pluggable scanner spec's YAML, so its ``HarborVulnerabilityReport`` /
``VulnerabilityItem`` / ``CVSSDetails`` shapes and Harbor's additions are written out below as
:func:`shape_problems` (field by field, with types) and proven strict by negative cases. On top,
a real Harbor client, ``harborapi`` (models generated from the same spec and Harbor's
swagger), must parse every document.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from harborapi.models.models import ScanOverview
from harborapi.models.scanner import HarborVulnerabilityReport, VulnerabilityItem

from portside.scanner.coverage import Coverage
from portside.scanner.model import Advisory, Finding, Package, Severity
from portside.scanner.report import (
    CSV_COLUMNS,
    REPORT_MIME_TYPE,
    ScannerInfo,
    csv_export,
    csv_rows,
    harbor_report,
    item_severity,
    overall_severity,
    scan_overview,
    summarize,
)

DIGEST = "sha256:" + "c4" * 32
GENERATED = datetime(2026, 11, 27, 12, 0, 1, 250000, tzinfo=UTC)
SCANNER = ScannerInfo(name="Portside", vendor="Portside", version="0.1.0")
V3 = "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:L/A:N"

LIBSSL = Package(
    "libssl3", "3.0.9-1", "dpkg", "var/lib/dpkg/status", "openssl", "3.0.9-1", arch="amd64"
)
OPENSSL = Package("openssl", "3.0.9-1", "dpkg", "var/lib/dpkg/status", arch="amd64")


def advisory(
    id: str,
    *,
    aliases: tuple[str, ...] = (),
    severity: str = Severity.MEDIUM,
    vector: str = "",
    score: float | None = None,
    links: tuple[str, ...] = (),
    cwe_ids: tuple[str, ...] = (),
) -> Advisory:
    return Advisory(
        id=id,
        aliases=aliases,
        summary=f"{id} summary",
        details=f"{id} details",
        severity=severity,
        cvss_vector=vector,
        cvss_score=score,
        cwe_ids=cwe_ids,
        links=links,
        affected=(),
    )


# Values from the Debian 12 record DEBIAN-CVE-2023-2975-openssl (shared vulndb).
CVE_2023_2975 = advisory(
    "DEBIAN-CVE-2023-2975-openssl",
    aliases=("CVE-2023-2975",),
    vector=V3,
    score=5.3,
    links=("https://security-tracker.debian.org/tracker/CVE-2023-2975",),
    cwe_ids=("CWE-287",),
)
FINDINGS = [
    Finding(CVE_2023_2975, LIBSSL, "3.0.10-1~deb12u1"),
    Finding(CVE_2023_2975, OPENSSL, "3.0.10-1~deb12u1"),
    Finding(
        advisory("PYSEC-2023-74", aliases=("GHSA-j8r2-6x86-q33q",), severity=Severity.HIGH),
        Package("requests", "2.30.0", "PyPI", "app/requests-2.30.0.dist-info/METADATA"),
        "2.31.0",
    ),
    Finding(
        advisory("GHSA-xxxx-yyyy-zzzz", severity="Critical", vector="AV:N/AC:L/Au:N/C:P/I:P/A:P"),
        Package("left-pad", "1.0.0", "npm", "app/node_modules/left-pad/package.json"),
    ),
]

HARBOR_SEVERITIES = {"None", "Unknown", "Negligible", "Low", "Medium", "High", "Critical"}
ITEM_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "package": str,
    "version": str,
    "fix_version": str,
    "severity": str,
    "status": str,
    "description": str,
    "links": list,
    "artifact_digests": list,
    "preferred_cvss": dict,
    "cwe_ids": list,
    "vendor_attributes": dict,  # with Portside's severity_source: the record that rated it
}
# Portside's report object saying whether the advisories covered every package.
COVERAGE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "complete": bool,
    "database_empty": bool,
    "missing_ecosystems": dict,
    "message": str,
}
CVSS_FIELDS: dict[str, type | tuple[type, ...]] = {
    "score_v3": (float, type(None)),
    "score_v2": (float, type(None)),
    "vector_v3": str,
    "vector_v2": str,
}


def _typed(where: str, value: dict[str, Any], fields: dict[str, Any]) -> list[str]:
    problems = (
        [f"{where}: keys {sorted(value)} != {sorted(fields)}"] if set(value) != set(fields) else []
    )
    for key, kind in fields.items():
        if key in value and not isinstance(value[key], kind):
            problems.append(f"{where}.{key}: {value[key]!r} is not {kind}")
    return problems


def shape_problems(report: dict[str, Any]) -> list[str]:
    """The report as the spec and Harbor's rendering define it: top level generated_at
    (date-time), artifact{repository?, digest, tag?, mime_type?}, scanner{name, vendor,
    version}, severity, vulnerabilities[] and Portside's coverage{}; each item every Harbor key
    and Portside's severity_source, typed."""
    problems = _typed(
        "report",
        {key: value for key, value in report.items() if key != "coverage"},
        {
            "generated_at": str,
            "artifact": dict,
            "scanner": dict,
            "severity": str,
            "vulnerabilities": list,
        },
    )
    if "coverage" in report:
        problems += _typed("coverage", report["coverage"], COVERAGE_FIELDS)
    try:
        datetime.fromisoformat(report["generated_at"])
    except (KeyError, TypeError, ValueError):
        problems.append("generated_at is not a date-time")
    artifact = report.get("artifact", {})
    if (
        not set(artifact) <= {"repository", "digest", "tag", "mime_type"}
        or "digest" not in artifact
    ):
        problems.append(f"artifact keys {sorted(artifact)}")
    problems += _typed(
        "scanner", report.get("scanner", {}), dict.fromkeys(("name", "vendor", "version"), str)
    )
    if report.get("severity") not in HARBOR_SEVERITIES:
        problems.append(f"severity {report.get('severity')!r}")
    for index, item in enumerate(report.get("vulnerabilities", [])):
        where = f"vulnerabilities[{index}]"
        problems += _typed(where, item, ITEM_FIELDS)
        problems += _typed(f"{where}.preferred_cvss", item.get("preferred_cvss", {}), CVSS_FIELDS)
        if item.get("severity") not in HARBOR_SEVERITIES:
            problems.append(f"{where}.severity {item.get('severity')!r}")
        for key in ("links", "cwe_ids", "artifact_digests"):
            if not all(isinstance(entry, str) for entry in item.get(key, [])):
                problems.append(f"{where}.{key} holds a non-string")
    return problems


@pytest.fixture
def report() -> dict[str, Any]:
    return harbor_report(
        FINDINGS,
        SCANNER,
        DIGEST,
        GENERATED,
        repository="library/app",
        mime_type="application/vnd.oci.image.manifest.v1+json",
    )


def test_report_has_the_spec_and_harbor_shape(report: dict[str, Any]) -> None:
    assert shape_problems(json.loads(json.dumps(report))) == []
    assert report["generated_at"] == "2026-11-27T12:00:01.250000Z"
    assert report["artifact"] == {
        "repository": "library/app",
        "digest": DIGEST,
        "mime_type": "application/vnd.oci.image.manifest.v1+json",
    }
    assert report["scanner"] == {"name": "Portside", "vendor": "Portside", "version": "0.1.0"}
    assert report["severity"] == "Critical"


Mutate = Callable[[dict[str, Any]], None]
BREAKAGES: dict[str, Mutate] = {
    "missing severity": lambda r: r.pop("severity"),
    "severity not Harbor's": lambda r: r.__setitem__("severity", "SEVERE"),
    "item without fix_version": lambda r: r["vulnerabilities"][0].pop("fix_version"),
    "links as a string": lambda r: r["vulnerabilities"][0].__setitem__("links", "https://x"),
    "score as a string": lambda r: r["vulnerabilities"][0]["preferred_cvss"].__setitem__(
        "score_v3", "5.3"
    ),
    "extra item key": lambda r: r["vulnerabilities"][0].__setitem__("layer", {}),
    "scanner without vendor": lambda r: r["scanner"].pop("vendor"),
    "generated_at not a time": lambda r: r.__setitem__("generated_at", "now"),
}


@pytest.mark.parametrize("breakage", BREAKAGES, ids=list(BREAKAGES))
def test_shape_check_rejects_a_broken_report(report: dict[str, Any], breakage: str) -> None:
    broken = copy.deepcopy(report)
    BREAKAGES[breakage](broken)
    assert shape_problems(broken) != []


def test_a_harbor_client_parses_the_report(report: dict[str, Any]) -> None:
    parsed = HarborVulnerabilityReport.model_validate(report)
    assert parsed.artifact is not None and parsed.artifact.digest == DIGEST
    assert parsed.severity is not None and parsed.severity.value == "Critical"
    assert len(parsed.vulnerabilities) == 4
    assert len(parsed.fixable) == 3
    # Every key is one the client's model knows, except the two Harbor adds when it renders
    # (and Portside's coverage of an incomplete scan).
    known = set(VulnerabilityItem.model_fields) | {"status", "artifact_digests"}
    assert {key for item in report["vulnerabilities"] for key in item} <= known
    assert set(report) <= set(HarborVulnerabilityReport.model_fields)
    covered = {**report, "coverage": Coverage(database_empty=True).to_json()}
    assert HarborVulnerabilityReport.model_validate(covered).severity is not None


def test_items_use_the_cve_alias_and_carry_cvss(report: dict[str, Any]) -> None:
    libssl = next(v for v in report["vulnerabilities"] if v["package"] == "libssl3")
    assert libssl == {
        "id": "CVE-2023-2975",
        "package": "libssl3",
        "version": "3.0.9-1",
        "fix_version": "3.0.10-1~deb12u1",
        "severity": "Medium",
        "status": "fixed",
        "description": "DEBIAN-CVE-2023-2975-openssl details",
        "links": ["https://security-tracker.debian.org/tracker/CVE-2023-2975"],
        "artifact_digests": [DIGEST],
        "preferred_cvss": {"score_v3": 5.3, "score_v2": None, "vector_v3": V3, "vector_v2": ""},
        "cwe_ids": ["CWE-287"],
        "vendor_attributes": {
            "CVSS": {"nvd": {"V3Score": 5.3, "V3Vector": V3}},
            "severity_source": "DEBIAN-CVE-2023-2975-openssl",
        },
    }
    requests = next(v for v in report["vulnerabilities"] if v["package"] == "requests")
    assert requests["id"] == "PYSEC-2023-74"  # no CVE alias: the advisory's own id
    assert requests["vendor_attributes"] == {"severity_source": "PYSEC-2023-74"}
    left_pad = next(v for v in report["vulnerabilities"] if v["package"] == "left-pad")
    assert left_pad["preferred_cvss"]["vector_v2"] == "AV:N/AC:L/Au:N/C:P/I:P/A:P"
    assert left_pad["preferred_cvss"]["score_v3"] is None
    assert (left_pad["status"], left_pad["fix_version"]) == ("affected", "")


def test_items_are_ordered_most_severe_first(report: dict[str, Any]) -> None:
    ranks = [Severity.rank(v["severity"]) for v in report["vulnerabilities"]]
    assert ranks == sorted(ranks, reverse=True)
    assert [v["package"] for v in report["vulnerabilities"]][-2:] == ["libssl3", "openssl"]


def test_duplicates_merge_on_id_package_and_version() -> None:
    dsa = advisory(
        "DSA-5532-1",
        aliases=("CVE-2023-2975",),
        severity=Severity.HIGH,
        links=("https://www.debian.org/security/2023/dsa-5532",),
        cwe_ids=("CWE-287", "CWE-20"),
    )
    elsewhere = Package("libssl3", "3.0.9-1", "dpkg", "other/var/lib/dpkg/status")
    newer = Package("libssl3", "3.0.11-1", "dpkg", "var/lib/dpkg/status")
    findings = [
        Finding(CVE_2023_2975, LIBSSL, ""),
        Finding(dsa, LIBSSL, "3.0.10-1~deb12u1"),
        Finding(CVE_2023_2975, elsewhere, ""),  # same name and version at another path
        Finding(CVE_2023_2975, newer, ""),  # another version: its own item
    ]
    items = harbor_report(findings, SCANNER, DIGEST, GENERATED)["vulnerabilities"]
    assert [(i["id"], i["version"]) for i in items] == [
        ("CVE-2023-2975", "3.0.9-1"),
        ("CVE-2023-2975", "3.0.11-1"),
    ]
    merged = items[0]
    assert merged["severity"] == "High"  # the highest of the duplicates
    assert merged["description"] == "DSA-5532-1 details"
    assert (merged["fix_version"], merged["status"]) == ("3.0.10-1~deb12u1", "fixed")
    assert merged["links"] == [
        "https://www.debian.org/security/2023/dsa-5532",
        "https://security-tracker.debian.org/tracker/CVE-2023-2975",
    ]
    assert merged["cwe_ids"] == ["CWE-287", "CWE-20"]


def test_severity_follows_harbor() -> None:
    assert item_severity("negligible") == "None"
    assert item_severity("HIGH") == "High"
    assert item_severity("bogus") == "Unknown"
    assert overall_severity([]) == "None"
    assert overall_severity(["Low", "Critical", "High"]) == "Critical"
    assert overall_severity(["Unknown", "Low"]) == "Low"
    empty = harbor_report([], SCANNER, DIGEST, GENERATED)
    assert (empty["severity"], empty["vulnerabilities"]) == ("None", [])
    assert empty["artifact"] == {"digest": DIGEST}
    assert shape_problems(empty) == []


def test_summary_and_scan_overview(report: dict[str, Any]) -> None:
    severity, summary = summarize(report["vulnerabilities"])
    assert severity == "Critical"
    assert summary == {
        "total": 4,
        "fixable": 3,
        "summary": {"Critical": 1, "High": 1, "Medium": 2},
    }
    overview = scan_overview(
        report_id="5f62c830-f996-11e9-957f-0242c0a89008",
        scan_status="Success",
        start_time=datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC),
        end_time=datetime(2026, 11, 27, 12, 0, 7, 123456, tzinfo=UTC),
        scanner=SCANNER,
        severity=severity,
        summary=summary,
    )
    assert overview == {
        REPORT_MIME_TYPE: {
            "report_id": "5f62c830-f996-11e9-957f-0242c0a89008",
            "scan_status": "Success",
            "severity": "Critical",
            "duration": 7,
            "summary": summary,
            "start_time": "2026-11-27T12:00:00.000Z",
            "end_time": "2026-11-27T12:00:07.123Z",
            "complete_percent": 100,
            "scanner": {"name": "Portside", "vendor": "Portside", "version": "0.1.0"},
        }
    }
    parsed = ScanOverview.model_validate(overview).root
    assert parsed is not None
    native = parsed[REPORT_MIME_TYPE]
    assert native.summary is not None and native.summary.critical == 1
    assert native.complete_percent == 100


def test_scan_overview_of_an_unfinished_scan_leaves_results_out() -> None:
    overview = scan_overview(
        report_id="r1",
        scan_status="Running",
        start_time=datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC),
        end_time=None,
        scanner=SCANNER,
        severity="High",
        summary={"total": 1, "fixable": 0, "summary": {"High": 1}},
    )[REPORT_MIME_TYPE]
    assert overview == {
        "report_id": "r1",
        "scan_status": "Running",
        "start_time": "2026-11-27T12:00:00.000Z",
        "end_time": "0001-01-01T00:00:00.000Z",
    }
    assert ScanOverview.model_validate({REPORT_MIME_TYPE: overview}).root is not None


def test_csv_export_has_harbors_columns_and_one_row_per_item(report: dict[str, Any]) -> None:
    rows = csv_rows(
        report, repository="library/app", artifact_digest=DIGEST, scanner_name="Portside"
    )
    text = csv_export(rows)
    parsed = list(csv.reader(io.StringIO(text)))
    assert (
        tuple(parsed[0])
        == CSV_COLUMNS
        == (
            "Repository",
            "Artifact Digest",
            "CVE",
            "Package",
            "Current Version",
            "Fixed in version",
            "Severity",
            "CWE Ids",
            "Additional Data",
            "Scanner",
        )
    )
    assert len(parsed) == 1 + len(report["vulnerabilities"])
    libssl = next(dict(zip(CSV_COLUMNS, row, strict=True)) for row in parsed if row[3] == "libssl3")
    assert libssl["CVE"] == "CVE-2023-2975"
    assert libssl["Current Version"] == "3.0.9-1"
    assert libssl["Fixed in version"] == "3.0.10-1~deb12u1"
    assert libssl["Severity"] == "Medium"
    assert libssl["CWE Ids"] == "CWE-287"
    assert json.loads(libssl["Additional Data"]) == {
        "CVSS": {"nvd": {"V3Score": 5.3, "V3Vector": V3}},
        "severity_source": "DEBIAN-CVE-2023-2975-openssl",
    }
    assert text.endswith("\n") and "\r\n" not in text


def test_csv_cells_cannot_start_a_formula() -> None:
    hostile = advisory('=HYPERLINK("http://x")', cwe_ids=("CWE-1", "CWE-2"))
    package = Package("@evil/pkg", "-1", "npm", "x/package.json")
    report = harbor_report([Finding(hostile, package, "+2")], SCANNER, DIGEST, GENERATED)
    rows = csv_rows(
        report, repository="library/app", artifact_digest=DIGEST, scanner_name="Portside"
    )
    parsed = list(csv.reader(io.StringIO(csv_export(rows))))[1]
    assert parsed[2] == '\'=HYPERLINK("http://x")'
    assert parsed[3] == "'@evil/pkg"
    assert (parsed[4], parsed[5]) == ("'-1", "'+2")
    assert parsed[7] == "CWE-1,CWE-2"  # a comma inside one quoted cell


def test_a_malformed_stored_report_is_read_without_failing() -> None:
    items: list[Any] = ["junk", None, {"severity": "high", "fix_version": "1"}, {"cwe_ids": [79]}]
    assert summarize(items) == (
        "High",
        {"total": 2, "fixable": 1, "summary": {"High": 1, "Unknown": 1}},
    )
    rows = csv_rows(
        {"vulnerabilities": items}, repository="r", artifact_digest=DIGEST, scanner_name="s"
    )
    assert [row[6:8] for row in rows] == [("High", ""), ("Unknown", "79")]


# -- unrated findings, and severities taken from other records ----------------------------------

GO_MODULE = Package("golang.org/x/net", "0.7.0", "Go", "usr/local/bin/app")


def test_findings_never_make_the_overall_severity_none() -> None:
    # Go's advisories carry no severity: 217 unrated findings must not read as clean.
    # (Harbor weighs Unknown like None, and so calls such a report None.)
    assert overall_severity(["Unknown"] * 217) == "Unknown"
    assert overall_severity(["None"]) == "Unknown"  # a Negligible item is still a finding
    findings = [
        Finding(advisory(f"GO-2023-{n:04}", severity=Severity.UNKNOWN), GO_MODULE)
        for n in range(217)
    ]
    report = harbor_report(findings, SCANNER, DIGEST, GENERATED)
    assert report["severity"] == "Unknown"
    severity, summary = summarize(report["vulnerabilities"])
    assert (severity, summary["summary"]) == ("Unknown", {"Unknown": 217})
    assert all(
        "severity_source" not in item["vendor_attributes"] for item in report["vulnerabilities"]
    )


def test_an_unrated_finding_takes_its_severity_from_the_record_that_rates_it() -> None:
    go = advisory(
        "GO-2023-1571", aliases=("CVE-2022-41723", "GHSA-vvpx-j8f3-3w6h"), severity="Unknown"
    )
    ghsa = advisory(
        "GHSA-vvpx-j8f3-3w6h",
        aliases=("CVE-2022-41723",),
        severity=Severity.HIGH,
        vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H",
        score=7.5,
    )
    report = harbor_report(
        [Finding(go, GO_MODULE, "0.7.0", rating=ghsa)], SCANNER, DIGEST, GENERATED
    )
    assert shape_problems(report) == []
    item = report["vulnerabilities"][0]
    assert (item["id"], item["severity"]) == ("CVE-2022-41723", "High")
    assert item["vendor_attributes"]["severity_source"] == "GHSA-vvpx-j8f3-3w6h"
    assert item["preferred_cvss"]["score_v3"] == 7.5
    assert item["description"] == "GO-2023-1571 details"  # the finding's own advisory still
    assert report["severity"] == "High"


def test_an_incomplete_scan_says_so_in_its_report_and_overview() -> None:
    coverage = Coverage(missing={"Alpine:v3.19": 14})
    assert not coverage.complete
    assert "Alpine:v3.19 (14 packages)" in coverage.message
    assert "portside vulndb import" in coverage.message
    report = harbor_report([], SCANNER, DIGEST, GENERATED, coverage=coverage)
    assert shape_problems(report) == []
    assert report["coverage"] == {
        "complete": False,
        "database_empty": False,
        "missing_ecosystems": {"Alpine:v3.19": 14},
        "message": coverage.message,
    }
    overview = scan_overview(
        report_id="r2",
        scan_status="Error",
        start_time=datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC),
        end_time=datetime(2026, 11, 27, 12, 0, 1, tzinfo=UTC),
        scanner=SCANNER,
        severity="None",
        summary={"total": 0, "fixable": 0, "summary": {}},
        message=coverage.message,
    )[REPORT_MIME_TYPE]
    assert overview["scan_status"] == "Error"
    assert overview["message"] == coverage.message
    assert "severity" not in overview and "summary" not in overview  # as Harbor's on Error
    assert ScanOverview.model_validate({REPORT_MIME_TYPE: overview}).root is not None
    success = scan_overview(
        report_id="r3", scan_status="Success", start_time=None, end_time=None, message="ignored"
    )[REPORT_MIME_TYPE]
    assert "message" not in success


def test_coverage_of_an_image_names_what_the_database_lacks() -> None:
    packages = [
        Package("musl", "1.2.4-r2", "Alpine:v3.19", "lib/apk/db/installed"),
        Package("busybox", "1.36.1-r15", "Alpine:v3.19", "lib/apk/db/installed"),
        Package("requests", "2.19.1", "PyPI", "app/requests-2.19.1.dist-info/METADATA"),
        Package("bash", "5.2", "rpm", "var/lib/rpm/rpmdb.sqlite"),  # an OS OSV does not cover
    ]
    assert Coverage.of(packages, frozenset({"PyPI", "Alpine:v3.19"})).complete
    partial = Coverage.of(packages, frozenset({"PyPI", "Debian:12"}))
    assert (partial.database_empty, dict(partial.missing)) == (False, {"Alpine:v3.19": 2})
    empty = Coverage.of([], frozenset())
    assert empty.database_empty and not empty.complete
    assert "vulnerability database is empty" in empty.message
    merged = partial.merge(Coverage.of(packages[:1], frozenset()))
    assert merged.database_empty and dict(merged.missing) == {"Alpine:v3.19": 3}
    assert Coverage().message == ""
