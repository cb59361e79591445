"""The one rule for text (``portside.text``), in each form text arrives in."""

from __future__ import annotations

import pytest

from portside.text import (
    UNSAFE_BYTES,
    UNSAFE_URLENCODED,
    has_control_characters,
    unsafe_json,
    unsafe_text,
)


@pytest.mark.parametrize(
    "value", ["a\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1f", "\x7f", "\ud800"]
)
def test_unsafe_text(value: str) -> None:
    assert unsafe_text(value)
    assert has_control_characters(value) or value in ("\ud800", "\udfff")


@pytest.mark.parametrize("value", ["", "plain", "tab\tline\nreturn\r", "é 😀 \u2028", "\x80\x9f"])
def test_safe_text(value: str) -> None:
    assert not unsafe_text(value)


def test_one_line_names_refuse_tab_and_line_breaks_too() -> None:
    assert all(has_control_characters(c) for c in "\t\n\r")
    assert not has_control_characters("a name, with é")


@pytest.mark.parametrize("raw", [b"q=%00", b"q=a%1B", b"q=%7f", b"q=%0B", b"q=\x00", b"a+%08"])
def test_unsafe_urlencoded(raw: bytes) -> None:
    assert UNSAFE_URLENCODED.search(raw)


@pytest.mark.parametrize("raw", [b"", b"q=name%3D~a", b"q=%09%0A%0d%20", b"%c0%80", b"%2500"])
def test_safe_urlencoded(raw: bytes) -> None:
    assert not UNSAFE_URLENCODED.search(raw)


def test_unsafe_bytes() -> None:
    assert UNSAFE_BYTES.search(b"user\x00:pw") and not UNSAFE_BYTES.search("é:\t".encode())


@pytest.mark.parametrize(
    "body",
    [
        rb'{"a": "\u0000"}',
        rb'{"a": ["x", {"b": "\b"}]}',
        rb'{"\u001f": 1}',
        rb'{"a": "\ud800"}',
        rb'{"a": "\udc00\ud800"}',
        rb'{"a": "\\\u0000"}',  # an escaped backslash, then a NUL
    ],
)
def test_unsafe_json(body: bytes) -> None:
    assert unsafe_json(body)


@pytest.mark.parametrize(
    "body",
    [
        rb'{"a": "\\u0000"}',  # the six characters \u0000
        rb'{"a": "\t\n\r \ud83d\ude00 \"q\""}',
        b'{"a": "no escapes at all"}',
        b"not json \\u0000",  # left to the parser to refuse
        b"[" * 100_000 + b"\\",  # deeper than json.loads recurses: left to the parser too
    ],
)
def test_safe_json(body: bytes) -> None:
    assert not unsafe_json(body)
