"""PyPI versions, ordered by PEP 440 with the ``packaging`` library (what pip uses)."""

from __future__ import annotations

from packaging.version import InvalidVersion as PackagingInvalidVersion
from packaging.version import Version

from portside.scanner.versions._base import InvalidVersion, checked_text

__all__ = ["compare", "parse"]


def parse(text: str) -> Version:
    try:
        return Version(checked_text(text))
    except PackagingInvalidVersion as exc:
        raise InvalidVersion(str(exc)) from None


def compare(a: str, b: str) -> int:
    left, right = parse(a), parse(b)
    return (left > right) - (left < right)
