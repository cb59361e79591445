"""Digests as defined by the OCI image spec (descriptor.md#digests).

Only the registered algorithms we can verify are accepted: sha256 and sha512. Anything else is
refused as ``DIGEST_INVALID`` (or ``UNSUPPORTED`` for a well-formed but unknown algorithm).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from portside.oci.errors import ErrorCode, RegistryError

__all__ = ["ALGORITHMS", "Digest", "DigestError", "new_hasher", "parse_digest"]

# hex length per algorithm; lower-case hex only, as the spec requires for these two
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
# Every digest Portside accepts, in one match: the common case of every blob and manifest
# request. Anything else is taken apart below to say what is wrong with it.
_ACCEPTED = re.compile(r"(sha256):([0-9a-f]{64})|(sha512):([0-9a-f]{128})")


class DigestError(ValueError):
    """The string is not a digest Portside accepts."""

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Validate ``value`` (``algorithm:hex``). Raises :class:`DigestError`."""
        accepted = _ACCEPTED.fullmatch(value)
        if accepted is not None:
            return cls(accepted[1], accepted[2]) if accepted[1] else cls(accepted[3], accepted[4])
        if len(value) > 150 or not _GRAMMAR.match(value):
            raise DigestError("invalid digest format")
        algorithm = value.partition(":")[0]
        expected = ALGORITHMS.get(algorithm)
        if expected is None:
            raise DigestError(f"unsupported digest algorithm {algorithm!r}", unsupported=True)
        # A known algorithm that _ACCEPTED refused: the hex part is what is wrong.
        raise DigestError(f"{algorithm} digest must be {expected} lower-case hex characters")

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def new_hasher(algorithm: str = "sha256") -> Any:
    """A fresh incremental hasher for one of :data:`ALGORITHMS`."""
    if algorithm not in ALGORITHMS:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}", unsupported=True)
    return hashlib.new(algorithm)


def parse_digest(value: str) -> Digest:
    """A digest from a request. Raises ``DIGEST_INVALID`` (400), also for algorithms we do not
    support, as the spec asks of pushes ("Pushing blobs")."""
    try:
        return Digest.parse(value)
    except DigestError as exc:
        raise RegistryError(ErrorCode.DIGEST_INVALID, str(exc)) from None
