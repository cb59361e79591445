"""Go modules compiled into a binary, read from the build information the Go linker embeds
(what ``go version -m`` prints).

The blob starts with a 32-byte header, 16-byte aligned: the magic ``\\xff Go buildinf:``, the
pointer size, and a flags byte (bit 0: big-endian, bit 1: strings follow inline). Go 1.18+
writes the version and the module info inline after the header as varint-length strings;
earlier releases write two pointers to Go string headers, which need the ELF program headers
to turn into file offsets (so that older format is read from ELF files only). The module info
is the text of ``runtime/debug.BuildInfo``: ``mod``, ``dep`` and ``=>`` (replacement) lines,
tab-separated, wrapped in 16-byte sentinels.

Versions are reported as OSV's Go ecosystem writes them, without the ``v`` (modules) or
``go`` (toolchain, package ``stdlib``) prefix; the purl keeps the Go form (``@v1.2.3``). The
main module of a local build has no version (``(devel)``): it is listed with version ``""``,
which matching must skip.
"""

from __future__ import annotations

import re
import struct

from portside.scanner.analyzers.binaries import (
    SHT_NOBITS,
    Elf,
    has_executable_magic,
    may_be_program,
)
from portside.scanner.model import Package
from portside.scanner.purl import make_purl

__all__ = ["GoBinaryAnalyzer"]

_MAGIC = b"\xff Go buildinf:"
_HEADER_SIZE = 32
_ALIGN = 16
_MAX_CANDIDATES = 32  # magic strings tried before giving up (a Go tool may embed the literal)
_MAX_STRING = 4 * 1024 * 1024
_GO_RELEASE = re.compile(r"go([0-9]+)\.([0-9]+)(?:\.([0-9]+))?(?:(rc|beta)([0-9]+))?")


class GoBinaryAnalyzer:
    name = "golang"
    max_bytes = 256 * 1024 * 1024

    def wants(self, path: str, size: int, mode: int) -> bool:
        return may_be_program(path, size, mode, self.max_bytes)

    def parse(self, path: str, data: bytes) -> list[Package]:
        if not has_executable_magic(data):
            return []
        found = read_build_info(data)
        if found is None:
            return []
        go_version, modinfo = found
        packages = _modules(modinfo, path)
        stdlib = _toolchain_version(go_version)
        if stdlib:
            packages.append(_package("stdlib", stdlib, "v" + stdlib, path))
        return packages


def read_build_info(data: bytes) -> tuple[str, str] | None:
    """The Go version and the module info text of a Go binary, or None."""
    elf = Elf.parse(data)
    region, base = data, 0
    if elf is not None:
        section = next((s for s in elf.sections if s.name == ".go.buildinfo"), None)
        if section is not None and section.type != SHT_NOBITS:
            region, base = data[section.offset : section.offset + section.size], section.offset
    at = 0
    for _ in range(_MAX_CANDIDATES):
        at = region.find(_MAGIC, at)
        if at < 0 or len(region) - at < _HEADER_SIZE:
            return None
        if (base + at) % _ALIGN == 0:
            found = _decode_header(memoryview(region)[at:], elf)
            if found is not None:
                return found
        at += 1
    return None


def _decode_header(blob: memoryview, elf: Elf | None) -> tuple[str, str] | None:
    pointer_size, flags = blob[14], blob[15]
    if flags & 2:
        version, rest = _varint_string(blob, _HEADER_SIZE)
        modinfo, _ = _varint_string(blob, rest)
    elif elf is not None and pointer_size in (4, 8):
        endian = ">" if flags & 1 else "<"
        pointer = endian + ("Q" if pointer_size == 8 else "I")
        version_at, modinfo_at = struct.unpack_from(pointer + pointer[-1], blob, 16)
        version = _go_string(elf, version_at, pointer, pointer_size)
        modinfo = _go_string(elf, modinfo_at, pointer, pointer_size)
    else:
        return None
    if version is None or not version.startswith(("go", "devel")):
        return None
    return version, _strip_sentinels(modinfo or "")


def _varint_string(blob: memoryview, at: int) -> tuple[str | None, int]:
    length, shift = 0, 0
    while at < len(blob) and shift < 64:
        byte = blob[at]
        at += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if length > _MAX_STRING or at + length > len(blob):
                return None, at
            return bytes(blob[at : at + length]).decode("utf-8", errors="replace"), at + length
    return None, at


def _go_string(elf: Elf, addr: int, pointer: str, pointer_size: int) -> str | None:
    """A Go string header (data pointer, length) at ``addr``, followed to its bytes."""
    header = elf.read_virtual(addr, 2 * pointer_size)
    if header is None:
        return None
    data_at, length = struct.unpack(pointer + pointer[-1], header)
    if length > _MAX_STRING:
        return None
    raw = elf.read_virtual(data_at, length)
    return None if raw is None else raw.decode("utf-8", errors="replace")


def _strip_sentinels(modinfo: str) -> str:
    # runtime/debug wraps the text in 16 bytes on each side; Go's own reader checks for the
    # newline that ends the last line just before the closing sentinel.
    if len(modinfo) >= 33 and modinfo[-17] == "\n":
        return modinfo[16:-16]
    return ""


def _modules(modinfo: str, path: str) -> list[Package]:
    """``mod`` (main module) and ``dep`` lines, each possibly followed by a ``=>`` line that
    replaces it. A replacement by a local directory has no version, and the code built is not
    the published module, so that module is left out."""
    modules: list[tuple[str, str]] = []
    for line in modinfo.splitlines():
        kind, module, version = [*line.split("\t"), "", ""][:3]
        if kind in ("mod", "dep"):
            modules.append((module, version))
        elif kind == "=>" and modules:
            modules[-1] = (module, version) if version else ("", "")
    packages = []
    for index, (name, version) in enumerate(modules):
        if not name:
            continue
        if version == "(devel)" and index == 0:
            version = ""  # the main module of a local build has no version
        elif not version.startswith("v"):
            continue
        packages.append(_package(name, version.removeprefix("v"), version, path))
    return packages


def _toolchain_version(version: str) -> str:
    """``go1.21.5`` -> ``1.21.5``, ``go1.19`` -> ``1.19.0``, ``go1.21rc2`` -> ``1.21.0-rc.2``
    (the semver forms OSV uses for ``stdlib``); development toolchains give ""."""
    match = _GO_RELEASE.fullmatch(version.split(" ", 1)[0])
    if match is None:
        return ""
    major, minor, patch, pre, pre_number = match.groups()
    semver = f"{major}.{minor}.{patch or 0}"
    return f"{semver}-{pre}.{pre_number}" if pre else semver


def _package(name: str, version: str, go_version: str, path: str) -> Package:
    namespace, _, last = name.lower().rpartition("/")
    return Package(
        name=name,
        version=version,
        ecosystem="Go",
        path=path,
        purl=make_purl("golang", last, go_version, namespace=namespace),
    )
