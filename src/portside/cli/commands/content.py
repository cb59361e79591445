"""``portside repo``, ``artifact`` and ``tag``: what has been pushed.

References are written as clients write them: ``project/repo`` for a repository,
``project/repo:tag`` or ``project/repo@sha256:...`` for an artifact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click

from portside.cli.client_paths import repository_path
from portside.cli.commands._common import (
    confirm_or_abort,
    pass_api,
    split_reference,
    split_repository,
    yes_option,
)
from portside.cli.commands.projects import project_path
from portside.cli.output import (
    emit_json,
    human_size,
    output_option,
    print_record,
    print_table,
    spinner,
)

if TYPE_CHECKING:  # httpx is imported only when a command runs
    from portside.cli.client import Api

__all__ = ["artifact", "repo", "tag"]


def _short_repository(r: dict[str, Any]) -> Any:
    return r.get("name")


REPOSITORY_COLUMNS = [
    ("NAME", _short_repository),
    ("ARTIFACTS", lambda r: r.get("artifact_count")),
    ("PULLS", lambda r: r.get("pull_count")),
    ("UPDATED", lambda r: r.get("update_time")),
]


@click.group()
def repo() -> None:
    """List and delete repositories."""


@repo.command("list")
@click.argument("project_name", metavar="PROJECT")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many (default: all).")
@output_option
@pass_api
def repo_list(api: Api, project_name: str, limit: int | None, output: str) -> None:
    """List the repositories of PROJECT."""
    found = api.list_all(
        f"{project_path(project_name)}/repositories", limit=limit, what="repositories"
    )
    if output == "json":
        emit_json(found)
    else:
        print_table(found, REPOSITORY_COLUMNS, "no repositories")


@repo.command("delete")
@click.argument("repository", metavar="PROJECT/REPOSITORY")
@yes_option
@pass_api
def repo_delete(api: Api, repository: str, yes: bool) -> None:
    """Delete a repository and every artifact in it.

    Example: portside repo delete library/old-app --yes
    """
    project_name, name = split_repository(repository)
    confirm_or_abort(yes, f"Delete {repository} and all its artifacts?")
    api.delete(repository_path(project_name, name))
    click.echo(f"deleted repository {repository}")


def _tags(a: dict[str, Any]) -> list[str]:
    return [str(t.get("name")) for t in a.get("tags") or [] if isinstance(t, dict)]


def _short_digest(a: dict[str, Any]) -> str:
    digest = str(a.get("digest") or "")
    return digest[:19] if digest.startswith("sha256:") else digest


def _time(value: Any) -> Any:
    """Harbor writes "never" as the zero time."""
    return "never" if isinstance(value, str) and value.startswith("0001-01-01") else value


ARTIFACT_COLUMNS = [
    ("DIGEST", _short_digest),
    ("TAGS", _tags),
    ("TYPE", lambda a: a.get("type")),
    ("SIZE", lambda a: human_size(a.get("size"))),
    ("PUSHED", lambda a: a.get("push_time")),
    ("PULLED", lambda a: _time(a.get("pull_time"))),
]


def artifacts_path(project_name: str, repository: str) -> str:
    return f"{repository_path(project_name, repository)}/artifacts"


def artifact_path(project_name: str, repository: str, reference: str) -> str:
    return f"{artifacts_path(project_name, repository)}/{quote(reference, safe=':')}"


@click.group()
def artifact() -> None:
    """List, show, delete and copy artifacts (images, charts, ...)."""


@artifact.command("list")
@click.argument("repository", metavar="PROJECT/REPOSITORY")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many (default: all).")
@output_option
@pass_api
def artifact_list(api: Api, repository: str, limit: int | None, output: str) -> None:
    """List the artifacts of a repository with their tags, newest first."""
    project_name, name = split_repository(repository)
    found = api.list_all(
        artifacts_path(project_name, name), {"with_tag": "true"}, limit, "artifacts"
    )
    if output == "json":
        emit_json(found)
    else:
        print_table(found, ARTIFACT_COLUMNS, "no artifacts")


@artifact.command("show")
@click.argument("reference", metavar="PROJECT/REPOSITORY:TAG|@DIGEST")
@output_option
@pass_api
def artifact_show(api: Api, reference: str, output: str) -> None:
    """Show one artifact: digest, type, size, tags, times and children of an index."""
    project_name, name, ref = split_reference(reference)
    found = api.get(artifact_path(project_name, name, ref), {"with_tag": "true"})
    if output == "json":
        emit_json(found)
        return
    print_record(
        found,
        [
            ("DIGEST", lambda a: a.get("digest")),
            ("TYPE", lambda a: a.get("type")),
            ("MEDIA TYPE", lambda a: a.get("manifest_media_type") or a.get("media_type")),
            ("SIZE", lambda a: human_size(a.get("size"))),
            ("TAGS", _tags),
            ("PUSHED", lambda a: a.get("push_time")),
            ("PULLED", lambda a: _time(a.get("pull_time"))),
            (
                "CHILDREN",
                lambda a: [r.get("child_digest") for r in a.get("references") or []],
            ),
        ],
    )


@artifact.command("delete")
@click.argument("reference", metavar="PROJECT/REPOSITORY:TAG|@DIGEST")
@yes_option
@pass_api
def artifact_delete(api: Api, reference: str, yes: bool) -> None:
    """Delete an artifact and all its tags."""
    project_name, name, ref = split_reference(reference)
    confirm_or_abort(yes, f"Delete {reference} and all its tags?")
    api.delete(artifact_path(project_name, name, ref))
    click.echo(f"deleted {reference}")


@artifact.command("copy")
@click.argument("source", metavar="SOURCE")
@click.argument("target", metavar="PROJECT/REPOSITORY")
@pass_api
def artifact_copy(api: Api, source: str, target: str) -> None:
    """Copy artifact SOURCE (project/repo:tag or @digest) into another repository.

    Example: portside artifact copy library/app:1.2 release/app
    """
    split_reference(source)  # validate before calling
    project_name, name = split_repository(target)
    with spinner(f"copying {source} to {target}"):
        api.request(
            "POST", artifacts_path(project_name, name), params={"from": source}, timeout=3600
        )
    click.echo(f"copied {source} to {target}")


@click.group()
def tag() -> None:
    """Add and delete tags."""


@tag.command("add")
@click.argument("reference", metavar="PROJECT/REPOSITORY:TAG|@DIGEST")
@click.argument("new_tag", metavar="NEW_TAG")
@pass_api
def tag_add(api: Api, reference: str, new_tag: str) -> None:
    """Add NEW_TAG to an existing artifact.

    Example: portside tag add library/app:1.2.3 stable
    """
    project_name, name, ref = split_reference(reference)
    api.post(f"{artifact_path(project_name, name, ref)}/tags", json={"name": new_tag})
    click.echo(f"tagged {reference} as {project_name}/{name}:{new_tag}")


@tag.command("delete")
@click.argument("reference", metavar="PROJECT/REPOSITORY:TAG")
@pass_api
def tag_delete(api: Api, reference: str) -> None:
    """Remove a tag; the artifact itself stays."""
    if "@" in reference:
        raise click.BadParameter("give a tag, not a digest", param_hint="REFERENCE")
    project_name, name, ref = split_reference(reference)
    path = artifact_path(project_name, name, ref)
    api.delete(f"{path}/tags/{quote(ref, safe='')}")
    click.echo(f"deleted tag {reference}")
