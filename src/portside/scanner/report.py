"""Harbor's vulnerability report, its scan overview summary and its CVE export CSV.

Shapes follow Harbor, not just the scanner spec, because Harbor clients read what Harbor
serves:

- the report is the pluggable scanner spec's ``HarborVulnerabilityReport``
  (goharbor/pluggable-scanner-spec, api/spec/scanner-adapter-openapi-v1.2.yaml) with each item
  in the form Harbor renders at ``.../additions/vulnerabilities`` (src/pkg/scan/vuln/report.go
  ``VulnerabilityItem``): every key always present, ``preferred_cvss`` with all four keys,
  plus ``status`` and ``artifact_digests``;
- the overview is Harbor's ``NativeReportSummary`` as its artifact API returns it under
  ``scan_overview`` (src/pkg/scan/vuln/summary.go, api/v2.0/swagger.yaml): empty fields left
  out as go-swagger's ``omitempty`` does;
- the CSV has the columns of Harbor's scan data export (src/pkg/scan/export/model.go ``Data``).

Deduplication: one item per (vulnerability id, package name, installed version), Harbor's own
key (``VulnerabilityItem.Key()`` and the unique key of its ``vulnerability_record`` table). The
same CVE in two copies of a package at different paths is therefore one item, as in Harbor.
When several findings share a key (e.g. a Debian DSA and the CVE it fixes) the item takes the
highest severity among them, that finding's description, CVSS and fix version (or the first
fix version any of them has), and the union of their links and CWE ids.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from portside.scanner.coverage import Coverage
from portside.scanner.model import Advisory, Finding, Severity

__all__ = [
    "CSV_COLUMNS",
    "NATIVE_REPORT_MIME_TYPE",
    "REPORT_MIME_TYPE",
    "ScannerInfo",
    "csv_export",
    "csv_rows",
    "harbor_report",
    "item_severity",
    "overall_severity",
    "scan_overview",
    "summarize",
    "vulnerability_items",
]

REPORT_MIME_TYPE = "application/vnd.security.vulnerability.report; version=1.1"
# The older report type Harbor still accepts from scanners and in X-Accept-Vulnerabilities.
NATIVE_REPORT_MIME_TYPE = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"

# The vendor key under vendor_attributes.CVSS. Harbor's UI lists every key; its importer and
# CSV prefer "nvd" for the V3 score (src/pkg/scan/postprocessors/report_converters.go).
CVSS_VENDOR = "nvd"

CSV_COLUMNS = (
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

# Harbor's Severity.Code(): None and Unknown weigh the same, below Negligible.
_HARBOR_CODE = {
    Severity.NONE: 0,
    Severity.UNKNOWN: 0,
    "Negligible": 1,
    Severity.LOW: 2,
    Severity.MEDIUM: 3,
    Severity.HIGH: 4,
    Severity.CRITICAL: 5,
}
_MAX_LINKS = 64
_MAX_TEXT = 16 * 1024
# Leading characters a spreadsheet would run as a formula (CSV injection).
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")


@dataclass(frozen=True)
class ScannerInfo:
    name: str
    vendor: str
    version: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "vendor": self.vendor, "version": self.version}


def item_severity(name: str) -> str:
    """Harbor stores item severities through ``ParseSeverityVersion3``: None, Low, Medium, High
    and Critical stay, Negligible becomes None, anything else Unknown."""
    title = name.strip().title()
    if title == "Negligible":
        return Severity.NONE
    if title in (Severity.NONE, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL):
        return title
    return Severity.UNKNOWN


def overall_severity(severities: Iterable[str]) -> str:
    """The overall severity: the heaviest item's, by Harbor's weights; ``None`` only when there
    are no items. Harbor starts from None and so calls a report of unrated findings None,
    which reads as clean: here any finding makes it ``Unknown`` at least."""
    overall = Severity.NONE
    for severity in severities:
        if overall == Severity.NONE or _HARBOR_CODE.get(severity, 0) > _HARBOR_CODE[overall]:
            overall = severity if _HARBOR_CODE.get(severity, 0) else Severity.UNKNOWN
    return overall


def _iso(moment: datetime, *, millis: bool = False) -> str:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    # go-openapi's strfmt.DateTime, which Harbor's API models marshal with, writes milliseconds.
    timespec = "milliseconds" if millis else "auto"
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def _cvss(vector: str, score: float | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``preferred_cvss`` and the vendor CVSS entry for one vector: a ``CVSS:3.x/`` vector is
    V3, a bare ``AV:`` vector V2, a ``CVSS:4.0/`` one only reaches the vendor attributes
    (the report model has no V4 field); a score without a vector is taken as V3."""
    preferred: dict[str, Any] = {
        "score_v3": None,
        "score_v2": None,
        "vector_v3": "",
        "vector_v2": "",
    }
    vendor: dict[str, Any] = {}
    if vector.startswith("CVSS:3.") or (not vector and score is not None):
        preferred["score_v3"], preferred["vector_v3"] = score, vector
        vendor = {"V3Score": score, "V3Vector": vector}
    elif vector.startswith("AV:"):
        preferred["score_v2"], preferred["vector_v2"] = score, vector
        vendor = {"V2Score": score, "V2Vector": vector}
    elif vector.startswith("CVSS:4."):
        vendor = {"V40Score": score, "V40Vector": vector}
    vendor = {key: value for key, value in vendor.items() if value not in (None, "")}
    return preferred, vendor


def _item(finding: Finding, artifact_digest: str) -> dict[str, Any]:
    advisory, rated = finding.advisory, finding.rated_by
    preferred, vendor = _cvss(rated.cvss_vector, rated.cvss_score)
    severity = item_severity(rated.severity)
    return {
        "id": finding.id,
        "package": finding.package.name,
        "version": finding.package.version,
        "fix_version": finding.fix_version,
        "severity": severity,
        # Trivy's statuses, which Harbor passes through: a fix exists, or not yet.
        "status": "fixed" if finding.fix_version else "affected",
        "description": (advisory.details or advisory.summary)[:_MAX_TEXT],
        "links": list(dict.fromkeys(advisory.links))[:_MAX_LINKS],
        "artifact_digests": [artifact_digest],
        "preferred_cvss": preferred,
        "cwe_ids": list(dict.fromkeys(advisory.cwe_ids)),
        "vendor_attributes": _vendor_attributes(vendor, rated),
    }


def _vendor_attributes(cvss: dict[str, Any], rated: Advisory) -> dict[str, Any]:
    """Harbor's free-form ``vendor_attributes``: the CVSS by vendor, and Portside's
    ``severity_source``, the record the severity was taken from (the advisory itself, or
    another record of the same CVE when the advisory has none), absent when none rates it.
    Kept in here because strict clients refuse fields Harbor's item does not declare."""
    attributes: dict[str, Any] = {"CVSS": {CVSS_VENDOR: cvss}} if cvss else {}
    if rated.severity != Severity.UNKNOWN:
        attributes["severity_source"] = rated.id
    return attributes


def _merge(kept: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    if _HARBOR_CODE[other["severity"]] > _HARBOR_CODE[kept["severity"]]:
        kept, other = other, kept
    merged = dict(kept)
    merged["fix_version"] = kept["fix_version"] or other["fix_version"]
    merged["status"] = "fixed" if merged["fix_version"] else "affected"
    merged["links"] = list(dict.fromkeys(kept["links"] + other["links"]))[:_MAX_LINKS]
    merged["cwe_ids"] = list(dict.fromkeys(kept["cwe_ids"] + other["cwe_ids"]))
    return merged


def vulnerability_items(findings: Sequence[Finding], artifact_digest: str) -> list[dict[str, Any]]:
    """Report items, deduplicated as the module docstring says, most severe first, then by
    id, package and version so the same findings always give the same report."""
    items: dict[tuple[str, str, str], dict[str, Any]] = {}
    for finding in findings:
        item = _item(finding, artifact_digest)
        key = (item["id"], item["package"], item["version"])
        items[key] = _merge(items[key], item) if key in items else item
    return sorted(
        items.values(),
        key=lambda i: (-_HARBOR_CODE[i["severity"]], i["id"], i["package"], i["version"]),
    )


def harbor_report(
    findings: Sequence[Finding],
    scanner: ScannerInfo,
    artifact_digest: str,
    generated_at: datetime,
    *,
    repository: str = "",
    mime_type: str = "",
    coverage: Coverage | None = None,
) -> dict[str, Any]:
    """The report for one artifact. ``repository`` and ``mime_type`` (the manifest's media
    type) fill the spec's optional ``artifact`` fields when given. An incomplete ``coverage``
    adds Portside's ``coverage`` object: which ecosystems the advisories did not cover, and
    why. A complete scan's report has exactly Harbor's fields, as strict clients expect."""
    vulnerabilities = vulnerability_items(findings, artifact_digest)
    artifact = {"repository": repository, "digest": artifact_digest, "mime_type": mime_type}
    report = {
        "generated_at": _iso(generated_at),
        "artifact": {key: value for key, value in artifact.items() if value},
        "scanner": scanner.to_json(),
        "severity": overall_severity(item["severity"] for item in vulnerabilities),
        "vulnerabilities": vulnerabilities,
    }
    if coverage is not None and not coverage.complete:
        report["coverage"] = coverage.to_json()
    return report


def summarize(vulnerabilities: Iterable[Mapping[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Harbor's overall severity and ``VulnerabilitySummary`` of report items: total, fixable
    (a fix version is known) and a count per severity present (absent severities have no
    key, as in Harbor)."""
    counts: dict[str, int] = {}
    total = fixable = 0
    for item in vulnerabilities:
        if not isinstance(item, Mapping):  # a stored report is read back: skip what is not ours
            continue
        severity = item_severity(str(item.get("severity", "")))
        counts[severity] = counts.get(severity, 0) + 1
        total += 1
        fixable += bool(item.get("fix_version"))
    summary = {"total": total, "fixable": fixable, "summary": counts}
    return overall_severity(counts), summary


def scan_overview(
    *,
    report_id: str,
    scan_status: str,
    start_time: datetime | None,
    end_time: datetime | None,
    scanner: ScannerInfo | None = None,
    severity: str = "",
    summary: Mapping[str, Any] | None = None,
    mime_type: str = REPORT_MIME_TYPE,
    message: str = "",
) -> dict[str, dict[str, Any]]:
    """``scan_overview`` of an artifact listing, keyed by report MIME type. Pass ``severity``
    and ``summary`` from :func:`summarize` once the scan succeeded; Harbor sends neither, nor
    the scanner, while a scan is pending, running, stopped or failed, and 100 as
    ``complete_percent`` only on success. Times are zero times when unknown, as in Harbor.
    ``message`` (Portside's) says why a scan that did not succeed ended so: a failure, or a
    scan the advisories did not cover (:mod:`portside.scanner.coverage`)."""
    zero = datetime(1, 1, 1, tzinfo=UTC)
    start, end = start_time or zero, end_time or zero
    duration = max(int(end.timestamp() - start.timestamp()), 0) if start_time and end_time else 0
    success = scan_status == "Success"
    overview: dict[str, Any] = {
        "report_id": report_id,
        "scan_status": scan_status,
        "severity": severity if success else "",
        "duration": duration,
        "summary": dict(summary) if success and summary is not None else None,
        "start_time": _iso(start, millis=True),
        "end_time": _iso(end, millis=True),
        "complete_percent": 100 if success else 0,
        "scanner": scanner.to_json() if success and scanner else None,
        "message": "" if success else message,
    }
    # go-swagger omits empty strings, zero numbers and nil objects; the times always appear.
    return {
        mime_type: {key: value for key, value in overview.items() if value not in ("", 0, None)}
    }


def _cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_TRIGGERS) else value


def csv_rows(
    report: Mapping[str, Any], *, repository: str, artifact_digest: str, scanner_name: str
) -> list[tuple[str, ...]]:
    """One CSV row per report item, in :data:`CSV_COLUMNS` order; CWE ids comma-joined and the
    vendor attributes as JSON, as Harbor exports them. Cells are not yet escaped for
    spreadsheets: :func:`csv_export` does that."""
    rows: list[tuple[str, ...]] = []
    for item in report.get("vulnerabilities") or ():
        if not isinstance(item, Mapping):
            continue
        vendor = item.get("vendor_attributes") or {}
        rows.append(
            (
                repository,
                artifact_digest,
                str(item.get("id", "")),
                str(item.get("package", "")),
                str(item.get("version", "")),
                str(item.get("fix_version", "")),
                item_severity(str(item.get("severity", ""))),
                ",".join(str(cwe) for cwe in item.get("cwe_ids") or ()),
                json.dumps(vendor) if vendor else "",
                scanner_name,
            )
        )
    return rows


def csv_export(rows: Iterable[Sequence[str]]) -> str:
    """The CSV file: a header, then the rows, every cell that a spreadsheet would take for a
    formula prefixed with ``'`` (as Harbor does since its CSV-injection fix)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows([_cell(str(value)) for value in row] for row in rows)
    return out.getvalue()
