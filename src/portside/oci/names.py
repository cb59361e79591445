"""Repository names and tags, as constrained by the distribution spec ("Pulling manifests")."""

from __future__ import annotations

import re

from portside.oci.errors import ErrorCode, RegistryError

__all__ = ["MAX_NAME_LENGTH", "is_tag", "validate_name", "validate_tag"]

MAX_NAME_LENGTH = 255
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise ``NAME_INVALID``."""
    if len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        raise RegistryError(ErrorCode.NAME_INVALID, detail={"name": name[:MAX_NAME_LENGTH]})
    return name


def is_tag(reference: str) -> bool:
    return _TAG.match(reference) is not None


def validate_tag(tag: str) -> str:
    if not is_tag(tag):
        raise RegistryError(ErrorCode.TAG_INVALID, "invalid tag", detail={"tag": tag[:200]})
    return tag
