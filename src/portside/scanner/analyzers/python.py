"""Installed Python distributions: ``*.dist-info/METADATA``, ``*.egg-info/PKG-INFO`` and the
bare ``*.egg-info`` files old distutils installs wrote, directly inside a ``site-packages`` or
``dist-packages`` directory anywhere in the image.

Only distributions sitting directly in such a directory count: copies vendored inside another
package (``setuptools/_vendor/*.dist-info``) are not importable under their own name and would
otherwise be reported twice. The files use the core metadata format
(https://packaging.python.org/en/latest/specifications/core-metadata/), which is email headers.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import logging
import re

from portside.scanner.model import Package
from portside.scanner.purl import make_purl

__all__ = ["PythonAnalyzer"]

log = logging.getLogger(__name__)

_SITE_DIRS = ("site-packages", "dist-packages")
_MAX_LICENSE = 100  # a longer ``License`` header is the whole license text, not its name
# Real header blocks stay under a few tens of KiB; the cap keeps a hostile one (a million
# one-line headers) from costing seconds in the email parser.
_MAX_HEADER_BYTES = 256 * 1024
# https://packaging.python.org/en/latest/specifications/name-normalization/
_VALID_NAME = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")


def _is_metadata_path(path: str) -> bool:
    parts = path.split("/")
    if len(parts) >= 3 and parts[-3] in _SITE_DIRS:
        return (parts[-2].endswith(".dist-info") and parts[-1] == "METADATA") or (
            parts[-2].endswith(".egg-info") and parts[-1] == "PKG-INFO"
        )
    return len(parts) >= 2 and parts[-2] in _SITE_DIRS and parts[-1].endswith(".egg-info")


def normalize_name(name: str) -> str:
    """PEP 503 normalisation, which the pypi purl type also uses."""
    return re.sub(r"[-_.]+", "-", name).lower()


class PythonAnalyzer:
    name = "python"
    max_bytes = 4 * 1024 * 1024

    def wants(self, path: str, size: int, mode: int) -> bool:
        return size <= self.max_bytes and _is_metadata_path(path)

    def parse(self, path: str, data: bytes) -> list[Package]:
        # The headers end at the first blank line; the long description after it can be large
        # and is of no interest. Name and Version come first in every tool's output.
        head = data[:_MAX_HEADER_BYTES].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
        text = head.decode("utf-8", errors="replace")
        headers = email.parser.Parser(policy=email.policy.compat32).parsestr(text, headersonly=True)
        name = (headers.get("Name") or "").strip()
        version = (headers.get("Version") or "").strip()
        if not _VALID_NAME.fullmatch(name) or not version or any(c.isspace() for c in version):
            log.debug("python metadata without a usable name and version", extra={"path": path})
            return []
        return [
            Package(
                name=name,
                version=version,
                ecosystem="PyPI",
                path=path,
                purl=make_purl("pypi", normalize_name(name), version),
                licenses=_licenses(headers.get_all("License-Expression") or [], headers),
            )
        ]


def _licenses(expressions: list[str], headers: email.message.Message) -> tuple[str, ...]:
    """``License-Expression`` (metadata 2.4) when present, else a short ``License`` header,
    else the names in ``License ::`` classifiers."""
    if expressions:
        return (str(expressions[0]).strip(),)
    declared = str(headers.get("License") or "").strip()
    is_name = len(declared) <= _MAX_LICENSE and "\n" not in declared
    if is_name and declared.upper() not in ("", "UNKNOWN"):
        return (declared,)
    names = []
    for classifier in headers.get_all("Classifier") or []:
        levels = [level.strip() for level in str(classifier).split("::")]
        if len(levels) >= 2 and levels[0] == "License" and levels[-1] != "OSI Approved":
            names.append(levels[-1])
    return tuple(names)
