"""``os-release`` (https://www.freedesktop.org/software/systemd/man/os-release.html): which
distribution and release an image is, so its OS packages can be matched in the right OSV
ecosystem.

The file is shell-compatible ``KEY=value`` lines, values optionally in single or double quotes
(double-quoted ones may escape ``"``, ``\\``, ``$`` and backquote with a backslash). It is read
without a shell: anything that is not a plain assignment is skipped.
"""

from __future__ import annotations

import re

from portside.scanner.model import OSRelease

__all__ = ["MAX_BYTES", "OS_RELEASE_PATHS", "parse_os_release"]

# Where the file lives, in the order the spec says to look: /etc first, then /usr/lib.
OS_RELEASE_PATHS = ("etc/os-release", "usr/lib/os-release")
MAX_BYTES = 64 * 1024  # real files are under 1 KiB
_MAX_VALUE = 256  # each field we keep is a short identifier or title

_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)")
_ESCAPED = re.compile(r'\\([\\"$`])')


def _unquote(raw: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return _ESCAPED.sub(r"\1", value[1:-1])
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    return value


def parse_os_release(data: bytes) -> OSRelease | None:
    """The release described by ``data``, or None when it names no distribution (``ID``)."""
    fields: dict[str, str] = {}
    for line in data[:MAX_BYTES].decode("utf-8", errors="replace").splitlines():
        match = _ASSIGNMENT.fullmatch(line.strip())
        if match is not None:
            fields[match.group(1)] = _unquote(match.group(2))[:_MAX_VALUE]
    distro = fields.get("ID", "").strip().lower()
    if not distro:
        return None
    return OSRelease(
        id=distro,
        version_id=fields.get("VERSION_ID", "").strip(),
        pretty_name=fields.get("PRETTY_NAME", "").strip(),
    )
