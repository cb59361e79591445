"""The access decision: which of the actions a principal asks for on a resource it may have.

Every request on ``/v2/`` and every token request passes through :class:`AccessPolicy`, so
policy lives in one place. Scopes follow the Docker token spec: ``type:name:action[,action]``,
for example ``repository:library/alpine:pull,push`` or ``registry:catalog:*``.

The policy itself is :class:`portside.auth.policy.ProjectPolicy`; this module holds the
vocabulary it and its callers share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ACTIONS",
    "ANONYMOUS",
    "SCANNER",
    "Principal",
    "Scope",
    "ScopeError",
]

# "*" is what docker/skopeo ask for when deleting; it means every action.
ACTIONS = frozenset({"pull", "push", "delete", "*"})
RESOURCE_TYPES = frozenset({"repository", "registry"})


class ScopeError(ValueError):
    """A scope string that does not follow ``type:name:actions``."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``name`` is the username, or a robot's full name with its prefix;
    ``version`` is a robot's secret version, or a fingerprint of a user's password hash
    (:func:`portside.auth.accounts.password_version`); tokens carry it, so refreshing the
    secret or changing the password revokes them.

    ``scanner`` is an external scanner adapter holding a short-lived token Portside minted for
    one scan: it may pull exactly the manifests and blobs the token lists, nothing else."""

    kind: Literal["user", "robot", "anonymous", "scanner"]
    name: str
    id: int | None = None
    is_admin: bool = False
    version: int = 0

    @property
    def is_authenticated(self) -> bool:
        return self.kind != "anonymous"

    @property
    def is_robot(self) -> bool:
        return self.kind == "robot"


ANONYMOUS = Principal("anonymous", "")
SCANNER = Principal("scanner", "portside-scanner")


@dataclass(frozen=True, slots=True)
class Scope:
    type: str
    name: str
    actions: frozenset[str]

    @classmethod
    def parse(cls, value: str) -> Scope:
        kind, _, rest = value.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind not in RESOURCE_TYPES or not name or not actions or len(value) > 512:
            raise ScopeError(f"invalid scope {value[:100]!r}")
        parsed = frozenset(a for a in actions.split(",") if a)
        return cls(kind, name, parsed & ACTIONS)

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"

    def allows(self, action: str) -> bool:
        return action in self.actions or "*" in self.actions
