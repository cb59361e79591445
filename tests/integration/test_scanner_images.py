"""The layer reader on a real Debian root filesystem, built by debootstrap and packed by GNU tar
as an image layer: it must find exactly the packages dpkg itself lists.

Needs root, ``debootstrap`` and a Debian mirror (see :mod:`tests.support.debian`, which makes
the one rootfs per session that every Debian test shares).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zstandard

from portside.scanner.analyzers.dpkg import DpkgAnalyzer
from portside.scanner.image import merge_layers
from portside.scanner.layers import analyze_layer
from tests.support.debian import debian_rootfs_fixture  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("debootstrap") is None, reason="needs debootstrap"),
    pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap needs root"),
]


@pytest.fixture(scope="session")
def plain_layer(debian_rootfs: Path) -> Path:
    layer = debian_rootfs.parent / "layer.tar"
    subprocess.run(
        ["tar", "--numeric-owner", "-C", str(debian_rootfs), "-cf", str(layer), "."], check=True
    )
    return layer


def compressed(plain: Path, kind: str) -> Path:
    out = plain.with_suffix(f".tar.{kind}")
    if not out.exists():
        if kind == "gz":
            subprocess.run(["gzip", "-k", "-1", "-S", ".gz", str(plain)], check=True)
            plain.with_name(plain.name + ".gz").rename(out)
        else:
            with plain.open("rb") as source, out.open("wb") as sink:
                zstandard.ZstdCompressor(level=3).copy_stream(source, sink)
    return out


async def file_chunks(path: Path, size: int = 1 << 20) -> AsyncIterator[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(size):
            yield chunk


def dpkg_query(rootfs: Path) -> set[tuple[str, str, str, str]]:
    fmt = "${Package}|${Version}|${source:Package}|${source:Version}|${db:Status-Status}\n"
    output = subprocess.run(
        ["dpkg-query", f"--admindir={rootfs}/var/lib/dpkg", "-W", "-f", fmt],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [line.split("|") for line in output.splitlines()]
    return {(n, v, sn, sv) for n, v, sn, sv, state in rows if state != "config-files"}


@pytest.mark.parametrize(
    ("kind", "media_type"),
    [
        ("gz", "application/vnd.oci.image.layer.v1.tar+gzip"),
        ("zst", "application/vnd.oci.image.layer.v1.tar+zstd"),
    ],
)
async def test_every_package_dpkg_lists_is_found(
    debian_rootfs: Path, plain_layer: Path, kind: str, media_type: str
) -> None:
    expected = dpkg_query(debian_rootfs)
    assert len(expected) > 50  # minbase installs ~90 packages

    layer = compressed(plain_layer, kind)
    result = await analyze_layer(file_chunks(layer), media_type, [DpkgAnalyzer()])

    assert list(result.packages) == ["var/lib/dpkg/status"]
    assert result.os_release is not None
    assert (result.os_release.id, result.os_release.version_id) == ("debian", "12")
    assert result.os_release_path == "usr/lib/os-release"  # etc/os-release is a symlink to it

    contents = merge_layers([result])
    found = {(p.name, p.version, p.match_name, p.match_version) for p in contents.packages}
    assert found == expected
    assert {p.ecosystem for p in contents.packages} == {"Debian:12"}
    assert all("distro=debian-12" in p.purl for p in contents.packages)
