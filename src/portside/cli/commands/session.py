"""``portside login`` and ``logout``: remember which registry and account to use."""

from __future__ import annotations

import os

import click

from portside.cli import credentials
from portside.cli.commands._common import password_input, tls_options

__all__ = ["login", "logout"]


@click.command()
@click.argument("url", required=False)
@click.option("--username", "-u", help="Account name (a user, or a robot such as robot$ci).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin's first line.")
@tls_options
def login(
    url: str | None,
    username: str | None,
    password_stdin: bool,
    ca_bundle: str | None,
    insecure: bool,
) -> None:
    """Check an account against a registry and remember it.

    \b
    The URL defaults to the one stored by the last login (or PORTSIDE_URL).
    Credentials go to $XDG_CONFIG_HOME/portside/credentials.json (~/.config/...), mode 0600.
    In CI, set PORTSIDE_URL, PORTSIDE_USERNAME and PORTSIDE_PASSWORD instead of logging in.
    --ca-bundle and --insecure are stored too, so later commands need not repeat them; a new
    login to the same URL without them keeps the stored ones.

    \b
    Example:
      echo "$PASSWORD" | portside login https://registry.example.com -u alice --password-stdin
      portside login https://registry.internal -u alice --ca-bundle ~/internal-ca.pem
    """
    from portside.cli.client import Api, ApiError

    given = credentials.Tls(ca_bundle, insecure)
    try:
        stored = credentials.load(given)
    except click.ClickException:
        stored = None
    if url is None:
        if stored is None:
            raise click.UsageError("give the registry URL: portside login URL -u USER")
        url = stored.url
    url = credentials.normalise_url(url)
    # Logging in again to the same registry (a new password, say) without TLS options keeps
    # how it is trusted; options given replace what was stored.
    keep = stored is not None and stored.url == url and given == credentials.Tls()
    tls = stored.tls if keep and stored is not None else given
    if not username:
        username = os.environ.get("PORTSIDE_USERNAME") or click.prompt("Username")
    password = password_input(password_stdin)
    candidate = credentials.Credentials(url, username, password, tls)
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
