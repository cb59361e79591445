"""Rust crates: the ones a ``Cargo.lock`` pins, and the ones ``cargo auditable`` recorded in a
binary (https://github.com/rust-secure-code/cargo-auditable/blob/master/PARAMETERS.md): an
ELF section ``.dep-v0`` holding zlib-compressed JSON, ``{"packages": [{"name", "version",
"source", ...}]}``.

Crates of the project itself (no ``source`` in Cargo.lock, ``"source": "local"`` in audit
data) are left out: they were never published on crates.io, and a local crate sharing a
published crate's name would otherwise pick up that crate's advisories. Crates from git and
alternative registries stay, as they are most often forks of the published crate.
Audit data is read from ELF binaries only (the Linux images Portside scans).
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
import zlib
from typing import Any

from portside.scanner.analyzers.binaries import Elf, may_be_program
from portside.scanner.model import Package
from portside.scanner.purl import make_purl

__all__ = ["RustAnalyzer"]

log = logging.getLogger(__name__)

_MAX_LOCK_BYTES = 8 * 1024 * 1024  # real ones stay near 1 MiB; tomllib takes ~1 s/MiB
_MAX_AUDIT_JSON = 16 * 1024 * 1024  # decompressed, so a zlib bomb stops here
# What crates.io accepts as a crate name, and the outline of a semver version.
_CRATE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.+-]*")


class RustAnalyzer:
    name = "rust"
    max_bytes = 256 * 1024 * 1024

    def wants(self, path: str, size: int, mode: int) -> bool:
        if path.rsplit("/", 1)[-1] == "Cargo.lock":
            return size <= _MAX_LOCK_BYTES
        return may_be_program(path, size, mode, self.max_bytes)

    def parse(self, path: str, data: bytes) -> list[Package]:
        if path.rsplit("/", 1)[-1] == "Cargo.lock":
            entries = _cargo_lock(data)
        else:
            entries = _audit_data(data)
        packages = []
        for entry in entries:
            name, version = entry.get("name"), entry.get("version")
            source = entry.get("source")
            if not isinstance(name, str) or not isinstance(version, str):
                continue
            if not isinstance(source, str) or source == "local":
                continue
            if not _CRATE_NAME.fullmatch(name) or not _VERSION.fullmatch(version):
                continue
            packages.append(
                Package(
                    name=name,
                    version=version,
                    ecosystem="crates.io",
                    path=path,
                    purl=make_purl("cargo", name, version),
                )
            )
        return packages


def _cargo_lock(data: bytes) -> list[Any]:
    try:
        document = tomllib.loads(data.decode("utf-8", errors="replace"))
    except (tomllib.TOMLDecodeError, RecursionError):
        log.debug("Cargo.lock is not valid TOML")
        return []
    packages = document.get("package")
    return [p for p in packages if isinstance(p, dict)] if isinstance(packages, list) else []


def _audit_data(data: bytes) -> list[Any]:
    elf = Elf.parse(data)
    compressed = elf.section_data(".dep-v0") if elf is not None else None
    if not compressed:
        return []
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(compressed, _MAX_AUDIT_JSON)
        document = json.loads(raw)
    except (zlib.error, ValueError, RecursionError):
        log.debug("cargo-auditable data is not zlib-compressed JSON")
        return []
    packages = document.get("packages") if isinstance(document, dict) else None
    return [p for p in packages if isinstance(p, dict)] if isinstance(packages, list) else []
