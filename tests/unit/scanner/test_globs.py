"""Harbor's doublestar patterns as the CVE export filters use them."""

from __future__ import annotations

import time

import pytest

from portside.scanner.globs import MAX_ALTERNATIVES, GlobError, compile_glob


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("", "anything/at/all", True),
        ("python", "python", True),
        ("python", "python2", False),
        ("py*", "python", True),
        ("py*", "py/thon", False),
        ("**", "a/b/c", True),
        ("a/**", "a/b/c", True),
        ("a/**/c", "a/c", True),
        ("a/**/c", "a/b/x/c", True),
        ("a/**/c", "a/bc", False),
        ("**/c", "c", True),
        ("**/c", "x/y/c", True),
        ("{v1,v2}", "v2", True),
        ("{v1,v2}", "v3", False),
        ("{CVE-2019-*,GHSA-{a,b}*}", "GHSA-bxyz", True),
        ("{CVE-2019-*,GHSA-{a,b}*}", "CVE-2020-1", False),
        ("v?", "v1", True),
        ("v?", "v10", False),
        ("[a-c]x", "bx", True),
        ("[!a-c]x", "bx", False),
        ("[^a-c]x", "dx", True),
        ("\\*", "*", True),
        ("\\*", "a", False),
        ("a,b", "a,b", True),
        ("a}", "a}", True),
    ],
)
def test_patterns_match_as_doublestar_does(pattern: str, value: str, expected: bool) -> None:
    assert compile_glob(pattern).matches(value) is expected


@pytest.mark.parametrize("pattern", ["{a,b", "[ab", "[]", "a\\", "[z-a]"])
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(GlobError):
        compile_glob(pattern)


def test_brace_expansion_is_bounded() -> None:
    with pytest.raises(GlobError):
        compile_glob("{a,b}" * 9)  # 512 alternatives
    assert len(compile_glob("{a,b}" * 8).alternatives) == MAX_ALTERNATIVES


def test_hostile_patterns_do_not_backtrack() -> None:
    pattern = compile_glob("*a" * 300 + "b")
    started = time.monotonic()
    assert not pattern.matches("a" * 255)
    assert time.monotonic() - started < 2
