"""Alpine package versions, ordered as apk-tools orders them (the rules of apk-tools 2.14 and 3,
which Alpine 3.19 and later ship).

The grammar is Gentoo's: a first number, more ``.``-numbers, one optional lower-case letter
(``1.2.3a``), suffixes each with an optional number (``_alpha``, ``_beta``, ``_pre``, ``_rc``
sort before the release; ``_cvs``, ``_svn``, ``_git``, ``_hg``, ``_p`` after it) and a package
revision ``-r1``. Numbers compare as numbers, except that a ``.``-number starting with ``0``
compares as text against the other (``1.01 < 1.1``, ``1.010 < 1.09``). Anything else raises
InvalidVersion.

The version is read into tokens (kind, value); two versions compare token by token while the
kinds agree. When they part, a pre-release suffix makes its version older; otherwise the kind
that comes earlier in the grammar makes its version newer (``1.2.0 > 1.2a > 1.2-r1 > 1.2``).
"""

from __future__ import annotations

import re
from typing import Any

from portside.scanner.versions._base import InvalidVersion, OrderedVersion, checked_text

__all__ = ["ApkVersion", "compare", "parse"]

# Token kinds, in grammar order.
_FIRST, _NUMBER, _LETTER, _SUFFIX, _SUFFIX_NUMBER, _REVISION, _END = range(7)
# Suffix ranks; "" (a bare "_") ranks as the release itself.
_SUFFIXES = {
    "alpha": 1,
    "beta": 2,
    "pre": 3,
    "rc": 4,
    "": 5,
    "cvs": 6,
    "svn": 7,
    "git": 8,
    "hg": 9,
    "p": 10,
}
_RELEASE = _SUFFIXES[""]
_DIGITS = re.compile(r"[0-9]*")
_WORD = re.compile(r"[a-z]*")

Token = tuple[int, Any]


def _run_end(run: re.Pattern[str], text: str, pos: int) -> int:
    """Where the run of ``run`` characters starting at ``pos`` ends (it may be empty)."""
    match = run.match(text, pos)
    return match.end() if match else pos


def _next(kind: int, text: str, pos: int) -> tuple[Token, int]:
    """The token at ``pos`` following one of ``kind``, and where the next one starts."""
    char = text[pos]
    if "a" <= char <= "z" and kind <= _NUMBER:
        return (_LETTER, ord(char)), pos + 1
    if char == "." and kind <= _NUMBER:
        end = _run_end(_DIGITS, text, pos + 1)
        return (_NUMBER, text[pos + 1 : end]), end
    if "0" <= char <= "9" and kind == _SUFFIX:
        end = _run_end(_DIGITS, text, pos)
        return (_SUFFIX_NUMBER, int(text[pos:end])), end
    if char == "_" and kind <= _SUFFIX_NUMBER:
        end = _run_end(_WORD, text, pos + 1)
        rank = _SUFFIXES.get(text[pos + 1 : end])
        if rank is not None:
            return (_SUFFIX, rank), end
    if text.startswith("-r", pos) and kind < _REVISION:
        end = _run_end(_DIGITS, text, pos + 2)
        return (_REVISION, int(text[pos + 2 : end] or 0)), end
    raise InvalidVersion(f"unexpected {char!r} at {pos} in {text!r}")


def tokens(text: str) -> list[Token]:
    """The tokens of a version, ending with (_END, None)."""
    end = _run_end(_DIGITS, text, 0)
    if end == 0:
        raise InvalidVersion(f"{text!r} does not start with a number")
    result: list[Token] = [(_FIRST, int(text[:end]))]
    while end < len(text):
        token, end = _next(result[-1][0], text, end)
        result.append(token)
    result.append((_END, None))
    return result


def _token_cmp(kind: int, a: Any, b: Any) -> int:
    if kind == _NUMBER:
        if a.startswith("0") or b.startswith("0"):  # leading zeros: compared as text
            return int((a > b) - (a < b))
        a, b = int(a or 0), int(b or 0)
    return int((a > b) - (a < b))


class ApkVersion(OrderedVersion):
    __slots__ = ("tokens",)

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.tokens = tokens(checked_text(text))

    def _cmp(self, other: Any) -> int:
        for (kind, mine), (other_kind, theirs) in zip(self.tokens, other.tokens, strict=False):
            if kind != other_kind:
                if kind == _SUFFIX and mine < _RELEASE:
                    return -1
                if other_kind == _SUFFIX and theirs < _RELEASE:
                    return 1
                return -1 if kind > other_kind else 1
            if kind == _END:
                return 0
            result = _token_cmp(kind, mine, theirs)
            if result:
                return result
        return 0  # not reached: both lists end with _END


def parse(text: str) -> ApkVersion:
    return ApkVersion(text)


def compare(a: str, b: str) -> int:
    return ApkVersion(a)._cmp(ApkVersion(b))
