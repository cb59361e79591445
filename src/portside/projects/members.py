"""Project membership: which roles a user holds in a project, directly or through groups, and
the members list that project admins manage.

A member is a user (``entity_type`` "u") or a user group ("g") with one of Harbor's five roles.
Changes here affect access decisions; callers drop the access policy's cache afterwards
(:meth:`portside.auth.policy.ProjectPolicy.forget`) so they take effect at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, and_, bindparam, delete, func, or_, select, update

from portside.auth.rbac import Role
from portside.db.engine import Database
from portside.db.queries import insert_ignore, now
from portside.db.tables import project_members, usergroup_users, usergroups, users

__all__ = ["EntityType", "Member", "Members"]

EntityType = Literal["u", "g"]

_GROUPS_OF_USER = select(usergroup_users.c.group_id).where(
    usergroup_users.c.user_id == bindparam("user_id")
)
_MEMBER_CLAUSE = or_(
    and_(
        project_members.c.entity_type == "u",
        project_members.c.entity_id == bindparam("user_id"),
    ),
    and_(
        project_members.c.entity_type == "g",
        project_members.c.entity_id.in_(_GROUPS_OF_USER.scalar_subquery()),
    ),
)
_ROLES_IN_PROJECT = select(project_members.c.role).where(
    project_members.c.project_id == bindparam("project_id"), _MEMBER_CLAUSE
)
_PROJECTS_OF_USER = select(project_members.c.project_id).where(_MEMBER_CLAUSE).distinct()

# A member's name is its user's username or its group's name, whichever it is.
_ENTITY_NAME = func.coalesce(users.c.username, usergroups.c.group_name)
_MEMBERS = (
    select(
        project_members.c.id,
        project_members.c.project_id,
        project_members.c.entity_id,
        project_members.c.entity_type,
        project_members.c.role,
        _ENTITY_NAME.label("entity_name"),
    )
    .select_from(
        project_members.outerjoin(
            users,
            and_(project_members.c.entity_type == "u", users.c.id == project_members.c.entity_id),
        ).outerjoin(
            usergroups,
            and_(
                project_members.c.entity_type == "g",
                usergroups.c.id == project_members.c.entity_id,
            ),
        )
    )
    # A member whose user or group was deleted is no member any more.
    .where(_ENTITY_NAME.is_not(None))
)


@dataclass(frozen=True, slots=True)
class Member:
    id: int
    project_id: int
    entity_id: int
    entity_type: EntityType
    entity_name: str
    role: Role


def _member(row: Any) -> Member:
    return Member(
        int(row.id),
        int(row.project_id),
        int(row.entity_id),
        row.entity_type,
        row.entity_name,
        Role(row.role),
    )


class Members:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def roles_of_user(self, user_id: int, project_id: int) -> frozenset[Role]:
        params = {"user_id": user_id, "project_id": project_id}
        rows = await self._db.read(lambda c: list(c.scalars(_ROLES_IN_PROJECT, params)))
        return frozenset(Role(r) for r in rows if r in Role._value2member_map_)

    async def projects_of_user(self, user_id: int) -> set[int]:
        """Ids of the projects ``user_id`` is a member of, directly or through a group."""
        params = {"user_id": user_id}
        return set(await self._db.read(lambda c: list(c.scalars(_PROJECTS_OF_USER, params))))

    async def roles_by_project(
        self, user_id: int, project_ids: Iterable[int]
    ) -> dict[int, frozenset[Role]]:
        """The roles ``user_id`` holds in each of ``project_ids`` (one query for a page)."""
        ids = sorted(set(project_ids))
        if not ids:
            return {}
        query = select(project_members.c.project_id, project_members.c.role).where(
            project_members.c.project_id.in_(ids), _MEMBER_CLAUSE
        )
        rows = await self._db.read(lambda c: list(c.execute(query, {"user_id": user_id})))
        found: dict[int, set[Role]] = {}
        for project_id, role in rows:
            if role in Role._value2member_map_:
                found.setdefault(int(project_id), set()).add(Role(role))
        return {project_id: frozenset(roles) for project_id, roles in found.items()}

    async def list(
        self, project_id: int, name_contains: str | None, offset: int, limit: int
    ) -> tuple[int, list[Member]]:
        """One page of a project's members in name order, and how many there are in all."""
        conditions: list[ColumnElement[bool]] = [project_members.c.project_id == project_id]
        if name_contains:
            conditions.append(_ENTITY_NAME.contains(name_contains, autoescape=True))
        query = _MEMBERS.where(*conditions)

        def run(connection: Connection) -> tuple[int, list[Member]]:
            total = connection.scalar(select(func.count()).select_from(query.subquery()))
            rows = connection.execute(
                query.order_by(_ENTITY_NAME, project_members.c.id).offset(offset).limit(limit)
            )
            return int(total or 0), [_member(row) for row in rows]

        return await self._db.read(run)

    async def get(self, project_id: int, member_id: int) -> Member | None:
        query = _MEMBERS.where(
            project_members.c.project_id == project_id, project_members.c.id == member_id
        )
        row = await self._db.read(lambda c: c.execute(query).first())
        return None if row is None else _member(row)

    async def add(
        self, project_id: int, entity_type: EntityType, entity_id: int, role: Role
    ) -> int | None:
        """Make a user or group a member; its id, or None when it is a member already."""

        def run(connection: Connection) -> int | None:
            stamp = now()
            inserted = insert_ignore(
                connection,
                project_members,
                project_id=project_id,
                entity_id=entity_id,
                entity_type=entity_type,
                role=int(role),
                created_at=stamp,
                updated_at=stamp,
            )
            if not inserted:
                return None
            member_id: int = connection.execute(
                select(project_members.c.id).where(
                    project_members.c.project_id == project_id,
                    project_members.c.entity_type == entity_type,
                    project_members.c.entity_id == entity_id,
                )
            ).scalar_one()
            return member_id

        return await self._db.write(run)

    async def set_role(self, project_id: int, member_id: int, role: Role) -> bool:
        statement = (
            update(project_members)
            .where(project_members.c.project_id == project_id, project_members.c.id == member_id)
            .values(role=int(role), updated_at=now())
        )
        return bool(await self._db.write(lambda c: c.execute(statement).rowcount))

    async def remove(self, project_id: int, member_id: int) -> bool:
        statement = delete(project_members).where(
            project_members.c.project_id == project_id, project_members.c.id == member_id
        )
        return bool(await self._db.write(lambda c: c.execute(statement).rowcount))

    async def count_by_role(self, project_id: int) -> dict[Role, int]:
        """How many members hold each role (every role present, zero when none do)."""
        present = _MEMBERS.where(project_members.c.project_id == project_id).subquery()
        query = select(present.c.role, func.count()).group_by(present.c.role)
        counts = {role: 0 for role in Role}
        for role, count in await self._db.read(lambda c: list(c.execute(query))):
            if role in Role._value2member_map_:
                counts[Role(role)] = int(count)
        return counts

    async def find_user(self, user_id: int | None, username: str | None) -> tuple[int, str] | None:
        """A user's id and name, by id or else by name; None if there is no such user."""
        query = select(users.c.id, users.c.username)
        query = query.where(users.c.id == user_id if user_id else users.c.username == username)
        row = await self._db.read(lambda c: c.execute(query).first())
        return None if row is None else (int(row.id), row.username)

    async def find_group(
        self, group_id: int | None, group_name: str | None, ldap_group_dn: str | None
    ) -> tuple[int, str] | None:
        """A group's id and name, by id, else by name, else by LDAP DN."""
        query = select(usergroups.c.id, usergroups.c.group_name)
        if group_id:
            query = query.where(usergroups.c.id == group_id)
        elif group_name:
            query = query.where(usergroups.c.group_name == group_name)
        else:
            query = query.where(usergroups.c.ldap_group_dn == ldap_group_dn)
        row = await self._db.read(lambda c: c.execute(query).first())
        return None if row is None else (int(row.id), row.group_name)
