"""RPM package versions (Rocky Linux, AlmaLinux, Red Hat, SUSE, openSUSE), ordered as rpm
orders an ``[epoch:]version[-release]`` label.

The epoch is a number (missing means 0); version and release are compared with rpm's
``rpmvercmp``: the strings are cut into runs of digits and runs of letters, everything else
only separating them. Digit runs compare as numbers and beat letter runs; letter runs compare
as bytes. ``~`` sorts before anything, even the end (``1.0~rc1 < 1.0``); ``^`` sorts after the
end but before anything else (``1.0 < 1.0^git1 < 1.0.1``). A missing release sorts before
any release.
"""

from __future__ import annotations

from typing import Any

from portside.scanner.versions._base import InvalidVersion, OrderedVersion, checked_text

__all__ = ["RpmVersion", "compare", "parse", "rpmvercmp"]


def _is_alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _run(text: str, start: int, digits: bool) -> int:
    end = start
    while end < len(text) and _is_alnum(text[end]) and text[end].isdigit() == digits:
        end += 1
    return end


def rpmvercmp(a: str, b: str) -> int:
    """rpm's comparison of two versions or two releases."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and not _is_alnum(a[i]) and a[i] not in "~^":
            i += 1
        while j < len(b) and not _is_alnum(b[j]) and b[j] not in "~^":
            j += 1
        tilde_a, tilde_b = a.startswith("~", i), b.startswith("~", j)
        if tilde_a or tilde_b:
            if not tilde_a:
                return 1
            if not tilde_b:
                return -1
            i, j = i + 1, j + 1
            continue
        caret_a, caret_b = a.startswith("^", i), b.startswith("^", j)
        if caret_a or caret_b:
            if i >= len(a):
                return -1
            if j >= len(b):
                return 1
            if not caret_a:
                return 1
            if not caret_b:
                return -1
            i, j = i + 1, j + 1
            continue
        if i >= len(a) or j >= len(b):
            break
        numeric = a[i].isdigit()
        end_a, end_b = _run(a, i, numeric), _run(b, j, numeric)
        segment_a, segment_b = a[i:end_a], b[j:end_b]
        if not segment_b:  # a number against letters: the number is newer
            return 1 if numeric else -1
        if numeric:
            segment_a, segment_b = segment_a.lstrip("0"), segment_b.lstrip("0")
            if len(segment_a) != len(segment_b):
                return 1 if len(segment_a) > len(segment_b) else -1
        if segment_a != segment_b:
            return 1 if segment_a > segment_b else -1
        i, j = end_a, end_b
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


class RpmVersion(OrderedVersion):
    __slots__ = ("epoch", "release", "version")

    def __init__(self, text: str) -> None:
        super().__init__(text)
        label = checked_text(text)
        epoch_text, colon, rest = label.partition(":")
        if colon:
            if not epoch_text.isascii() or not epoch_text.isdigit():
                raise InvalidVersion("epoch is not a number")
            self.epoch = int(epoch_text)
        else:
            self.epoch, rest = 0, label
        version, hyphen, release = rest.rpartition("-")
        if not hyphen:
            version, release = rest, ""
        elif not release:
            raise InvalidVersion("empty release after '-'")
        if not version:
            raise InvalidVersion("empty version")
        self.version, self.release = version, release

    def _cmp(self, other: Any) -> int:
        if self.epoch != other.epoch:
            return 1 if self.epoch > other.epoch else -1
        return rpmvercmp(self.version, other.version) or rpmvercmp(self.release, other.release)


def parse(text: str) -> RpmVersion:
    return RpmVersion(text)


def compare(a: str, b: str) -> int:
    return RpmVersion(a)._cmp(RpmVersion(b))
