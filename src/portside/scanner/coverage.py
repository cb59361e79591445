"""What a scan could check: whether the vulnerability database held advisories for every
ecosystem the image's packages are matched in.

A package whose ecosystem has no imported advisories matches nothing, which looks exactly like a
package without vulnerabilities. A scan that could not check everything therefore must not read
as clean: it ends ``Error`` with :attr:`Coverage.message`, its report says what was not checked,
and the pull gate treats the image as not scanned (see :mod:`portside.scanner.gate`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from portside.scanner.ecosystems import OS_PACKAGE_KINDS
from portside.scanner.model import Package

__all__ = ["IMPORT_HINT", "Coverage"]

IMPORT_HINT = (
    "import OSV advisories with 'portside vulndb import PATH' (or --from-registry REPOSITORY:TAG"
    " in air-gapped sites), then scan again"
)


@dataclass(frozen=True)
class Coverage:
    """``database_empty``: no advisories were imported at all. ``missing``: the ecosystems the
    image needs that the database has no advisories for, each with its number of packages."""

    database_empty: bool = False
    missing: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, packages: Iterable[Package], imported: frozenset[str]) -> Coverage:
        """The coverage of ``packages`` by a database holding advisories for ``imported``.
        OS packages on an OS without an OSV ecosystem keep their kind as ecosystem: there is
        nothing to import for them, so they do not count as missing."""
        needed = Counter(p.ecosystem for p in packages if p.ecosystem not in OS_PACKAGE_KINDS)
        missing = {e: n for e, n in sorted(needed.items()) if e not in imported}
        return cls(database_empty=not imported, missing=missing)

    @property
    def complete(self) -> bool:
        return not self.database_empty and not self.missing

    def merge(self, other: Coverage) -> Coverage:
        """The coverage of two images scanned together (an index's platforms)."""
        missing = Counter(self.missing)
        missing.update(other.missing)
        return Coverage(self.database_empty or other.database_empty, dict(sorted(missing.items())))

    @property
    def message(self) -> str:
        """Why the scan is incomplete, and what to do; "" when it is complete."""
        if self.database_empty:
            return (
                "scan incomplete: the vulnerability database is empty (no advisories were "
                f"imported), so no package was checked; {IMPORT_HINT}"
            )
        if self.missing:
            listed = ", ".join(
                f"{ecosystem} ({count} package{'s' if count != 1 else ''})"
                for ecosystem, count in self.missing.items()
            )
            return (
                f"scan incomplete: the vulnerability database has no advisories for {listed}, "
                f"so those packages were not checked; {IMPORT_HINT}"
            )
        return ""

    def to_json(self) -> dict[str, Any]:
        """The ``coverage`` object of a report."""
        return {
            "complete": self.complete,
            "database_empty": self.database_empty,
            "missing_ecosystems": dict(self.missing),
            "message": self.message,
        }
