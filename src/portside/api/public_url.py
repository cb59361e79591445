"""The URL clients reach Portside by, for the token realm and other absolute URLs it hands out.

A client sends its credentials to the realm of a Bearer challenge, so the realm must never
follow a header a caller chose. In order:

1. ``server.public_url``, when configured;
2. the request's ``X-Forwarded-Host`` (only with ``server.trusted_proxies`` set) or ``Host``,
   but only a value that ``server.public_hosts`` lists;
3. otherwise the address the request arrived on: the server's own socket address.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from portside.config import ServerSettings

__all__ = ["base_url"]


def _listed(value: str | None, settings: ServerSettings) -> str | None:
    """``value`` (``host`` or ``host:port``) if ``server.public_hosts`` names it, else None.
    An entry without a port allows any port of that host."""
    if not value:
        return None
    host = value.strip().lower()
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    for entry in settings.public_hosts:
        if entry.lower() in (host, name):
            return host
    return None


def _arrived_on(connection: HTTPConnection, settings: ServerSettings) -> str:
    server = connection.scope.get("server")
    host, port = (server[0], server[1]) if server else (settings.host, settings.port)
    if port is None:
        return host  # a Unix socket: no port to name
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def base_url(connection: HTTPConnection) -> str:
    """``scheme://host[:port]``, without a trailing slash."""
    settings: ServerSettings = connection.app.state.services.settings.server
    if settings.public_url:
        return str(settings.public_url).rstrip("/")
    host = None
    if settings.trusted_proxies:
        forwarded = connection.headers.get("x-forwarded-host")
        host = _listed(forwarded.split(",", 1)[0] if forwarded else None, settings)
    host = host or _listed(connection.headers.get("host"), settings)
    # The scheme is the connection's, or X-Forwarded-Proto from a trusted proxy (uvicorn).
    return f"{connection.url.scheme}://{host or _arrived_on(connection, settings)}"
