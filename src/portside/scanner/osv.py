"""Reading OSV records (https://ossf.github.io/osv-schema/) into :class:`Advisory` values.

Records come from feeds we do not control, so every field is checked for its type and
capped in size; a record without a usable ``id`` raises :class:`InvalidRecord`, while a bad
field inside an otherwise usable record is dropped and the rest kept.

Severity, the first that applies:

1. a ``CVSS_V3`` vector (else ``CVSS_V4``) from the record's ``severity`` or an affected
   package's, scored with the ``cvss`` library and named as Harbor names scores
   (0 None, below 4 Low, below 7 Medium, below 9 High, else Critical);
2. a severity word from ``database_specific.severity``, an affected package's
   ``ecosystem_specific.severity`` or ``database_specific.severity`` (GitHub's ``MODERATE`` is
   Medium), or Debian's ``urgency``;
3. ``Unknown``.

Only ``ECOSYSTEM`` and ``SEMVER`` ranges are kept: ``GIT`` ranges name commits, which an
installed package does not carry.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from typing import Any

from portside.scanner.model import Advisory, AffectedPackage, Severity

__all__ = ["InvalidRecord", "parse_record", "severity_for_score"]

MAX_ID_LENGTH = 128
MAX_SUMMARY_LENGTH = 1024
MAX_DETAILS_LENGTH = 16 * 1024
MAX_VERSION_LENGTH = 256
MAX_NAME_LENGTH = 512
MAX_ECOSYSTEM_LENGTH = 255
MAX_URL_LENGTH = 2048
MAX_LIST_ITEMS = 10_000  # versions lists of old, busy packages reach a few thousand

_EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
_VERSION_RANGE_TYPES = frozenset({"ECOSYSTEM", "SEMVER"})
_CWE = re.compile(r"CWE-[0-9]{1,6}")

# Severity words of the feeds, lower-cased, to Harbor's names.
_WORDS = {
    "none": Severity.NONE,
    "negligible": Severity.LOW,
    "unimportant": Severity.LOW,
    "low": Severity.LOW,
    "moderate": Severity.MEDIUM,
    "medium": Severity.MEDIUM,
    "important": Severity.HIGH,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
    "emergency": Severity.CRITICAL,
}


class InvalidRecord(ValueError):
    """The data is not an OSV record this scanner can use."""


def severity_for_score(score: float) -> str:
    if score <= 0:
        return Severity.NONE
    if score < 4:
        return Severity.LOW
    if score < 7:
        return Severity.MEDIUM
    if score < 9:
        return Severity.HIGH
    return Severity.CRITICAL


def _text(value: Any, limit: int) -> str:
    """A string field, or "" when it is not a string; cut to ``limit`` characters."""
    if isinstance(value, str):
        return value[:limit]
    return ""


def _key(value: Any, limit: int) -> str:
    """A string that becomes a database key (id, ecosystem, name): printable, so no NUL or
    control character reaches an index, or "" when it is not one."""
    if isinstance(value, str) and len(value) <= limit and value.isprintable():
        return value
    return ""


def _timestamp(value: Any) -> str:
    # YAML loaders turn unquoted RFC 3339 times into datetime objects.
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return str(value.astimezone(dt.UTC).isoformat()).replace("+00:00", "Z")
    return _key(value, 64)


def _version(value: Any) -> str | None:
    """A version string; integers are accepted (a YAML ``0``), floats are not (``4.10``
    would read as 4.1)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_VERSION_LENGTH:
        return value
    return None


def _items(value: Any) -> list[Any]:
    return value[:MAX_LIST_ITEMS] if isinstance(value, list) else []


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    return (item for item in _items(value) if isinstance(item, dict))


def _strings(value: Any, limit: int) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in _items(value):
        if isinstance(item, str) and 0 < len(item) <= limit:
            seen.setdefault(item, None)
    return tuple(seen)


def _events(value: Any) -> tuple[tuple[str, str], ...]:
    events = []
    for event in _dicts(value):
        for kind in _EVENT_KINDS:
            version = _version(event.get(kind))
            if version is not None:
                events.append((kind, version))
                break
    return tuple(events)


def _affected(value: Any) -> tuple[AffectedPackage, ...]:
    result = []
    for entry in _dicts(value):
        package = entry.get("package")
        if not isinstance(package, dict):
            continue
        ecosystem = _key(package.get("ecosystem"), MAX_ECOSYSTEM_LENGTH)
        name = _key(package.get("name"), MAX_NAME_LENGTH)
        if not ecosystem or not name:
            continue
        ranges = tuple(
            events
            for range_ in _dicts(entry.get("ranges"))
            if range_.get("type") in _VERSION_RANGE_TYPES
            and (events := _events(range_.get("events")))
        )
        versions = tuple(v for v in map(_version, _items(entry.get("versions"))) if v is not None)
        if ranges or versions:  # a GIT-only entry can match no installed package
            result.append(AffectedPackage(ecosystem, name, ranges, versions))
    return tuple(result)


def _cvss(entries: Iterable[dict[str, Any]]) -> tuple[str, float] | None:
    """The first scorable vector, CVSS v3 before v4: (vector, base score)."""
    from cvss import CVSS3, CVSS4, CVSSError  # type: ignore[import-untyped]

    vectors = [(e.get("type"), e.get("score")) for e in entries]
    for wanted, scorer in (("CVSS_V3", CVSS3), ("CVSS_V4", CVSS4)):
        for kind, vector in vectors:
            if kind != wanted or not isinstance(vector, str) or len(vector) > 512:
                continue
            try:
                return vector, float(scorer(vector).base_score)
            except (CVSSError, ValueError, KeyError, ArithmeticError):
                continue
    return None


def _word(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return _WORDS.get(value.strip().rstrip("*").lower())


def _severity_word(record: dict[str, Any]) -> str | None:
    database = record.get("database_specific")
    candidates: list[Any] = []
    if isinstance(database, dict):
        candidates += [database.get("severity"), database.get("urgency")]
    for entry in _dicts(record.get("affected")):
        for key in ("ecosystem_specific", "database_specific"):
            specific = entry.get(key)
            if isinstance(specific, dict):
                candidates += [specific.get("severity"), specific.get("urgency")]
    return next((word for word in map(_word, candidates) if word), None)


def _severity(record: dict[str, Any]) -> tuple[str, str, float | None]:
    entries = list(_dicts(record.get("severity")))
    for entry in _dicts(record.get("affected")):
        entries += _dicts(entry.get("severity"))
    scored = _cvss(entries)
    if scored is not None:
        vector, score = scored
        return severity_for_score(score), vector, score
    return _severity_word(record) or Severity.UNKNOWN, "", None


def _cwe_ids(record: dict[str, Any]) -> tuple[str, ...]:
    database = record.get("database_specific")
    if not isinstance(database, dict):
        return ()
    return tuple(c for c in _strings(database.get("cwe_ids"), 16) if _CWE.fullmatch(c))


def parse_record(record: Any) -> Advisory:
    """One OSV record (as loaded from JSON or YAML) as an :class:`Advisory`.

    Raises InvalidRecord when it is not a mapping or has no usable ``id``."""
    if not isinstance(record, dict):
        raise InvalidRecord("an OSV record is a mapping")
    advisory_id = _key(record.get("id"), MAX_ID_LENGTH)
    if not advisory_id:
        raise InvalidRecord("the record has no usable id")
    severity, vector, score = _severity(record)
    links = _strings([r.get("url") for r in _dicts(record.get("references"))], MAX_URL_LENGTH)
    return Advisory(
        id=advisory_id,
        aliases=_strings(record.get("aliases"), MAX_ID_LENGTH),
        summary=_text(record.get("summary"), MAX_SUMMARY_LENGTH),
        details=_text(record.get("details"), MAX_DETAILS_LENGTH),
        severity=severity,
        cvss_vector=vector,
        cvss_score=score,
        cwe_ids=_cwe_ids(record),
        links=links,
        affected=_affected(record.get("affected")),
        withdrawn=bool(record.get("withdrawn")),
        modified=_timestamp(record.get("modified")),
        published=_timestamp(record.get("published")),
    )
