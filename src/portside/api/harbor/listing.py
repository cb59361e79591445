"""Harbor's list conventions: ``page``/``page_size`` with ``X-Total-Count`` and ``Link``,
``sort=f1,-f2``, and the ``q=`` query language.

``q`` is a comma-separated list of ``key<op>value`` terms:

- ``k=v``        exact match
- ``k=~v``       fuzzy match (substring)
- ``k=[a~b]``    range, either end may be empty
- ``k={a b c}``  all of (for list-valued keys)
- ``k=(a b c)``  any of
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Depends, Query, Request, Response
from sqlalchemy import ColumnElement

from portside.api.harbor.errors import HarborError

__all__ = [
    "ID",
    "NOT_FUZZY",
    "TEXT",
    "TIME",
    "Key",
    "Page",
    "PageParams",
    "Paging",
    "Term",
    "parse_query",
    "parse_sort",
    "parse_time",
    "q_query",
    "set_page_headers",
    "sort_query",
    "where_clauses",
]

MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class Page:
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def _page(
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 10,
) -> Page:
    return Page(page, page_size)


PageParams = _page
Paging = Annotated[Page, Depends(_page)]


def set_page_headers(request: Request, response: Response, page: Page, total: int) -> None:
    """``X-Total-Count``, and a ``Link`` header with ``prev``/``next`` as Harbor sends them."""
    response.headers["X-Total-Count"] = str(total)
    links = []
    params = dict(request.query_params)
    if page.page > 1:
        params.update(page=str(page.page - 1), page_size=str(page.page_size))
        links.append(f'<{request.url.path}?{urlencode(params)}>; rel="prev"')
    if page.offset + page.page_size < total:
        params.update(page=str(page.page + 1), page_size=str(page.page_size))
        links.append(f'<{request.url.path}?{urlencode(params)}>; rel="next"')
    if links:
        response.headers["Link"] = ", ".join(links)


@dataclass(frozen=True, slots=True)
class Term:
    key: str
    kind: Literal["exact", "fuzzy", "range", "all", "any"]
    values: tuple[str, ...]


def _split_terms(q: str) -> list[str]:
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in q:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [t for t in terms if t.strip()]


# What one value of a ``q`` term may be, as the document states it: text without the
# characters the grammar gives a meaning (``,`` ``~`` ``=`` brackets, white space), a positive id,
# or a timestamp :func:`parse_time` reads.
TEXT = r"[^,\s\[\]{}()~=]+"
ID = "[1-9][0-9]{0,8}"
TIME = (
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"(?:T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z?)?"
)
_FORMS = ("exact", "fuzzy", "range", "all", "any")
# Numbers and times are compared, not searched as text.
NOT_FUZZY = ("exact", "range", "all", "any")


@dataclass(frozen=True, slots=True)
class Key:
    """One ``q`` key as the document states it: its values and the forms it takes."""

    value: str = TEXT
    forms: tuple[str, ...] = _FORMS


def q_query(keys: dict[str, Key], description: str | None = None) -> Any:
    """The ``q`` parameter over ``keys``. The document states the grammar as a pattern; the
    handler (:func:`parse_query` and the key's conversion) enforces it, in its own words."""
    terms = []
    for name, key in sorted(keys.items()):
        v = key.value
        spelled = {
            "exact": f"(?:{v})",
            "fuzzy": f"~(?:{v})",
            "range": f"\\[(?:{v})?~(?:{v})?\\]",
            "all": f"\\{{(?:{v})(?: (?:{v}))*\\}}",
            "any": f"\\((?:{v})(?: (?:{v}))*\\)",
        }
        forms = "|".join(spelled[form] for form in key.forms)
        terms.append(f"{re.escape(name)}=(?:{forms})")
    term = "(?:" + "|".join(terms) + ")"
    return Query(
        max_length=2048,
        description=description or f"Filter by {', '.join(sorted(keys))}: k=v, k=~v, ...",
        json_schema_extra={"pattern": f"^(?:{term}(?:,{term})*)?$"},
    )


def parse_query(q: str | None, allowed: set[str]) -> dict[str, Term]:
    """Parse ``q``; keys outside ``allowed`` are a 400, as is malformed syntax."""
    if not q:
        return {}
    if len(q) > 2048:
        raise HarborError(400, "query is too long")
    parsed: dict[str, Term] = {}
    for raw in _split_terms(q):
        key, sep, value = raw.partition("=")
        key = key.strip()
        if not sep or not key:
            raise HarborError(400, f"invalid query term {raw[:64]!r}: expected key=value")
        if key not in allowed:
            raise HarborError(
                400, f"cannot query by {key[:64]!r}; allowed: {', '.join(sorted(allowed))}"
            )
        parsed[key] = _term(key, value)
    return parsed


def _term(key: str, value: str) -> Term:
    if value.startswith("~"):
        return Term(key, "fuzzy", (value[1:],))
    if value.startswith("[") and value.endswith("]"):
        low, sep, high = value[1:-1].partition("~")
        if not sep:
            raise HarborError(400, f"range for {key!r} must look like [min~max]")
        return Term(key, "range", (low.strip(), high.strip()))
    if value.startswith("{") and value.endswith("}"):
        return Term(key, "all", tuple(value[1:-1].split()))
    if value.startswith("(") and value.endswith(")"):
        return Term(key, "any", tuple(value[1:-1].split()))
    return Term(key, "exact", (value,))


def sort_query(
    allowed: Iterable[str], max_length: int = 256, description: str | None = None
) -> Any:
    """The ``sort`` parameter over ``allowed`` fields. The document states the grammar as a
    pattern made from the same fields :func:`parse_sort` accepts; :func:`parse_sort` enforces
    it, so a refusal names the fields allowed."""
    field = "-?(?:" + "|".join(re.escape(name) for name in sorted(allowed)) + ")"
    return Query(
        max_length=max_length,
        description=description or "Comma-separated fields, each ascending or -descending.",
        json_schema_extra={"pattern": f"^(?:{field}(?:,{field})*)?$"},
    )


def parse_sort(sort: str | None, allowed: set[str]) -> list[tuple[str, bool]]:
    """``sort=f1,-f2`` as ``[(field, descending)]``."""
    if not sort:
        return []
    order = []
    for item in sort.split(","):
        item = item.strip()
        descending = item.startswith("-")
        field = item.lstrip("-")
        if field not in allowed:
            raise HarborError(
                400, f"cannot sort by {field[:64]!r}; allowed: {', '.join(sorted(allowed))}"
            )
        order.append((field, descending))
    return order


Converter = Callable[[str], Any]


def where_clauses(
    terms: dict[str, Term], columns: dict[str, tuple[ColumnElement[Any], Converter]]
) -> list[ColumnElement[bool]]:
    """SQL conditions for parsed ``q`` terms. ``columns`` maps each query key to its column and a
    function converting a value (raising ValueError on bad input, which becomes a 400)."""
    clauses: list[ColumnElement[bool]] = []
    for key, term in terms.items():
        column, convert = columns[key]
        try:
            if term.kind == "exact":
                clauses.append(column == convert(term.values[0]))
            elif term.kind == "fuzzy":
                clauses.append(column.contains(term.values[0], autoescape=True))
            elif term.kind == "range":
                low, high = term.values
                if low:
                    clauses.append(column >= convert(low))
                if high:
                    clauses.append(column <= convert(high))
            elif term.kind == "any":
                clauses.append(column.in_([convert(v) for v in term.values]))
            else:
                clauses.extend(column == convert(v) for v in term.values)
        except ValueError as exc:
            raise HarborError(400, f"invalid value for {key!r}: {exc}") from None
    return clauses


def parse_time(value: str) -> dt.datetime:
    """A timestamp in a query: ISO 8601, or Harbor's ``YYYY-MM-DD hh:mm:ss`` (UTC)."""
    parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
