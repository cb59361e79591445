"""Turning the licence strings analyzers find into SPDX license expressions, or nothing.

Package metadata says licences many ways: SPDX expressions (``MIT OR Apache-2.0``), Debian
copyright short names (``GPL-2+``, ``Expat``), free text (``BSD License``). An SBOM may only carry
an expression whose every identifier is on the SPDX License List, or a ``LicenseRef-`` it also
defines, so a string is kept only when every identifier in it is one we know is on the list
(:data:`KNOWN_IDS`, checked against the list shipped with the official CycloneDX schema by the
tests) or a well-known alias of one; anything else yields ``None`` and the SBOM writers say
NOASSERTION (SPDX) or keep the raw text as a licence *name* (CycloneDX), never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["KNOWN_EXCEPTIONS", "KNOWN_IDS", "spdx_expression", "spdx_id"]

# Current (non-deprecated) SPDX License List identifiers seen in distribution and language
# packages. Kept short on purpose: an identifier missing here only costs a NOASSERTION.
KNOWN_IDS = frozenset(
    [
        "0BSD",
        "AFL-2.1",
        "AFL-3.0",
        "AGPL-3.0-only",
        "AGPL-3.0-or-later",
        "Apache-1.1",
        "Apache-2.0",
        "Artistic-1.0",
        "Artistic-1.0-Perl",
        "Artistic-2.0",
        "BSD-1-Clause",
        "BSD-2-Clause",
        "BSD-3-Clause",
        "BSD-4-Clause",
        "BSL-1.0",
        "CC-BY-3.0",
        "CC-BY-4.0",
        "CC-BY-SA-3.0",
        "CC-BY-SA-4.0",
        "CC0-1.0",
        "CDDL-1.0",
        "CDDL-1.1",
        "EPL-1.0",
        "EPL-2.0",
        "EUPL-1.2",
        "FTL",
        "GFDL-1.2-only",
        "GFDL-1.2-or-later",
        "GFDL-1.3-only",
        "GFDL-1.3-or-later",
        "GPL-1.0-only",
        "GPL-1.0-or-later",
        "GPL-2.0-only",
        "GPL-2.0-or-later",
        "GPL-3.0-only",
        "GPL-3.0-or-later",
        "HPND",
        "ICU",
        "IJG",
        "ISC",
        "LGPL-2.0-only",
        "LGPL-2.0-or-later",
        "LGPL-2.1-only",
        "LGPL-2.1-or-later",
        "LGPL-3.0-only",
        "LGPL-3.0-or-later",
        "Libpng",
        "MIT",
        "MIT-0",
        "MPL-1.1",
        "MPL-2.0",
        "MS-PL",
        "NCSA",
        "OFL-1.1",
        "OpenSSL",
        "PHP-3.01",
        "PostgreSQL",
        "PSF-2.0",
        "Python-2.0",
        "Ruby",
        "Sleepycat",
        "Unicode-DFS-2016",
        "Unlicense",
        "Vim",
        "W3C",
        "WTFPL",
        "X11",
        "Zlib",
        "ZPL-2.1",
        "bzip2-1.0.6",
        "curl",
        "libtiff",
    ]
)

KNOWN_EXCEPTIONS = frozenset(
    [
        "Autoconf-exception-3.0",
        "Bison-exception-2.2",
        "Classpath-exception-2.0",
        "GCC-exception-3.1",
        "LLVM-exception",
    ]
)

_BY_FOLDED = {identifier.casefold(): identifier for identifier in KNOWN_IDS}
_EXCEPTIONS_BY_FOLDED = {identifier.casefold(): identifier for identifier in KNOWN_EXCEPTIONS}

# Whole-string spellings that are not SPDX but name exactly one SPDX licence.
_ALIASES = {
    "expat": "MIT",
    "mit license": "MIT",
    "the mit license": "MIT",
    "apache 2.0": "Apache-2.0",
    "apache-2": "Apache-2.0",
    "apache 2": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache software license 2.0": "Apache-2.0",
    "isc license": "ISC",
    "zlib license": "Zlib",
    "psf": "PSF-2.0",
    "public domain (cc0-1.0)": "CC0-1.0",
}

# Debian's and the old SPDX GNU names: ``GPL-2``, ``GPL-2.0``, ``LGPL-2.1+``, ``GPL-3.0+``.
_GNU = re.compile(r"^(A?GPL|LGPL|GFDL)-?(\d)(?:\.(\d))?(\+)?$", re.IGNORECASE)
_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.+-]+)")
_MAX_LENGTH = 512


def _gnu_id(text: str) -> str | None:
    match = _GNU.match(text)
    if match is None:
        return None
    family, major, minor, plus = match.groups()
    family = family.upper()
    suffix = "-or-later" if plus else "-only"
    candidate = f"{family}-{major}.{minor or '0'}{suffix}"
    return candidate if candidate in KNOWN_IDS else None


def spdx_id(text: str) -> str | None:
    """The SPDX identifier ``text`` names (any case, known aliases), else None."""
    text = text.strip()
    folded = text.casefold()
    return _BY_FOLDED.get(folded) or _ALIASES.get(folded) or _gnu_id(text)


def _tokens(text: str) -> list[str] | None:
    tokens: list[str] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            return None
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _expression(text: str) -> str | None:
    """Checks ``license-id [WITH exception] ((AND|OR) ...)`` with parentheses, token by token,
    and rewrites each identifier to its canonical spelling."""
    tokens = _tokens(text)
    if not tokens:
        return None
    out: list[str] = []
    depth = 0
    want_operand = True
    index = 0
    while index < len(tokens):
        token, upper = tokens[index], tokens[index].upper()
        if want_operand and token == "(":
            depth += 1
            out.append(token)
        elif want_operand:
            identifier = spdx_id(token)
            if identifier is None:
                return None
            out.append(identifier)
            want_operand = False
            if index + 1 < len(tokens) and tokens[index + 1].upper() == "WITH":
                following = tokens[index + 2] if index + 2 < len(tokens) else ""
                exception = _EXCEPTIONS_BY_FOLDED.get(following.casefold())
                if exception is None:
                    return None
                out += ["WITH", exception]
                index += 2
        elif token == ")":
            depth -= 1
            if depth < 0:
                return None
            out.append(token)
        elif upper in ("AND", "OR"):
            out.append(upper)
            want_operand = True
        else:
            return None
        index += 1
    if want_operand or depth:
        return None
    return " ".join(out).replace("( ", "(").replace(" )", ")")


def spdx_expression(licenses: Iterable[str]) -> str | None:
    """One SPDX expression for all of a package's licence strings (joined with AND, since a
    package listing several licences is under all of them), or None when any is not a known
    SPDX identifier or an expression of them."""
    parts: list[str] = []
    for text in licenses:
        if len(text) > _MAX_LENGTH:
            return None
        expression = spdx_id(text) or _expression(text)
        if expression is None:
            return None
        if expression not in parts:
            parts.append(expression)
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return " AND ".join(f"({part})" if " " in part else part for part in parts)
