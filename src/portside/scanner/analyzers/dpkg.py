"""Debian packages: dpkg's database, ``var/lib/dpkg/status``, and the one-file-per-package
``var/lib/dpkg/status.d/<name>`` that distroless images write instead.

Both are deb822 stanzas (``Field: value`` lines, continuation lines starting with a space or a
tab, stanzas separated by blank lines; https://manpages.debian.org/dpkg-query). Advisories are
keyed by source package, so ``Source:`` matters: ``Source: name (version)`` for binNMUs and other
binaries whose version differs from their source's, plain ``Source: name`` otherwise (the
source version is then the binary's ``Version``), and no ``Source:`` when the binary is its own
source.
"""

from __future__ import annotations

import logging
import re

from portside.scanner.ecosystems import os_purl
from portside.scanner.model import Package

__all__ = ["DpkgAnalyzer", "parse_status"]

log = logging.getLogger(__name__)

_STATUS = "var/lib/dpkg/status"
_INFO_DIR = "var/lib/dpkg/info/"
FILE_LIST_MAX_BYTES = 8 << 20
# What a language analyzer reads (package metadata, lock files, archives, programs): only
# these of an OS package's files need remembering, which keeps a layer's record small.
_LANGUAGE_FILE = re.compile(
    r"(\.dist-info/|\.egg-info|/node_modules/|\.gemspec$|\.(jar|war|ear)$|(^|/)Cargo\.lock$"
    r"|(^|/)(package-lock\.json|yarn\.lock|pnpm-lock\.yaml|Gemfile\.lock)$"
    r"|(^|/)(s?bin|libexec)/)"
)
_STATUS_DIR = "var/lib/dpkg/status.d/"
# dpkg states whose package has no files on disk; every other state (installed, unpacked,
# half-configured, triggers-pending …) leaves its files, and their vulnerabilities, in place.
_ABSENT_STATES = frozenset({"not-installed", "config-files"})
_SOURCE = re.compile(r"(\S+)(?:\s+\((\S+)\))?")
_WANTED_FIELDS = frozenset({"package", "version", "status", "source", "architecture"})


def _stanzas(text: str) -> list[dict[str, str]]:
    """The stanzas of ``text``, each with only the fields we use (names lower-cased)."""
    stanzas: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                stanzas.append(fields)
            fields = {}
        elif line[0] not in " \t":  # continuation lines only extend fields we do not read
            name, colon, value = line.partition(":")
            key = name.strip().lower()
            if colon and key in _WANTED_FIELDS:
                fields[key] = value.strip()
    if fields:
        stanzas.append(fields)
    return stanzas


def _package(fields: dict[str, str], path: str) -> Package | None:
    name, version = fields.get("package", ""), fields.get("version", "")
    if not name or not version or " " in name + version:
        return None
    status = fields.get("status", "").split()
    if len(status) == 3 and status[2] in _ABSENT_STATES:
        return None
    source_name = source_version = ""
    source = _SOURCE.fullmatch(fields.get("source", ""))
    if source is not None:
        source_name, source_version = source.group(1), source.group(2) or version
    arch = fields.get("architecture", "")
    return Package(
        name=name,
        version=version,
        ecosystem="dpkg",
        path=path,
        source_name=source_name,
        source_version=source_version,
        purl=os_purl("dpkg", name, version, arch),
        arch=arch,
    )


def is_file_list(path: str) -> bool:
    """dpkg's list of a package's files: ``info/<pkg>.list`` (absolute paths), or in
    distroless images ``status.d/<pkg>.md5sums`` (``hash  relative/path``)."""
    return (path.startswith(_INFO_DIR) and path.endswith(".list")) or (
        path.startswith(_STATUS_DIR) and path.endswith(".md5sums")
    )


def owned_files(path: str, data: bytes) -> list[str]:
    """The files a dpkg file list names that a language analyzer could also read, as
    image-relative paths."""
    md5sums = path.endswith(".md5sums")
    owned = []
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.split(None, 1)[1] if md5sums and " " in raw.strip() else raw
        line = line.strip().lstrip("/")
        if line and _LANGUAGE_FILE.search(line):
            owned.append(line)
    return owned


def parse_status(path: str, data: bytes) -> list[Package]:
    """The packages on disk that a dpkg status file (or a status.d file) lists."""
    packages = []
    for fields in _stanzas(data.decode("utf-8", errors="replace")):
        package = _package(fields, path)
        if package is None:
            log.debug("dpkg stanza skipped", extra={"path": path, "package": fields.get("package")})
        else:
            packages.append(package)
    return packages


class DpkgAnalyzer:
    name = "dpkg"
    max_bytes = 64 * 1024 * 1024  # a full desktop's status file is ~10 MiB

    def wants(self, path: str, size: int, mode: int) -> bool:
        if size > self.max_bytes:
            return False
        if path == _STATUS:
            return True
        # status.d holds one stanza file per package and, in newer distroless images, its
        # ``<name>.md5sums`` next to it.
        rest = path[len(_STATUS_DIR) :]
        return (
            path.startswith(_STATUS_DIR)
            and bool(rest)
            and "/" not in rest
            and not rest.endswith(".md5sums")
        )

    def parse(self, path: str, data: bytes) -> list[Package]:
        return parse_status(path, data)
