"""The shared vulnerability data (``../shared/vulndb``) and expectations computed from it
independently of Portside's matcher: PyPI with the ``packaging`` library, Debian with
``dpkg --compare-versions``. Scanner tests compare Portside's findings with these."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

__all__ = [
    "debian_expected",
    "pypa_expected",
    "reported_id",
    "shared_vulndb",
]


def shared_vulndb() -> Path:
    """Where the shared data lives: $PORTSIDE_TEST_VULNDB, else next to the checkout, else the
    workplace's fixed path. A missing data set fails the test: it must not pass silently."""
    candidates = [
        os.environ.get("PORTSIDE_TEST_VULNDB"),
        str(Path(__file__).resolve().parents[2].parent / "shared" / "vulndb"),
        "/work/shared/vulndb",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "pypa").is_dir():
            return Path(candidate)
    raise FileNotFoundError("the shared vulnerability data (shared/vulndb) is not on this machine")


def reported_id(record: Mapping[str, Any]) -> str:
    """The id a report shows for an advisory: its first CVE id (the record's own id or an
    alias), else the record's id — what Harbor users search for."""
    for candidate in (record["id"], *record.get("aliases", [])):
        if str(candidate).startswith("CVE-"):
            return str(candidate)
    return str(record["id"])


def _pep503(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def _pypa_records() -> dict[str, list[dict[str, Any]]]:
    by_package: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((shared_vulndb() / "pypa").rglob("*.yaml")):
        record = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
        if not isinstance(record, dict) or record.get("withdrawn"):
            continue
        for affected in record.get("affected", []):
            package = affected.get("package", {})
            if package.get("ecosystem") == "PyPI":
                by_package.setdefault(_pep503(package["name"]), []).append(record)
    return by_package


def _in_ranges(version: Version, ranges: Iterable[Mapping[str, Any]]) -> bool:
    for entry in ranges:
        if entry.get("type") != "ECOSYSTEM":
            continue
        introduced: Version | None = None
        for event in entry.get("events", []):
            try:
                if "introduced" in event:
                    value = str(event["introduced"])
                    introduced = Version("0") if value == "0" else Version(value)
                elif "fixed" in event and introduced is not None:
                    if introduced <= version < Version(str(event["fixed"])):
                        return True
                    introduced = None
                elif "last_affected" in event and introduced is not None:
                    if introduced <= version <= Version(str(event["last_affected"])):
                        return True
                    introduced = None
            except InvalidVersion:
                introduced = None
        if introduced is not None and introduced <= version:
            return True
    return False


def pypa_expected(installed: Mapping[str, str]) -> set[tuple[str, str]]:
    """(reported id, package name) of every PyPA advisory affecting the installed
    ``{name: version}``: listed in ``versions``, or inside an ECOSYSTEM range."""
    expected: set[tuple[str, str]] = set()
    for name, raw_version in installed.items():
        version = Version(raw_version)
        for record in _pypa_records().get(_pep503(name), []):
            for affected in record["affected"]:
                package = affected.get("package", {})
                if package.get("ecosystem") != "PyPI" or _pep503(package["name"]) != _pep503(name):
                    continue
                listed = raw_version in [str(v) for v in affected.get("versions", [])]
                if listed or _in_ranges(version, affected.get("ranges", [])):
                    expected.add((reported_id(record), name))
    return expected


def _dpkg_lt(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0


def _status_stanzas(status: str) -> Iterator[dict[str, str]]:
    for block in status.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if fields.get("Package"):
            yield fields


def installed_sources(status: str) -> dict[str, str]:
    """{source package: source version} of every installed package of a dpkg status file."""
    sources: dict[str, str] = {}
    for fields in _status_stanzas(status):
        if not fields.get("Status", "").endswith(" installed"):
            continue
        name, version = fields["Package"], fields.get("Version", "")
        source = fields.get("Source", "")
        if source:
            match = re.fullmatch(r"(\S+)(?:\s+\((\S+)\))?", source)
            if match:
                name = match.group(1)
                version = match.group(2) or version
        sources[name] = version
    return sources


def debian_expected(status: str) -> set[tuple[str, str]]:
    """(CVE, source package) of every Debian 12 record whose fix is newer than the installed
    source version, compared by dpkg itself."""
    expected: set[tuple[str, str]] = set()
    sources = installed_sources(status)
    for path in sorted((shared_vulndb() / "debian-bookworm").glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("withdrawn"):
            continue
        for affected in record.get("affected", []):
            package = affected.get("package", {})
            source = package.get("name")
            if package.get("ecosystem") != "Debian:12" or source not in sources:
                continue
            for entry in affected.get("ranges", []):
                for event in entry.get("events", []):
                    if "fixed" in event and _dpkg_lt(sources[source], str(event["fixed"])):
                        expected.add((reported_id(record), source))
    return expected
