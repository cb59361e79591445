"""Harbor's project roles and the permissions each one grants.

A permission is a ``(resource, action)`` pair inside one project, named as Harbor names them
(``repository``/``pull``, ``member``/``create``, ...), so robot permissions written for Harbor
mean the same here. The tables below are the single source of the role model that the access
policy reads. ``docs/permissions.md`` states the same model from Harbor's rules, and tests check
the two agree and that every cell of its tables holds against a running server.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

__all__ = [
    "ACTIONS",
    "PUBLIC_PERMISSIONS",
    "RESOURCES",
    "ROLE_PERMISSIONS",
    "V2_ACTIONS",
    "Permission",
    "Role",
    "permissions_of",
]


class Permission(NamedTuple):
    resource: str
    action: str

    def __str__(self) -> str:
        return f"{self.resource}:{self.action}"


class Role(enum.IntEnum):
    """Harbor's role ids, as they appear in the members API (``role_id``)."""

    PROJECT_ADMIN = 1
    DEVELOPER = 2
    GUEST = 3
    MAINTAINER = 4
    LIMITED_GUEST = 5

    @property
    def harbor_name(self) -> str:
        return _HARBOR_NAMES[self]

    @classmethod
    def from_name(cls, name: str) -> Role:
        for role, harbor_name in _HARBOR_NAMES.items():
            if harbor_name.lower() == name.lower():
                return role
        raise ValueError(f"unknown role {name!r}")


_HARBOR_NAMES = {
    Role.PROJECT_ADMIN: "projectAdmin",
    Role.DEVELOPER: "developer",
    Role.GUEST: "guest",
    Role.MAINTAINER: "maintainer",
    Role.LIMITED_GUEST: "limitedGuest",
}


def _grant(resource: str, *actions: str) -> set[Permission]:
    return {Permission(resource, action) for action in actions}


_CRUD = ("create", "read", "update", "delete", "list")

# Each role is the one below it plus what it adds; the issue and Harbor's rbac_role.go agree.
# Project logs are for ProjectAdmins only, as since Harbor 2.13.
_LIMITED_GUEST = (
    _grant("project", "read")
    | _grant("quota", "read")
    | _grant("repository", "read", "list", "pull")
    | _grant("artifact", "read", "list")
    | _grant("artifact-addition", "read")
    | _grant("tag", "list")
    | _grant("accessory", "list")
    | _grant("scan", "read")
    | _grant("sbom", "read")
    | _grant("scanner", "read")
    | _grant("configuration", "read")
)
_GUEST = (
    _LIMITED_GUEST
    | _grant("member", "read", "list")
    | _grant("label", "read", "list")
    | _grant("robot", "read", "list")
)
_DEVELOPER = (
    _GUEST
    | _grant("repository", "create", "update", "push")
    | _grant("artifact", "create")
    | _grant("tag", "create")
    | _grant("artifact-label", "create", "delete")
    | _grant("export-cve", "create", "read")
)
_MAINTAINER = (
    _DEVELOPER
    | _grant("repository", "delete")
    | _grant("artifact", "delete")
    | _grant("tag", "delete")
    | _grant("scan", "create", "stop")
    | _grant("sbom", "create", "stop")
    | _grant("label", "create", "update", "delete")
    | _grant("metadata", "create", "read", "update", "delete")
    | _grant("immutable-tag", "create", "update", "delete", "list")
    | _grant("tag-retention", *_CRUD, "operate")
    | _grant("notification-policy", "read", "list")
)
_PROJECT_ADMIN = (
    _MAINTAINER
    | _grant("project", "update", "delete")
    | _grant("log", "list")
    | _grant("member", "create", "update", "delete")
    | _grant("robot", "create", "update", "delete")
    | _grant("notification-policy", "create", "update", "delete")
    | _grant("configuration", "update")
    | _grant("scanner", "create")
    | _grant("preheat-policy", *_CRUD)
)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.LIMITED_GUEST: frozenset(_LIMITED_GUEST),
    Role.GUEST: frozenset(_GUEST),
    Role.DEVELOPER: frozenset(_DEVELOPER),
    Role.MAINTAINER: frozenset(_MAINTAINER),
    Role.PROJECT_ADMIN: frozenset(_PROJECT_ADMIN),
}

# What everyone, anonymous callers included, may do in a public project: read and pull.
PUBLIC_PERMISSIONS: frozenset[Permission] = frozenset(
    _grant("project", "read")
    | _grant("repository", "read", "list", "pull")
    | _grant("artifact", "read", "list")
    | _grant("artifact-addition", "read")
    | _grant("tag", "list")
    | _grant("accessory", "list")
    | _grant("scan", "read")
    | _grant("sbom", "read")
)

RESOURCES: frozenset[str] = frozenset(p.resource for p in _PROJECT_ADMIN)
ACTIONS: frozenset[str] = frozenset(p.action for p in _PROJECT_ADMIN)

# The permission each /v2/ token action needs. Docker clients ask for "*" when deleting.
V2_ACTIONS: dict[str, Permission] = {
    "pull": Permission("repository", "pull"),
    "push": Permission("repository", "push"),
    "delete": Permission("repository", "delete"),
    "*": Permission("repository", "delete"),
}


def permissions_of(roles: set[Role] | frozenset[Role]) -> frozenset[Permission]:
    """Everything any of ``roles`` grants (a user may hold one role directly and others through
    groups; Harbor grants the union)."""
    granted: set[Permission] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS[role]
    return frozenset(granted)
