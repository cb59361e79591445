"""OS package databases (dpkg, apk, rpm), os-release, and the OSV ecosystems they map to.

dpkg and rpm results are checked against the real tools reading the same files
(``dpkg-query``, ``rpm -qa``) wherever those tools are installed.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import struct
import subprocess
import textwrap
from pathlib import Path

import pytest

from portside.scanner.analyzers.apk import ApkAnalyzer, parse_installed
from portside.scanner.analyzers.dpkg import DpkgAnalyzer, parse_status
from portside.scanner.analyzers.osrelease import parse_os_release
from portside.scanner.analyzers.rpm import RpmAnalyzer, RpmHeaderError, parse_header, parse_rpmdb
from portside.scanner.ecosystems import os_ecosystem, os_purl
from portside.scanner.model import OSRelease, Package

# -- dpkg ---------------------------------------------------------------------------------------

STATUS = textwrap.dedent(
    """\
    Package: libc6
    Status: install ok installed
    Priority: optional
    Section: libs
    Installed-Size: 12986
    Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
    Architecture: amd64
    Multi-Arch: same
    Source: glibc
    Version: 2.36-9+deb12u9
    Depends: libgcc-s1
    Conffiles:
     /etc/ld.so.conf.d/x86_64-linux-gnu.conf d4e7a7b88a71b5ffd9e2644e71a0cfab
    Description: GNU C Library: Shared libraries
     Contains the standard libraries that are used by nearly all programs on
     the system.
     .
     Package: not-a-package
     Version: 0

    Package: libzstd1
    Status: install ok installed
    Architecture: amd64
    Source: libzstd (1.5.4+dfsg2-5)
    Version: 1.5.4+dfsg2-5+b1
    Description: fast lossless compression algorithm

    Package: zlib1g
    Status: install ok installed
    Architecture: amd64
    Source: zlib
    Version: 1:1.2.13.dfsg-1
    Description: compression library - runtime

    Package: bash
    Status: install ok installed
    Essential: yes
    Architecture: amd64
    Version: 5.2.15-2+b7
    Description: GNU Bourne Again SHell

    Package: removed-but-configured
    Status: deinstall ok config-files
    Architecture: all
    Version: 1.0-1
    Description: its files are gone

    Package: purged
    Status: purge ok not-installed
    Architecture: all
    Description: gone entirely

    Package: half
    Status: install reinstreq half-installed
    Architecture: all
    Source: half-src (2:0.9-1)
    Version: 2:0.9-1
    Description: its files are (partly) there

    Package: libexpat1
    Status: install ok triggers-pending
    Triggers-Pending: ldconfig
    Architecture: amd64
    Source: expat
    Version: 2.5.0-1+deb12u1
    Description: XML parsing C library - runtime library
    """
)


def by_name(packages: list[Package]) -> dict[str, Package]:
    return {p.name: p for p in packages}


def test_dpkg_status_fields() -> None:
    found = by_name(parse_status("var/lib/dpkg/status", STATUS.encode()))
    assert sorted(found) == ["bash", "half", "libc6", "libexpat1", "libzstd1", "zlib1g"]
    libc = found["libc6"]
    assert (libc.source_name, libc.source_version) == ("glibc", "2.36-9+deb12u9")
    assert (libc.ecosystem, libc.arch, libc.path) == ("dpkg", "amd64", "var/lib/dpkg/status")
    assert libc.purl == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u9?arch=amd64"
    # A binNMU: the binary's version has +b1, advisories name the source's version.
    zstd = found["libzstd1"]
    assert (zstd.version, zstd.match_name, zstd.match_version) == (
        "1.5.4+dfsg2-5+b1",
        "libzstd",
        "1.5.4+dfsg2-5",
    )
    zlib = found["zlib1g"]
    assert (zlib.match_name, zlib.match_version) == ("zlib", "1:1.2.13.dfsg-1")
    assert found["half"].match_version == "2:0.9-1"
    bash = found["bash"]  # its own source
    assert (bash.source_name, bash.source_version) == ("", "")
    assert (bash.match_name, bash.match_version) == ("bash", "5.2.15-2+b7")


def _dpkg_query(admindir: Path) -> set[tuple[str, str, str, str]]:
    """What dpkg itself lists, without packages whose files are gone (``config-files``)."""
    fmt = "${Package}|${Version}|${source:Package}|${source:Version}|${db:Status-Status}\n"
    output = subprocess.run(
        ["dpkg-query", f"--admindir={admindir}", "-W", "-f", fmt],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [line.split("|") for line in output.splitlines()]
    return {(n, v, sn, sv) for n, v, sn, sv, state in rows if state != "config-files"}


def _ours(packages: list[Package]) -> set[tuple[str, str, str, str]]:
    return {(p.name, p.version, p.match_name, p.match_version) for p in packages}


needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs dpkg-query")


@needs_dpkg
def test_dpkg_agrees_with_dpkg_query(tmp_path: Path) -> None:
    (tmp_path / "status").write_text(STATUS)
    expected = _dpkg_query(tmp_path)
    assert len(expected) == 6
    assert _ours(parse_status("var/lib/dpkg/status", STATUS.encode())) == expected


@needs_dpkg
def test_dpkg_agrees_with_dpkg_query_on_this_machine(tmp_path: Path) -> None:
    status = Path("/var/lib/dpkg/status")
    if not status.is_file():
        pytest.skip("no dpkg database here")
    shutil.copy(status, tmp_path / "status")
    expected = _dpkg_query(tmp_path)
    assert len(expected) > 50
    assert _ours(parse_status("var/lib/dpkg/status", status.read_bytes())) == expected


def test_dpkg_wants_the_status_file_and_distroless_status_d() -> None:
    dpkg = DpkgAnalyzer()
    assert dpkg.wants("var/lib/dpkg/status", 1000, 0o644)
    assert dpkg.wants("var/lib/dpkg/status.d/libssl3", 1000, 0o644)
    for path in (
        "var/lib/dpkg/status-old",
        "var/lib/dpkg/status.d/libssl3.md5sums",
        "var/lib/dpkg/status.d/sub/x",
        "var/lib/dpkg/available",
        "usr/var/lib/dpkg/status",
    ):
        assert not dpkg.wants(path, 1000, 0o644), path
    assert not dpkg.wants("var/lib/dpkg/status", dpkg.max_bytes + 1, 0o644)


def test_distroless_status_d_stanzas_without_status() -> None:
    data = b"Package: libssl3\nVersion: 3.0.15-1~deb12u1\nArchitecture: amd64\nSource: openssl\n"
    (package,) = parse_status("var/lib/dpkg/status.d/libssl3", data)
    assert (package.name, package.match_name, package.match_version) == (
        "libssl3",
        "openssl",
        "3.0.15-1~deb12u1",
    )


def test_dpkg_tolerates_junk() -> None:
    junk = b"\xff\xfe garbage\n\nPackage: ok\nVersion: 1\n\nPackage\nVersion 2\n\nPackage: a b\n"
    assert [p.name for p in parse_status("var/lib/dpkg/status", junk)] == ["ok"]
    assert parse_status("var/lib/dpkg/status", b"") == []


# -- apk ----------------------------------------------------------------------------------------

APK_INSTALLED = textwrap.dedent(
    """\
    C:Q1rXMPF8VNBXL2U2wL1gEpn1s9XcY=
    P:musl
    V:1.2.4_git20230717-r4
    A:x86_64
    S:407278
    I:663552
    T:the musl c library (libc) implementation
    U:https://musl.libc.org/
    L:MIT
    o:musl
    m:Timo Teras <timo.teras@iki.fi>
    t:1705326226
    c:c3bb3b3b1a3a5a2e7b7b7b7b7b7b7b7b7b7b7b7b
    p:so:libc.musl-x86_64.so.1=1
    F:lib
    R:ld-musl-x86_64.so.1
    a:0:0:755
    Z:Q1a0x6Pf5s2Iy3nQXGxYA1rJ9zj7c=
    R:libc.musl-x86_64.so.1

    C:Q1kQa3Q4dcIyS5bXh3aXdm0xA2nXI=
    P:libcrypto3
    V:3.1.4-r5
    A:x86_64
    L:Apache-2.0
    o:openssl
    D:so:libc.musl-x86_64.so.1
    F:usr/lib
    R:libcrypto.so.3

    P:broken-without-version
    A:x86_64
    """
)


def test_apk_installed_database() -> None:
    found = by_name(parse_installed("lib/apk/db/installed", APK_INSTALLED.encode()))
    assert sorted(found) == ["libcrypto3", "musl"]
    crypto = found["libcrypto3"]
    assert (crypto.version, crypto.source_name, crypto.source_version) == (
        "3.1.4-r5",
        "openssl",
        "3.1.4-r5",
    )
    assert (crypto.ecosystem, crypto.arch, crypto.licenses) == ("apk", "x86_64", ("Apache-2.0",))
    assert crypto.purl == "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64"
    musl = found["musl"]  # its own origin
    assert (musl.source_name, musl.match_name, musl.licenses) == ("", "musl", ("MIT",))


def test_apk_wants_only_its_database() -> None:
    apk = ApkAnalyzer()
    assert apk.wants("lib/apk/db/installed", 10, 0o644)
    assert not apk.wants("lib/apk/db/triggers", 10, 0o644)
    assert not apk.wants("lib/apk/db/installed", apk.max_bytes + 1, 0o644)


# -- rpm ----------------------------------------------------------------------------------------


def rpm_header(tags: dict[int, str | int]) -> bytes:
    """An rpm header blob as rpmdb.sqlite stores it (no magic), written per the format spec:
    counts, index entries, then the data store (INT32 values 4-aligned)."""
    index, store = b"", b""
    for tag, value in sorted(tags.items()):
        if isinstance(value, int):
            store += b"\x00" * (-len(store) % 4)
            index += struct.pack(">IIII", tag, 4, len(store), 1)
            store += struct.pack(">I", value)
        else:
            index += struct.pack(">IIII", tag, 6, len(store), 1)
            store += value.encode() + b"\x00"
    return struct.pack(">II", len(tags), len(store)) + index + store


TOOL = {1000: "tool", 1001: "2.4", 1002: "3.el9", 1003: 1, 1014: "MIT", 1022: "x86_64"}


def rpmdb(tmp_path: Path, blobs: list[object], wal: bool = True) -> bytes:
    path = tmp_path / "rpmdb.sqlite"
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        if wal:  # as rpm keeps it
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB)")
        db.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b,) for b in blobs])
    db.close()
    return path.read_bytes()


def test_rpm_header_tags() -> None:
    values = parse_header(rpm_header({**TOOL, 1044: "tool-suite-2.4-3.el9.src.rpm"}))
    assert values[1000] == "tool" and values[1003] == 1 and values[1044].endswith(".src.rpm")


def test_rpmdb_packages(tmp_path: Path) -> None:
    blobs: list[object] = [
        rpm_header({**TOOL, 1044: "tool-suite-2.4-3.el9.src.rpm"}),
        rpm_header(
            {1000: "bash", 1001: "5.1.8", 1002: "9.el9", 1022: "x86_64"}
            | {1044: "bash-5.1.8-9.el9.src.rpm"}
        ),
        rpm_header(
            {1000: "perl-Errno", 1001: "1.30", 1002: "481.el9", 1044: "perl-5.32.1-481.el9.src.rpm"}
        ),
        rpm_header({1000: "gpg-pubkey", 1001: "fd431d51", 1002: "4ae0493b"}),
        b"\x00\x00\x00\x01",  # hostile rows: skipped
        10**9,
        "text",
    ]
    data = rpmdb(tmp_path, blobs)
    assert data[18:20] == b"\x02\x02"  # WAL mode, which an in-memory database cannot open as is
    found = by_name(parse_rpmdb("var/lib/rpm/rpmdb.sqlite", data))
    assert sorted(found) == ["bash", "perl-Errno", "tool"]
    tool = found["tool"]
    assert (tool.version, tool.source_name, tool.source_version) == (
        "1:2.4-3.el9",
        "tool-suite",
        "1:2.4-3.el9",
    )
    assert (tool.ecosystem, tool.licenses, tool.arch) == ("rpm", ("MIT",), "x86_64")
    assert tool.purl == "pkg:rpm/tool@2.4-3.el9?arch=x86_64&epoch=1"
    bash = found["bash"]
    assert (bash.version, bash.source_name, bash.source_version) == ("5.1.8-9.el9", "", "")
    errno = found["perl-Errno"]  # a subpackage with its own version
    assert (errno.match_name, errno.match_version) == ("perl", "5.32.1-481.el9")


def test_hostile_rpm_headers_raise_only_header_errors() -> None:
    good = rpm_header({**TOOL, 1044: "tool-2.4-3.el9.src.rpm"})
    for blob in (
        b"",
        b"\x00\x00\x00",
        struct.pack(">II", 0xFFFFFFFF, 0),
        struct.pack(">II", 1, 0xFFFFFFF0),
        struct.pack(">II", 2, 10) + b"\x00" * 16,
        good[:-1],
        good[: len(good) // 2],
    ):
        with pytest.raises(RpmHeaderError):
            parse_header(blob)
    # Offsets past the store, strings without their NUL, an INT32 cut off: values left out.
    index = struct.pack(">IIII", 1000, 6, 100, 1) + struct.pack(">IIII", 1001, 6, 3, 1)
    index += struct.pack(">IIII", 1003, 4, 2, 1)
    assert parse_header(struct.pack(">II", 3, 4) + index + b"ab\x00c") == {}
    for position in range(len(good)):  # every single-byte corruption
        damaged = bytearray(good)
        damaged[position] ^= 0xFF
        with contextlib.suppress(RpmHeaderError):
            parse_header(bytes(damaged))


def test_rpmdb_that_is_not_one(tmp_path: Path) -> None:
    assert parse_rpmdb("var/lib/rpm/rpmdb.sqlite", b"not sqlite at all") == []
    assert parse_rpmdb("var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\x00" + b"\xff" * 4000) == []
    good = rpmdb(tmp_path, [rpm_header(TOOL)] * 50)
    for cut in range(100, len(good), 997):  # a cut database: what is readable, no exception
        assert {p.name for p in parse_rpmdb("x", good[:cut])} <= {"tool"}
    path = tmp_path / "view.sqlite"
    with sqlite3.connect(path) as db:  # a view could make the query do anything
        db.execute(
            "CREATE VIEW Packages AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
            "SELECT i + 1 FROM n) SELECT zeroblob(1000) AS blob FROM n"
        )
    db.close()
    assert parse_rpmdb("var/lib/rpm/rpmdb.sqlite", path.read_bytes()) == []


def test_rpm_wants_the_sqlite_database_in_both_places() -> None:
    rpm = RpmAnalyzer()
    assert rpm.wants("var/lib/rpm/rpmdb.sqlite", 10, 0o644)
    assert rpm.wants("usr/lib/sysimage/rpm/rpmdb.sqlite", 10, 0o644)
    assert not rpm.wants("var/lib/rpm/Packages", 10, 0o644)
    assert not rpm.wants("var/lib/rpm/rpmdb.sqlite-wal", 10, 0o644)


SPEC = """\
Name: tiny-suite
Version: 1.2.3
Release: 4.el9
Epoch: 2
Summary: a package built for the test
License: MIT and BSD
BuildArch: noarch
%description
tiny
%package -n tiny-extra
Version: 0.9
Summary: a subpackage with its own version
License: Apache-2.0
%description -n tiny-extra
extra
%files
%files -n tiny-extra
"""

ALONE = """\
Name: alone
Version: 7.0
Release: 1
Summary: its own source
License: GPL-2.0-or-later
BuildArch: noarch
%description
alone
%files
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="needs rpm (apt-get install rpm)")
def test_rpmdb_written_by_rpm_itself(tmp_path: Path) -> None:
    top, dbpath = tmp_path / "top", tmp_path / "db"
    for name, spec in (("suite.spec", SPEC), ("alone.spec", ALONE)):
        (tmp_path / name).write_text(spec)
        subprocess.run(
            ["rpmbuild", "--quiet", "--define", f"_topdir {top}", "-bb", str(tmp_path / name)],
            check=True,
            capture_output=True,
        )
    built = sorted(str(p) for p in top.rglob("*.rpm"))
    assert len(built) == 3
    rpm = ["rpm", "--dbpath", str(dbpath)]
    subprocess.run([*rpm, "--initdb"], check=True, capture_output=True)
    subprocess.run(
        [*rpm, "-i", "--nodeps", "--justdb", "--noscripts", *built], check=True, capture_output=True
    )
    fmt = "%{NAME}|%{EPOCHNUM}|%{VERSION}|%{RELEASE}|%{ARCH}|%{SOURCERPM}|%{LICENSE}\n"
    listed = subprocess.run(
        [*rpm, "-qa", "--qf", fmt], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert len(listed) == 3
    found = by_name(
        parse_rpmdb("usr/lib/sysimage/rpm/rpmdb.sqlite", (dbpath / "rpmdb.sqlite").read_bytes())
    )
    for line in listed:
        name, epoch, version, release, arch, srpm, license_ = line.split("|")
        package = found[name]
        expected = f"{version}-{release}" if epoch == "0" else f"{epoch}:{version}-{release}"
        assert (package.version, package.arch, package.licenses) == (expected, arch, (license_,))
        srpm_name = srpm.removesuffix(".src.rpm").rsplit("-", 2)[0]
        assert package.match_name == srpm_name
    assert found["tiny-suite"].version == "2:1.2.3-4.el9"
    assert found["tiny-extra"].version == "2:0.9-4.el9"
    assert (found["tiny-extra"].match_name, found["tiny-extra"].match_version) == (
        "tiny-suite",
        "1.2.3-4.el9",
    )
    assert (found["alone"].source_name, found["alone"].match_version) == ("", "7.0-1")


# -- os-release and ecosystems ------------------------------------------------------------------


def test_os_release_parsing() -> None:
    text = textwrap.dedent(
        """\
        # a comment
        PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
        NAME='Debian GNU/Linux'
        VERSION_ID="12"
        VERSION="12 (bookworm)"
        ID=Debian
        HOME_URL="https://www.debian.org/"
        BROKEN LINE
        QUOTED="say \\"hi\\" for \\$5"
        """
    ).encode()
    assert parse_os_release(text) == OSRelease("debian", "12", "Debian GNU/Linux 12 (bookworm)")
    assert parse_os_release(b"NAME=nothing\n") is None
    assert parse_os_release(b"\xff\xfe\x00") is None
    alpine = parse_os_release(b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n')
    assert alpine == OSRelease("alpine", "3.19.1", "")


@pytest.mark.parametrize(
    ("kind", "release", "expected"),
    [
        ("dpkg", OSRelease("debian", "12", "Debian GNU/Linux 12 (bookworm)"), "Debian:12"),
        ("dpkg", OSRelease("debian", "11"), "Debian:11"),
        ("dpkg", OSRelease("debian", "", "Debian GNU/Linux trixie/sid"), None),
        ("dpkg", OSRelease("ubuntu", "22.04", "Ubuntu 22.04.4 LTS"), "Ubuntu:22.04:LTS"),
        ("dpkg", OSRelease("ubuntu", "24.10", "Ubuntu 24.10"), "Ubuntu:24.10"),
        ("dpkg", OSRelease("ubuntu", "20.04"), "Ubuntu:20.04:LTS"),
        ("dpkg", OSRelease("ubuntu", "23.04"), "Ubuntu:23.04"),
        ("apk", OSRelease("alpine", "3.19.1"), "Alpine:v3.19"),
        ("apk", OSRelease("alpine", "3.20.0_alpha20240329"), "Alpine:v3.20"),
        ("apk", OSRelease("wolfi", "20230201"), "Wolfi"),
        ("rpm", OSRelease("rocky", "9.3"), "Rocky Linux:9"),
        ("rpm", OSRelease("almalinux", "8.10"), "AlmaLinux:8"),
        ("rpm", OSRelease("rhel", "9.4"), "Red Hat:enterprise_linux:9"),
        ("rpm", OSRelease("photon", "5.0"), "Photon OS:5.0"),
        ("rpm", OSRelease("mageia", "9"), "Mageia:9"),
        ("rpm", OSRelease("opensuse-leap", "15.5", "openSUSE Leap 15.5"), "openSUSE:Leap 15.5"),
        (
            "rpm",
            OSRelease("sles", "15.5", "SUSE Linux Enterprise Server 15 SP5"),
            "SUSE:Linux Enterprise Server 15 SP5",
        ),
        ("rpm", OSRelease("fedora", "40"), None),
        ("rpm", OSRelease("centos", "7"), None),
        ("dpkg", OSRelease("alpine", "3.19.1"), None),  # a kind that does not belong to the OS
        ("apk", OSRelease("debian", "12"), None),
        ("dpkg", None, None),
    ],
)
def test_os_ecosystems(kind: str, release: OSRelease | None, expected: str | None) -> None:
    assert os_ecosystem(kind, release) == expected


def test_os_purls() -> None:
    debian = OSRelease("debian", "12")
    assert os_purl("dpkg", "libstdc++6", "12.2.0-14", "amd64", debian) == (
        "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&distro=debian-12"
    )
    assert os_purl("rpm", "bash", "1:5.1-2.el9", "x86_64", OSRelease("rhel", "9.4")) == (
        "pkg:rpm/redhat/bash@5.1-2.el9?arch=x86_64&distro=rhel-9.4&epoch=1"
    )
    assert os_purl("apk", "musl", "1.2.4-r4", "x86_64", OSRelease("alpine", "3.19.1")) == (
        "pkg:apk/alpine/musl@1.2.4-r4?arch=x86_64&distro=alpine-3.19.1"
    )
