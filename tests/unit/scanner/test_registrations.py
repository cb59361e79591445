"""Scanner registrations in the database: what a project falls back to when its scanner goes."""

from __future__ import annotations

from sqlalchemy import insert, select

from portside.db.engine import Database
from portside.db.queries import now
from portside.db.tables import project_scanners, projects
from portside.scanner.registrations import BUILTIN_UUID, Registrations


async def test_deleting_a_projects_scanner_falls_back_to_the_default(db: Database) -> None:
    stamp = now()
    await db.write(
        lambda c: c.execute(
            insert(projects).values(id=1, name="p", created_at=stamp, updated_at=stamp)
        )
    )
    registrations = Registrations(db)
    await registrations.ensure_builtin("built in")
    external = await registrations.create({"name": "external", "url": "http://127.0.0.1:9"})
    await registrations.set_for_project(1, external.uuid)
    chosen = await registrations.for_project(1)
    assert chosen is not None and chosen.uuid == external.uuid

    assert await registrations.delete(external.uuid) is True
    fallback = await registrations.for_project(1)
    assert fallback is not None and fallback.uuid == BUILTIN_UUID
    pinned = await db.read(lambda c: c.execute(select(project_scanners)).all())
    assert pinned == []  # the project's choice went with the registration (ON DELETE CASCADE)
