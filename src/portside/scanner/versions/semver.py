"""Semantic versions (SemVer 2.0 precedence, section 11) for npm, Go and crates.io.

Tolerated beyond strict SemVer, since real package metadata has them: a leading ``v`` (Go
always writes one) or ``=`` (npm's loose form), and a missing minor or patch number (taken as
0). Build metadata after ``+`` is ignored, which is also what makes Go's ``+incompatible``
versions compare by their numbers. Go pseudo-versions (``v0.0.0-20191109021931-daa7c04131f5``)
are pre-releases and so sort below the release they precede, as Go sorts them.
"""

from __future__ import annotations

import re
from typing import Any

from portside.scanner.versions._base import InvalidVersion, OrderedVersion, checked_text

__all__ = ["SemVer", "compare", "parse"]

_IDENTIFIERS = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_SEMVER = re.compile(
    rf"(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-({_IDENTIFIERS}))?(?:\+({_IDENTIFIERS}))?", re.ASCII
)


def _identifier_key(identifier: str) -> tuple[int, int, str]:
    # Numeric identifiers compare as numbers and below alphanumeric ones, which compare as ASCII.
    if identifier.isdigit():
        return (0, int(identifier), "")
    return (1, 0, identifier)


class SemVer(OrderedVersion):
    __slots__ = ("key",)

    def __init__(self, text: str) -> None:
        super().__init__(text)
        version = checked_text(text)
        if version[0] in "vV=":
            version = version[1:]
        match = _SEMVER.fullmatch(version)
        if match is None:
            raise InvalidVersion(f"not a semantic version: {text!r}")
        major, minor, patch, prerelease, _build = match.groups()
        # A release sorts after all of its pre-releases: (1,) beats (0, ...).
        release_key: tuple[Any, ...] = (
            (0, *(_identifier_key(part) for part in prerelease.split("."))) if prerelease else (1,)
        )
        self.key = (int(major), int(minor or 0), int(patch or 0), release_key)

    def _cmp(self, other: Any) -> int:
        return int((self.key > other.key) - (self.key < other.key))


def parse(text: str) -> SemVer:
    return SemVer(text)


def compare(a: str, b: str) -> int:
    return SemVer(a)._cmp(SemVer(b))
