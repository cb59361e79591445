"""Java archives (``.jar``, ``.war``, ``.ear``): the Maven coordinates Maven writes into each
archive it builds (``META-INF/maven/<groupId>/<artifactId>/pom.properties``), or, when an
archive has none, the name and version its ``META-INF/MANIFEST.MF`` declares. Archives nested
inside (``BOOT-INF/lib/*.jar``, ``WEB-INF/lib/*.jar``, an EAR's modules) are read too.

Archives are untrusted zip files read from memory, so every read is capped: the entry count
and size of the central directory (checked in the end record before :mod:`zipfile` builds its
index), the bytes each entry may decompress to, the total decompressed across nested
archives, and the nesting depth. Packages found in a nested archive carry the outer file's
path, the file that exists in the image.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass

from portside.scanner.model import Package
from portside.scanner.purl import make_purl

__all__ = ["JavaArchiveAnalyzer"]

log = logging.getLogger(__name__)

_SUFFIXES = (".jar", ".war", ".ear")
# zipfile indexes the whole central directory up front, reading entries until the declared
# directory size is used up (whatever the declared count), so both are capped. A jar of
# 100,000 classes has a directory of about 10 MiB.
_MAX_ENTRIES = 100_000
_MAX_DIRECTORY_BYTES = 16 * 1024 * 1024
_MAX_DEPTH = 3  # an EAR holding a WAR holding a jar is as deep as real deployments go
_MAX_NESTED_BYTES = 64 * 1024 * 1024
_MAX_TOTAL_BYTES = 256 * 1024 * 1024
_MAX_TEXT_BYTES = 1024 * 1024  # pom.properties, MANIFEST.MF
_POM_PROPERTIES = re.compile(r"META-INF/maven/[^/]+/[^/]+/pom\.properties")
# A java.util.Properties line: the key ends at the first "=", ":" or blank.
_PROPERTY = re.compile(r"([^=:\s]+)\s*[=:\s]\s*(.*)")
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    ValueError,
    EOFError,
    NotImplementedError,  # compression methods zipfile lacks
    RuntimeError,  # encrypted entries
    zlib.error,
)


@dataclass
class _Budget:
    """Decompressed bytes still allowed for the whole outer archive."""

    remaining: int


class JavaArchiveAnalyzer:
    name = "java"
    max_bytes = 128 * 1024 * 1024

    def wants(self, path: str, size: int, mode: int) -> bool:
        return size <= self.max_bytes and path.lower().endswith(_SUFFIXES)

    def parse(self, path: str, data: bytes) -> list[Package]:
        coordinates = _archive(data, 0, _Budget(_MAX_TOTAL_BYTES))
        packages = []
        for name, version in dict.fromkeys(coordinates):
            group, _, artifact = name.rpartition(":")
            packages.append(
                Package(
                    name=name,
                    version=version,
                    ecosystem="Maven",
                    path=path,
                    # The maven purl type requires a namespace; a manifest-only name has none.
                    purl=make_purl("maven", artifact, version, namespace=group) if group else "",
                )
            )
        return packages


def _archive(data: bytes, depth: int, budget: _Budget) -> list[tuple[str, str]]:
    directory = _central_directory(data)
    if directory is None or directory[0] > _MAX_ENTRIES or directory[1] > _MAX_DIRECTORY_BYTES:
        log.debug("java archive refused", extra={"central_directory": directory})
        return []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return _read_archive(archive, depth, budget)
    except _ZIP_ERRORS:
        log.debug("java archive unreadable", exc_info=True)
        return []


def _read_archive(archive: zipfile.ZipFile, depth: int, budget: _Budget) -> list[tuple[str, str]]:
    own: list[tuple[str, str]] = []
    nested: list[tuple[str, str]] = []
    manifest: tuple[str, str] | None = None
    for info in archive.infolist():
        name = info.filename
        if _POM_PROPERTIES.fullmatch(name):
            found = _pom_properties(_read(archive, info, _MAX_TEXT_BYTES, budget))
            own.extend([found] if found else [])
        elif name == "META-INF/MANIFEST.MF":
            manifest = _manifest(_read(archive, info, _MAX_TEXT_BYTES, budget))
        elif name.lower().endswith(_SUFFIXES) and depth + 1 < _MAX_DEPTH:
            inner = _read(archive, info, _MAX_NESTED_BYTES, budget)
            nested.extend(_archive(inner, depth + 1, budget) if inner else [])
    if not own and manifest is not None:
        own.append(manifest)
    return own + nested


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, budget: _Budget) -> bytes:
    """The entry's bytes, or b"" when it would decompress past ``cap`` or the budget (a zip
    bomb, or simply too big to be worth it)."""
    limit = min(cap, budget.remaining)
    try:
        with archive.open(info) as entry:
            content = entry.read(limit + 1)
    except _ZIP_ERRORS:
        log.debug("java archive entry unreadable", extra={"entry": info.filename})
        return b""
    budget.remaining -= min(len(content), limit)
    return b"" if len(content) > limit else content


def _central_directory(data: bytes) -> tuple[int, int] | None:
    """The entry count and byte size of the central directory, found the way :mod:`zipfile`
    finds them (end record without a comment first, else the last one in the final 64 KiB;
    a zip64 end record right before its locator overrides it; APPNOTE.TXT 4.3.14-4.3.16).
    None when there is no end record."""
    end = len(data) - 22
    if end < 0:
        return None
    if data[end : end + 4] != b"PK\x05\x06" or data[-2:] != b"\0\0":
        end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65535))
        if end < 0 or end + 22 > len(data):
            return None
    count, size = struct.unpack_from("<HI", data, end + 10)
    locator = end - 20
    if locator >= 0 and data[locator : locator + 4] == b"PK\x06\x07":
        record = locator - 56
        if record < 0 or data[record : record + 4] != b"PK\x06\x06":
            return None
        count, size = struct.unpack_from("<QQ", data, record + 32)
    return int(count), int(size)


def _pom_properties(raw: bytes) -> tuple[str, str] | None:
    properties = {}
    for line in raw.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        match = _PROPERTY.fullmatch(line)
        if match is not None:
            properties[match.group(1)] = match.group(2).strip()
    group, artifact = properties.get("groupId", ""), properties.get("artifactId", "")
    version = properties.get("version", "")
    if not group or not artifact or not version or "${" in group + artifact + version:
        return None
    return f"{group}:{artifact}", version


def _manifest(raw: bytes) -> tuple[str, str] | None:
    """The main section's headers; a line starting with one space continues the previous one
    (the JAR File Specification's 72-byte line limit)."""
    headers: dict[str, str] = {}
    last = ""
    for line in re.split(r"\r\n|\r|\n", raw.decode("utf-8", errors="replace")):
        if not line:
            break  # the main section ends at the first blank line
        if line.startswith(" ") and last:
            headers[last] += line[1:]
            continue
        key, separator, value = line.partition(": ")
        if separator:
            last = key.strip()
            headers[last] = value
    symbolic = headers.get("Bundle-SymbolicName", "").split(";", 1)[0].strip()
    if symbolic and headers.get("Bundle-Version", "").strip():
        return symbolic, headers["Bundle-Version"].strip()
    title = headers.get("Implementation-Title", "").strip()
    version = headers.get("Implementation-Version", "").strip()
    if not title or not version or " " in title:
        return None
    vendor = headers.get("Implementation-Vendor-Id", "").strip()
    return (f"{vendor}:{title}" if vendor and " " not in vendor else title), version
