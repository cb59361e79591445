"""``/search``: the repositories whose name contains a text, among the projects a caller may
list (the project half of the answer comes from the projects listing)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from portside.db.engine import Database
from portside.db.tables import manifests, projects, repositories
from portside.projects.projects import public_is

__all__ = ["RepositoryHit", "search_repositories"]


@dataclass(frozen=True, slots=True)
class RepositoryHit:
    """Harbor's ``SearchRepository``."""

    project_id: int
    project_name: str
    project_public: bool
    repository_name: str
    pull_count: int
    artifact_count: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)


async def search_repositories(
    db: Database, text: str, visible: Collection[int] | None, limit: int
) -> list[RepositoryHit]:
    """Up to ``limit`` repositories, by name, whose name contains ``text`` and whose project is
    in ``visible`` (None: any project)."""
    artifacts = (
        select(func.count()).where(manifests.c.repository_id == repositories.c.id).scalar_subquery()
    )
    public = public_is(True)
    query = (
        select(
            projects.c.id,
            projects.c.name.label("project_name"),
            public.label("public"),
            repositories.c.name,
            repositories.c.pull_count,
            artifacts.label("artifact_count"),
        )
        .select_from(repositories.join(projects, projects.c.id == repositories.c.project_id))
        .where(repositories.c.name.contains(text, autoescape=True))
        .order_by(repositories.c.name)
        .limit(limit)
    )
    if visible is not None:
        query = query.where(projects.c.id.in_(sorted(visible)))

    def run(connection: Connection) -> list[RepositoryHit]:
        return [
            RepositoryHit(
                int(row.id),
                row.project_name,
                bool(row.public),
                row.name,
                int(row.pull_count or 0),
                int(row.artifact_count or 0),
            )
            for row in connection.execute(query)
        ]

    return await db.read(run)
