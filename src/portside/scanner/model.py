"""The values every part of the scanner passes around: packages found in an image, and the
advisories and findings matched against them.

Kept free of I/O and of any framework so analyzers, the vulnerability database, the matcher,
the SBOM writers and the report writers can each be tested alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Advisory",
    "AffectedPackage",
    "Analyzer",
    "Finding",
    "LayerError",
    "LayerResult",
    "OSRelease",
    "Package",
    "Severity",
]


class Severity:
    """Harbor's severity names, in Harbor's order: ``None`` (nothing found) ranks lowest, then
    ``Unknown`` (found, but unrated), so a gate at any level still counts unrated findings
    only when it is set to ``none``. A report with findings is never ``None`` overall
    (:func:`portside.scanner.report.overall_severity`)."""

    NONE = "None"
    UNKNOWN = "Unknown"
    NEGLIGIBLE = "Negligible"
    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"
    CRITICAL = "Critical"
    ORDER = (NONE, UNKNOWN, NEGLIGIBLE, LOW, MEDIUM, HIGH, CRITICAL)

    @classmethod
    def rank(cls, name: str) -> int:
        """Position in :data:`ORDER`; names outside it rank as ``Unknown``."""
        return cls.ORDER.index(name) if name in cls.ORDER else 1


@dataclass(frozen=True)
class OSRelease:
    """What ``/etc/os-release`` (or ``/usr/lib/os-release``) says: ``id`` is ``ID`` (debian,
    ubuntu, alpine, rocky …), ``version_id`` is ``VERSION_ID`` (``12``, ``3.19.1`` …)."""

    id: str
    version_id: str
    pretty_name: str = ""


@dataclass(frozen=True)
class Package:
    """One installed package.

    ``ecosystem`` is the OSV ecosystem name the package is matched in: ``PyPI``, ``npm``, ``Go``,
    ``Maven``, ``RubyGems``, ``crates.io``. OS packages carry only their kind here (``dpkg``,
    ``apk``, ``rpm``) and get their OSV ecosystem (``Debian:12``, ``Alpine:v3.19`` …) once the
    image's OS release is known (:func:`portside.scanner.ecosystems.os_ecosystem`).

    ``source_name``/``source_version`` are the OS source package (dpkg ``Source:``, rpm
    SOURCERPM, apk origin); advisories for OS packages are keyed by source. Empty when the
    package is its own source.

    ``path`` is the file the package was read from (no leading slash), used to merge layers
    (a later layer's file replaces an earlier one's, whiteouts remove it) and shown in SBOMs.
    """

    name: str
    version: str
    ecosystem: str
    path: str
    source_name: str = ""
    source_version: str = ""
    purl: str = ""
    licenses: tuple[str, ...] = ()
    arch: str = ""

    @property
    def match_name(self) -> str:
        return self.source_name or self.name

    @property
    def match_version(self) -> str:
        return self.source_version or self.version


@dataclass(frozen=True)
class Advisory:
    """One OSV record, reduced to what matching and reports need.

    ``affected`` lists, per affected package entry: ecosystem, name, the ECOSYSTEM/SEMVER range
    events in order (each a ``(kind, version)`` pair, kind one of ``introduced``, ``fixed``,
    ``last_affected``, ``limit``) and the explicit ``versions`` list.
    """

    id: str
    aliases: tuple[str, ...]
    summary: str
    details: str
    severity: str  # one of Severity.ORDER
    cvss_vector: str
    cvss_score: float | None
    cwe_ids: tuple[str, ...]
    links: tuple[str, ...]
    affected: tuple[AffectedPackage, ...]
    withdrawn: bool = False
    modified: str = ""
    published: str = ""


@dataclass(frozen=True)
class AffectedPackage:
    ecosystem: str
    name: str
    ranges: tuple[tuple[tuple[str, str], ...], ...] = ()  # each range: ((kind, version), ...)
    versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """An advisory that applies to one installed package."""

    advisory: Advisory
    package: Package
    fix_version: str = ""  # lowest ``fixed`` above the installed version, or ""
    # Another imported record of the same vulnerability (an alias: a GHSA or distribution
    # record of its CVE) whose severity and CVSS stand in for the advisory's, which has none.
    rating: Advisory | None = None

    @property
    def rated_by(self) -> Advisory:
        """The record the finding's severity and CVSS come from."""
        return self.rating or self.advisory

    @property
    def id(self) -> str:
        """The id users know: the CVE alias when there is one (Harbor and Trivy report CVE
        ids), else the advisory's own id."""
        for alias in (self.advisory.id, *self.advisory.aliases):
            if alias.startswith("CVE-"):
                return alias
        return self.advisory.id


class LayerError(Exception):
    """A layer's content cannot be read: unknown media type, corrupt or truncated data, or
    over a limit. The message says which and is safe to show."""


class Analyzer(Protocol):
    """Recognises files of interest by path and turns their bytes into packages.

    The layer reader calls :meth:`wants` for every regular file in a layer (path relative to
    the image root, no leading ``/``, already normalised) with its size, and reads the whole
    file into memory for :meth:`parse` only when it returns True, so :meth:`wants` must be
    cheap and selective, and must refuse files above ``max_bytes``.
    """

    name: str
    max_bytes: int

    def wants(self, path: str, size: int, mode: int) -> bool: ...

    def parse(self, path: str, data: bytes) -> list[Package]: ...


@dataclass
class LayerResult:
    """What one layer contributes, cached by layer digest (so a shared base layer is read once).

    ``packages`` maps each analysed file path to what it held. ``whiteouts`` lists paths the
    layer deletes (``.wh.name`` files), ``opaque_dirs`` directories whose earlier content it
    hides (``.wh..wh..opq``). ``os_release`` is set when the layer holds an os-release file.

    ``owned`` maps each OS package manager file list in the layer (dpkg's ``info/*.list``) to
    the files it lists that a language analyzer could also read: a Python package installed
    by apt is the OS package's, and is matched as such, not a second time as a PyPI package.
    """

    packages: dict[str, list[Package]] = field(default_factory=dict)
    whiteouts: list[str] = field(default_factory=list)
    opaque_dirs: list[str] = field(default_factory=list)
    os_release: OSRelease | None = None
    os_release_path: str = ""
    owned: dict[str, list[str]] = field(default_factory=dict)
