"""``portside.auth.rbac`` against the expected table of ``docs/permissions.md``.

The doc's rows that name the one permission deciding them must agree, cell by cell, with the
permissions the role tables grant; the roles must nest as Harbor's do; and the doc must itself be
consistent (a higher role never has less, system-level rows read the same for both projects).
"""

from __future__ import annotations

import itertools

import pytest

from portside.auth.rbac import (
    PUBLIC_PERMISSIONS,
    ROLE_PERMISSIONS,
    V2_ACTIONS,
    Permission,
    Role,
    permissions_of,
)
from tests.integration.test_permissions import (
    CALLERS,
    DOC,
    NARROW_ROBOT_ACCESS,
    WIDE_ROBOT_ACCESS,
    Row,
    permission_tables,
)

TABLES = permission_tables()
# Lowest to highest, as Harbor orders them.
LADDER = (Role.LIMITED_GUEST, Role.GUEST, Role.DEVELOPER, Role.MAINTAINER, Role.PROJECT_ADMIN)
ROLE_OF_CALLER = {
    "limitedGuest": Role.LIMITED_GUEST,
    "guest": Role.GUEST,
    "developer": Role.DEVELOPER,
    "maintainer": Role.MAINTAINER,
    "projectAdmin": Role.PROJECT_ADMIN,
}
ROBOT_ACCESS = {
    "robot-narrow": frozenset(Permission(*p) for p in NARROW_ROBOT_ACCESS),
    "robot-wide": frozenset(Permission(*p) for p in WIDE_ROBOT_ACCESS),
}


def granted(caller: str, public: bool) -> frozenset[Permission] | None:
    """What ``caller`` holds in a project by the role tables; None means everything."""
    if caller == "admin":
        return None
    held: frozenset[Permission] = frozenset()
    if caller in ROLE_OF_CALLER:
        held = ROLE_PERMISSIONS[ROLE_OF_CALLER[caller]]
    elif caller in ROBOT_ACCESS:
        held = ROBOT_ACCESS[caller]
    return held | PUBLIC_PERMISSIONS if public else held


SINGLE_PERMISSION_CELLS = [
    pytest.param(table, row, caller, id=f"{table}:{row.action}:{caller}")
    for table, rows in TABLES.items()
    for row in rows.values()
    if row.permission is not None
    for caller in CALLERS
]


@pytest.mark.parametrize(("table", "row", "caller"), SINGLE_PERMISSION_CELLS)
def test_role_tables_agree_with_the_doc(table: str, row: Row, caller: str) -> None:
    assert row.permission is not None
    permission = Permission(*row.permission)
    held = granted(caller, public=table == "public")
    allowed = held is None or permission in held
    doc = "allow" if row.cells[caller] else "deny"
    assert allowed is row.cells[caller], (
        f"docs/permissions.md says {doc} for {caller} on {row.action} in a {table} project, "
        f"but portside.auth.rbac {'grants' if allowed else 'does not grant'} {permission}"
    )


def test_the_doc_has_rows_that_map_to_single_permissions() -> None:
    assert len(SINGLE_PERMISSION_CELLS) >= 2 * 15 * len(CALLERS)


def test_v2_actions_need_the_repository_permissions_the_doc_names() -> None:
    rows = TABLES["private"]
    assert V2_ACTIONS["pull"] == Permission(*rows["v2.pull"].permission or ())
    assert V2_ACTIONS["push"] == Permission(*rows["v2.push"].permission or ())
    assert V2_ACTIONS["delete"] == Permission(*rows["v2.delete-manifest"].permission or ())
    assert V2_ACTIONS["*"] == V2_ACTIONS["delete"]


@pytest.mark.parametrize(("lower", "higher"), list(itertools.pairwise(LADDER)))
def test_each_role_has_everything_the_role_below_has(lower: Role, higher: Role) -> None:
    missing = ROLE_PERMISSIONS[lower] - ROLE_PERMISSIONS[higher]
    assert not missing, f"{higher.harbor_name} lacks {sorted(map(str, missing))}"
    assert ROLE_PERMISSIONS[higher] > ROLE_PERMISSIONS[lower]


def test_roles_grant_what_the_issue_says_and_nothing_above_it() -> None:
    def has(role: Role, resource: str, action: str) -> bool:
        return Permission(resource, action) in ROLE_PERMISSIONS[role]

    # LimitedGuest: pull, read repositories, artifacts, tags, scans; no members/labels/robots.
    assert has(Role.LIMITED_GUEST, "repository", "pull")
    assert has(Role.LIMITED_GUEST, "artifact", "read")
    assert has(Role.LIMITED_GUEST, "tag", "list")
    assert has(Role.LIMITED_GUEST, "scan", "read")
    for resource in ("member", "label", "robot"):
        assert not any(p.resource == resource for p in ROLE_PERMISSIONS[Role.LIMITED_GUEST])
    # Guest: plus list members, labels and robots.
    for resource in ("member", "label", "robot"):
        assert has(Role.GUEST, resource, "list")
    assert not has(Role.GUEST, "repository", "push")
    # Developer: plus push, create repositories/artifacts/tags, add labels; no delete, no scan.
    assert has(Role.DEVELOPER, "repository", "push")
    assert has(Role.DEVELOPER, "artifact", "create")
    assert has(Role.DEVELOPER, "tag", "create")
    assert has(Role.DEVELOPER, "artifact-label", "create")
    assert not any(
        p.action == "delete" and p.resource != "artifact-label"
        for p in ROLE_PERMISSIONS[Role.DEVELOPER]
    )
    assert not has(Role.DEVELOPER, "scan", "create")
    # Maintainer: plus delete repositories/artifacts/tags, scans, immutability, labels.
    for resource in ("repository", "artifact", "tag"):
        assert has(Role.MAINTAINER, resource, "delete")
    assert has(Role.MAINTAINER, "scan", "create") and has(Role.MAINTAINER, "scan", "stop")
    assert has(Role.MAINTAINER, "immutable-tag", "create")
    assert has(Role.MAINTAINER, "label", "create")
    for resource in ("member", "robot"):
        assert not has(Role.MAINTAINER, resource, "create")
    assert not has(Role.MAINTAINER, "project", "delete")
    # ProjectAdmin: plus members, settings, robots, webhooks, delete the project.
    for resource in ("member", "robot", "notification-policy"):
        assert has(Role.PROJECT_ADMIN, resource, "create")
    assert has(Role.PROJECT_ADMIN, "project", "update")
    assert has(Role.PROJECT_ADMIN, "project", "delete")


def test_public_projects_grant_reading_and_pulling_only() -> None:
    assert Permission("repository", "pull") in PUBLIC_PERMISSIONS
    assert all(p.action in ("read", "list", "pull") for p in PUBLIC_PERMISSIONS)
    assert ROLE_PERMISSIONS[Role.LIMITED_GUEST] >= PUBLIC_PERMISSIONS


def test_a_user_with_several_roles_gets_their_union() -> None:
    both = permissions_of({Role.GUEST, Role.DEVELOPER})
    assert both == ROLE_PERMISSIONS[Role.DEVELOPER]
    assert permissions_of(set()) == frozenset()


# -- the doc's own consistency -------------------------------------------------------------------


def test_both_tables_have_the_same_rows() -> None:
    assert list(TABLES["public"]) == list(TABLES["private"])


@pytest.mark.parametrize("table", sorted(TABLES))
def test_a_higher_role_never_has_less_in_the_doc(table: str) -> None:
    order = ("limitedGuest", "guest", "developer", "maintainer", "projectAdmin", "admin")
    for row in TABLES[table].values():
        values = [row.cells[caller] for caller in order]
        assert values == sorted(values), f"{row.action}: {dict(zip(order, values, strict=True))}"


@pytest.mark.parametrize("table", sorted(TABLES))
def test_nobody_outside_the_project_has_more_than_a_limited_guest(table: str) -> None:
    for row in TABLES[table].values():
        if row.permission is None:
            continue
        for outsider in ("non-member", "anonymous"):
            assert row.cells["limitedGuest"] or not row.cells[outsider], (row.action, outsider)


def test_a_private_project_gives_outsiders_nothing() -> None:
    for row in TABLES["private"].values():
        if row.permission is not None:
            assert not row.cells["non-member"] and not row.cells["anonymous"], row.action


def test_system_level_rows_read_the_same_in_both_tables() -> None:
    for action, row in TABLES["public"].items():
        if row.permission is None and not action.startswith("v2."):
            if action in ("api.project-list", "api.audit-project"):
                continue  # listings of the project: they depend on it
            assert row.cells == TABLES["private"][action].cells, action


def test_the_parser_refuses_a_malformed_table() -> None:
    header = "| action | " + " | ".join(CALLERS) + " |\n|---|" + "---|" * len(CALLERS) + "\n"
    good = "| `x.y` (`repository:pull`) | " + " | ".join(["allow"] * len(CALLERS)) + " |\n"
    bad = "| `x.y` | " + " | ".join(["maybe"] * len(CALLERS)) + " |\n"
    text = "### Public project\n\n{}\n### Private project\n\n{}"
    parsed = permission_tables(text.format(header + good, header + good))
    assert parsed["private"]["x.y"].permission == ("repository", "pull")
    with pytest.raises(ValueError, match="allow"):
        permission_tables(text.format(header + good, header + bad))
    with pytest.raises(ValueError, match="Private"):
        permission_tables("### Public project\n\n" + header + good)


def test_the_doc_states_its_own_size() -> None:
    rows = len(TABLES["public"])
    cells = sum(len(row.cells) for table in TABLES.values() for row in table.values())
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    assert f"hold {rows} rows of {len(CALLERS)} callers each: {cells} cells" in text
