"""Alpine (and Wolfi, Chainguard) packages: apk's database, ``lib/apk/db/installed``.

One block per package, blocks separated by blank lines, each line ``<letter>:<value>``
(https://wiki.alpinelinux.org/wiki/Apk_spec#Package_database): ``P`` name, ``V`` version,
``A`` architecture, ``L`` license, ``o`` origin (the source package, the name Alpine's
advisories use; subpackages share its version). The ``F``/``R``/``Z`` file lines that make up
most of the file are skipped.
"""

from __future__ import annotations

import logging

from portside.scanner.ecosystems import os_purl
from portside.scanner.model import Package

__all__ = ["ApkAnalyzer", "parse_installed"]

log = logging.getLogger(__name__)

_INSTALLED = "lib/apk/db/installed"
_WANTED_KEYS = frozenset("PVALo")


def _blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                blocks.append(fields)
            fields = {}
        elif len(line) > 2 and line[1] == ":" and line[0] in _WANTED_KEYS:
            fields.setdefault(line[0], line[2:].strip())
    if fields:
        blocks.append(fields)
    return blocks


def parse_installed(path: str, data: bytes) -> list[Package]:
    """The packages an apk ``installed`` database lists."""
    packages = []
    for fields in _blocks(data.decode("utf-8", errors="replace")):
        name, version = fields.get("P", ""), fields.get("V", "")
        if not name or not version or " " in name + version:
            log.debug("apk block without a usable name and version", extra={"path": path})
            continue
        origin = fields.get("o", "")
        own_source = not origin or origin == name
        arch = fields.get("A", "")
        packages.append(
            Package(
                name=name,
                version=version,
                ecosystem="apk",
                path=path,
                source_name="" if own_source else origin,
                source_version="" if own_source else version,
                purl=os_purl("apk", name, version, arch),
                licenses=(fields["L"],) if fields.get("L") else (),
                arch=arch,
            )
        )
    return packages


class ApkAnalyzer:
    name = "apk"
    max_bytes = 64 * 1024 * 1024

    def wants(self, path: str, size: int, mode: int) -> bool:
        return path == _INSTALLED and size <= self.max_bytes

    def parse(self, path: str, data: bytes) -> list[Package]:
        return parse_installed(path, data)
