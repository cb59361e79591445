"""Which characters text may hold: the one definition, for the request boundary and for names.

PostgreSQL (asyncpg) refuses NUL in text outright, and neither database can store a lone UTF-16
surrogate, so a value holding one would fail deep inside a query. Other control characters
have no place in anything a client sends as text either, except the tab and line breaks that
descriptions and comments may hold. :func:`unsafe_text` is that rule; the request boundary
(:mod:`portside.api.input_check`) applies it to every request, so code behind it never sees such
a character. Names that are shown on one line are stricter: :func:`has_control_characters`.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "SAFE_TEXT_PATTERN",
    "UNSAFE_BYTES",
    "UNSAFE_URLENCODED",
    "has_control_characters",
    "unsafe_json",
    "unsafe_text",
]

# Control characters but tab, line feed and carriage return; DEL too.
_CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_UNSAFE = re.compile(f"[{_CONTROLS}\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")

# The same control characters in UTF-8 bytes, and in URL-encoded bytes (query strings, form
# bodies) raw or percent-escaped. UTF-8 cannot encode a surrogate: decoding refuses or replaces it.
UNSAFE_BYTES = re.compile(f"[{_CONTROLS}]".encode())
UNSAFE_URLENCODED = re.compile(f"[{_CONTROLS}]|%(?:0[0-8bcef]|1[0-9a-f]|7f)".encode(), re.I)
# The rule as a JSON Schema pattern, for API documents. It leaves surrogates out: no client can
# send one (UTF-8 cannot encode it), and JSON tools choke on one in a document.
SAFE_TEXT_PATTERN = "^[^" + _CONTROLS.encode("unicode_escape").decode() + "]*$"


def unsafe_text(value: str) -> bool:
    """Whether ``value`` holds a character no text may hold: a NUL or another control character
    but tab, line feed and carriage return, DEL, or a lone surrogate."""
    return _UNSAFE.search(value) is not None


def has_control_characters(value: str) -> bool:
    """Whether ``value`` holds any control character, tab and line breaks included: the rule
    for names and one-line filters."""
    return _CONTROL.search(value) is not None


def unsafe_json(body: bytes) -> bool:
    """Whether a JSON document holds a string (or key) that breaks :func:`unsafe_text`'s rule.

    It is decoded only when it holds an escape (a backslash): a raw control character is invalid
    JSON, so only an escape can make one. A document that is not valid JSON passes: whoever
    parses it refuses it in their own words."""
    if b"\\" not in body:
        return False
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return False
    pending: list[Any] = [document]
    while pending:  # a loop, not recursion: nesting depth is the client's choice
        item = pending.pop()
        if isinstance(item, str):
            if unsafe_text(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False
