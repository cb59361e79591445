"""``portside vulndb import`` and ``portside vulndb status``: server-side commands on the
configured database (like ``portside db upgrade``), for the advisories the built-in scanner
matches against. Every replica sees an import at once: the advisories live in the database.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from portside.cli.output import emit_json, output_option, print_record, print_table
from portside.cli.server import config_option, load_or_fail, migrated_database

if TYPE_CHECKING:
    from portside.config import Settings
    from portside.scanner.vulndb import ImportStats, VulnDB

__all__ = ["vulndb"]

T = TypeVar("T")


async def _with_vulndb(settings: Settings, work: Callable[[VulnDB], Coroutine[Any, Any, T]]) -> T:
    """Run ``work`` on the configured database, refusing one that is missing or not migrated."""
    from portside.scanner.vulndb import VulnDB

    async with migrated_database(settings) as db:
        return await work(VulnDB(db))


def _run(settings: Settings, work: Callable[[VulnDB], Coroutine[Any, Any, T]]) -> T:
    from portside.api.logging import configure_logging

    # Logs go to stderr as the server's do, so stdout holds only the answer (--output json).
    configure_logging(settings.log.level, settings.log.format)
    try:
        return asyncio.run(_with_vulndb(settings, work))
    except click.ClickException:
        raise
    except Exception as exc:  # a database that cannot be opened is a user error here
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise click.ClickException(f"cannot use the database: {message}") from None


@contextmanager
def _file_progress() -> Iterator[Callable[[int, int], None]]:
    """``advance(done, total)`` drawing a bar on stderr, on a terminal only (pipes and
    ``--output json`` stay clean). Called from the importer's worker thread."""
    if not (sys.stderr.isatty() and sys.stdout.isatty()):
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("reading advisories"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("files", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)
            if done == 1:  # draw now: a small import would otherwise end before the first tick
                progress.refresh()

        yield advance


@click.group()
def vulndb() -> None:
    """The vulnerability database the built-in scanner matches against (OSV advisories)."""


@vulndb.command("import")
@config_option
@click.argument("path", type=click.Path(exists=True, path_type=Path), required=False)
@click.option(
    "--from-registry",
    "artifact",
    metavar="REPOSITORY:TAG",
    help="Import the advisories pushed to this registry as an OCI artifact (zip or OSV "
    "record layers), e.g. library/vulndb:2026-11 (REPOSITORY@DIGEST works too).",
)
@output_option
def vulndb_import(
    config: Path | None, path: Path | None, artifact: str | None, output: str
) -> None:
    """Import OSV advisories from PATH: a folder (searched recursively for .json, .yaml and
    .yml records and .zip archives of them), one record file or one .zip; or, with
    --from-registry, from an artifact in this registry (the air-gapped way: push the
    advisories with any OCI client, then import them here).

    An advisory already imported is replaced (same id); files that are not OSV records are
    counted and skipped. Running servers see the new advisories on their next scan.

    \b
    Examples:
      portside vulndb import ./advisory-database/vulns --config /etc/portside.yaml
      portside vulndb import osv-PyPI.zip -o json
      oras push localhost:5000/library/vulndb:2026-11 osv-Debian.zip && \\
        portside vulndb import --from-registry library/vulndb:2026-11
    """
    if (path is None) == (artifact is None):
        raise click.UsageError("give either PATH or --from-registry REPOSITORY:TAG")
    settings = load_or_fail(config)
    if artifact is not None:
        stats = _run(settings, lambda v: _from_registry(settings, v, artifact))
    else:
        assert path is not None
        with _file_progress() as advance:
            stats = _run(settings, lambda v: v.import_path(path, progress=advance))
    if output == "json":
        emit_json(asdict(stats))
        return
    click.echo(
        f"imported {stats.advisories} advisories from {stats.files} files in "
        f"{stats.seconds:.1f} s ({stats.withdrawn} withdrawn, {stats.malformed} malformed "
        f"files skipped); database generation {stats.generation}"
    )


async def _from_registry(settings: Settings, vulndb: VulnDB, artifact: str) -> ImportStats:
    from portside.scanner.vulndb_artifact import (
        VulnDBArtifactError,
        import_from_registry,
        parse_artifact_reference,
    )
    from portside.storage.factory import create_driver

    storage = create_driver(settings)
    try:
        repository, reference = parse_artifact_reference(artifact)
        return await import_from_registry(vulndb.db, storage, vulndb, repository, reference)
    except VulnDBArtifactError as error:
        raise click.ClickException(str(error)) from None
    finally:
        await storage.close()


@vulndb.command("status")
@config_option
@output_option
def vulndb_status(config: Path | None, output: str) -> None:
    """Show what the vulnerability database holds: advisories in all and per ecosystem,
    and the last import."""
    settings = load_or_fail(config)
    status = _run(settings, lambda v: v.status())
    if output == "json":
        emit_json(status)
        return
    print_record(
        status,
        [
            ("advisories", lambda s: s["advisories"]),
            ("last import", lambda s: s["imported_at"]),
            ("source", lambda s: s["source"]),
            ("generation", lambda s: s["generation"]),
        ],
    )
    print_table(
        sorted(status["ecosystems"].items()),
        [("ecosystem", lambda row: row[0]), ("advisories", lambda row: row[1])],
        empty="no advisories imported yet: run 'portside vulndb import PATH'",
    )
