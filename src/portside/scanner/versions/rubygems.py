"""RubyGems versions, ordered as ``Gem::Version#<=>`` orders them.

A version is dot-separated segments of digits and letters (``1.2.0.rc1``); a ``-`` stands for
``.pre.``. Each run of digits is a number and each run of letters a string; trailing zero
numbers are dropped before the first string and at the end (``1.0 == 1``), and a string sorts
before a number, so ``1.0.a < 1.0`` (a pre-release).
"""

from __future__ import annotations

import re
from typing import Any

from portside.scanner.versions._base import InvalidVersion, OrderedVersion, checked_text

__all__ = ["GemVersion", "compare", "parse"]

# Gem::Version::ANCHORED_VERSION_PATTERN
_VERSION = re.compile(r"[0-9]+(?:\.[0-9a-zA-Z]+)*(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?")
_SEGMENT = re.compile(r"[0-9]+|[a-z]+", re.IGNORECASE)

Segment = int | str


def _drop_trailing_zeros(segments: list[Segment]) -> list[Segment]:
    while segments and segments[-1] == 0:
        segments.pop()
    return segments


def canonical_segments(version: str) -> list[Segment]:
    segments: list[Segment] = [
        int(part) if part.isdigit() else part for part in _SEGMENT.findall(version)
    ]
    first_string = next((i for i, s in enumerate(segments) if isinstance(s, str)), len(segments))
    return _drop_trailing_zeros(segments[:first_string]) + _drop_trailing_zeros(
        segments[first_string:]
    )


class GemVersion(OrderedVersion):
    __slots__ = ("segments",)

    def __init__(self, text: str) -> None:
        super().__init__(text)
        version = checked_text(text)
        if not _VERSION.fullmatch(version):
            raise InvalidVersion(f"not a gem version: {text!r}")
        self.segments = canonical_segments(version.replace("-", ".pre."))

    def _cmp(self, other: Any) -> int:
        mine, theirs = self.segments, other.segments
        for index in range(max(len(mine), len(theirs))):
            left = mine[index] if index < len(mine) else 0
            right = theirs[index] if index < len(theirs) else 0
            if left == right:
                continue
            if isinstance(left, str) and isinstance(right, int):
                return -1
            if isinstance(left, int) and isinstance(right, str):
                return 1
            return -1 if left < right else 1  # type: ignore[operator]
        return 0


def parse(text: str) -> GemVersion:
    return GemVersion(text)


def compare(a: str, b: str) -> int:
    return GemVersion(a)._cmp(GemVersion(b))
