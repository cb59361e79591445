"""Which OSV ecosystem an OS package is matched in, and its package URL, from the image's
os-release.

OSV names (https://ossf.github.io/osv-schema/#affectedpackage-field):

- Debian: ``Debian:<major>`` (``VERSION_ID`` is already the major: ``12``).
- Ubuntu: ``Ubuntu:<YY.MM>``, with a mandatory ``:LTS`` suffix for LTS releases
  (``Ubuntu:22.04:LTS``, ``Ubuntu:24.10``).
- Alpine: ``Alpine:v<major>.<minor>`` (``VERSION_ID`` ``3.19.1`` -> ``Alpine:v3.19``).
- Rocky Linux, AlmaLinux: ``Rocky Linux:<major>``, ``AlmaLinux:<major>``.
- RHEL: ``Red Hat:enterprise_linux:9``. OSV's Red Hat records add a CPE stream
  (``::appstream``) that an image does not name; ``matching.advisory_ecosystem`` drops it.
- Mageia, Photon OS: ``<name>:<VERSION_ID>``; openSUSE and SUSE: ``<name>:<PRETTY_NAME
  without the vendor>`` (``openSUSE:Leap 15.5``, ``SUSE:Linux Enterprise Server 15 SP5``).
- Wolfi and Chainguard (apk): unversioned.

An OS OSV does not cover (Fedora, CentOS, Amazon Linux …) or a package kind that does not
belong to the OS gets None: the package keeps its kind as ecosystem and nothing is matched.
"""

from __future__ import annotations

import re

from portside.scanner.model import OSRelease
from portside.scanner.purl import make_purl

__all__ = ["OS_PACKAGE_KINDS", "os_ecosystem", "os_purl"]

OS_PACKAGE_KINDS = frozenset({"dpkg", "apk", "rpm"})

_PURL_TYPES = {"dpkg": "deb", "apk": "apk", "rpm": "rpm"}
# The purl namespace before the OS is known; replaced by the OS vendor once it is.
_DEFAULT_NAMESPACES = {"dpkg": "debian", "apk": "alpine", "rpm": ""}
# purl namespaces are vendor names, which for some OSes differ from their os-release ID.
_PURL_VENDORS = {
    "rhel": "redhat",
    "amzn": "amazon",
    "ol": "oracle",
    "opensuse-leap": "opensuse",
    "opensuse-tumbleweed": "opensuse",
    "sles": "suse",
}
_RPM_BY_MAJOR = {"rocky": "Rocky Linux", "almalinux": "AlmaLinux"}
_RPM_BY_VERSION = {"mageia": "Mageia", "photon": "Photon OS"}
_RPM_BY_PRETTY_NAME = {"opensuse-leap": "openSUSE", "sles": "SUSE"}

_MAJOR = re.compile(r"(\d+)")
_MAJOR_MINOR = re.compile(r"(\d+)\.(\d+)")


def _ubuntu(release: OSRelease) -> str | None:
    match = _MAJOR_MINOR.match(release.version_id)
    if match is None:
        return None
    year, month = match.groups()
    # PRETTY_NAME says "Ubuntu 22.04.3 LTS"; without it, LTS releases are the even years' April.
    lts = "LTS" in release.pretty_name.split() or (
        not release.pretty_name and int(year) % 2 == 0 and month == "04"
    )
    return f"Ubuntu:{year}.{month}" + (":LTS" if lts else "")


def _rpm(release: OSRelease) -> str | None:
    if release.id in _RPM_BY_MAJOR:
        major = _MAJOR.match(release.version_id)
        return f"{_RPM_BY_MAJOR[release.id]}:{major.group(1)}" if major else None
    if release.id == "rhel":
        major = _MAJOR.match(release.version_id)
        return f"Red Hat:enterprise_linux:{major.group(1)}" if major else None
    if release.id in _RPM_BY_VERSION and release.version_id:
        return f"{_RPM_BY_VERSION[release.id]}:{release.version_id}"
    vendor = _RPM_BY_PRETTY_NAME.get(release.id)
    if vendor and release.pretty_name.startswith(vendor + " "):
        return f"{vendor}:{release.pretty_name[len(vendor) + 1 :]}"
    return None


def os_ecosystem(kind: str, os_release: OSRelease | None) -> str | None:
    """The OSV ecosystem of packages of ``kind`` (``dpkg``, ``apk``, ``rpm``) on ``os_release``,
    or None when OSV has none for it or the OS is unknown."""
    if os_release is None:
        return None
    distro = os_release.id
    if kind == "dpkg" and distro == "debian":
        major = _MAJOR.fullmatch(os_release.version_id.split(".")[0])
        return f"Debian:{major.group(1)}" if major else None
    if kind == "dpkg" and distro == "ubuntu":
        return _ubuntu(os_release)
    if kind == "apk" and distro == "alpine":
        match = _MAJOR_MINOR.match(os_release.version_id)
        return f"Alpine:v{match.group(1)}.{match.group(2)}" if match else None
    if kind == "apk" and distro in ("wolfi", "chainguard"):
        return distro.capitalize()
    if kind == "rpm":
        return _rpm(os_release)
    return None


def os_purl(
    kind: str, name: str, version: str, arch: str = "", os_release: OSRelease | None = None
) -> str:
    """The package URL of an OS package: ``pkg:deb/debian/bash@5.2.15-2+b2?arch=amd64&
    distro=debian-12``. Without ``os_release`` the namespace is the kind's usual vendor and
    there is no ``distro`` qualifier. rpm versions carry their epoch as the ``epoch``
    qualifier, as the purl spec asks."""
    namespace = _DEFAULT_NAMESPACES.get(kind, "")
    qualifiers = {"arch": arch}
    if os_release is not None:
        namespace = _PURL_VENDORS.get(os_release.id, os_release.id)
        distro = "-".join(p for p in (os_release.id, os_release.version_id) if p)
        qualifiers["distro"] = distro
    if kind == "rpm" and ":" in version:
        qualifiers["epoch"], version = version.split(":", 1)
    return make_purl(
        _PURL_TYPES.get(kind, kind), name, version, namespace=namespace, qualifiers=qualifiers
    )
