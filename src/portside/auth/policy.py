"""The access policy: what a principal may do in a project. Every decision is made here.

- A system admin may do everything.
- A user gets the union of the roles it holds in the project, directly or through groups.
- A robot gets exactly the permissions listed for that project (or for ``*``).
- Everyone, anonymous callers included, gets read and pull on a public project.
- Nothing else is allowed.

Decisions are asked on every request, so the permission set of each (principal, project) is
cached for ``cache_ttl`` seconds: a removed member or changed robot loses access within that
time on other replicas, and at once on the replica that made the change (which calls
:meth:`forget`).
"""

from __future__ import annotations

from portside.auth.access import Principal, Scope
from portside.auth.rbac import PUBLIC_PERMISSIONS, V2_ACTIONS, Permission, permissions_of
from portside.auth.robots import Robots
from portside.projects.members import Members
from portside.projects.projects import Project, Projects, project_of
from portside.registry.cache import LRUCache

__all__ = ["ProjectPolicy"]

_NOTHING: frozenset[Permission] = frozenset()


class ProjectPolicy:
    def __init__(
        self, projects: Projects, members: Members, robots: Robots, cache_ttl: float
    ) -> None:
        self._projects = projects
        self._members = members
        self._robots = robots
        self._cache: LRUCache[tuple[str, int | None, int], frozenset[Permission]] = LRUCache(
            100_000, cache_ttl
        )

    async def permissions(self, principal: Principal, project: Project) -> frozenset[Permission]:
        """Everything ``principal`` may do in ``project`` (admins: see :meth:`allows`)."""
        key = (principal.kind, principal.id, project.id)
        cached = self._cache.get(key)
        if cached is not None:
            return cached

        async def decide() -> frozenset[Permission]:
            granted = _NOTHING
            if principal.kind == "user" and principal.id is not None:
                roles = await self._members.roles_of_user(principal.id, project.id)
                granted = permissions_of(roles)
            elif principal.kind == "robot" and principal.id is not None:
                granted = await self._robots.permissions_in(principal.id, project.name)
            if project.public:
                granted = granted | PUBLIC_PERMISSIONS
            return granted

        granted = await self._cache.fetch(key, decide)
        assert granted is not None  # decide() never answers None
        return granted

    async def allows(self, principal: Principal, project: Project, permission: Permission) -> bool:
        if principal.is_admin:
            return True
        return permission in await self.permissions(principal, project)

    async def granted(self, principal: Principal, scope: Scope) -> frozenset[str]:
        """The subset of a ``/v2/`` token scope's actions that ``principal`` may perform."""
        if scope.type == "registry":
            # Anyone may ask for the catalog; it lists only what the caller may see.
            return scope.actions if scope.name == "catalog" else frozenset()
        if principal.is_admin:
            return scope.actions
        if principal.kind == "scanner":
            # Only ever from a token Portside minted for one scan; the token itself (checked
            # by the caller) limits it to one repository and to the artifact's digests.
            return scope.actions & {"pull"}
        project = await self._projects.get(project_of(scope.name))
        if project is None:
            return frozenset()
        permissions = await self.permissions(principal, project)
        return frozenset(a for a in scope.actions if V2_ACTIONS.get(a) in permissions)

    async def visible_project_ids(self, principal: Principal) -> set[int] | None:
        """Projects whose repositories ``principal`` may list; None means all of them."""
        if principal.is_admin:
            return None
        visible = await self._projects.public_ids()
        if principal.kind == "user" and principal.id is not None:
            visible |= await self._members.projects_of_user(principal.id)
        elif principal.kind == "robot" and principal.id is not None:
            namespaces = await self._robots.namespaces(principal.id)
            visible |= await self._projects.ids_of(namespaces) if namespaces else set()
        return visible

    def forget(self) -> None:
        """Drop every cached decision after a local change to members, projects or robots."""
        self._cache.clear()
