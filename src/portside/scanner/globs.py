"""The glob patterns of Harbor's CVE export filters (repositories, tags, CVE ids).

Harbor matches them with ``bmatcuk/doublestar`` (src/lib/selector/selectors/doublestar and
src/pkg/scan/export/export_data_selector.go). What is supported here, with ``/`` as separator:

- ``*`` any characters but ``/``; ``?`` one character but ``/``;
- ``**`` any characters, ``/`` included; ``**/`` as a whole path segment also matches no
  segment at all (``a/**/b`` matches ``a/b``);
- ``[abc]``, ``[a-z]``, ``[^a]`` or ``[!a]`` one character of (or not of) a class;
- ``{a,b}`` either alternative (nestable); ``\\x`` the character ``x`` itself.

Patterns come from API callers, so matching never backtracks: braces are expanded (at most
:data:`MAX_ALTERNATIVES`) and each alternative runs as a set of states over the value, in
time proportional to pattern length times value length. An empty pattern matches everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

__all__ = ["MAX_ALTERNATIVES", "MAX_PATTERN", "Glob", "GlobError", "compile_glob"]

MAX_PATTERN = 1024
MAX_ALTERNATIVES = 256

# Token kinds: a literal character, one character, a character class, a run within one
# segment, a run across segments.
_LIT, _ONE, _CLASS, _STAR, _ANY = range(5)

# (kind, literal character) or (_CLASS, (negated, ((low, high), ...)))
_Token = tuple[int, object]
_Sequence = tuple[_Token, ...]


class GlobError(ValueError):
    """The pattern is malformed (an unclosed ``[`` or ``{``) or too large."""


@dataclass(frozen=True)
class Glob:
    pattern: str
    alternatives: tuple[_Sequence, ...]

    def matches(self, value: str) -> bool:
        if not self.pattern:
            return True
        return any(_run(tokens, value) for tokens in self.alternatives)


def compile_glob(pattern: str) -> Glob:
    """Parse ``pattern``; raises :class:`GlobError` when it is malformed."""
    if len(pattern) > MAX_PATTERN:
        raise GlobError(f"a pattern may have at most {MAX_PATTERN} characters")
    alternatives, _ = _sequence(pattern, 0, in_brace=False)
    return Glob(pattern, tuple(tuple(a) for a in alternatives))


def _product(left: list[list[_Token]], right: list[list[_Token]]) -> list[list[_Token]]:
    if len(left) * len(right) > MAX_ALTERNATIVES:
        raise GlobError(f"a pattern may expand to at most {MAX_ALTERNATIVES} alternatives")
    return [a + b for a in left for b in right]


def _sequence(pattern: str, i: int, *, in_brace: bool) -> tuple[list[list[_Token]], int]:
    """Parse from ``i`` to the end (or, inside braces, to the next ``,`` or ``}``)."""
    result: list[list[_Token]] = [[]]
    while i < len(pattern):
        char = pattern[i]
        if in_brace and char in ",}":
            return result, i
        if char == "{":
            options: list[list[_Token]] = []
            i += 1
            while True:
                inner, i = _sequence(pattern, i, in_brace=True)
                options.extend(inner)
                if i >= len(pattern):
                    raise GlobError("unclosed '{' in pattern")
                i += 1
                if pattern[i - 1] == "}":
                    break
            result = _product(result, options)
            continue
        if char == "*":
            start = i
            while i < len(pattern) and pattern[i] == "*":
                i += 1
            if i - start == 1:
                result = _product(result, [[(_STAR, None)]])
                continue
            whole_segment = (start == 0 or pattern[start - 1] in "/{,") and pattern[
                i : i + 1
            ] == "/"
            if whole_segment:  # "**/": any number of segments, none included
                i += 1
                result = _product(result, [[], [(_ANY, None), (_LIT, "/")]])
            else:
                result = _product(result, [[(_ANY, None)]])
            continue
        if char == "?":
            token: _Token = (_ONE, None)
            i += 1
        elif char == "[":
            token, i = _class(pattern, i + 1)
        elif char == "\\":
            if i + 1 >= len(pattern):
                raise GlobError("a pattern may not end with '\\'")
            token = (_LIT, pattern[i + 1])
            i += 2
        else:
            token = (_LIT, char)
            i += 1
        for alternative in result:
            alternative.append(token)
    return result, i


def _class(pattern: str, i: int) -> tuple[_Token, int]:
    negated = i < len(pattern) and pattern[i] in "^!"
    i += negated
    ranges: list[tuple[str, str]] = []
    while i < len(pattern) and pattern[i] != "]":
        low = pattern[i]
        if low == "\\" and i + 1 < len(pattern):
            i += 1
            low = pattern[i]
        i += 1
        high = low
        if i + 1 < len(pattern) and pattern[i] == "-" and pattern[i + 1] != "]":
            high = pattern[i + 1]
            i += 2
        if high < low:
            raise GlobError(f"bad range {low}-{high} in pattern")
        ranges.append((low, high))
    if i >= len(pattern) or not ranges:
        raise GlobError("unclosed or empty '[' in pattern")
    return (_CLASS, (negated, tuple(ranges))), i + 1


def _closure(states: set[int], tokens: _Sequence) -> set[int]:
    """Add the states reachable without consuming: past runs, which may be empty."""
    pending = list(states)
    while pending:
        state = pending.pop()
        if state < len(tokens) and tokens[state][0] in (_STAR, _ANY) and state + 1 not in states:
            states.add(state + 1)
            pending.append(state + 1)
    return states


def _accepts(token: _Token, char: str) -> bool:
    kind, argument = token
    if kind == _LIT:
        return char == argument
    if char == "/":
        return False
    if kind == _ONE:
        return True
    negated, ranges = cast(tuple[bool, tuple[tuple[str, str], ...]], argument)
    inside = any(low <= char <= high for low, high in ranges)
    return inside != negated


def _run(tokens: _Sequence, value: str) -> bool:
    states = _closure({0}, tokens)
    for char in value:
        following: set[int] = set()
        for state in states:
            if state == len(tokens):
                continue
            kind = tokens[state][0]
            if kind == _ANY or (kind == _STAR and char != "/"):
                following.add(state)
            elif kind not in (_ANY, _STAR) and _accepts(tokens[state], char):
                following.add(state + 1)
        if not following:
            return False
        states = _closure(following, tokens)
    return len(tokens) in states
