"""``portside project`` and ``portside member``: projects and who may use them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click

from portside.cli.commands._common import confirm_or_abort, pass_api, yes_option
from portside.cli.output import (
    emit_json,
    human_size,
    output_option,
    parse_size,
    print_record,
    print_table,
)

if TYPE_CHECKING:  # httpx is imported only when a command runs
    from portside.cli.client import Api

__all__ = ["member", "project"]

# Harbor's role ids.
ROLES = {"projectAdmin": 1, "developer": 2, "guest": 3, "maintainer": 4, "limitedGuest": 5}
_ROLE_ALIASES = {name.lower(): role_id for name, role_id in ROLES.items()} | {
    "admin": 1,
    "project-admin": 1,
    "limited-guest": 5,
}


def project_path(name: str) -> str:
    return f"/projects/{quote(name, safe='')}"


def _metadata(project: dict[str, Any], key: str) -> Any:
    return (project.get("metadata") or {}).get(key)


def _public(project: dict[str, Any]) -> str:
    return "yes" if _metadata(project, "public") == "true" else "no"


PROJECT_COLUMNS = [
    ("ID", lambda p: p.get("project_id")),
    ("NAME", lambda p: p.get("name")),
    ("PUBLIC", _public),
    ("REPOSITORIES", lambda p: p.get("repo_count")),
    ("OWNER", lambda p: p.get("owner_name")),
    ("CREATED", lambda p: p.get("creation_time")),
]


@click.group()
def project() -> None:
    """Create, list, show and delete projects."""


@project.command("create")
@click.argument("name")
@click.option("--public", is_flag=True, help="Anyone may pull without logging in.")
@click.option(
    "--storage-limit", metavar="SIZE", help="Quota, e.g. 10GiB or -1 (unlimited, the default)."
)
@output_option
@pass_api
def project_create(
    api: Api, name: str, public: bool, storage_limit: str | None, output: str
) -> None:
    """Create project NAME.

    Example: portside project create team-a --public --storage-limit 20GiB
    """
    body: dict[str, Any] = {
        "project_name": name,
        "metadata": {"public": "true" if public else "false"},
    }
    if storage_limit is not None:
        body["storage_limit"] = parse_size(storage_limit)
    api.post("/projects", json=body)
    if output == "json":
        emit_json(api.get(project_path(name)))
    else:
        click.echo(f"created project {name}")


@project.command("list")
@click.option("--name", help="Only projects whose name contains this.")
@click.option("--public/--private", default=None, help="Only public or only private projects.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many (default: all).")
@output_option
@pass_api
def project_list(
    api: Api, name: str | None, public: bool | None, limit: int | None, output: str
) -> None:
    """List the projects you can see."""
    params: dict[str, Any] = {}
    if name:
        params["name"] = name
    if public is not None:
        params["public"] = "true" if public else "false"
    found = api.list_all("/projects", params, limit, "projects")
    if output == "json":
        emit_json(found)
    else:
        print_table(found, PROJECT_COLUMNS, "no projects")


@project.command("show")
@click.argument("name")
@output_option
@pass_api
def project_show(api: Api, name: str, output: str) -> None:
    """Show project NAME, its settings and its usage."""
    found = api.get(project_path(name))
    if output == "json":
        emit_json(found)
        return
    summary: dict[str, Any] = {}
    try:
        summary = api.get(f"{project_path(name)}/summary") or {}
    except click.ClickException:
        summary = {}
    quota = summary.get("quota") or {}
    print_record(
        found,
        [
            *PROJECT_COLUMNS,
            ("UPDATED", lambda p: p.get("update_time")),
            (
                "METADATA",
                lambda p: ", ".join(
                    f"{k}={v}" for k, v in sorted((p.get("metadata") or {}).items())
                ),
            ),
            ("STORAGE USED", lambda _: human_size((quota.get("used") or {}).get("storage"))),
            ("STORAGE LIMIT", lambda _: human_size((quota.get("hard") or {}).get("storage"))),
        ],
    )


@project.command("delete")
@click.argument("name")
@yes_option
@pass_api
def project_delete(api: Api, name: str, yes: bool) -> None:
    """Delete project NAME (it must hold no repositories)."""
    confirm_or_abort(yes, f"Delete project {name}?")
    api.delete(project_path(name))
    click.echo(f"deleted project {name}")


# -- members -----------------------------------------------------------------------------------


def _role_id(value: str) -> int:
    if value.isdigit() and int(value) in ROLES.values():
        return int(value)
    try:
        return _ROLE_ALIASES[value.lower()]
    except KeyError:
        raise click.BadParameter(
            f"{value!r}; choose one of {', '.join(ROLES)}", param_hint="--role"
        ) from None


MEMBER_COLUMNS = [
    ("ID", lambda m: m.get("id")),
    ("NAME", lambda m: m.get("entity_name")),
    ("TYPE", lambda m: {"u": "user", "g": "group"}.get(m.get("entity_type"), m.get("entity_type"))),
    ("ROLE", lambda m: m.get("role_name")),
]


@click.group()
def member() -> None:
    """Add, list and remove project members."""


@member.command("add")
@click.argument("project_name", metavar="PROJECT")
@click.argument("username", metavar="USER")
@click.option(
    "--role",
    "-r",
    default="developer",
    show_default=True,
    help="projectAdmin, maintainer, developer, guest or limitedGuest.",
)
@click.option("--group", is_flag=True, help="USER names a user group, not a user.")
@pass_api
def member_add(api: Api, project_name: str, username: str, role: str, group: bool) -> None:
    """Give USER a role in PROJECT.

    Example: portside member add team-a alice --role maintainer
    """
    role_id = _role_id(role)
    body: dict[str, Any] = {"role_id": role_id}
    if group:
        body["member_group"] = {"group_name": username}
    else:
        body["member_user"] = {"username": username}
    api.post(f"{project_path(project_name)}/members", json=body)
    role_name = next(name for name, rid in ROLES.items() if rid == role_id)
    click.echo(f"{username} is now {role_name} of {project_name}")


@member.command("list")
@click.argument("project_name", metavar="PROJECT")
@output_option
@pass_api
def member_list(api: Api, project_name: str, output: str) -> None:
    """List the members of PROJECT and their roles."""
    found = api.list_all(f"{project_path(project_name)}/members", what="members")
    if output == "json":
        emit_json(found)
    else:
        print_table(found, MEMBER_COLUMNS, "no members")


@member.command("remove")
@click.argument("project_name", metavar="PROJECT")
@click.argument("username", metavar="USER")
@pass_api
def member_remove(api: Api, project_name: str, username: str) -> None:
    """Take USER's role in PROJECT away."""
    path = f"{project_path(project_name)}/members"
    candidates = api.list_all(path, {"entityname": username}, what="members")
    matches = [m for m in candidates if m.get("entity_name") == username]
    if not matches:
        raise click.ClickException(f"{username} is not a member of {project_name}")
    for found in matches:
        api.delete(f"{path}/{found['id']}")
    click.echo(f"removed {username} from {project_name}")
