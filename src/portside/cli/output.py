"""How client commands print: rich tables for people, the API's raw JSON for scripts.

rich is imported inside the functions, so only commands that print tables load it. Progress
bars go to stderr and only appear when stdout is a terminal, so pipes and ``--output json``
stay clean.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click

__all__ = [
    "Column",
    "emit_json",
    "human_size",
    "output_option",
    "page_progress",
    "parse_size",
    "print_record",
    "print_table",
    "spinner",
]

F = TypeVar("F", bound=Callable[..., Any])
# (heading, how to get the cell from one API object)
Column = tuple[str, Callable[[Any], Any]]

output_option = click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    envvar="PORTSIDE_OUTPUT",
    help="table for people, json (the raw API answer) for scripts. Env PORTSIDE_OUTPUT.",
)


def _console() -> Any:
    from rich.console import Console

    # A pipe gets a wide, colourless table so nothing is cut or wrapped mid-value.
    return Console(width=None if sys.stdout.isatty() else 240, highlight=False)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "-"
    return str(value)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def print_table(
    rows: Sequence[Any], columns: Sequence[Column], empty: str = "nothing found"
) -> None:
    if not rows:
        click.echo(empty, err=True)
        return
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for heading, _ in columns:
        table.add_column(heading, overflow="fold")
    for row in rows:
        table.add_row(*(escape(_cell(get(row))) for _, get in columns))
    _console().print(table)


def print_record(record: Any, fields: Sequence[Column]) -> None:
    """One object as a two-column table of field and value."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=box.SIMPLE, show_header=False, pad_edge=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for heading, get in fields:
        table.add_row(escape(heading), escape(_cell(get(record))))
    _console().print(table)


def _show_progress() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()


@contextmanager
def page_progress(what: str) -> Iterator[Callable[[int, int | None], None]]:
    """Yield ``advance(done, total)``; a bar appears once a list spans several pages."""
    if not _show_progress():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(
        TextColumn(f"fetching {what}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task: Any = None

    def advance(done: int, total: int | None) -> None:
        nonlocal task
        if task is None:
            if total is None or total <= done:
                return
            progress.start()
            task = progress.add_task(what, total=total)
        progress.update(task, completed=done, total=total)
        progress.refresh()  # draw now: a fast page would otherwise finish before the first tick

    try:
        yield advance
    finally:
        if task is not None:
            progress.stop()


@contextmanager
def spinner(text: str) -> Iterator[None]:
    """A spinner for one long request (artifact copy), on a terminal only."""
    if not _show_progress():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(text):
        yield


_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}


def parse_size(text: str) -> int:
    """``10GiB``, ``512M``, ``1.5G``, ``1000`` (bytes) or ``-1`` (unlimited) to bytes."""
    value = text.strip().upper().replace(" ", "")
    if value in ("-1", "UNLIMITED"):
        return -1
    for suffix in ("IB", "B"):
        if value.endswith(suffix) and value[: -len(suffix)][-1:].isalpha():
            value = value[: -len(suffix)]
            break
    unit = value[-1:] if value[-1:].isalpha() else ""
    number = value[: -len(unit)] if unit else value
    if unit not in _UNITS:
        raise click.BadParameter(f"unknown unit in {text!r}; use B, KiB, MiB, GiB, TiB")
    try:
        amount = float(number)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size such as 10GiB or -1") from None
    if amount < 0:
        raise click.BadParameter("a size cannot be negative (use -1 for unlimited)")
    return int(amount * _UNITS[unit])


def human_size(size: Any) -> str:
    if not isinstance(size, int | float):
        return "-"
    if size < 0:
        return "unlimited"
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{size} B"  # pragma: no cover
