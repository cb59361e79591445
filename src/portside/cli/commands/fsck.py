"""``portside fsck --verify-digests``: a server-side command (on the configured database and
storage, like ``portside vulndb``) that hashes stored blobs again (:mod:`portside.registry.scrub`).

Exit status, as fsck(8) has it, so a script can tell a repair from trouble left behind:

- 0: every blob read matches its digest;
- 1: blobs were wrong or missing, and ``--repair`` quarantined (or unlinked) every one;
- 4: wrong or missing blobs left in place (no ``--repair``), or blobs that could not be read;
- 8: the check could not run (bad settings, no database, unknown repository).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from portside.cli.output import emit_json, human_size, output_option
from portside.cli.server import config_option, migrated_database

if TYPE_CHECKING:
    from portside.config import Settings
    from portside.registry.scrub import Mismatch, ScrubReport

__all__ = ["fsck"]

CLEAN, REPAIRED, LEFT_BROKEN, NOT_RUN = 0, 1, 4, 8
CLI_USER = "portside-cli"  # the audit log's user for repairs made here, as admin reset-password


def _mismatch_line(found: Mismatch) -> str:
    used_by = ", ".join(found.repositories) or "no repository"
    line = (
        f"MISMATCH {found.digest}: bytes hash to {found.actual} ({found.size} bytes); "
        f"used by {used_by}"
    )
    return f"{line}; quarantined to {found.quarantined_to}" if found.quarantined_to else line


def _as_json(report: ScrubReport) -> dict[str, Any]:
    return {
        "checked": report.checked,
        "bytes": report.bytes,
        "repaired": report.repaired,
        "mismatches": [
            {
                "digest": str(m.digest),
                "actual": str(m.actual),
                "size": m.size,
                "repositories": list(m.repositories),
                "quarantined_to": m.quarantined_to,
            }
            for m in report.mismatches
        ],
        "missing": [str(digest) for digest in report.missing],
        "unreadable": [{"key": key, "error": error} for key, error in report.failures],
    }


async def _scrub(
    settings: Settings, repository: str | None, workers: int, repair: bool, echo: bool
) -> ScrubReport:
    from portside.audit.log import AuditLog
    from portside.registry.scrub import Scrubber
    from portside.storage.factory import create_driver

    async with migrated_database(settings) as db:
        storage = create_driver(settings)
        audit = AuditLog(db)  # not started: close() writes the repairs' entries
        try:
            scrubber = Scrubber(db, storage, audit, username=CLI_USER)
            return await scrubber.run(
                repository,
                workers=workers,
                repair=repair,
                on_mismatch=(lambda found: click.echo(_mismatch_line(found))) if echo else None,
            )
        finally:
            await audit.close()
            await storage.close()


def _not_run(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(NOT_RUN)


@click.command()
@config_option
@click.option(
    "--verify-digests",
    is_flag=True,
    help="Hash every stored blob (layers, configs, manifests) and compare with its digest.",
)
@click.option(
    "--repository", "-r", metavar="NAME", help="Only the blobs and manifests of this repository."
)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Blobs hashed at once.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Quarantine each wrong blob, so that the next push of its genuine content stores it.",
)
@output_option
def fsck(
    config: Path | None,
    verify_digests: bool,
    repository: str | None,
    workers: int,
    repair: bool,
    output: str,
) -> None:
    """Check the registry's storage against its digests, on the server's own database and
    storage (run it where `portside serve` runs, with the same --config and environment;
    servers may keep running).

    Every blob read whose bytes do not hash to its digest is reported with what they hash
    to, their size and the repositories using it. With --repair its bytes move to
    quarantine/ in storage and every link to it goes: pulls then answer 404 BLOB_UNKNOWN (or
    MANIFEST_UNKNOWN) and the next push of the genuine content stores it again.

    Exit status: 0 all good, 1 problems found and all repaired, 4 problems left,
    8 the check could not run.

    \b
    Examples:
      portside fsck --verify-digests --config /etc/portside.yaml
      portside fsck --verify-digests --repository library/app --repair
      portside fsck --verify-digests --workers 8 -o json
    """
    if not verify_digests:
        raise click.UsageError("nothing to check: give --verify-digests")
    from portside.api.logging import configure_logging
    from portside.config import ConfigError, load_settings
    from portside.registry.scrub import UnknownRepository

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        _not_run(str(exc))
    # Logs go to stderr as the server's do, so stdout holds only the findings.
    configure_logging(settings.log.level, settings.log.format)
    try:
        report = asyncio.run(_scrub(settings, repository, workers, repair, output != "json"))
    except UnknownRepository:
        _not_run(f"repository {repository} not found")
    except click.ClickException as exc:
        _not_run(exc.format_message())
    except Exception as exc:  # a database or storage that cannot be opened
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _not_run(f"cannot check the storage: {message}")
    if output == "json":
        emit_json(_as_json(report))
    else:
        for digest in report.missing:
            note = "; links removed" if repair else ""
            click.echo(f"MISSING {digest}: linked but no bytes in storage{note}")
        for key, error in report.failures:
            click.echo(f"UNREADABLE {key}: {error}")
        click.echo(
            f"checked {report.checked} blobs ({human_size(report.bytes)}): "
            f"{len(report.mismatches)} mismatched, {len(report.missing)} missing, "
            f"{len(report.failures)} unreadable"
            + ("; repaired" if repair and not report.clean else "")
        )
    if report.left_broken:
        sys.exit(LEFT_BROKEN)
    sys.exit(CLEAN if report.clean else REPAIRED)
