"""How the OpenAPI document states rules that handlers enforce themselves.

Some request fields are checked by a handler (or the code behind it) rather than by pydantic,
because the refusal then says the rule in Harbor's words (the password policy, say). The
document must still state the rule, or a client (and schemathesis) reads a value the server
refuses as valid. Each helper here builds the field's schema from the constants the check itself
uses, so the two cannot drift apart. pydantic enforces only the length limits it enforced
before (``Field(max_length=...)``); the rest the check enforces, in its own words.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from portside.auth.accounts import (
    _EMAIL,
    ILLEGAL_USERNAME_CHARS,
    MAX_COMMENT_LENGTH,
    MAX_NAME_LENGTH,
)
from portside.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, PASSWORD_POLICY

__all__ = [
    "CRON_PATTERN",
    "CUSTOM_NEEDS_CRON",
    "PASSWORD_RULES",
    "comment",
    "cron",
    "email",
    "matching",
    "not_blank",
    "password",
    "printable_name",
    "realname",
    "url",
    "username",
]


# Harbor's policy (:func:`portside.auth.passwords.password_problem`); robot secrets follow it too.
PASSWORD_RULES: dict[str, Any] = {
    "description": PASSWORD_POLICY[0].upper() + PASSWORD_POLICY[1:] + ".",
    "minLength": MIN_PASSWORD_LENGTH,
    "maxLength": MAX_PASSWORD_LENGTH,
    "allOf": [{"pattern": "[A-Z]"}, {"pattern": "[a-z]"}, {"pattern": "[0-9]"}],
}


def password() -> Any:
    return Field(..., json_schema_extra=PASSWORD_RULES)


_NAME_ILLEGAL = re.escape(ILLEGAL_USERNAME_CHARS).replace("/", "\\/") + r"\x00-\x1f\x7f"


def username() -> Any:
    """:func:`portside.auth.accounts.username_problem`: no control characters, none of
    ``,"~#%$:``, no white space around (the robot prefix is refused too)."""
    inner = f"[^{_NAME_ILLEGAL}:]"
    edge = f"[^\\s{_NAME_ILLEGAL}:]"
    return Field(
        ...,
        json_schema_extra={
            "minLength": 1,
            "maxLength": MAX_NAME_LENGTH,
            "pattern": f"^{edge}(?:{inner}*{edge})?$",
        },
    )


def email(required: bool = False) -> Any:
    schema: dict[str, Any] = {
        "minLength": 1,
        "maxLength": MAX_NAME_LENGTH,
        "pattern": f"^{_EMAIL.pattern}$",
    }
    return Field(... if required else None, json_schema_extra=schema)


def realname() -> Any:
    schema: dict[str, Any] = {
        "minLength": 1,
        "maxLength": MAX_NAME_LENGTH,
        "pattern": f"^[^{_NAME_ILLEGAL}]*$",
    }
    return Field(None, json_schema_extra=schema)


def comment() -> Any:
    return Field(None, json_schema_extra={"maxLength": MAX_COMMENT_LENGTH})


def _cron_field(value: str) -> str:
    item = f"(?:\\*|{value}(?:-{value})?)(?:/[1-9][0-9]?)?"
    return f"{item}(?:,{item})*"


# Six fields, seconds first, as :func:`portside.scanner.scan_all.cron_problem` (croniter) takes
# them: numbers within each field's range, ``*``, ranges, lists and steps; ``?`` for either day.
_SECONDS = _cron_field("[0-5]?[0-9]")
_CRON = " ".join(
    [
        _SECONDS,
        _SECONDS,
        _cron_field("(?:[01]?[0-9]|2[0-3])"),
        f"(?:\\?|{_cron_field('(?:[1-9]|[12][0-9]|3[01])')})",
        _cron_field("(?:[1-9]|1[0-2])"),
        f"(?:\\?|{_cron_field('[0-6]')})",
    ]
)
CRON_PATTERN = f"^(?:{_CRON})?$"


def cron() -> Any:
    """A cron expression, or empty (for the schedule types that need none)."""
    return Field("", max_length=128, json_schema_extra={"pattern": CRON_PATTERN})


# A Custom schedule needs its cron expression.
CUSTOM_NEEDS_CRON: dict[str, Any] = {
    "if": {"properties": {"type": {"const": "Custom"}}, "required": ["type"]},
    "then": {"properties": {"cron": {"minLength": 1}}, "required": ["cron"]},
}


def url() -> Any:
    """An http(s) URL with a host and without white space, as the scanner registration checks
    it (and as the adapter must be reached)."""
    pattern = r"^https?://[^\s/?#@\x00-\x1f\x7f]+(?:[/?#][^\s\x00-\x1f\x7f]*)?$"
    return Field(..., min_length=1, max_length=1024, json_schema_extra={"pattern": pattern})


# Printable (str.isprintable: no control, format, separator but the space, or unassigned
# character), with no space at either end. The document names a safe part of that set, since
# validators of OpenAPI documents do not read Unicode property classes: printable ASCII, Latin
# letters and the CJK ideographs.
_PRINTABLE = "[!-~\u00a1-\u00ac\u00ae-\u024f\u4e00-\u9fa5]"
PRINTABLE_NAME = f"^{_PRINTABLE}(?:(?:{_PRINTABLE}| )*{_PRINTABLE})?$"


def printable_name(max_length: int) -> Any:
    return Field(
        ..., json_schema_extra={"minLength": 1, "maxLength": max_length, "pattern": PRINTABLE_NAME}
    )


def not_blank(max_length: int) -> Any:
    """No control character (tab and line breaks included), and not only white space."""
    schema: dict[str, Any] = {
        "minLength": 1,
        "maxLength": max_length,
        "pattern": r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
    }
    return Field(..., json_schema_extra=schema)


def matching(pattern: re.Pattern[str], max_length: int) -> Any:
    """A value ``pattern`` matches whole."""
    whole = f"^(?:{pattern.pattern})$"
    return Field(..., max_length=max_length, json_schema_extra={"pattern": whole})
