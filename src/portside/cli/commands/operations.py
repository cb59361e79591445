"""``portside quota``, ``audit`` and ``system``: limits, history and the registry's state."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from portside.cli.commands._common import pass_api
from portside.cli.commands.projects import project_path
from portside.cli.output import (
    Column,
    emit_json,
    human_size,
    output_option,
    parse_size,
    print_record,
    print_table,
)

if TYPE_CHECKING:  # httpx is imported only when a command runs
    from portside.cli.client import Api

__all__ = ["audit", "quota", "system"]


def _storage(part: str) -> Any:
    return lambda q: human_size((q.get(part) or {}).get("storage"))


QUOTA_COLUMNS = [
    ("ID", lambda q: q.get("id")),
    ("PROJECT", lambda q: (q.get("ref") or {}).get("name")),
    ("USED", _storage("used")),
    ("LIMIT", _storage("hard")),
]


def _quota_of(api: Api, project_name: str) -> dict[str, Any]:
    project_id = api.get(project_path(project_name))["project_id"]
    found = api.get("/quotas", {"reference": "project", "reference_id": project_id})
    if not found:
        raise click.ClickException(f"project {project_name} has no quota")
    return dict(found[0])


@click.group()
def quota() -> None:
    """Show and change project storage quotas (system admins)."""


@quota.command("show")
@click.argument("project_name", metavar="[PROJECT]", required=False)
@output_option
@pass_api
def quota_show(api: Api, project_name: str | None, output: str) -> None:
    """Show the quota of PROJECT, or of every project."""
    found = (
        [_quota_of(api, project_name)] if project_name else api.list_all("/quotas", what="quotas")
    )
    if output == "json":
        emit_json(found[0] if project_name else found)
    else:
        print_table(found, QUOTA_COLUMNS, "no quotas")


@quota.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("project_name", metavar="PROJECT")
@click.argument("size")
@pass_api
def quota_set(api: Api, project_name: str, size: str) -> None:
    """Set PROJECT's storage limit: SIZE like 10GiB, 500MiB, 1000000 (bytes) or -1 (unlimited).

    Example: portside quota set team-a 50GiB
    """
    limit = parse_size(size)
    found = _quota_of(api, project_name)
    api.put(f"/quotas/{found['id']}", json={"hard": {"storage": limit}})
    click.echo(f"storage limit of {project_name} is now {human_size(limit)}")


AUDIT_COLUMNS = [
    ("TIME", lambda e: e.get("op_time")),
    ("USER", lambda e: e.get("username")),
    ("OPERATION", lambda e: e.get("operation")),
    ("TYPE", lambda e: e.get("resource_type")),
    ("RESOURCE", lambda e: e.get("resource")),
]


@click.group()
def audit() -> None:
    """Read the audit log."""


@audit.command("list")
@click.option("--project", "-p", "project_name", help="Only this project's entries.")
@click.option("--username", help="Only entries by this account.")
@click.option("--operation", help="Only this operation: create, delete, pull, login...")
@click.option("--resource-type", help="Only this resource type: project, repository, user...")
@click.option("--resource", help="Only entries whose resource contains this.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Newest N entries."
)
@output_option
@pass_api
def audit_list(
    api: Api,
    project_name: str | None,
    username: str | None,
    operation: str | None,
    resource_type: str | None,
    resource: str | None,
    limit: int,
    output: str,
) -> None:
    """List audit entries, newest first.

    Example: portside audit list --username alice --operation delete --limit 20
    """
    terms = []
    for key, value, fuzzy in (
        ("username", username, False),
        ("operation", operation, False),
        ("resource_type", resource_type, False),
        ("resource", resource, True),
    ):
        if value:
            terms.append(f"{key}={'~' if fuzzy else ''}{value}")
    params: dict[str, Any] = {"sort": "-op_time"}
    if terms:
        params["q"] = ",".join(terms)
    path = f"{project_path(project_name)}/logs" if project_name else "/audit-logs"
    found = api.list_all(path, params, limit, "audit entries")
    if output == "json":
        emit_json(found)
    else:
        print_table(found, AUDIT_COLUMNS, "no audit entries")


@click.group()
def system() -> None:
    """The registry's health and version."""


@system.command("health")
@output_option
@pass_api
def system_health(api: Api, output: str) -> None:
    """Show the status of each component; exit 1 when any is unhealthy."""
    from portside.cli.client import ApiError

    try:
        found = api.get("/health")
    except ApiError as error:
        # An unhealthy registry answers 503 with the same body; still show it.
        if error.status != 503:
            raise
        found = api.request_unchecked("GET", "/health").json()
    if output == "json":
        emit_json(found)
    else:
        click.echo(f"overall: {found.get('status')}")
        print_table(
            found.get("components") or [],
            [
                ("COMPONENT", lambda c: c.get("name")),
                ("STATUS", lambda c: c.get("status")),
                ("ERROR", lambda c: c.get("error") or None),
            ],
            "no components reported",
        )
    if found.get("status") != "healthy":
        raise SystemExit(1)


@system.command("info")
@output_option
@pass_api
def system_info(api: Api, output: str) -> None:
    """Show the registry's version and settings visible to clients."""
    found = api.get("/systeminfo")
    if output == "json":
        emit_json(found)
    else:
        fields: list[Column] = [(key, _getter(key)) for key in sorted(found)]
        print_record(found, fields)


def _getter(key: str) -> Callable[[Any], Any]:
    return lambda record: record.get(key)
