"""What every version scheme shares: a parsed version that sorts by its scheme's rules."""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_VERSION_LENGTH", "InvalidVersion", "OrderedVersion", "checked_text", "sign"]

# Versions come from image files and advisory feeds: refuse absurd ones before parsing them.
MAX_VERSION_LENGTH = 256


class InvalidVersion(ValueError):
    """The text is not a version of the scheme asked for."""


class OrderedVersion:
    """A parsed version; subclasses define :meth:`_cmp` (negative, zero or positive).

    Versions of different schemes never compare equal and refuse to order."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def _cmp(self, other: Any) -> int:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._cmp(other) == 0

    def __hash__(self) -> int:
        # Equal versions may differ in text ("1.0" and "1.00"), so no hash agrees with __eq__
        # cheaply for every scheme; they are never dictionary keys.
        raise TypeError(f"{type(self).__name__} is not hashable")

    def __lt__(self, other: Any) -> bool:
        return self._cmp(self._check(other)) < 0

    def __le__(self, other: Any) -> bool:
        return self._cmp(self._check(other)) <= 0

    def __gt__(self, other: Any) -> bool:
        return self._cmp(self._check(other)) > 0

    def __ge__(self, other: Any) -> bool:
        return self._cmp(self._check(other)) >= 0

    def _check(self, other: Any) -> Any:
        if type(other) is not type(self):
            raise TypeError(f"cannot order {type(self).__name__} and {type(other).__name__}")
        return other

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"


def checked_text(text: str) -> str:
    """``text`` stripped of surrounding blanks; InvalidVersion when empty or absurdly long."""
    if not isinstance(text, str):
        raise InvalidVersion(f"not a string: {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise InvalidVersion("empty version")
    if len(stripped) > MAX_VERSION_LENGTH:
        raise InvalidVersion("version too long")
    return stripped


def sign(value: int) -> int:
    return (value > 0) - (value < 0)
