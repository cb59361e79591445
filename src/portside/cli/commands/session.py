"""``portside login`` and ``logout``: remember which registry and account to use."""

from __future__ import annotations

import os

import click

from portside.cli import credentials
from portside.cli.commands._common import password_input

__all__ = ["login", "logout"]


@click.command()
@click.argument("url", required=False)
@click.option("--username", "-u", help="Account name (a user, or a robot such as robot$ci).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin's first line.")
def login(url: str | None, username: str | None, password_stdin: bool) -> None:
    """Check an account against a registry and remember it.

    \b
    The URL defaults to the one stored by the last login (or PORTSIDE_URL).
    Credentials go to $XDG_CONFIG_HOME/portside/credentials.json (~/.config/...), mode 0600.
    In CI, set PORTSIDE_URL, PORTSIDE_USERNAME and PORTSIDE_PASSWORD instead of logging in.

    \b
    Example:
      echo "$PASSWORD" | portside login https://registry.example.com -u alice --password-stdin
    """
    from portside.cli.client import Api, ApiError

    if url is None:
        try:
            url = credentials.load().url
        except click.ClickException:
            raise click.UsageError("give the registry URL: portside login URL -u USER") from None
    if not username:
        username = os.environ.get("PORTSIDE_USERNAME") or click.prompt("Username")
    password = password_input(password_stdin)
    candidate = credentials.Credentials(credentials.normalise_url(url), username, password)
    with Api(candidate) as api:
        try:
            api.get("/users/current")
        except ApiError as error:
            # Robots have no user record; any cheap call they may make proves the secret.
            if error.status not in (401, 403, 404) or "$" not in username:
                raise
            api.get("/projects", {"page_size": 1})
    path = credentials.save(candidate)
    click.echo(f"logged in to {candidate.url} as {username} (saved in {path})")


@click.command()
def logout() -> None:
    """Forget the stored credentials."""
    if credentials.forget():
        click.echo("logged out")
    else:
        click.echo("not logged in", err=True)
