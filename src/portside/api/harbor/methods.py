"""405 Method Not Allowed as RFC 9110 wants it: ``Allow`` names every method the path supports.

Starlette answers 405 from the first route whose path matches, so ``Allow`` listed that one
route's methods (``GET`` for ``/users``, which also takes ``POST``). And a literal path beside a
parameterised one (``/users/current`` beside ``/users/{user_id}``) sent a method only the
parameterised route has to that route, which refused ``current`` as an id with a 400.

The document of the API (``app.openapi()``) is the table of paths and methods, so ``Allow`` says
what the document says. A literal path owns its requests: its methods are those of its own
template, not of a parameterised template that happens to match it too. The check costs one
dictionary look-up per request; the whole table is consulted only to build a 405.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from starlette._utils import get_route_path
from starlette.datastructures import MutableHeaders
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portside.api.harbor.errors import error_response

__all__ = ["AllowedMethods"]

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_PARAMETER = re.compile(r"\{[^}]*\}")


@dataclass(frozen=True, slots=True)
class _Template:
    path: str
    regex: re.Pattern[str]
    parameters: int
    methods: frozenset[str]


class AllowedMethods:
    """ASGI middleware for the management app: see the module's description. ``document``
    returns the app's OpenAPI document (built once, cached by the app)."""

    def __init__(self, app: ASGIApp, document: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.document = document

    @cached_property
    def _templates(self) -> list[_Template]:
        templates = []
        for path, item in self.document().get("paths", {}).items():
            methods = frozenset(m.upper() for m in item if m.upper() in _METHODS)
            regex = compile_path(path)[0]
            templates.append(_Template(path, regex, len(_PARAMETER.findall(path)), methods))
        return templates

    @cached_property
    def _literals(self) -> dict[str, frozenset[str]]:
        """The methods of each literal path that a parameterised template also matches: the
        requests routing would send elsewhere."""
        shadowed = {}
        for template in self._templates:
            if template.parameters:
                continue
            if any(o.parameters and o.regex.match(template.path) for o in self._templates):
                shadowed[template.path] = template.methods
        return shadowed

    def allowed(self, path: str) -> frozenset[str]:
        """Every method ``path`` supports: those of its most literal matching templates."""
        matching = [t for t in self._templates if t.regex.match(path)]
        if not matching:
            return frozenset()
        fewest = min(t.parameters for t in matching)
        return frozenset().union(*(t.methods for t in matching if t.parameters == fewest))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = get_route_path(scope).rstrip("/") or "/"
        own = self._literals.get(path)
        if own is not None and scope["method"] not in own:
            await self._refusal(own)(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = self.allowed(path)
                if methods:
                    MutableHeaders(scope=message)["Allow"] = _spell(methods)
            await send(message)

        await self.app(scope, receive, send_with_allow)

    @staticmethod
    def _refusal(methods: frozenset[str]) -> Any:
        return error_response(405, "Method Not Allowed", headers={"Allow": _spell(methods)})


def _spell(methods: frozenset[str]) -> str:
    return ", ".join(m for m in _METHODS if m in methods)
