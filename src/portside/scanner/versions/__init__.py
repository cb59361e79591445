"""Version ordering for each OSV ecosystem.

:func:`parse` turns a version string into an object that sorts by its ecosystem's rules
(``<``, ``<=``, ``==`` …; never across schemes), :func:`compare` compares two strings. Both raise
:class:`InvalidVersion` for text the ecosystem's rules cannot read, and :class:`UnknownEcosystem`
(an InvalidVersion too) for an ecosystem without a scheme, so a caller that skips what it cannot
compare needs to catch only one exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portside.scanner.versions import apk, dpkg, maven, pep440, rpm, rubygems, semver
from portside.scanner.versions._base import InvalidVersion

__all__ = ["InvalidVersion", "UnknownEcosystem", "compare", "parse", "parser_for", "scheme_name"]

Parser = Callable[[str], Any]

_SCHEMES: dict[str, Parser] = {
    "dpkg": dpkg.parse,
    "apk": apk.parse,
    "rpm": rpm.parse,
    "pep440": pep440.parse,
    "semver": semver.parse,
    "rubygems": rubygems.parse,
    "maven": maven.parse,
}

# OSV ecosystem name (before any ":release" suffix) -> scheme.
_BY_ECOSYSTEM = {
    "Debian": "dpkg",
    "Ubuntu": "dpkg",
    "Alpine": "apk",
    "Rocky Linux": "rpm",
    "AlmaLinux": "rpm",
    "Red Hat": "rpm",
    "openSUSE": "rpm",
    "SUSE": "rpm",
    "PyPI": "pep440",
    "npm": "semver",
    "Go": "semver",
    "crates.io": "semver",
    "RubyGems": "rubygems",
    "Maven": "maven",
}


class UnknownEcosystem(InvalidVersion):
    """No version scheme is known for this ecosystem."""


def scheme_name(ecosystem: str) -> str:
    """``dpkg``, ``apk``, ``rpm``, ``pep440``, ``semver``, ``rubygems`` or ``maven``."""
    base = ecosystem.split(":", 1)[0]
    try:
        return _BY_ECOSYSTEM[base]
    except KeyError:
        raise UnknownEcosystem(f"no version scheme for ecosystem {ecosystem!r}") from None


def parser_for(ecosystem: str) -> Parser:
    return _SCHEMES[scheme_name(ecosystem)]


def parse(ecosystem: str, version: str) -> Any:
    return parser_for(ecosystem)(version)


def compare(ecosystem: str, a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is older than, the same as or newer than ``b``."""
    parse_version = parser_for(ecosystem)
    left, right = parse_version(a), parse_version(b)
    return int((left > right) - (left < right))
