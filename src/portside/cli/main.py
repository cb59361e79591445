"""``portside``: server-side commands (serve, db upgrade)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from portside.config import ConfigError, Settings, load_settings

__all__ = ["main"]


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


_config_option = click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="PORTSIDE_CONFIG",
    help="YAML settings file (env PORTSIDE_CONFIG). Keys: see docs/configuration.md.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="portside")
def main() -> None:
    """Portside, a self-hosted private container registry."""


@main.command()
@_config_option
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
      server.tls_cert / server.tls_key    PEM files; enable HTTPS
      server.shutdown_grace_seconds       30
      server.trusted_proxies              [] (believe X-Forwarded-For from these)
      log.level / log.format / log.access_log   info / json / true
      database.url / database.pool_size   SQLite in data_dir / 10
      storage.driver                      filesystem | s3 | memory
      storage.filesystem.root             data_dir/storage
      storage.s3.bucket / endpoint_url / region / access_key / secret_key / prefix
      auth.token_ttl_seconds / token_issuer / token_service / realm
      auth.robot_prefix / project_creation_restriction / self_registration
                                          robot$ / adminonly / false
      auth.login_failures_per_account / login_failures_per_address
                                          10 per 5 minutes / 30 per 5 minutes
      auth.login_limit_storage / login_limit_key_prefix   memory:// / portside
      registry.max_manifest_bytes         4194304
      registry.upload_purge_age_seconds / upload_purge_interval_seconds   86400 / 3600
      registry.catalog_max_entries / cache_ttl_seconds                    1000 / 10
      quota.default_project_bytes         -1 (unlimited)
      audit.retention_days / purge_interval_seconds / syslog_address   90 / 3600 / unset
    """
    from portside.server import run

    overrides: dict[str, object] = {"data_dir": data_dir}
    server: dict[str, object] = {k: v for k, v in {"host": host, "port": port}.items() if v}
    settings = _settings(config, **overrides)
    if server:
        settings = _settings(
            config, **overrides, server=settings.server.model_copy(update=server).model_dump()
        )
    run(settings)


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@_config_option
def upgrade(config: Path | None) -> None:
    """Apply every pending migration (serve does this on start)."""
    from portside.db.migrate import upgrade as run_upgrade

    settings = _settings(config)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    run_upgrade(settings.database_url)
    click.echo("database is up to date")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
