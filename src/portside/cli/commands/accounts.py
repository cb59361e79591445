"""``portside robot`` and ``portside user``: accounts people and machines log in with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from portside.cli.commands._common import (
    confirm_or_abort,
    pass_api,
    password_input,
    yes_option,
)
from portside.cli.commands.projects import project_path
from portside.cli.output import emit_json, output_option, print_table

if TYPE_CHECKING:  # httpx is imported only when a command runs
    from portside.cli.client import Api

__all__ = ["robot", "user"]


def _expires(r: dict[str, Any]) -> Any:
    if r.get("duration") == -1 or r.get("expires_at") == -1:
        return "never"
    import datetime as dt

    at = r.get("expires_at")
    if isinstance(at, int):
        return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return at


def _access(r: dict[str, Any]) -> str:
    parts = []
    for block in r.get("permissions") or []:
        actions = ",".join(
            f"{a.get('resource')}:{a.get('action')}" for a in block.get("access") or []
        )
        parts.append(f"{block.get('namespace')}[{actions}]")
    return "; ".join(parts)


ROBOT_COLUMNS = [
    ("ID", lambda r: r.get("id")),
    ("NAME", lambda r: r.get("name")),
    ("LEVEL", lambda r: r.get("level")),
    ("DISABLED", lambda r: r.get("disable")),
    ("EXPIRES", _expires),
    ("PERMISSIONS", _access),
    ("DESCRIPTION", lambda r: r.get("description") or None),
]


def _project_id(api: Api, name: str) -> int:
    return int(api.get(project_path(name))["project_id"])


def _find_robot(api: Api, reference: str) -> dict[str, Any]:
    """A robot by id or by name (``robot$team+ci``, ``team+ci`` or a system robot's name)."""
    if reference.isdigit():
        found: dict[str, Any] = api.get(f"/robots/{reference}")
        return found
    stored = reference.split("$", 1)[1] if "$" in reference else reference
    query = f"name={stored}"
    if "+" in stored:
        query = f"Level=project,ProjectID={_project_id(api, stored.split('+', 1)[0])},{query}"
    for candidate in api.list_all("/robots", {"q": query}, what="robots"):
        name = str(candidate.get("name") or "")
        if name in (reference, stored) or name.endswith(f"${stored}"):
            return dict(candidate)
    raise click.ClickException(f"robot {reference} not found")


def _permissions(values: tuple[str, ...]) -> list[dict[str, str]]:
    access = []
    for value in values or ("repository:pull", "repository:push"):
        resource, sep, action = value.partition(":")
        if not sep or not resource or not action:
            raise click.BadParameter(
                f"{value!r}: expected RESOURCE:ACTION such as repository:push",
                param_hint="--permission",
            )
        access.append({"resource": resource, "action": action})
    return access


@click.group()
def robot() -> None:
    """Create, list, refresh, disable and delete robot accounts."""


@robot.command("create")
@click.argument("name")
@click.option("--project", "-p", "project_name", help="Make a robot of this project.")
@click.option(
    "--namespace",
    multiple=True,
    help="System robot: a project it may act in (repeatable; * for all). Default: *.",
)
@click.option(
    "--permission",
    "permission",
    multiple=True,
    metavar="RESOURCE:ACTION",
    help="Repeatable, e.g. repository:pull. Default: repository:pull and repository:push.",
)
@click.option(
    "--duration", type=int, default=30, show_default=True, help="Days valid; -1 never expires."
)
@click.option("--description", default="", help="Free text.")
@output_option
@pass_api
def robot_create(
    api: Api,
    name: str,
    project_name: str | None,
    namespace: tuple[str, ...],
    permission: tuple[str, ...],
    duration: int,
    description: str,
    output: str,
) -> None:
    """Create robot NAME and print its secret (shown once only: keep it now).

    \b
    Examples:
      portside robot create ci --project team-a --permission repository:push
      portside robot create mirror --namespace '*' --permission repository:pull
    """
    access = _permissions(permission)
    if project_name and namespace:
        raise click.UsageError("--project and --namespace cannot be used together")
    if project_name:
        level = "project"
        blocks = [{"kind": "project", "namespace": project_name, "access": access}]
    else:
        level = "system"
        blocks = [
            {"kind": "project", "namespace": ns, "access": access} for ns in namespace or ("*",)
        ]
    body = {
        "name": name,
        "description": description,
        "level": level,
        "duration": duration,
        "disable": False,
        "permissions": blocks,
    }
    created = api.post("/robots", json=body).json()
    if output == "json":
        emit_json(created)
        return
    click.echo(f"created robot {created['name']} (id {created['id']})")
    click.echo(f"secret: {created['secret']}")
    click.echo("This secret is shown only once; store it safely now.", err=True)


@robot.command("list")
@click.option("--project", "-p", "project_name", help="List this project's robots.")
@output_option
@pass_api
def robot_list(api: Api, project_name: str | None, output: str) -> None:
    """List system robots (admins), or a project's robots with --project."""
    query = "Level=system"
    if project_name:
        query = f"Level=project,ProjectID={_project_id(api, project_name)}"
    found = api.list_all("/robots", {"q": query}, what="robots")
    if output == "json":
        emit_json(found)
    else:
        print_table(found, ROBOT_COLUMNS, "no robots")


@robot.command("refresh")
@click.argument("reference", metavar="ID|NAME")
@click.option("--secret-stdin", is_flag=True, help="Set the secret read from stdin instead.")
@output_option
@pass_api
def robot_refresh(api: Api, reference: str, secret_stdin: bool, output: str) -> None:
    """Give a robot a new secret; the old secret stops working at once."""
    found = _find_robot(api, reference)
    body: dict[str, Any] = {}
    if secret_stdin:
        body["secret"] = password_input(True)
    answer = api.request("PATCH", f"/robots/{found['id']}", json=body).json()
    if output == "json":
        emit_json(answer)
    elif secret_stdin:
        click.echo(f"secret of {found['name']} replaced")
    else:
        click.echo(f"new secret for {found['name']}: {answer.get('secret')}")
        click.echo("This secret is shown only once; store it safely now.", err=True)


@robot.command("disable")
@click.argument("reference", metavar="ID|NAME")
@click.option("--enable", is_flag=True, help="Enable it again instead.")
@pass_api
def robot_disable(api: Api, reference: str, enable: bool) -> None:
    """Disable a robot (it can no longer log in) or, with --enable, re-enable it."""
    found = _find_robot(api, reference)
    body: dict[str, Any] = {
        key: found[key]
        for key in ("id", "name", "description", "level", "duration", "permissions")
        if key in found
    }
    body["disable"] = not enable
    api.put(f"/robots/{found['id']}", json=body)
    click.echo(f"{'enabled' if enable else 'disabled'} robot {found['name']}")


@robot.command("delete")
@click.argument("reference", metavar="ID|NAME")
@yes_option
@pass_api
def robot_delete(api: Api, reference: str, yes: bool) -> None:
    """Delete a robot account."""
    found = _find_robot(api, reference)
    confirm_or_abort(yes, f"Delete robot {found['name']}?")
    api.delete(f"/robots/{found['id']}")
    click.echo(f"deleted robot {found['name']}")


# -- users -------------------------------------------------------------------------------------

USER_COLUMNS = [
    ("ID", lambda u: u.get("user_id")),
    ("USERNAME", lambda u: u.get("username")),
    ("EMAIL", lambda u: u.get("email") or None),
    ("REAL NAME", lambda u: u.get("realname") or None),
    ("ADMIN", lambda u: u.get("sysadmin_flag")),
    ("CREATED", lambda u: u.get("creation_time")),
]


def _find_user(api: Api, username: str) -> dict[str, Any]:
    for candidate in api.list_all("/users", {"q": f"username={username}"}, what="users"):
        if candidate.get("username") == username:
            return dict(candidate)
    raise click.ClickException(f"user {username} not found")


@click.group()
def user() -> None:
    """Create and list user accounts, grant or revoke system admin."""


@user.command("create")
@click.argument("username")
@click.option("--email", required=True, help="E-mail address (unique).")
@click.option("--realname", help="Full name (default: the username).")
@click.option("--comment", default="", help="Free text (30 characters at most).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin's first line.")
@pass_api
def user_create(
    api: Api,
    username: str,
    email: str,
    realname: str | None,
    comment: str,
    password_stdin: bool,
) -> None:
    """Create a user account (system admins only).

    Example: portside user create alice --email alice@example.com
    """
    password = password_input(password_stdin, confirm=True)
    body = {
        "username": username,
        "email": email,
        "realname": realname or username,
        "comment": comment,
        "password": password,
    }
    api.post("/users", json=body)
    click.echo(f"created user {username}")


@user.command("list")
@click.option("--username", help="Only users whose name contains this.")
@output_option
@pass_api
def user_list(api: Api, username: str | None, output: str) -> None:
    """List user accounts (system admins only)."""
    params = {"username": username} if username else {}
    found = api.list_all("/users", params, what="users")
    if output == "json":
        emit_json(found)
    else:
        print_table(found, USER_COLUMNS, "no users")


@user.command("set-admin")
@click.argument("username")
@click.option("--revoke", is_flag=True, help="Take system admin away instead.")
@pass_api
def user_set_admin(api: Api, username: str, revoke: bool) -> None:
    """Make USERNAME a system admin (or, with --revoke, no longer one)."""
    found = _find_user(api, username)
    api.put(f"/users/{found['user_id']}/sysadmin", json={"sysadmin_flag": not revoke})
    click.echo(f"{username} is {'no longer' if revoke else 'now'} a system admin")
