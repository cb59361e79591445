"""Maven versions, ordered as Maven's ``ComparableVersion`` (3.8) orders them.

A version is read into nested lists: ``.`` separates items of one list; ``-`` and every switch
between digits and letters start a sub-list, and so does a word after a dot that is followed
by digits or ends the version (``2.0.a`` = ``2-a``).

Numbers compare as numbers. Words are qualifiers, in this order:
``alpha < beta < milestone < rc = cr < snapshot < "" = ga = final = release < sp``;
unknown words come after all of them, alphabetically. ``a1``, ``b1`` and ``m1`` are short for
``alpha-1``, ``beta-1`` and ``milestone-1``. Trailing "null" items (0, the release qualifier,
empty lists) are dropped, so ``1 = 1.0 = 1-ga``. Any non-empty text is a version.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from portside.scanner.versions._base import OrderedVersion, checked_text

__all__ = ["MavenVersion", "compare", "parse"]

_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
_SHORT = {"a": "alpha", "b": "beta", "m": "milestone"}
_RELEASE = str(_QUALIFIERS.index(""))


class _Word:
    """A qualifier, kept as the string it sorts by."""

    __slots__ = ("rank",)

    def __init__(self, word: str, followed_by_digit: bool) -> None:
        if followed_by_digit and word in _SHORT:
            word = _SHORT[word]
        word = _ALIASES.get(word, word)
        # Known qualifiers sort by their position; unknown ones after all of them, by name.
        self.rank = (
            str(_QUALIFIERS.index(word)) if word in _QUALIFIERS else f"{len(_QUALIFIERS)}-{word}"
        )


Item: TypeAlias = int | _Word | list["Item"]


def _is_null(item: Item) -> bool:
    if isinstance(item, int):
        return item == 0
    if isinstance(item, _Word):
        return item.rank == _RELEASE
    return not item


def _normalize(items: list[Item]) -> None:
    """Drop trailing null items, looking past (already normalised) sub-lists."""
    for index in range(len(items) - 1, -1, -1):
        if _is_null(items[index]):
            del items[index]
        elif not isinstance(items[index], list):
            break


def _text_cmp(a: str, b: str) -> int:
    return (a > b) - (a < b)


def _cmp(item: Item, other: Item | None) -> int:
    """ComparableVersion's Item.compareTo; ``None`` stands for a missing item."""
    if isinstance(item, int):
        if other is None:
            return 0 if item == 0 else 1
        if isinstance(other, int):
            return (item > other) - (item < other)
        return 1  # a number beats a word or a sub-list
    if isinstance(item, _Word):
        if other is None:
            return _text_cmp(item.rank, _RELEASE)
        if isinstance(other, _Word):
            return _text_cmp(item.rank, other.rank)
        return -1
    if other is None:
        for child in item:
            result = _cmp(child, None)
            if result:
                return result
        return 0
    if isinstance(other, int):
        return -1
    if isinstance(other, _Word):
        return 1
    for index in range(max(len(item), len(other))):
        left = item[index] if index < len(item) else None
        right = other[index] if index < len(other) else None
        if left is not None:
            result = _cmp(left, right)
        else:  # the shorter list goes on as missing items
            result = 0 if right is None else -_cmp(right, None)
        if result:
            return result
    return 0


def _token(text: str, is_digit: bool) -> Item:
    return int(text) if is_digit else _Word(text, followed_by_digit=False)


def parse_items(version: str) -> list[Item]:
    version = version.lower()
    root: list[Item] = []
    current = root
    opened = [root]
    is_digit = False
    start = 0

    def open_list() -> None:
        nonlocal current
        child: list[Item] = []
        current.append(child)
        current = child
        opened.append(child)

    for index, char in enumerate(version):
        digit = "0" <= char <= "9"
        if char in ".-":
            current.append(0 if index == start else _token(version[start:index], is_digit))
            start = index + 1
            if char == "-":
                open_list()
        elif digit and not is_digit and index > start:
            if current:  # a word after a dot is taken as after a hyphen: 1.0.x1 = 1.0-x1
                open_list()
            current.append(_Word(version[start:index], followed_by_digit=True))
            start = index
            open_list()
        elif not digit and is_digit and index > start:
            current.append(int(version[start:index]))
            start = index
            open_list()
        if char not in ".-":
            is_digit = digit
    if len(version) > start:
        if not is_digit and current:  # the same for a final word: 2.0.a = 2.0-a
            open_list()
        current.append(_token(version[start:], is_digit))
    for items in reversed(opened):
        _normalize(items)
    return root


class MavenVersion(OrderedVersion):
    __slots__ = ("items",)

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.items = parse_items(checked_text(text))

    def _cmp(self, other: Any) -> int:
        return _cmp(self.items, other.items)


def parse(text: str) -> MavenVersion:
    return MavenVersion(text)


def compare(a: str, b: str) -> int:
    return MavenVersion(a)._cmp(MavenVersion(b))
