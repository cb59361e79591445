"""Plumbing shared by client commands: the API handle, passwords, references."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import click

from portside.cli import credentials

if TYPE_CHECKING:
    from portside.cli.client import Api

__all__ = [
    "confirm_or_abort",
    "pass_api",
    "password_input",
    "split_reference",
    "split_repository",
    "tls_options",
    "yes_option",
]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


def tls_options(command: F) -> F:
    """``--ca-bundle PATH`` and ``--insecure`` (also PORTSIDE_CA_BUNDLE, PORTSIDE_INSECURE),
    passed to ``command`` as ``ca_bundle`` and ``insecure``."""
    command = click.option(
        "--insecure",
        is_flag=True,
        envvar="PORTSIDE_INSECURE",
        help="Do not verify the registry's TLS certificate (prints a warning; tests only). "
        "[env PORTSIDE_INSECURE]",
    )(command)
    return click.option(
        "--ca-bundle",
        type=click.Path(exists=True, dir_okay=False, resolve_path=True),
        envvar="PORTSIDE_CA_BUNDLE",
        help="PEM file with the CA certificate(s) that signed the registry's certificate: a "
        "private CA, or the certificate itself when self-signed. [env PORTSIDE_CA_BUNDLE]",
    )(command)


def pass_api(command: Callable[Concatenate[Api, P], R]) -> Callable[P, R]:
    """Call ``command`` with an :class:`Api` built from the stored or environment credentials,
    and give the command the TLS options (:func:`tls_options`), which it never sees.

    httpx is imported here, at call time, so ``portside serve`` never pays for it.
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from portside.cli.client import Api

        ca_bundle = kwargs.pop("ca_bundle", None)
        tls = credentials.Tls(str(ca_bundle) if ca_bundle else None, bool(kwargs.pop("insecure")))
        with Api(credentials.load(tls)) as api:
            return command(api, *args, **kwargs)

    return tls_options(wrapper)


def password_input(from_stdin: bool, prompt: str = "Password", confirm: bool = False) -> str:
    """A password from stdin's first line (``--password-stdin``) or an interactive prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: stdin held no password")
        return password
    value: Any = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return str(value)


yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


def confirm_or_abort(yes: bool, question: str) -> None:
    if not yes:
        click.confirm(question, abort=True, err=True)


def split_repository(text: str) -> tuple[str, str]:
    """``project/repo/name`` to (project, repo/name)."""
    project, sep, repository = text.partition("/")
    if not sep or not project or not repository:
        raise click.BadParameter(
            f"{text!r}: expected PROJECT/REPOSITORY, e.g. library/nginx", param_hint="REPOSITORY"
        )
    return project, repository


def split_reference(text: str) -> tuple[str, str, str]:
    """``project/repo:tag`` or ``project/repo@sha256:...`` to (project, repo, reference)."""
    if "@" in text:
        name, _, reference = text.partition("@")
    else:
        slash = text.rfind("/")
        colon = text.rfind(":")
        if colon <= slash:
            raise click.BadParameter(
                f"{text!r}: expected PROJECT/REPOSITORY:TAG or PROJECT/REPOSITORY@DIGEST",
                param_hint="ARTIFACT",
            )
        name, reference = text[:colon], text[colon + 1 :]
    if not reference:
        raise click.BadParameter(f"{text!r}: the tag or digest is empty", param_hint="ARTIFACT")
    project, repository = split_repository(name)
    return project, repository, reference
