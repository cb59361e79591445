"""Harbor's labels: named, coloured tags that users attach to artifacts.

A label is global (scope ``"g"``, no project; managed by system admins and visible to every
user) or belongs to one project (scope ``"p"``; managed by its Maintainers and up). Names are
unique within their scope and project. Deleting a label detaches it from every artifact in the
same transaction (``artifact_labels`` also cascades in the schema), and deleting a project
deletes its labels.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, UnaryExpression, and_, delete, func, select
from sqlalchemy.exc import IntegrityError

from portside.db.engine import Database
from portside.db.queries import now
from portside.db.tables import artifact_labels, labels

__all__ = [
    "MAX_DESCRIPTION_LENGTH",
    "MAX_NAME_LENGTH",
    "Label",
    "LabelConflict",
    "LabelScope",
    "Labels",
    "label_problem",
]

LabelScope = Literal["g", "p"]

MAX_NAME_LENGTH = 128  # Harbor's limit
MAX_DESCRIPTION_LENGTH = 1024
_HEX = frozenset("0123456789abcdefABCDEF")


class LabelConflict(Exception):
    """Another label of the same scope (and project) already has this name."""


@dataclass(frozen=True, slots=True)
class Label:
    id: int
    name: str
    description: str
    color: str
    scope: LabelScope
    project_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


def _printable(value: str) -> bool:
    return value.isprintable()


def label_problem(name: str, description: str | None, color: str | None) -> str | None:
    """Why these values cannot make a label, or None when they can.

    Harbor asks only for a 1-128 character name; control characters are refused too, since
    names show up in the UI, logs and audit entries. Colours are CSS hex colours (``#fff``,
    ``#ffffff``, or with alpha), as Harbor's UI picks them, or empty."""
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        return f"label name must be 1-{MAX_NAME_LENGTH} characters long"
    if not _printable(name) or name.strip() != name:
        return "label name must not contain control characters or surrounding spaces"
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        return f"description must be at most {MAX_DESCRIPTION_LENGTH} characters long"
    if color:
        digits = color[1:]
        if color[0] != "#" or len(digits) not in (3, 4, 6, 8) or not set(digits) <= _HEX:
            return "color must be a hex colour such as #61717D"
    return None


_COLUMNS = (
    labels.c.id,
    labels.c.name,
    labels.c.description,
    labels.c.color,
    labels.c.scope,
    labels.c.project_id,
    labels.c.created_at,
    labels.c.updated_at,
)


def _label(row: Any) -> Label:
    return Label(
        int(row.id),
        row.name,
        row.description or "",
        row.color or "",
        "g" if row.scope == "g" else "p",
        int(row.project_id) if row.project_id is not None else None,
        row.created_at,
        row.updated_at,
    )


def _same_place(scope: LabelScope, project_id: int | None) -> ColumnElement[bool]:
    if scope == "g":
        return labels.c.scope == "g"
    return and_(labels.c.scope == "p", labels.c.project_id == project_id)


def _name_taken(
    connection: Connection,
    name: str,
    scope: LabelScope,
    project_id: int | None,
    except_id: int | None,
) -> bool:
    query = select(labels.c.id).where(_same_place(scope, project_id), labels.c.name == name)
    if except_id is not None:
        query = query.where(labels.c.id != except_id)
    return connection.scalar(query.limit(1)) is not None


class Labels:
    """Label rows. Validate values with :func:`label_problem` first; access is the caller's
    business (the API asks :mod:`portside.api.harbor.access`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, label_id: int) -> Label | None:
        query = select(*_COLUMNS).where(labels.c.id == label_id)
        row = await self._db.read(lambda c: c.execute(query).first())
        return _label(row) if row is not None else None

    async def list(
        self,
        scope: LabelScope,
        project_id: int | None,
        where: Sequence[ColumnElement[bool]],
        order: Sequence[UnaryExpression[Any]],
        offset: int,
        limit: int,
    ) -> tuple[int, list[Label]]:
        """One page of the labels of a scope (and project), and how many match in all."""
        conditions = [_same_place(scope, project_id), *where]
        count = select(func.count()).select_from(labels).where(*conditions)
        page = (
            select(*_COLUMNS)
            .where(*conditions)
            .order_by(*order, labels.c.id)
            .offset(offset)
            .limit(limit)
        )

        def run(connection: Connection) -> tuple[int, list[Label]]:
            total = int(connection.scalar(count) or 0)
            rows = connection.execute(page).all() if total > offset else []
            return total, [_label(row) for row in rows]

        return await self._db.read(run)

    async def create(
        self,
        name: str,
        description: str | None,
        color: str | None,
        scope: LabelScope,
        project_id: int | None,
    ) -> int:
        """Insert a label and return its id; :class:`LabelConflict` when the name is taken."""
        stamp = now()
        owner = project_id if scope == "p" else None

        def insert(connection: Connection) -> int:
            if _name_taken(connection, name, scope, owner, None):
                raise LabelConflict(f"a label named {name!r} already exists")
            result = connection.execute(
                labels.insert().values(
                    name=name,
                    description=description or None,
                    color=color or None,
                    scope=scope,
                    project_id=owner,
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
            assert result.inserted_primary_key is not None
            return int(result.inserted_primary_key[0])

        try:
            return await self._db.write(insert)
        except IntegrityError:  # lost a race for the same name
            raise LabelConflict(f"a label named {name!r} already exists") from None

    async def update(
        self, label_id: int, name: str, description: str | None, color: str | None
    ) -> Label | None:
        """Replace name, description and colour (Harbor's PUT replaces all three); scope and
        project never change. None when the label does not exist."""
        stamp = now()

        def change(connection: Connection) -> Label | None:
            row = connection.execute(select(*_COLUMNS).where(labels.c.id == label_id)).first()
            if row is None:
                return None
            current = _label(row)
            if _name_taken(connection, name, current.scope, current.project_id, label_id):
                raise LabelConflict(f"a label named {name!r} already exists")
            connection.execute(
                labels.update()
                .where(labels.c.id == label_id)
                .values(
                    name=name,
                    description=description or None,
                    color=color or None,
                    updated_at=stamp,
                )
            )
            return Label(
                current.id,
                name,
                description or "",
                color or "",
                current.scope,
                current.project_id,
                current.created_at,
                stamp,
            )

        try:
            return await self._db.write(change)
        except IntegrityError:
            raise LabelConflict(f"a label named {name!r} already exists") from None

    async def delete(self, label_id: int) -> bool:
        """Detach the label from every artifact and delete it; False when it did not exist."""

        def remove(connection: Connection) -> bool:
            connection.execute(
                delete(artifact_labels).where(artifact_labels.c.label_id == label_id)
            )
            return connection.execute(delete(labels).where(labels.c.id == label_id)).rowcount > 0

        return await self._db.write(remove)
