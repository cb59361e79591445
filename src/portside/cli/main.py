"""``portside``: the server (serve, db, admin, config) and a client for any Portside over its
REST API (login, project, repo, artifact, robot, ...).

Start-up cost matters for ``serve``: this module imports only click and the settings; httpx,
rich and the server itself are imported inside the commands that use them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from portside.cli.commands.accounts import robot, user
from portside.cli.commands.content import artifact, repo, tag
from portside.cli.commands.fsck import fsck
from portside.cli.commands.operations import audit, quota, system
from portside.cli.commands.projects import member, project
from portside.cli.commands.scanning import cve_allowlist, sbom, scan, scan_all
from portside.cli.commands.session import login, logout
from portside.cli.commands.vulndb import vulndb
from portside.cli.server import admin, config, config_option, load_or_fail

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="portside")
def main() -> None:
    """Portside, a self-hosted private container registry.

    \b
    Server:  serve, db upgrade, admin reset-password, config check, vulndb import/status,
             fsck --verify-digests
    Client:  login, logout, project, member, repo, artifact, tag, robot, user,
             quota, audit, system, scan, scan-all, sbom, cve-allowlist
             (talk to any Portside over /api/v2.0)

    Shell completion (bash): eval "$(_PORTSIDE_COMPLETE=bash_source portside)"
    """


def _keep_rich_out() -> None:
    """structlog imports rich, when installed, for pretty console tracebacks. The server does
    not need them and rich costs ~5 MB of resident memory, so ``serve`` hides it: structlog
    then falls back to plain tracebacks, exactly as when rich is not installed."""
    if "rich" not in sys.modules:
        sys.modules["rich"] = None  # type: ignore[assignment]


@main.command()
@config_option
@click.option("--host", help="Listen address (server.host, default 0.0.0.0).")
@click.option("--port", type=int, help="Listen port (server.port, default 5000).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data folder for SQLite and blobs (data_dir, default ./portside-data).",
)
def serve(config: Path | None, host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Run the registry: migrate the database, then serve HTTP(S).

    \b
    Every setting can come from the YAML file or a PORTSIDE_* variable, nested keys joined
    with "__" (storage.driver is PORTSIDE_STORAGE__DRIVER). Keys and defaults:
      data_dir                            ./portside-data
      admin_password                      (PORTSIDE_ADMIN_PASSWORD; generated when unset)
      server.host / server.port           0.0.0.0 / 5000
      server.public_url                   URL clients use, behind a reverse proxy
      server.public_hosts                 [] (Host headers trusted for links and realms)
      server.tls_cert / server.tls_key    PEM files; enable HTTPS
      server.shutdown_grace_seconds       30
      server.trusted_proxies              [] (believe X-Forwarded-For from these)
      log.level / log.format / log.access_log   info / json / true
      database.url / database.pool_size   SQLite in data_dir / 10
      storage.driver                      filesystem | s3 | memory
      storage.filesystem.root             data_dir/storage
      storage.s3.bucket / endpoint_url / region / access_key / secret_key / prefix
      storage.min_free_bytes              536870912 (health: too little room left)
      auth.token_ttl_seconds / token_issuer / token_service / realm
      auth.robot_prefix / project_creation_restriction / self_registration
                                          robot$ / adminonly / false
      auth.login_failures_per_account / login_failures_per_address
                                          10 per 5 minutes / 30 per 5 minutes
      auth.login_limit_storage / login_limit_key_prefix   memory:// / portside
      auth.login_limit_exempt_networks    [] (CIDRs the failed-login limits skip)
      registry.max_manifest_bytes         4194304
      registry.upload_purge_age_seconds / upload_purge_interval_seconds   86400 / 3600
      registry.catalog_max_entries / cache_ttl_seconds                    1000 / 10
      quota.default_project_bytes         -1 (unlimited)
      audit.retention_days / purge_interval_seconds / syslog_address   90 / 3600 / unset
      scanner.workers / block_unscanned / layer_cache_entries           2 / true / 512
      scrub.interval_hours / workers / repair                            0 (off) / 1 / false
    """
    _keep_rich_out()
    from portside.server import run

    overrides: dict[str, object] = {"data_dir": data_dir}
    server: dict[str, object] = {k: v for k, v in {"host": host, "port": port}.items() if v}
    settings = load_or_fail(config, **overrides)
    if server:
        settings = load_or_fail(
            config, **overrides, server=settings.server.model_copy(update=server).model_dump()
        )
    run(settings)


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@config_option
def upgrade(config: Path | None) -> None:
    """Apply every pending migration (serve does this on start)."""
    from portside.db.migrate import upgrade as run_upgrade

    settings = load_or_fail(config)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    run_upgrade(settings.database_url)
    click.echo("database is up to date")


for _command in (
    admin,
    config,
    fsck,
    login,
    logout,
    project,
    member,
    repo,
    artifact,
    tag,
    robot,
    user,
    quota,
    audit,
    system,
    vulndb,
    scan,
    scan_all,
    cve_allowlist,
    sbom,
):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(prog_name="portside"))
