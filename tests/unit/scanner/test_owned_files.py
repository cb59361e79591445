"""Files that belong to an OS package are not counted again as language packages: a Python
library installed with apt is the Debian package's, as Trivy and Grype also decide."""

from __future__ import annotations

from collections.abc import AsyncIterator

from portside.scanner.analyzers import default_analyzers
from portside.scanner.analyzers.dpkg import owned_files
from portside.scanner.image import merge_layers
from portside.scanner.layers import analyze_layer
from portside.scanner.model import LayerResult
from tests.support.layers import dist_info, tar_layer

STATUS = b"""Package: python3-requests
Status: install ok installed
Architecture: all
Source: requests
Version: 2.28.1+dfsg-1

Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5

"""
APT_SITE = "usr/lib/python3/dist-packages"
PIP_SITE = "usr/local/lib/python3.11/site-packages"


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _layer(files: dict[str, bytes]) -> LayerResult:
    blob = tar_layer(files)
    return await analyze_layer(_chunks(blob.data), blob.media_type, default_analyzers())


def _names(result: list[LayerResult]) -> set[tuple[str, str, str]]:
    return {(p.ecosystem, p.name, p.version) for p in merge_layers(result).packages}


async def test_a_dpkg_owned_dist_info_is_not_a_pypi_package() -> None:
    apt = dist_info("requests", "2.28.1", site=APT_SITE)
    listed = "\n".join(["/.", f"/{APT_SITE}", *(f"/{path}" for path in apt)]) + "\n"
    base = await _layer(
        {
            "etc/os-release": b'ID=debian\nVERSION_ID="12"\n',
            "var/lib/dpkg/status": STATUS,
            "var/lib/dpkg/info/python3-requests.list": listed.encode(),
            **apt,
        }
    )
    pip = await _layer(dist_info("urllib3", "1.24.1", site=PIP_SITE))
    found = _names([base, pip])
    assert ("Debian:12", "python3-requests", "2.28.1+dfsg-1") in found
    assert ("PyPI", "urllib3", "1.24.1") in found  # installed by pip: nobody owns it
    assert not any(name == "requests" and eco == "PyPI" for eco, name, _ in found)


async def test_ownership_ends_when_the_list_is_deleted() -> None:
    apt = dist_info("requests", "2.28.1", site=APT_SITE)
    listed = "".join(f"/{path}\n" for path in apt).encode()
    base = await _layer({"var/lib/dpkg/info/python3-requests.list": listed, **apt})
    removed = await _layer({"var/lib/dpkg/info/.wh.python3-requests.list": b""})
    assert ("PyPI", "requests", "2.28.1") not in _names([base])
    assert ("PyPI", "requests", "2.28.1") in _names([base, removed])


def test_distroless_md5sums_and_only_relevant_paths_are_kept() -> None:
    md5sums = (
        b"d41d8cd98f00b204e9800998ecf8427e  usr/lib/python3/dist-packages/x-1.dist-info/METADATA\n"
        b"d41d8cd98f00b204e9800998ecf8427e  usr/share/doc/x/copyright\n"
        b"d41d8cd98f00b204e9800998ecf8427e  usr/bin/x\n"
    )
    assert owned_files("var/lib/dpkg/status.d/x.md5sums", md5sums) == [
        "usr/lib/python3/dist-packages/x-1.dist-info/METADATA",
        "usr/bin/x",
    ]
    listed = b"/.\n/usr\n/usr/share/java/foo.jar\n/usr/share/man/man1/foo.1.gz\n"
    assert owned_files("var/lib/dpkg/info/foo.list", listed) == ["usr/share/java/foo.jar"]
