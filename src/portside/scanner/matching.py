"""Whether an installed package version is affected by an advisory, following the OSV
evaluation algorithm (https://ossf.github.io/osv-schema/#evaluation):

- a version listed verbatim in ``versions`` is affected;
- within each range, events are sorted by version (``introduced: "0"`` first) and walked:
  ``introduced`` at or below the version turns "affected" on, ``fixed`` at or below it and
  ``last_affected`` below it turn it off; a range with ``limit`` events only covers versions
  below one of them (``*`` is infinity);
- an advisory applies when any of its entries for the package does.

Versions are compared with the ecosystem's own rules (:mod:`portside.scanner.versions`). An
installed version those rules cannot read is affected only when listed verbatim; an event
version they cannot read is ignored. Nothing here raises on bad data.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

import structlog

from portside.scanner.model import Advisory, AffectedPackage, Finding, Package
from portside.scanner.versions import InvalidVersion, scheme_name
from portside.scanner.versions import parse as parse_version

__all__ = ["affected", "match", "normalize_name"]

log = structlog.get_logger(__name__)

_PEP503_SEPARATORS = re.compile(r"[-_.]+")


def normalize_name(ecosystem: str, name: str) -> str:
    """The name advisories are looked up by. PyPI names are normalised as PEP 503 says (OSV
    records carry them normalised or not); every other ecosystem's names are compared as
    written, since npm, Go, Maven, RubyGems and the distributions treat case as significant
    or only ever use lower case."""
    if ecosystem == "PyPI":
        return _PEP503_SEPARATORS.sub("-", name).lower()
    return name


@functools.lru_cache(maxsize=65536)
def _parsed(scheme: str, ecosystem: str, text: str) -> Any:
    """Parsed once per (scheme, text): advisories repeat the same bounds for every scan.
    ``scheme`` is in the key so ecosystems sharing a scheme share entries."""
    return parse_version(ecosystem, text)


def _parse(ecosystem: str, text: str) -> Any | None:
    try:
        return _parsed(scheme_name(ecosystem), ecosystem, text)
    except InvalidVersion:
        return None


def _by_version(a: tuple[str, Any], b: tuple[str, Any]) -> int:
    """Orders (label, parsed version) pairs by version."""
    return int((a[1] > b[1]) - (a[1] < b[1]))


def _sorted_events(ecosystem: str, events: Iterable[tuple[str, str]]) -> list[tuple[str, Any]]:
    """(kind, parsed version) sorted by version; ``introduced: "0"`` is None and first.
    ``limit`` events are left out (see :func:`_below_limits`), unreadable ones dropped."""
    lowest: list[tuple[str, Any]] = []
    ordered: list[tuple[str, Any]] = []
    for kind, text in events:
        if kind == "limit":
            continue
        if kind == "introduced" and text == "0":
            lowest.append((kind, None))
            continue
        version = _parse(ecosystem, text)
        if version is None:
            log.debug("unreadable event version", ecosystem=ecosystem, version=text)
            continue
        ordered.append((kind, version))
    ordered.sort(key=functools.cmp_to_key(_by_version))
    return lowest + ordered


def _below_limits(ecosystem: str, version: Any, events: Iterable[tuple[str, str]]) -> bool:
    limits = [text for kind, text in events if kind == "limit"]
    if not limits:
        return True
    for text in limits:
        if "*" in text:
            return True
        limit = _parse(ecosystem, text)
        if limit is not None and version < limit:
            return True
    return False


def _in_range(ecosystem: str, version: Any, events: tuple[tuple[str, str], ...]) -> bool:
    if not _below_limits(ecosystem, version, events):
        return False
    vulnerable = False
    for kind, bound in _sorted_events(ecosystem, events):
        if kind == "introduced":
            if bound is None or version >= bound:
                vulnerable = True
        elif kind == "fixed":
            if version >= bound:
                vulnerable = False
        elif kind == "last_affected" and version > bound:
            vulnerable = False
    return vulnerable


def _lowest_fix(
    ecosystem: str, version: Any, ranges: Iterable[tuple[tuple[str, str], ...]]
) -> tuple[Any, str] | None:
    """(parsed, text) of the lowest ``fixed`` above ``version`` in these ranges."""
    best: tuple[Any, str] | None = None
    for events in ranges:
        for kind, text in events:
            if kind != "fixed":
                continue
            fixed = _parse(ecosystem, text)
            if fixed is not None and fixed > version and (best is None or fixed < best[0]):
                best = (fixed, text)
    return best


def affected(pkg_version: str, entry: AffectedPackage) -> tuple[bool, str]:
    """Is ``pkg_version`` affected by this entry, and the lowest ``fixed`` version above it
    in the ranges that include it ("" when there is none, e.g. ``last_affected`` ranges).

    When the version is only listed in ``versions`` (its range could not tell), the fix is
    looked for in all of the entry's ranges."""
    listed = pkg_version in entry.versions
    version = _parse(entry.ecosystem, pkg_version)
    if version is None:
        return listed, ""
    matching = [events for events in entry.ranges if _in_range(entry.ecosystem, version, events)]
    if not matching and not listed:
        return False, ""
    fix = _lowest_fix(entry.ecosystem, version, matching or entry.ranges)
    return True, fix[1] if fix else ""


def advisory_ecosystem(ecosystem: str) -> str:
    """The ecosystem an advisory entry applies to, as images name it. Red Hat's OSV records
    add a CPE stream after ``::`` (``Red Hat:enterprise_linux:9::appstream``) that an image
    does not tell: the release before it is what we match on."""
    if ecosystem.startswith("Red Hat:"):
        return ecosystem.partition("::")[0]
    return ecosystem


def match(package: Package, ecosystem: str, advisories: Iterable[Advisory]) -> list[Finding]:
    """The findings of ``package`` (matched by source name and version when it has them) in
    ``ecosystem`` among ``advisories``: one per advisory that is not withdrawn and has an
    entry for the package that includes its version. The fix is the lowest over the entries
    that apply."""
    name = normalize_name(ecosystem, package.match_name)
    findings = []
    for advisory in advisories:
        if advisory.withdrawn:
            continue
        hit, fixes = False, []
        for entry in advisory.affected:
            if (
                advisory_ecosystem(entry.ecosystem) != ecosystem
                or normalize_name(ecosystem, entry.name) != name
            ):
                continue
            entry_hit, fix = affected(package.match_version, entry)
            if entry_hit:
                hit = True
                if fix:
                    fixes.append(fix)
        if hit:
            findings.append(Finding(advisory, package, _lowest(ecosystem, fixes)))
    return findings


def _lowest(ecosystem: str, versions: list[str]) -> str:
    if len(versions) <= 1:
        return versions[0] if versions else ""
    parsed = [(v, p) for v in versions if (p := _parse(ecosystem, v)) is not None]
    return min(parsed, key=functools.cmp_to_key(_by_version))[0]
