"""Read-only mode: while the ``read_only`` configuration is on, nothing may change.

One ASGI middleware in front of everything refuses every write (POST, PUT, PATCH, DELETE) on
``/v2/`` and ``/api/v2.0`` with 403 and the error code ``DENIED``, as Harbor does (its message
too, which ``docker push`` prints). Reads keep working. Exempt: ``PUT /api/v2.0/configurations``,
so an admin can switch the mode off again, token requests (``/service/token``) and UI log-in and
log-out (``/c/``), none of which change stored content.

The mode comes from the cached configuration, so checking it costs no database query.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from portside.system.configurations import Configurations

__all__ = ["READ_ONLY_MESSAGE", "ReadOnlyGuard"]

READ_ONLY_MESSAGE = "The system is in read only mode. Any modification is prohibited."
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_GUARDED_PREFIXES = ("/v2/", "/api/v2.0/")
_EXEMPT = frozenset({("PUT", "/api/v2.0/configurations")})
_BODY = json.dumps({"errors": [{"code": "DENIED", "message": READ_ONLY_MESSAGE}]}).encode()


class ReadOnlyGuard:
    def __init__(self, app: ASGIApp, configurations: Configurations) -> None:
        self._app = app
        self._configurations = configurations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        # Every request refreshes the cached configuration when it is stale, which also keeps
        # synchronous readers (token lifetimes) current.
        config = await self._configurations.get()
        if config.read_only and _is_guarded_write(scope["method"], scope["path"]):
            await _refuse(send)
            return
        await self._app(scope, receive, send)


def _is_guarded_write(method: str, path: str) -> bool:
    if method not in _WRITES or not path.startswith(_GUARDED_PREFIXES):
        return False
    return (method, path.rstrip("/")) not in _EXEMPT


async def _refuse(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _BODY})
