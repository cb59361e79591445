"""API paths the client commands build (kept free of httpx so modules can import it early)."""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["repository_path"]


def repository_path(project: str, repository: str) -> str:
    """Harbor's path for a repository: names holding "/" are URL-encoded twice."""
    return (
        f"/projects/{quote(project, safe='')}/repositories/"
        f"{quote(quote(repository, safe=''), safe='')}"
    )
