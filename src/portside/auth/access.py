"""The access decision: which of the actions a principal asks for on a resource it may have.

Every request on ``/v2/`` and every token request passes through :class:`AccessPolicy`, so
policy lives in one place. Scopes follow the Docker token spec: ``type:name:action[,action]``,
for example ``repository:library/alpine:pull,push`` or ``registry:catalog:*``.

Issue 2's policy is :class:`AdminOnlyPolicy`: the system admin may do everything, everyone else
nothing. Projects and roles replace it with a policy that reads memberships; its interface stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "ACTIONS",
    "ANONYMOUS",
    "AccessPolicy",
    "AdminOnlyPolicy",
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
    kind: Literal["user", "anonymous"]
    name: str
    user_id: int | None = None
    is_admin: bool = False

    @property
    def is_authenticated(self) -> bool:
        return self.kind != "anonymous"


ANONYMOUS = Principal("anonymous", "")


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


class AccessPolicy(Protocol):
    async def granted(self, principal: Principal, scope: Scope) -> frozenset[str]:
        """The subset of ``scope.actions`` that ``principal`` may perform on ``scope``'s
        resource. Must deny (return an empty set) anything it does not explicitly allow."""
        ...


class AdminOnlyPolicy:
    """The system admin may do everything; every other principal nothing."""

    async def granted(self, principal: Principal, scope: Scope) -> frozenset[str]:
        if principal.is_admin:
            return scope.actions
        return frozenset()
