"""RPM packages: rpm's SQLite database (``rpmdb.sqlite``, rpm 4.16 and later: RHEL/Rocky/Alma 9,
Fedora 33+), at ``var/lib/rpm`` or ``usr/lib/sysimage/rpm``.

Each row of its ``Packages`` table is one installed package's header, in rpm's binary header
format (https://rpm-software-management.github.io/rpm/manual/format_header.html) without the
leading magic: two big-endian 32-bit counts (index entries, data bytes), the index entries
(tag, type, offset, count; 16 bytes each), then the data store the offsets point into. The
file is hostile input: the database is opened in memory only, with bounded work, and every
count and offset in a header is checked against the blob before it is used.

Older databases (Berkeley DB ``Packages``, SUSE's ``Packages.db``) are not read.
"""

from __future__ import annotations

import logging
import sqlite3
import struct

from portside.scanner.ecosystems import os_purl
from portside.scanner.model import Package

__all__ = ["RpmAnalyzer", "RpmHeaderError", "parse_header", "parse_rpmdb"]

log = logging.getLogger(__name__)

_PATHS = frozenset({"var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite"})
_SQLITE_MAGIC = b"SQLite format 3\x00"

NAME, VERSION, RELEASE, EPOCH, LICENSE, ARCH, SOURCERPM = 1000, 1001, 1002, 1003, 1014, 1022, 1044
_TAGS = frozenset({NAME, VERSION, RELEASE, EPOCH, LICENSE, ARCH, SOURCERPM})
_INT32, _STRING, _STRING_ARRAY, _I18NSTRING = 4, 6, 8, 9
_STRING_TYPES = frozenset({_STRING, _STRING_ARRAY, _I18NSTRING})
# rpm's own limits on a header (lib/header.c: HEADER_TAGS_MAX, HEADER_DATA_MAX).
_MAX_INDEX_ENTRIES = 0xFFFF
_MAX_DATA_BYTES = 256 * 1024 * 1024

_MAX_ROWS = 100_000
_MAX_BLOB_BYTES = 64 * 1024 * 1024  # headers listing tens of thousands of files are a few MiB
_PROGRESS_EVERY = 10_000  # SQLite VM instructions between checks of the work budget
_MAX_PROGRESS_CALLS = 20_000  # 2e8 instructions: far above a 10,000-package database


class RpmHeaderError(ValueError):
    """A header blob that is not a valid rpm header."""


def parse_header(blob: bytes) -> dict[int, str | int]:
    """The name, version, release, epoch, license, arch and source rpm tags of a header
    blob (strings and the first INT32). Raises :class:`RpmHeaderError`."""
    if len(blob) < 8:
        raise RpmHeaderError("header shorter than its counts")
    entries, data_size = struct.unpack_from(">II", blob, 0)
    store = 8 + 16 * entries
    if entries > _MAX_INDEX_ENTRIES or data_size > _MAX_DATA_BYTES:
        raise RpmHeaderError("header counts over rpm's limits")
    if store + data_size > len(blob):
        raise RpmHeaderError("header longer than its blob")
    end = store + data_size
    values: dict[int, str | int] = {}
    for index in range(entries):
        tag, kind, offset, count = struct.unpack_from(">IIII", blob, 8 + 16 * index)
        if tag not in _TAGS or tag in values or count < 1 or offset >= data_size:
            continue
        start = store + offset
        if kind in _STRING_TYPES:
            nul = blob.find(b"\x00", start, end)
            if nul >= 0:
                values[tag] = blob[start:nul].decode("utf-8", errors="replace")
        elif kind == _INT32 and start + 4 <= end:
            values[tag] = struct.unpack_from(">I", blob, start)[0]
    return values


def _source(sourcerpm: str) -> tuple[str, str, str]:
    """``bash-5.1.8-6.el9.src.rpm`` -> (``bash``, ``5.1.8``, ``6.el9``); empty when not that
    shape."""
    for suffix in (".src.rpm", ".nosrc.rpm"):
        if sourcerpm.endswith(suffix):
            parts = sourcerpm[: -len(suffix)].rsplit("-", 2)
            if len(parts) == 3 and all(parts):
                return parts[0], parts[1], parts[2]
    return "", "", ""


def _package(values: dict[int, str | int], path: str) -> Package | None:
    name, version, release = (str(values.get(tag, "")) for tag in (NAME, VERSION, RELEASE))
    if not name or not version or not release or " " in name + version + release:
        return None
    if name == "gpg-pubkey":  # rpm's pseudo-package for an imported signing key
        return None
    epoch = values.get(EPOCH)
    full_version = f"{version}-{release}"
    if isinstance(epoch, int) and epoch > 0:  # no epoch and epoch 0 compare the same
        full_version = f"{epoch}:{full_version}"
    source_name, source_version = "", ""
    srpm_name, srpm_version, srpm_release = _source(str(values.get(SOURCERPM, "")))
    if srpm_name and (srpm_name, srpm_version, srpm_release) != (name, version, release):
        source_name = srpm_name
        # The binary's epoch is the source's only when both come from the same build.
        same_build = (srpm_version, srpm_release) == (version, release)
        source_version = full_version if same_build else f"{srpm_version}-{srpm_release}"
    arch = str(values.get(ARCH, ""))
    license_ = str(values.get(LICENSE, ""))
    return Package(
        name=name,
        version=full_version,
        ecosystem="rpm",
        path=path,
        source_name=source_name,
        source_version=source_version,
        purl=os_purl("rpm", name, full_version, arch),
        licenses=(license_,) if license_ else (),
        arch=arch,
    )


def _open(data: bytes) -> sqlite3.Connection:
    # rpm keeps its database in WAL mode, which an in-memory database cannot open; the file
    # format bytes say so (18 and 19: 2 = WAL, 1 = rollback journal) and are set back to 1.
    if data[18:20] == b"\x02\x02":
        data = data[:18] + b"\x01\x01" + data[20:]
    connection = sqlite3.connect(":memory:")
    connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _MAX_BLOB_BYTES)
    calls = 0

    def budget() -> int:
        nonlocal calls
        calls += 1
        return 1 if calls > _MAX_PROGRESS_CALLS else 0  # nonzero interrupts the query

    connection.set_progress_handler(budget, _PROGRESS_EVERY)
    connection.deserialize(data)
    connection.execute("PRAGMA trusted_schema = OFF")  # no functions called from its schema
    return connection


def parse_rpmdb(path: str, data: bytes) -> list[Package]:
    """The packages in an ``rpmdb.sqlite`` image. A file that is not one, or that is corrupt,
    gives the packages read before the damage (possibly none)."""
    if not data.startswith(_SQLITE_MAGIC) or len(data) < 100:
        return []
    packages: list[Package] = []
    try:
        connection = _open(data)
    except sqlite3.Error as error:
        log.debug("rpm database unreadable", extra={"path": path, "error": str(error)})
        return []
    try:
        kind = connection.execute(
            "SELECT type FROM sqlite_master WHERE name = 'Packages'"
        ).fetchone()
        if kind is None or kind[0] != "table":  # a view could run arbitrary queries
            return []
        rows = connection.execute("SELECT blob FROM Packages LIMIT ?", (_MAX_ROWS,))
        for (blob,) in rows:
            try:
                # Only a real blob: bytes() of an integer column would allocate that many bytes.
                package = _package(parse_header(blob), path) if isinstance(blob, bytes) else None
            except RpmHeaderError:
                package = None
            if package is None:
                log.debug("rpm header skipped", extra={"path": path})
            else:
                packages.append(package)
    except sqlite3.Error as error:
        log.debug("rpm database unreadable", extra={"path": path, "error": str(error)})
    finally:
        connection.close()
    return packages


class RpmAnalyzer:
    name = "rpm"
    max_bytes = 128 * 1024 * 1024  # Fedora's full-desktop database is ~60 MiB

    def wants(self, path: str, size: int, mode: int) -> bool:
        return path in _PATHS and size <= self.max_bytes

    def parse(self, path: str, data: bytes) -> list[Package]:
        return parse_rpmdb(path, data)
