"""``/statistics``: how many projects and repositories there are, and the storage they use.

As in Harbor, everyone sees the public counts; a system admin sees every private project, the
totals and the storage consumption (the sum of every project's quota usage); anyone else sees
the private projects they may list, and no storage figure.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from portside.db.engine import Database
from portside.db.tables import project_blobs, projects, repositories
from portside.projects.projects import public_is

__all__ = ["Statistic", "statistics"]


@dataclass(frozen=True, slots=True)
class Statistic:
    private_project_count: int
    private_repo_count: int
    public_project_count: int
    public_repo_count: int
    total_project_count: int
    total_repo_count: int
    total_storage_consumption: int

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def _count_projects(connection: Connection, *where: object) -> int:
    query = select(func.count()).select_from(projects).where(*where)  # type: ignore[arg-type]
    return int(connection.scalar(query) or 0)


def _count_repositories(connection: Connection, *where: object) -> int:
    query = (
        select(func.count())
        .select_from(repositories.join(projects, projects.c.id == repositories.c.project_id))
        .where(*where)  # type: ignore[arg-type]
    )
    return int(connection.scalar(query) or 0)


async def statistics(db: Database, visible: Collection[int] | None) -> Statistic:
    """Counts for a caller who may list the projects ``visible`` (None: all, an admin)."""

    def run(connection: Connection) -> Statistic:
        public = public_is(True)
        public_projects = _count_projects(connection, public)
        public_repos = _count_repositories(connection, public)
        if visible is None:
            total_projects = _count_projects(connection)
            total_repos = _count_repositories(connection)
            storage = connection.scalar(select(func.coalesce(func.sum(project_blobs.c.size), 0)))
            return Statistic(
                total_projects - public_projects,
                total_repos - public_repos,
                public_projects,
                public_repos,
                total_projects,
                total_repos,
                int(storage or 0),
            )
        mine = [public_is(False), projects.c.id.in_(sorted(visible))]
        private_projects = _count_projects(connection, *mine)
        private_repos = _count_repositories(connection, *mine)
        return Statistic(
            private_projects,
            private_repos,
            public_projects,
            public_repos,
            public_projects + private_projects,
            public_repos + private_repos,
            0,
        )

    return await db.read(run)
