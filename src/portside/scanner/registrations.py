"""Scanner registrations: the built-in scanner and external adapters (Harbor's pluggable
scanner API), the system default, and each project's choice.

The built-in scanner is a registration like any other, with a fixed uuid and the url
``builtin:``; it is created on start, cannot be changed or deleted (Harbor calls such a
registration immutable), and is the default until an admin picks another.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

from portside.db.engine import Database
from portside.db.queries import as_utc, insert_ignore, now, upsert
from portside.db.tables import project_scanners, scanner_registrations

__all__ = [
    "AUTH_TYPES",
    "BUILTIN_URL",
    "BUILTIN_UUID",
    "Registration",
    "RegistrationConflict",
    "Registrations",
]

BUILTIN_UUID = str(uuid.uuid5(uuid.NAMESPACE_URL, "portside:scanner:builtin"))
BUILTIN_URL = "builtin:"
BUILTIN_NAME = "Portside"
# Harbor's choices: none, HTTP basic ("user:password"), a bearer token, or an API key header.
AUTH_TYPES = ("", "Basic", "Bearer", "X-ScannerAdapter-API-Key")


class RegistrationConflict(Exception):
    """Another registration already has this name or url."""


@dataclass(frozen=True)
class Registration:
    uuid: str
    name: str
    description: str
    url: str
    auth: str
    access_credential: str
    skip_cert_verify: bool
    use_internal_addr: bool
    disabled: bool
    is_default: bool
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def builtin(self) -> bool:
        return self.uuid == BUILTIN_UUID

    @classmethod
    def from_row(cls, row: Any) -> Registration:
        return cls(
            uuid=row.uuid,
            name=row.name,
            description=row.description or "",
            url=row.url,
            auth=row.auth,
            access_credential=row.access_credential,
            skip_cert_verify=row.skip_cert_verify,
            use_internal_addr=row.use_internal_addr,
            disabled=row.disabled,
            is_default=row.is_default,
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
        )


class Registrations:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def ensure_builtin(self, description: str) -> None:
        def create(connection: Connection) -> None:
            stamp = now()
            inserted = insert_ignore(
                connection,
                scanner_registrations,
                uuid=BUILTIN_UUID,
                name=BUILTIN_NAME,
                description=description,
                url=BUILTIN_URL,
                auth="",
                access_credential="",
                skip_cert_verify=False,
                use_internal_addr=True,
                disabled=False,
                is_default=False,
                created_at=stamp,
                updated_at=stamp,
            )
            if inserted and not connection.scalar(
                select(scanner_registrations.c.uuid).where(scanner_registrations.c.is_default)
            ):
                connection.execute(
                    update(scanner_registrations)
                    .where(scanner_registrations.c.uuid == BUILTIN_UUID)
                    .values(is_default=True)
                )

        await self._db.write(create)

    async def list(self) -> list[Registration]:
        rows = await self._db.read(
            lambda c: c.execute(
                select(scanner_registrations).order_by(scanner_registrations.c.id)
            ).all()
        )
        return [Registration.from_row(row) for row in rows]

    async def get(self, registration_uuid: str) -> Registration | None:
        row = await self._db.read(
            lambda c: c.execute(
                select(scanner_registrations).where(
                    scanner_registrations.c.uuid == registration_uuid
                )
            ).first()
        )
        return Registration.from_row(row) if row else None

    async def create(self, values: dict[str, Any]) -> Registration:
        stamp = now()
        new = {**values, "uuid": str(uuid.uuid4()), "created_at": stamp, "updated_at": stamp}

        def insert(connection: Connection) -> None:
            self._check_unique(connection, new["name"], new["url"], None)
            connection.execute(scanner_registrations.insert().values(**new, is_default=False))

        try:
            await self._db.write(insert)
        except IntegrityError:
            raise RegistrationConflict("a scanner with this name already exists") from None
        created = await self.get(new["uuid"])
        assert created is not None
        return created

    async def update(self, registration_uuid: str, values: dict[str, Any]) -> bool:
        def change(connection: Connection) -> bool:
            self._check_unique(connection, values.get("name"), values.get("url"), registration_uuid)
            return bool(
                connection.execute(
                    update(scanner_registrations)
                    .where(scanner_registrations.c.uuid == registration_uuid)
                    .values(**values, updated_at=now())
                ).rowcount
            )

        try:
            return await self._db.write(change)
        except IntegrityError:
            raise RegistrationConflict("a scanner with this name already exists") from None

    @staticmethod
    def _check_unique(
        connection: Connection, name: str | None, url: str | None, own: str | None
    ) -> None:
        table = scanner_registrations
        for column, value, what in ((table.c.name, name, "name"), (table.c.url, url, "url")):
            if value is None:
                continue
            query = select(table.c.uuid).where(column == value)
            if own is not None:
                query = query.where(table.c.uuid != own)
            if connection.scalar(query) is not None:
                raise RegistrationConflict(f"a scanner with this {what} is already registered")

    async def delete(self, registration_uuid: str) -> bool:
        """Delete a registration; the default moves back to the built-in scanner."""

        def remove(connection: Connection) -> bool:
            gone = connection.execute(
                delete(scanner_registrations).where(
                    scanner_registrations.c.uuid == registration_uuid
                )
            ).rowcount
            # Projects pinned to it fall back to the default: their project_scanners rows go
            # with it (ON DELETE CASCADE; both databases enforce foreign keys).
            if not connection.scalar(
                select(scanner_registrations.c.uuid).where(scanner_registrations.c.is_default)
            ):
                connection.execute(
                    update(scanner_registrations)
                    .where(scanner_registrations.c.uuid == BUILTIN_UUID)
                    .values(is_default=True)
                )
            return bool(gone)

        return await self._db.write(remove)

    async def set_default(self, registration_uuid: str) -> bool:
        def change(connection: Connection) -> bool:
            exists = connection.scalar(
                select(scanner_registrations.c.uuid).where(
                    scanner_registrations.c.uuid == registration_uuid
                )
            )
            if exists is None:
                return False
            connection.execute(
                update(scanner_registrations).values(
                    is_default=scanner_registrations.c.uuid == registration_uuid
                )
            )
            return True

        return await self._db.write(change)

    async def for_project(self, project_id: int) -> Registration | None:
        """The project's own choice, else the system default (None if that is disabled)."""

        def read(connection: Connection) -> Any:
            chosen = connection.execute(
                select(scanner_registrations)
                .join(
                    project_scanners,
                    project_scanners.c.registration_uuid == scanner_registrations.c.uuid,
                )
                .where(project_scanners.c.project_id == project_id)
            ).first()
            if chosen is not None:
                return chosen
            return connection.execute(
                select(scanner_registrations).where(scanner_registrations.c.is_default)
            ).first()

        row = await self._db.read(read)
        return Registration.from_row(row) if row else None

    async def set_for_project(self, project_id: int, registration_uuid: str) -> None:
        await self._db.write(
            lambda c: upsert(
                c,
                project_scanners,
                {"project_id": project_id},
                {"registration_uuid": registration_uuid},
            )
        )
