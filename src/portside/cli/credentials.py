"""Where the client commands find the registry URL, the account to use, and how to trust the
registry's TLS certificate.

``PORTSIDE_URL``, ``PORTSIDE_USERNAME`` and ``PORTSIDE_PASSWORD`` win over the file, so CI jobs
need no ``login`` step and never leave a password on disk. Otherwise ``portside login`` keeps
them in ``$XDG_CONFIG_HOME/portside/credentials.json`` (``~/.config`` by default), readable by
the owner only: the folder is created 0700 and the file 0600 before any secret is written.

TLS trust (:class:`Tls`) comes from ``--ca-bundle``/``--insecure`` (or ``PORTSIDE_CA_BUNDLE``/
``PORTSIDE_INSECURE``, which click reads for those options) and otherwise from what the last
``login`` stored, so a registry with a private CA needs the option once, at login.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import click

__all__ = ["Credentials", "Tls", "credentials_path", "forget", "load", "save"]

_ENV_URL = "PORTSIDE_URL"
_ENV_USERNAME = "PORTSIDE_USERNAME"
_ENV_PASSWORD = "PORTSIDE_PASSWORD"


@dataclass(frozen=True)
class Tls:
    """How to verify the registry's certificate: the system's CAs (the default), the CAs in
    ``ca_bundle`` (a PEM file, absolute path), or not at all (``insecure``)."""

    ca_bundle: str | None = None
    insecure: bool = False

    def over(self, stored: Tls) -> Tls:
        """These settings where given, ``stored`` (the login's) for the rest."""
        return Tls(self.ca_bundle or stored.ca_bundle, self.insecure or stored.insecure)


@dataclass(frozen=True)
class Credentials:
    url: str
    username: str | None
    password: str | None
    tls: Tls = Tls()


def credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "portside" / "credentials.json"


def normalise_url(url: str) -> str:
    """Accept ``host:port`` as well as a full URL; no trailing slash, no API suffix."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"https://{url}"
    for suffix in ("/api/v2.0", "/api"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


def _from_file() -> dict[str, str | bool]:
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise click.ClickException(f"{path} is not a credentials file; run portside login")
    return {k: v for k, v in data.items() if isinstance(v, str | bool)}


def _text(stored: dict[str, str | bool], key: str) -> str | None:
    value = stored.get(key)
    return value if isinstance(value, str) else None


def load(tls: Tls | None = None) -> Credentials:
    """The credentials to use, environment first, with ``tls`` (the command's options) over
    the stored TLS settings. Raises a usage-friendly error when there is no registry URL."""
    stored = _from_file()
    stored_tls = Tls(_text(stored, "ca_bundle"), stored.get("insecure") is True)
    url = os.environ.get(_ENV_URL) or _text(stored, "url")
    if not url:
        raise click.ClickException(
            "not logged in: run 'portside login URL -u USER' or set PORTSIDE_URL"
        )
    from_env = _ENV_USERNAME in os.environ
    username = os.environ.get(_ENV_USERNAME) if from_env else _text(stored, "username")
    password = (
        os.environ.get(_ENV_PASSWORD) if _ENV_PASSWORD in os.environ else _text(stored, "password")
    )
    effective = (tls or Tls()).over(stored_tls)
    return Credentials(normalise_url(url), username or None, password, effective)


def save(credentials: Credentials) -> Path:
    path = credentials_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    stored: dict[str, str | bool | None] = {
        "url": credentials.url,
        "username": credentials.username,
        "password": credentials.password,
    }
    if credentials.tls.ca_bundle is not None:
        stored["ca_bundle"] = credentials.tls.ca_bundle
    if credentials.tls.insecure:
        stored["insecure"] = True
    payload = json.dumps(stored, indent=2)
    # Create with 0600 from the start (no window where the secret is world-readable), and
    # tighten a file an older version may have left with wider rights.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(payload + "\n")
    return path


def forget() -> bool:
    """Remove the stored credentials; False when there were none."""
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return False
    return True
