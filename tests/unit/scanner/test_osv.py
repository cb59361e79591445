"""OSV records into advisories: real records from the shared data, and hostile variations."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cvss import CVSS3, CVSS4  # type: ignore[import-untyped]

from portside.scanner.model import Severity
from portside.scanner.osv import InvalidRecord, parse_record, severity_for_score

DATA = Path("/work/shared/vulndb")
PYPA = DATA / "pypa" / "vulns"
DEBIAN = DATA / "debian-bookworm"


def _yaml(path: Path) -> Any:
    return yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader)


def _json(name: str) -> Any:
    return json.loads((DEBIAN / name).read_text())


def test_debian_record() -> None:
    advisory = parse_record(_json("DEBIAN-CVE-2023-0687-glibc.json"))
    assert advisory.id == "DEBIAN-CVE-2023-0687-glibc"
    assert advisory.aliases == ("CVE-2023-0687",)
    assert advisory.summary == "Fix a buffer overflow in gmon (CVE-2023-0687)."
    assert advisory.details.startswith("Debian changelog of source package glibc")
    assert advisory.modified == advisory.published == "2023-07-13T18:07:47Z"
    assert advisory.links == (
        "https://security-tracker.debian.org/tracker/CVE-2023-0687",
        "https://www.cve.org/CVERecord?id=CVE-2023-0687",
        "https://tracker.debian.org/pkg/glibc",
    )
    (entry,) = advisory.affected
    assert (entry.ecosystem, entry.name) == ("Debian:12", "glibc")
    assert entry.ranges == ((("introduced", "0"), ("fixed", "2.36-9+deb12u1")),)
    assert entry.versions == ()
    # No CVSS in these records: the urgency of the Debian upload names the severity.
    assert (advisory.severity, advisory.cvss_vector, advisory.cvss_score) == ("Medium", "", None)
    assert not advisory.withdrawn


def test_debian_urgency_high() -> None:
    record = _json("DEBIAN-CVE-2023-2828-bind9.json")
    assert record["database_specific"]["urgency"] == "high"
    assert parse_record(record).severity == Severity.HIGH


def test_pypa_record_with_cvss_v3() -> None:
    record = _yaml(PYPA / "apache-skywalking" / "PYSEC-2020-342.yaml")
    advisory = parse_record(record)
    vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    assert advisory.cvss_vector == vector
    assert advisory.cvss_score == float(CVSS3(vector).base_score) == 9.8
    assert advisory.severity == Severity.CRITICAL


def test_pypa_timestamps_parsed_by_yaml_become_text() -> None:
    record = _yaml(PYPA / "django" / "PYSEC-2023-100.yaml")
    assert isinstance(record["modified"], dt.datetime)  # what the YAML loader hands over
    advisory = parse_record(record)
    assert advisory.modified == "2023-07-11T16:37:11.407533Z"
    assert advisory.published == "2023-07-03T13:15:00Z"


def test_django_keeps_ecosystem_ranges_and_versions_and_drops_git() -> None:
    record = _yaml(PYPA / "django" / "PYSEC-2023-100.yaml")
    record["affected"][0]["ranges"].append(
        {"type": "GIT", "repo": "https://github.com/django/django", "events": [
            {"introduced": "0"}, {"fixed": "a" * 40}]}
    )  # fmt: skip
    (entry,) = parse_record(record).affected
    assert entry.ranges == (
        (
            ("introduced", "4.2"),
            ("fixed", "4.2.3"),
            ("introduced", "4.0"),
            ("fixed", "4.1.10"),
            ("introduced", "3.2"),
            ("fixed", "3.2.20"),
        ),
    )
    assert "4.1rc1" in entry.versions and len(entry.versions) == 47


def test_git_only_entry_without_versions_is_dropped() -> None:
    record = _yaml(PYPA / "django" / "PYSEC-2023-100.yaml")
    record["affected"][0]["ranges"] = [
        {"type": "GIT", "repo": "https://x", "events": [{"introduced": "0"}, {"fixed": "abc"}]}
    ]
    record["affected"][0].pop("versions")
    assert parse_record(record).affected == ()


def test_withdrawn_is_flagged() -> None:
    advisory = parse_record(_yaml(PYPA / "redis" / "PYSEC-2023-73.yaml"))
    assert advisory.withdrawn


def test_last_affected_is_kept() -> None:
    advisory = parse_record(_yaml(PYPA / "py" / "PYSEC-2022-42969.yaml"))
    assert advisory.affected[0].ranges == ((("introduced", "0"), ("last_affected", "1.11.0")),)


@pytest.mark.parametrize(
    ("score", "name"),
    [
        (0.0, "None"),
        (0.1, "Low"),
        (3.9, "Low"),
        (4.0, "Medium"),
        (6.9, "Medium"),
        (7.0, "High"),
        (8.9, "High"),
        (9.0, "Critical"),
        (10.0, "Critical"),
    ],
)
def test_harbor_severity_names(score: float, name: str) -> None:
    assert severity_for_score(score) == name


def _minimal(**extra: Any) -> dict[str, Any]:
    return {
        "id": "GHSA-xxxx",
        "affected": [
            {
                "package": {"ecosystem": "npm", "name": "left-pad"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.0"}]}],
            }
        ],
        **extra,
    }


def test_cvss_v4_is_scored_when_there_is_no_v3() -> None:
    vector = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    advisory = parse_record(_minimal(severity=[{"type": "CVSS_V4", "score": vector}]))
    assert advisory.cvss_score == float(CVSS4(vector).base_score) == 9.3
    assert advisory.severity == Severity.CRITICAL


def test_cvss_v3_is_preferred_and_bad_vectors_are_skipped() -> None:
    v3 = "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"
    v4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    severity = [
        {"type": "CVSS_V3", "score": "CVSS:3.1/garbage"},
        {"type": "CVSS_V4", "score": v4},
        {"type": "CVSS_V3", "score": v3},
    ]
    advisory = parse_record(_minimal(severity=severity))
    assert (advisory.cvss_vector, advisory.severity) == (v3, Severity.LOW)


def test_zero_score_is_none() -> None:
    vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N"
    advisory = parse_record(_minimal(severity=[{"type": "CVSS_V3", "score": vector}]))
    assert (advisory.cvss_score, advisory.severity) == (0.0, Severity.NONE)


@pytest.mark.parametrize(
    ("where", "word", "expected"),
    [
        ("database_specific", "MODERATE", "Medium"),
        ("database_specific", "LOW", "Low"),
        ("database_specific", "CRITICAL", "Critical"),
        ("ecosystem_specific", "HIGH", "High"),
        ("affected_database_specific", "moderate", "Medium"),
        ("database_specific", "whatever", "Unknown"),
    ],
)
def test_severity_words(where: str, word: str, expected: str) -> None:
    record = _minimal()
    if where == "database_specific":
        record["database_specific"] = {"severity": word}
    elif where == "ecosystem_specific":
        record["affected"][0]["ecosystem_specific"] = {"severity": word}
    else:
        record["affected"][0]["database_specific"] = {"severity": word}
    assert parse_record(record).severity == expected


def test_no_severity_at_all_is_unknown() -> None:
    assert parse_record(_minimal()).severity == Severity.UNKNOWN


def test_cwe_ids_and_links() -> None:
    record = _minimal(
        database_specific={"cwe_ids": ["CWE-79", "CWE-1333", "not-a-cwe", 79]},
        references=[{"url": "https://a"}, {"url": "https://a"}, {"url": 3}, "junk"],
    )
    advisory = parse_record(record)
    assert advisory.cwe_ids == ("CWE-79", "CWE-1333")
    assert advisory.links == ("https://a",)


@pytest.mark.parametrize(
    "record", [None, [], "text", 3, {}, {"id": 5}, {"id": ""}, {"id": "X\x00"}, {"id": "x" * 200}]
)
def test_records_without_an_id_are_invalid(record: Any) -> None:
    with pytest.raises(InvalidRecord):
        parse_record(record)


def test_hostile_fields_are_dropped_not_raised() -> None:
    record = {
        "id": "X-1",
        "aliases": "CVE-1",  # not a list
        "summary": ["no"],
        "details": "d" * 100_000,
        "severity": {"type": "CVSS_V3"},
        "withdrawn": "",
        "affected": [
            "junk",
            {"package": "junk"},
            {"package": {"ecosystem": "PyPI"}},  # no name
            {"package": {"ecosystem": "PyPI", "name": "nul\x00"}, "versions": ["1"]},
            {"package": {"ecosystem": "E" * 300, "name": "pkg"}, "versions": ["1"]},
            {
                "package": {"ecosystem": "PyPI", "name": "pkg"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": 0}, {"fixed": 4.10}]},
                    {"type": "ECOSYSTEM", "events": "junk"},
                    "junk",
                ],
                "versions": ["1.0", 2.0, None, "x" * 1000, 3],
            },
        ],
    }
    advisory = parse_record(record)
    assert advisory.aliases == ()
    assert advisory.summary == ""
    assert len(advisory.details) == 16 * 1024
    assert advisory.severity == Severity.UNKNOWN
    assert not advisory.withdrawn
    (entry,) = advisory.affected
    # An integer 0 is the version "0"; the float 4.10 would read as "4.1", so it is dropped.
    assert entry.ranges == ((("introduced", "0"),),)
    assert entry.versions == ("1.0", "3")


def test_an_event_with_two_kinds_counts_once() -> None:
    record = _minimal()
    record["affected"][0]["ranges"][0]["events"] = [{"introduced": "1.0", "fixed": "2.0"}]
    assert parse_record(record).affected[0].ranges == ((("introduced", "1.0"),),)


def test_every_debian_record_parses() -> None:
    files = sorted(DEBIAN.glob("*.json"))
    assert len(files) == 980
    for path in files:
        advisory = parse_record(json.loads(path.read_text()))
        assert advisory.id == path.stem
        assert advisory.affected[0].ecosystem == "Debian:12"
        assert advisory.severity in ("Medium", "High")


def test_parsing_does_not_change_the_record() -> None:
    record = _yaml(PYPA / "django" / "PYSEC-2023-100.yaml")
    before = copy.deepcopy(record)
    parse_record(record)
    assert record == before
