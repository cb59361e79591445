"""Server-side maintenance commands that work on the configured database and settings
directly, without a running server: ``admin reset-password``, ``admin unlock`` and
``config check``.

They load settings exactly as ``serve`` does (``--config`` file, then ``PORTSIDE_*``
environment), so they act on the same database ``serve`` would use.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import click

from portside.cli.commands._common import password_input

if TYPE_CHECKING:  # the settings pull in structlog; load them only when a command runs
    from portside.config import Settings
    from portside.db.engine import Database

__all__ = ["admin", "config", "config_option", "load_or_fail", "migrated_database"]

MASK = "********"

config_option = click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="PORTSIDE_CONFIG",
    help="YAML settings file (env PORTSIDE_CONFIG). Keys: see docs/configuration.md.",
)


def load_or_fail(config_path: Path | None, **overrides: object) -> Settings:
    from portside.config import ConfigError, load_settings

    try:
        return load_settings(config_path, **{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@contextlib.asynccontextmanager
async def migrated_database(settings: Settings) -> AsyncIterator[Database]:
    """The configured database, for a server-side command. Raises ``ClickException`` when it
    is missing or not at the current schema version (``portside db upgrade`` first)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import make_url

    from portside.db.engine import Database
    from portside.db.migrate import alembic_config

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise click.ClickException(
            f"no database at {url.database}; run 'portside db upgrade' (or serve) first"
        )
    heads = set(ScriptDirectory.from_config(alembic_config(settings.database_url)).get_heads())
    db = Database(settings.database_url, pool_size=1)
    try:
        current = await db.read(lambda c: set(MigrationContext.configure(c).get_current_heads()))
        if current != heads:
            raise click.ClickException(
                "the database is not at the current schema version; run 'portside db upgrade'"
            )
        yield db
    finally:
        await db.close()


# -- admin reset-password ------------------------------------------------------------------------


@click.group()
def admin() -> None:
    """Emergency administration on the server's own database."""


def _audit_entry(resource_type: str, resource: str, operation: str, detail: str) -> Any:
    """An audit log row written by the CLI itself (the server's audit log is not running)."""
    from sqlalchemy import insert

    from portside.db.queries import now
    from portside.db.tables import audit_logs

    return insert(audit_logs).values(
        op_time=now(),
        username="portside-cli",
        operation=operation,
        resource_type=resource_type,
        resource=resource,
        result="success",
        client_ip=None,
        project_id=None,
        detail=detail,
    )


def _run_on_database(work: Coroutine[Any, Any, str | None]) -> None:
    """Run ``work``; its answer (why it failed) or a database error becomes the error."""
    try:
        failure = asyncio.run(work)
    except click.ClickException:
        raise
    except Exception as exc:  # a database that cannot be opened is a user error here
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise click.ClickException(f"cannot update the database: {message}") from None
    if failure:
        raise click.ClickException(failure)


async def _reset(settings: Settings, username: str, password: str) -> str | None:
    """Set the password; None on success, else why not (pending migrations, no such user)."""
    from sqlalchemy import Connection, delete, select, update

    from portside.auth.passwords import hash_password
    from portside.db.queries import now
    from portside.db.tables import sessions, users

    async with migrated_database(settings) as db:
        password_hash = await asyncio.to_thread(hash_password, password)

        def change(connection: Connection) -> int:
            changed = connection.execute(
                update(users)
                .where(users.c.username == username)
                .values(password_hash=password_hash, updated_at=now())
            ).rowcount
            if changed:
                # As a password change through the API does: end the account's UI sessions.
                # (Its tokens stop working too: they carry a fingerprint of the old hash.)
                account = select(users.c.id).where(users.c.username == username)
                connection.execute(delete(sessions).where(sessions.c.user_id.in_(account)))
                detail = "password reset with portside admin reset-password"
                connection.execute(_audit_entry("user", username, "update", detail))
            return int(changed)

        if not await db.write(change):
            return f"user {username} not found"
        return None


@admin.command("reset-password")
@config_option
@click.option("--user", "username", default="admin", show_default=True, help="Account to reset.")
@click.option("--password-stdin", is_flag=True, help="Read the new password from stdin.")
def reset_password(config: Path | None, username: str, password_stdin: bool) -> None:
    """Set an account's password directly in the database (e.g. a lost admin password).

    Run it where `portside serve` runs, with the same --config and environment. Running
    servers accept the new password at once; the old one and the account's Bearer tokens
    stop working within registry.cache_ttl_seconds, and its UI sessions end at once.

    \b
    Examples:
      portside admin reset-password --config /etc/portside.yaml
      echo "$NEW_PASSWORD" | portside admin reset-password --user alice --password-stdin
    """
    from portside.auth.passwords import password_problem

    settings = load_or_fail(config)
    password = password_input(password_stdin, "New password", confirm=True)
    problem = password_problem(password)
    if problem:
        raise click.ClickException(problem)
    _run_on_database(_reset(settings, username, password))
    click.echo(f"password of {username} changed")


# -- admin unlock --------------------------------------------------------------------------------


async def _unlock(settings: Settings, username: str | None, address: str | None) -> str | None:
    """Record the unlocks; None on success, else why not."""
    from portside.auth.ratelimit import UNLOCK_OPERATION, address_key

    detail = "failed-login refusal lifted with portside admin unlock"
    entries = [("user", username)] if username else []
    entries += [("address", address_key(address))] if address else []
    async with migrated_database(settings) as db:
        await db.write(
            lambda c: [
                c.execute(_audit_entry(kind, subject, UNLOCK_OPERATION, detail))
                for kind, subject in entries
            ]
        )
    return None


@admin.command("unlock")
@config_option
@click.option("--user", "username", help="Account to unlock, from every address.")
@click.option("--address", help="Client address to unlock (IPv6: its /64), for every account.")
def unlock(config: Path | None, username: str | None, address: str | None) -> None:
    """Lift a refusal after too many failed logins, before its window runs out.

    Logins are refused per account and address, and per address. --user lifts the account's
    refusal from every address; --address lifts that address's refusal for any account; give
    both to lift both. Each running server applies it when it next refuses a login, within a
    few seconds, whether the counters are in memory or in Redis. It is recorded in the audit
    log (operation unlock).

    \b
    Examples:
      portside admin unlock --user admin --config /etc/portside.yaml
      portside admin unlock --user admin --address 192.0.2.7
    """
    if not username and not address:
        raise click.UsageError("give --user, --address or both")
    if address is not None:
        import ipaddress

        try:
            ipaddress.ip_address(address)
        except ValueError:
            message = f"{address!r} is not an IP address"
            raise click.BadParameter(message, param_hint="--address") from None
    _run_on_database(_unlock(load_or_fail(config), username, address))
    unlocked = [f"user {username}"] if username else []
    unlocked += [f"address {address}"] if address else []
    click.echo("unlocked: " + ", ".join(unlocked))


# -- config check --------------------------------------------------------------------------------


def _mask_url(url: str) -> str:
    """Hide the password in a URL such as postgresql://user:secret@host/db."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:{MASK}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def effective_settings(settings: Settings) -> dict[str, Any]:
    """The settings as plain data, with every secret replaced by a mask."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    if settings.admin_password is not None:
        data["admin_password"] = MASK
    if settings.storage.s3.secret_key is not None:
        data["storage"]["s3"]["secret_key"] = MASK
    data["database"]["url"] = _mask_url(settings.database_url)
    data["auth"]["login_limit_storage"] = _mask_url(settings.auth.login_limit_storage)
    return data


@click.group()
def config() -> None:
    """Check configuration files."""


@config.command("check")
@config_option
def config_check(config: Path | None) -> None:
    """Validate the settings (file plus PORTSIDE_* environment) and print the effective
    values as YAML, secrets masked. Exits 1 naming each bad key.

    Example: portside config check --config /etc/portside.yaml
    """
    import yaml

    settings = load_or_fail(config)
    click.echo("# effective Portside settings (secrets masked)")
    click.echo(yaml.safe_dump(effective_settings(settings), sort_keys=False), nl=False)
    click.echo("configuration is valid", err=True)
