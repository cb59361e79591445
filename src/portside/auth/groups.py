"""User groups, and which local users belong to them.

A group can be a member of projects (``project_members`` rows with entity type ``"g"``); the
access policy then grants the group's roles to every user in ``usergroup_users``. Portside has no
LDAP or OIDC yet, so its groups are Harbor's type 2 ("HTTP") groups whose members are managed
here. Callers drop the policy cache after a change to membership, as roles depend on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from portside.db.engine import Database
from portside.db.queries import insert_ignore, now
from portside.db.tables import project_members, usergroup_users, usergroups, users
from portside.text import has_control_characters

__all__ = [
    "GROUP_TYPE_HTTP",
    "GROUP_TYPE_LDAP",
    "GROUP_TYPE_OIDC",
    "GroupConflict",
    "GroupMember",
    "NoSuchAccount",
    "UserGroup",
    "UserGroups",
    "group_name_problem",
]

GROUP_TYPE_LDAP = 1
GROUP_TYPE_HTTP = 2
GROUP_TYPE_OIDC = 3
MAX_GROUP_NAME = 255
MAX_GROUP_DN = 512


class GroupConflict(Exception):
    """Another group already has that name."""


class NoSuchAccount(LookupError):
    """The user or the group of a membership change does not exist."""


@dataclass(frozen=True, slots=True)
class UserGroup:
    id: int
    group_name: str
    group_type: int
    ldap_group_dn: str | None


@dataclass(frozen=True, slots=True)
class GroupMember:
    user_id: int
    username: str


_COLUMNS = (
    usergroups.c.id,
    usergroups.c.group_name,
    usergroups.c.group_type,
    usergroups.c.ldap_group_dn,
)


def _group(row: Any) -> UserGroup:
    return UserGroup(int(row.id), row.group_name, int(row.group_type), row.ldap_group_dn)


def group_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a group, or None when it can."""
    if not 1 <= len(name) <= MAX_GROUP_NAME or not name.strip():
        return f"group_name must be 1-{MAX_GROUP_NAME} characters long and not blank"
    if has_control_characters(name):
        return "group_name must not contain control characters"
    return None


def _name_taken(connection: Connection, name: str, except_id: int | None) -> bool:
    query = select(usergroups.c.id).where(usergroups.c.group_name == name)
    if except_id is not None:
        query = query.where(usergroups.c.id != except_id)
    return connection.scalar(query.limit(1)) is not None


class UserGroups:
    """Stateless apart from the database handle: cheap to build wherever it is needed."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, group_id: int) -> UserGroup | None:
        query = select(*_COLUMNS).where(usergroups.c.id == group_id)
        row = await self._db.read(lambda c: c.execute(query).first())
        return _group(row) if row is not None else None

    async def list_groups(
        self, where: Sequence[ColumnElement[bool]], offset: int, limit: int
    ) -> tuple[int, list[UserGroup]]:
        """One page of the groups matching every condition in ``where`` (by name), and the
        total."""
        count = select(func.count()).select_from(usergroups).where(*where)
        page = (
            select(*_COLUMNS)
            .where(*where)
            .order_by(usergroups.c.group_name, usergroups.c.id)
            .offset(offset)
            .limit(limit)
        )

        def run(connection: Connection) -> tuple[int, list[UserGroup]]:
            total = int(connection.scalar(count) or 0)
            return total, [_group(row) for row in connection.execute(page)] if total else []

        return await self._db.read(run)

    async def create(self, name: str, group_type: int, ldap_group_dn: str | None) -> int:
        stamp = now()

        def insert(connection: Connection) -> int:
            if _name_taken(connection, name, None):
                raise GroupConflict(f"user group {name!r} already exists")
            result = connection.execute(
                usergroups.insert().values(
                    group_name=name,
                    group_type=group_type,
                    ldap_group_dn=ldap_group_dn or None,
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
            assert result.inserted_primary_key is not None
            return int(result.inserted_primary_key[0])

        try:
            return await self._db.write(insert)
        except IntegrityError:  # lost a race for the same name
            raise GroupConflict(f"user group {name!r} already exists") from None

    async def rename(self, group_id: int, name: str) -> UserGroup | None:
        """Give the group a new name; None when it does not exist."""
        statement = (
            update(usergroups)
            .where(usergroups.c.id == group_id)
            .values(group_name=name, updated_at=now())
        )

        def change(connection: Connection) -> UserGroup | None:
            if _name_taken(connection, name, group_id):
                raise GroupConflict(f"user group {name!r} already exists")
            connection.execute(statement)
            row = connection.execute(select(*_COLUMNS).where(usergroups.c.id == group_id))
            found = row.first()
            return _group(found) if found is not None else None

        try:
            return await self._db.write(change)
        except IntegrityError:
            raise GroupConflict(f"user group {name!r} already exists") from None

    async def delete(self, group_id: int) -> UserGroup | None:
        """Delete the group with its project memberships (which reference it by id without a
        foreign key, and a later group could get the same id). Its user list goes with it
        through the foreign key. Returns what was deleted, or None."""

        def remove(connection: Connection) -> UserGroup | None:
            found = connection.execute(select(*_COLUMNS).where(usergroups.c.id == group_id))
            row = found.first()
            if row is None:
                return None
            connection.execute(
                delete(project_members).where(
                    project_members.c.entity_type == "g",
                    project_members.c.entity_id == group_id,
                )
            )
            connection.execute(
                delete(usergroup_users).where(usergroup_users.c.group_id == group_id)
            )
            connection.execute(delete(usergroups).where(usergroups.c.id == group_id))
            return _group(row)

        return await self._db.write(remove)

    async def members(
        self, group_id: int, offset: int, limit: int
    ) -> tuple[int, list[GroupMember]]:
        """One page of the group's users, by username, and their total."""
        joined = usergroup_users.join(users, users.c.id == usergroup_users.c.user_id)
        count = (
            select(func.count()).select_from(joined).where(usergroup_users.c.group_id == group_id)
        )
        page = (
            select(users.c.id, users.c.username)
            .select_from(joined)
            .where(usergroup_users.c.group_id == group_id)
            .order_by(users.c.username)
            .offset(offset)
            .limit(limit)
        )

        def run(connection: Connection) -> tuple[int, list[GroupMember]]:
            total = int(connection.scalar(count) or 0)
            if not total:
                return 0, []
            return total, [
                GroupMember(int(row.id), row.username) for row in connection.execute(page)
            ]

        return await self._db.read(run)

    async def add_member(self, group_id: int, user_id: int) -> bool:
        """Put the user in the group; False when it already was. Raises
        :class:`NoSuchAccount` when the group or the user does not exist."""

        def add(connection: Connection) -> bool:
            _require_both(connection, group_id, user_id)
            return insert_ignore(connection, usergroup_users, group_id=group_id, user_id=user_id)

        try:
            return await self._db.write(add)
        except IntegrityError:  # the user or group was deleted meanwhile
            raise NoSuchAccount(f"user {user_id} or user group {group_id} not found") from None

    async def remove_member(self, group_id: int, user_id: int) -> bool:
        """Take the user out of the group; False when it was not in it."""
        statement = delete(usergroup_users).where(
            usergroup_users.c.group_id == group_id, usergroup_users.c.user_id == user_id
        )
        return bool(await self._db.write(lambda c: c.execute(statement).rowcount))


def _require_both(connection: Connection, group_id: int, user_id: int) -> None:
    if connection.scalar(select(usergroups.c.id).where(usergroups.c.id == group_id)) is None:
        raise NoSuchAccount(f"user group {group_id} not found")
    if connection.scalar(select(users.c.id).where(users.c.id == user_id)) is None:
        raise NoSuchAccount(f"user {user_id} not found")
