"""Package URLs (https://github.com/package-url/purl-spec): the one place that builds them.

Each component is percent-encoded as the spec's "Character encoding" section requires: only
ASCII letters, digits, ``.-_~`` and the colon stay literal, so ``@`` in an npm scope becomes
``%40`` and ``+`` in a Go ``+incompatible`` version becomes ``%2B``. Type-specific case rules
(lowercase pypi and golang names) are the caller's job, since only it knows the type's rules.
"""

from __future__ import annotations

import re
from urllib.parse import quote

__all__ = ["make_purl"]

_LITERAL = re.compile(r"[A-Za-z0-9.\-_~:]*")


def _encode(component: str) -> str:
    # Most components need no encoding; checking first is several times faster than quote().
    return component if _LITERAL.fullmatch(component) else quote(component, safe=":")


def make_purl(
    type_: str,
    name: str,
    version: str = "",
    *,
    namespace: str = "",
    qualifiers: dict[str, str] | None = None,
) -> str:
    """``pkg:type/namespace/name@version?qualifiers``; ``namespace`` may hold several
    ``/``-separated segments (Go module paths), each encoded alone. Empty qualifier values
    are left out, and keys are sorted as the canonical form requires."""
    parts = [f"pkg:{type_}/"]
    segments = [s for s in namespace.split("/") if s]
    if segments:
        parts.append("/".join(_encode(s) for s in segments) + "/")
    parts.append(_encode(name))
    if version:
        parts.append("@" + _encode(version))
    pairs = sorted((k, v) for k, v in (qualifiers or {}).items() if v)
    if pairs:
        parts.append("?" + "&".join(f"{k}={_encode(v)}" for k, v in pairs))
    return "".join(parts)
