"""Debian and Ubuntu package versions, ordered exactly as ``dpkg --compare-versions`` orders them.

A version is ``[epoch:]upstream[-revision]`` (Debian Policy 5.6.12). The epoch is compared as
a number; upstream and revision with dpkg's ``verrevcmp``: alternating runs of non-digits,
compared character by character with ``~`` before everything (even the end of the string) and
letters before other characters, and runs of digits, compared as numbers.

Like dpkg, only the errors of its parser are refused (empty parts, embedded blanks, a bad
epoch); what dpkg merely warns about (a first character that is not a digit, unusual
characters) is compared as dpkg compares it. Comparison is on the UTF-8 bytes, as dpkg's.
"""

from __future__ import annotations

from typing import Any

from portside.scanner.versions._base import InvalidVersion, OrderedVersion, checked_text, sign

__all__ = ["DpkgVersion", "compare", "parse"]

_INT_MAX = 2**31 - 1
_DIGITS = frozenset(b"0123456789")
_LETTERS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _order(byte: int) -> int:
    """dpkg's weight of one character inside a non-digit run (0 stands for "no character")."""
    if byte in _LETTERS:
        return byte
    if byte == 0x7E:  # "~"
        return -1
    return byte + 256


def verrevcmp(a: bytes, b: bytes) -> int:
    """dpkg's comparison of two upstream versions or two revisions."""
    i = j = 0
    len_a, len_b = len(a), len(b)
    while i < len_a or j < len_b:
        first_diff = 0
        while (i < len_a and a[i] not in _DIGITS) or (j < len_b and b[j] not in _DIGITS):
            ac = _order(a[i]) if i < len_a and a[i] not in _DIGITS else 0
            bc = _order(b[j]) if j < len_b and b[j] not in _DIGITS else 0
            if ac != bc:
                return sign(ac - bc)
            i += 1
            j += 1
        while i < len_a and a[i] == 0x30:
            i += 1
        while j < len_b and b[j] == 0x30:
            j += 1
        while i < len_a and j < len_b and a[i] in _DIGITS and b[j] in _DIGITS:
            if not first_diff:
                first_diff = a[i] - b[j]
            i += 1
            j += 1
        if i < len_a and a[i] in _DIGITS:
            return 1
        if j < len_b and b[j] in _DIGITS:
            return -1
        if first_diff:
            return sign(first_diff)
    return 0


class DpkgVersion(OrderedVersion):
    __slots__ = ("epoch", "revision", "upstream")

    def __init__(self, text: str) -> None:
        super().__init__(text)
        version = checked_text(text)
        if any(c.isspace() for c in version):
            raise InvalidVersion("version has embedded spaces")
        epoch_text, colon, rest = version.partition(":")
        if colon:
            if not epoch_text.isascii() or not epoch_text.isdigit():
                raise InvalidVersion("epoch is not a number")
            if int(epoch_text) > _INT_MAX:
                raise InvalidVersion("epoch is too big")
            if not rest:
                raise InvalidVersion("nothing after the colon")
            self.epoch = int(epoch_text)
        else:
            self.epoch, rest = 0, version
        upstream, hyphen, revision = rest.rpartition("-")
        if not hyphen:
            upstream, revision = rest, ""
        elif not revision:
            raise InvalidVersion("revision is empty")
        elif not upstream:
            raise InvalidVersion("upstream version is empty")
        self.upstream = upstream.encode()
        self.revision = revision.encode()

    def _cmp(self, other: Any) -> int:
        if self.epoch != other.epoch:
            return 1 if self.epoch > other.epoch else -1
        return verrevcmp(self.upstream, other.upstream) or verrevcmp(self.revision, other.revision)


def parse(text: str) -> DpkgVersion:
    return DpkgVersion(text)


def compare(a: str, b: str) -> int:
    return DpkgVersion(a)._cmp(DpkgVersion(b))
