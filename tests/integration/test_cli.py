"""The ``portside`` command line, run as a real subprocess against real servers.

Every call gets HOME and XDG_CONFIG_HOME in the test's own folder, so the stored credentials
are the test's, and no PORTSIDE_* variable leaks in from the environment.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import pty
import secrets
import select
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portside.cli.main import main as cli_main
from tests.support.oci import image_manifest, push_content
from tests.support.server import PortsideServer, free_port

GiB = 1024**3


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Result]


def _run(home: Path, *args: str, stdin: str = "", env: Mapping[str, str] | None = None) -> Result:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PORTSIDE_", "_PORTSIDE"))}
    base.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / "config")})
    base.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "portside.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=base,
        timeout=60,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def cli(home: Path) -> Cli:
    """Run ``portside ARGS`` with this test's HOME (not logged in)."""
    return lambda *args, **kwargs: _run(home, *args, **kwargs)


@pytest.fixture
def admin_cli(cli: Cli, registry: PortsideServer) -> Cli:
    """``portside`` logged in to the shared registry as admin."""
    done = cli(
        "login", registry.url, "-u", "admin", "--password-stdin", stdin=registry.password + "\n"
    )
    assert done.code == 0, done.err
    return cli


def _unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


# -- login, logout, credentials ------------------------------------------------------------------


def test_login_stores_credentials_owner_only_and_logout_forgets(
    cli: Cli, home: Path, registry: PortsideServer
) -> None:
    done = cli(
        "login", registry.url, "-u", "admin", "--password-stdin", stdin=registry.password + "\n"
    )
    assert done.code == 0, done.err
    assert f"logged in to {registry.url} as admin" in done.out
    stored = home / "config" / "portside" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert json.loads(stored.read_text()) == {
        "url": registry.url,
        "username": "admin",
        "password": registry.password,
    }
    listed = cli("project", "list", "--output", "json")
    assert listed.code == 0, listed.err
    assert "library" in [p["name"] for p in listed.json()]

    assert cli("logout").code == 0
    assert not stored.exists()
    after = cli("project", "list")
    assert after.code == 1
    assert "not logged in" in after.err


def test_login_with_wrong_password_fails_cleanly(
    cli: Cli, home: Path, registry: PortsideServer
) -> None:
    done = cli("login", registry.url, "-u", "admin", "--password-stdin", stdin="Wrong-pass-1\n")
    assert done.code == 1
    assert "invalid username or password" in done.err
    assert "401" in done.err
    assert not (home / "config" / "portside" / "credentials.json").exists()


def test_environment_credentials_win_over_the_file(cli: Cli, registry: PortsideServer) -> None:
    env = {
        "PORTSIDE_URL": registry.url,
        "PORTSIDE_USERNAME": "admin",
        "PORTSIDE_PASSWORD": registry.password,
    }
    done = cli("project", "show", "library", "-o", "json", env=env)
    assert done.code == 0, done.err
    assert done.json()["name"] == "library"
    # A stored login with a wrong password loses to the environment ...
    bad = cli("login", registry.url, "-u", "admin", "--password-stdin", stdin="nope\n")
    assert bad.code == 1
    assert cli("project", "show", "library", env=env).code == 0
    # ... and a wrong password in the environment is reported, not ignored.
    wrong = cli("project", "list", env={**env, "PORTSIDE_PASSWORD": "Wrong-pass-1"})
    assert wrong.code == 1
    assert "invalid username or password" in wrong.err


def test_unreachable_server_is_one_line_and_exit_1(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = cli("project", "list", env={"PORTSIDE_URL": url, "PORTSIDE_USERNAME": "admin"})
    assert done.code == 1
    assert f"cannot connect to {url}" in done.err
    assert len(done.err.strip().splitlines()) == 1


# -- projects and members ------------------------------------------------------------------------


def test_project_create_list_show_delete(admin_cli: Cli) -> None:
    name = _unique("cli-p-")
    created = admin_cli("project", "create", name, "--public", "--storage-limit", "1GiB")
    assert created.code == 0, created.err
    assert f"created project {name}" in created.out

    table = admin_cli("project", "list", "--name", name)
    assert table.code == 0
    header, *rows = [line.split() for line in table.out.strip().splitlines() if "─" not in line]
    assert header[:3] == ["ID", "NAME", "PUBLIC"]
    assert [row[1:3] for row in rows] == [[name, "yes"]]

    shown = admin_cli("project", "show", name, "-o", "json")
    assert shown.json()["name"] == name
    assert shown.json()["metadata"]["public"] == "true"
    human = admin_cli("project", "show", name)
    assert "1.0 GiB" in human.out

    duplicate = admin_cli("project", "create", name)
    assert duplicate.code == 1
    assert "409" in duplicate.err

    assert admin_cli("project", "delete", name, "--yes").code == 0
    missing = admin_cli("project", "show", name)
    assert missing.code == 1
    assert "not found" in missing.err and "404" in missing.err


def test_project_delete_asks_first(admin_cli: Cli) -> None:
    name = _unique("cli-p-")
    assert admin_cli("project", "create", name).code == 0
    refused = admin_cli("project", "delete", name, stdin="n\n")
    assert refused.code == 1  # click's Abort
    assert admin_cli("project", "show", name).code == 0
    assert admin_cli("project", "delete", name, stdin="y\n").code == 0
    assert admin_cli("project", "show", name).code == 1


def test_members_add_list_remove(admin_cli: Cli) -> None:
    project, username = _unique("cli-m-"), _unique("member")
    assert admin_cli("project", "create", project).code == 0
    made = admin_cli(
        "user", "create", username, "--email", f"{username}@example.com", "--password-stdin",
        stdin="Member-Pass-1\n",
    )  # fmt: skip
    assert made.code == 0, made.err

    added = admin_cli("member", "add", project, username, "--role", "maintainer")
    assert added.code == 0, added.err
    listed = admin_cli("member", "list", project, "-o", "json")
    roles = {m["entity_name"]: m["role_name"] for m in listed.json()}
    assert roles[username] == "maintainer"
    table = admin_cli("member", "list", project)
    assert any(
        line.split()[1:] == [username, "user", "maintainer"]
        for line in table.out.splitlines()[1:]
        if line.strip()
    )

    bad_role = admin_cli("member", "add", project, username, "--role", "boss")
    assert bad_role.code == 2
    assert "projectAdmin" in bad_role.err

    assert admin_cli("member", "remove", project, username).code == 0
    again = admin_cli("member", "remove", project, username)
    assert again.code == 1
    assert "not a member" in again.err
    names = [m["entity_name"] for m in admin_cli("member", "list", project, "-o", "json").json()]
    assert username not in names

    unknown = admin_cli("member", "list", _unique("nosuch-"))
    assert unknown.code == 1
    assert "not found" in unknown.err


# -- accounts ------------------------------------------------------------------------------------


def test_users_create_list_and_set_admin(admin_cli: Cli, client: httpx.Client) -> None:
    username = _unique("user")
    weak = admin_cli(
        "user", "create", username, "--email", f"{username}@example.com", "--password-stdin",
        stdin="weak\n",
    )  # fmt: skip
    assert weak.code == 1
    assert "password" in weak.err
    made = admin_cli(
        "user", "create", username, "--email", f"{username}@example.com", "--password-stdin",
        stdin="User-Pass-1\n",
    )  # fmt: skip
    assert made.code == 0, made.err
    found = admin_cli("user", "list", "--username", username, "-o", "json").json()
    assert [(u["username"], u["sysadmin_flag"]) for u in found] == [(username, False)]

    assert admin_cli("user", "set-admin", username).code == 0
    user_id = found[0]["user_id"]
    assert client.get(f"/api/v2.0/users/{user_id}").json()["sysadmin_flag"] is True
    table = admin_cli("user", "list", "--username", username)
    assert username in table.out and "yes" in table.out
    assert admin_cli("user", "set-admin", username, "--revoke").code == 0
    assert client.get(f"/api/v2.0/users/{user_id}").json()["sysadmin_flag"] is False

    missing = admin_cli("user", "set-admin", _unique("ghost"))
    assert missing.code == 1
    assert "not found" in missing.err


def test_robot_lifecycle(admin_cli: Cli, cli: Cli, registry: PortsideServer) -> None:
    project = _unique("cli-r-")
    assert admin_cli("project", "create", project).code == 0
    created = admin_cli(
        "robot", "create", "ci", "--project", project, "--permission", "repository:pull",
        "--permission", "repository:list", "--duration", "-1", "-o", "json",
    )  # fmt: skip
    assert created.code == 0, created.err
    robot = created.json()
    assert robot["name"].endswith(f"{project}+ci")

    def as_robot(secret: str) -> Result:
        env = {
            "PORTSIDE_URL": registry.url,
            "PORTSIDE_USERNAME": robot["name"],
            "PORTSIDE_PASSWORD": secret,
        }
        return cli("repo", "list", project, "-o", "json", env=env)

    assert as_robot(robot["secret"]).code == 0

    listed = admin_cli("robot", "list", "--project", project)
    assert robot["name"] in listed.out and "never" in listed.out

    refreshed = admin_cli("robot", "refresh", robot["name"])
    assert refreshed.code == 0, refreshed.err
    new_secret = refreshed.out.strip().rsplit(" ", 1)[-1]
    assert new_secret != robot["secret"]
    assert as_robot(robot["secret"]).code == 1
    assert as_robot(new_secret).code == 0

    assert admin_cli("robot", "disable", str(robot["id"])).code == 0
    assert as_robot(new_secret).code == 1
    [shown] = admin_cli("robot", "list", "-p", project, "-o", "json").json()
    assert shown["disable"] is True
    assert admin_cli("robot", "disable", str(robot["id"]), "--enable").code == 0
    assert as_robot(new_secret).code == 0

    assert admin_cli("robot", "delete", robot["name"], "--yes").code == 0
    assert admin_cli("robot", "list", "-p", project, "-o", "json").json() == []
    gone = admin_cli("robot", "delete", robot["name"], "--yes")
    assert gone.code == 1
    assert "not found" in gone.err


def test_robot_can_log_in(admin_cli: Cli, cli: Cli, registry: PortsideServer) -> None:
    project = _unique("cli-rl-")
    assert admin_cli("project", "create", project).code == 0
    robot = admin_cli(
        "robot", "create", "login", "-p", project, "--permission", "repository:list", "-o", "json"
    ).json()
    done = cli(
        "login", registry.url, "-u", robot["name"], "--password-stdin", stdin=robot["secret"]
    )
    assert done.code == 0, done.err
    assert cli("repo", "list", project).code == 0
    denied = cli("project", "delete", project, "--yes")
    assert denied.code == 1
    assert "403" in denied.err


# -- quotas, audit, system -----------------------------------------------------------------------


def test_quota_show_and_set(admin_cli: Cli) -> None:
    project = _unique("cli-q-")
    assert admin_cli("project", "create", project, "--storage-limit", "1GiB").code == 0
    shown = admin_cli("quota", "show", project, "-o", "json").json()
    assert shown["hard"]["storage"] == GiB
    assert admin_cli("quota", "set", project, "2.5GiB").code == 0
    assert admin_cli("quota", "show", project, "-o", "json").json()["hard"]["storage"] == int(
        2.5 * GiB
    )
    table = admin_cli("quota", "show", project)
    assert project in table.out and "2.5 GiB" in table.out
    assert admin_cli("quota", "set", project, "-1").code == 0
    assert "unlimited" in admin_cli("quota", "show", project).out
    assert admin_cli("quota", "set", project, "12 parsecs").code == 2
    assert admin_cli("quota", "set", project, "--bogus").code == 2


def test_audit_list_filters_and_limits(admin_cli: Cli) -> None:
    project = _unique("cli-a-")
    assert admin_cli("project", "create", project).code == 0
    entries = admin_cli(
        "audit", "list", "--resource-type", "project", "--resource", project, "-o", "json"
    ).json()
    assert [(e["operation"], e["resource"]) for e in entries] == [("create", project)]
    scoped = admin_cli("audit", "list", "--project", project, "-o", "json").json()
    assert any(e["resource"] == project for e in scoped)
    assert len(admin_cli("audit", "list", "--limit", "2", "-o", "json").json()) == 2
    table = admin_cli("audit", "list", "--resource", project)
    assert table.out.split()[:5] == ["TIME", "USER", "OPERATION", "TYPE", "RESOURCE"]
    assert project in table.out


def test_system_health_and_info(admin_cli: Cli) -> None:
    health = admin_cli("system", "health")
    assert health.code == 0, health.err
    assert "overall: healthy" in health.out and "database" in health.out
    assert admin_cli("system", "health", "-o", "json").json()["status"] == "healthy"
    info = admin_cli("system", "info", "-o", "json")
    assert info.code == 0
    assert "harbor_version" in info.json()


# -- repositories, artifacts, tags ---------------------------------------------------------------


def test_repositories_artifacts_and_tags(admin_cli: Cli, client: httpx.Client) -> None:
    project = _unique("cli-c-")
    assert admin_cli("project", "create", project).code == 0
    repository = f"{project}/apps/web"  # a nested name: URL-encoded twice in API paths
    manifest = image_manifest()
    push_content(client, repository, manifest, "v1")

    repos = admin_cli("repo", "list", project, "-o", "json").json()
    assert [r["name"] for r in repos] == [repository]
    assert repository in admin_cli("repo", "list", project).out

    artifacts = admin_cli("artifact", "list", repository, "-o", "json").json()
    assert [a["digest"] for a in artifacts] == [manifest.digest]
    table = admin_cli("artifact", "list", repository)
    assert manifest.digest[:19] in table.out and "v1" in table.out
    shown = admin_cli("artifact", "show", f"{repository}@{manifest.digest}", "-o", "json")
    assert [t["name"] for t in shown.json()["tags"]] == ["v1"]
    assert manifest.digest in admin_cli("artifact", "show", f"{repository}:v1").out

    assert admin_cli("tag", "add", f"{repository}:v1", "stable").code == 0
    tags = admin_cli("artifact", "show", f"{repository}:stable", "-o", "json").json()["tags"]
    assert sorted(t["name"] for t in tags) == ["stable", "v1"]

    copied = admin_cli("artifact", "copy", f"{repository}:v1", f"{project}/copy")
    assert copied.code == 0, copied.err
    assert admin_cli("artifact", "show", f"{project}/copy@{manifest.digest}").code == 0

    assert admin_cli("tag", "delete", f"{repository}:stable").code == 0
    assert admin_cli("artifact", "show", f"{repository}:stable").code == 1
    assert admin_cli("tag", "delete", f"{repository}@{manifest.digest}").code == 2

    assert admin_cli("artifact", "delete", f"{project}/copy:v1", "--yes").code == 0
    assert admin_cli("artifact", "list", f"{project}/copy", "-o", "json").json() == []
    assert admin_cli("repo", "delete", repository, "--yes").code == 0
    names = [r["name"] for r in admin_cli("repo", "list", project, "-o", "json").json()]
    assert repository not in names

    missing = admin_cli("artifact", "show", f"{project}/nothing:latest")
    assert missing.code == 1
    assert "404" in missing.err
    assert admin_cli("artifact", "show", "no-tag-here").code == 2


# -- server side ---------------------------------------------------------------------------------


def test_admin_reset_password_then_login(
    fresh_registry: PortsideServer, cli: Cli, tmp_path: Path
) -> None:
    fresh_registry.start()
    env = {"PORTSIDE_DATA_DIR": str(fresh_registry.data_dir)}
    weak = cli("admin", "reset-password", "--password-stdin", stdin="short\n", env=env)
    assert weak.code == 1
    assert "at least 1 uppercase" in weak.err
    ghost = cli(
        "admin", "reset-password", "--user", "ghost", "--password-stdin",
        stdin="Ghost-Pass-1\n", env=env,
    )  # fmt: skip
    assert ghost.code == 1
    assert "user ghost not found" in ghost.err

    done = cli("admin", "reset-password", "--password-stdin", stdin="Reset-Pass-42\n", env=env)
    assert done.code == 0, done.err
    login = cli(
        "login", fresh_registry.url, "-u", "admin", "--password-stdin", stdin="Reset-Pass-42\n"
    )
    assert login.code == 0, login.err
    old = cli(
        "login", fresh_registry.url, "-u", "admin", "--password-stdin",
        stdin=fresh_registry.password + "\n",
    )  # fmt: skip
    assert old.code == 1

    # Prompted twice when stdin is not used; the two entries must match.
    prompted = cli("admin", "reset-password", stdin="Prompt-Pass-1\nPrompt-Pass-1\n", env=env)
    assert prompted.code == 0, prompted.err
    assert cli("login", "-u", "admin", "--password-stdin", stdin="Prompt-Pass-1\n").code == 0

    empty = cli(
        "admin", "reset-password", "--password-stdin", stdin="Reset-Pass-42\n",
        env={"PORTSIDE_DATA_DIR": str(tmp_path / "nothing")},
    )  # fmt: skip
    assert empty.code == 1
    assert "portside db upgrade" in empty.err


def test_config_check_masks_secrets(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "portside.yaml"
    config.write_text(
        "storage:\n  driver: s3\n  s3:\n    bucket: images\n    secret_key: s3-secret-value\n"
        "database:\n  url: postgresql+asyncpg://portside:db-secret-value@db.example/portside\n"
    )
    done = cli(
        "config", "check", "--config", str(config),
        env={"PORTSIDE_ADMIN_PASSWORD": "admin-secret-value", "PORTSIDE_SERVER__PORT": "6000"},
    )  # fmt: skip
    assert done.code == 0, done.err
    assert "secret-value" not in done.out
    import yaml

    effective = yaml.safe_load(done.out)
    assert effective["admin_password"] == "********"
    assert effective["storage"]["s3"] == {**effective["storage"]["s3"], "secret_key": "********"}
    assert effective["storage"]["s3"]["bucket"] == "images"
    assert (
        effective["database"]["url"] == "postgresql+asyncpg://portside:********@db.example/portside"
    )
    assert effective["server"]["port"] == 6000  # the environment counts, as for serve


def test_config_check_names_bad_keys(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("server:\n  port: 99999\nstorage:\n  drivr: s3\n")
    done = cli("config", "check", "-c", str(config))
    assert done.code == 1
    assert "server.port" in done.err
    assert "storage.drivr" in done.err
    missing = cli("config", "check", "-c", str(tmp_path / "absent.yaml"))
    assert missing.code == 1
    assert "cannot read config file" in missing.err


# -- help, completion, start-up cost -------------------------------------------------------------


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_help_everywhere() -> None:
    commands = _all_commands(cli_main)
    expected = {
        ("admin", "reset-password"), ("config", "check"), ("login",), ("logout",),
        ("project", "create"), ("project", "list"), ("project", "show"), ("project", "delete"),
        ("member", "add"), ("member", "list"), ("member", "remove"),
        ("repo", "list"), ("repo", "delete"),
        ("artifact", "list"), ("artifact", "show"), ("artifact", "delete"), ("artifact", "copy"),
        ("tag", "add"), ("tag", "delete"),
        ("robot", "create"), ("robot", "list"), ("robot", "refresh"), ("robot", "disable"),
        ("robot", "delete"), ("user", "create"), ("user", "list"), ("user", "set-admin"),
        ("quota", "show"), ("quota", "set"), ("audit", "list"),
        ("system", "health"), ("system", "info"), ("serve",), ("db", "upgrade"), ("fsck",),
    }  # fmt: skip
    assert expected <= set(commands)
    runner = CliRunner()
    for path in commands:
        done = runner.invoke(cli_main, [*path, "--help"])
        assert done.exit_code == 0, (path, done.output)
        assert "Usage: " in done.output


def test_usage_errors_exit_2(cli: Cli) -> None:
    done = cli("project", "frobnicate")
    assert done.code == 2
    assert "No such command" in done.err


def test_bash_completion_script_and_completions(home: Path) -> None:
    def cli(env: dict[str, str]) -> Result:
        portside = Path(sys.executable).with_name("portside")
        done = subprocess.run(
            [str(portside)], capture_output=True, text=True, env={**os.environ, **env}, timeout=60
        )
        return Result(done.returncode, done.stdout, done.stderr)

    script = cli(env={"_PORTSIDE_COMPLETE": "bash_source"})
    assert script.code == 0
    assert "_portside_completion" in script.out
    assert "complete -o nosort -F _portside_completion portside" in script.out
    words = cli(
        env={"_PORTSIDE_COMPLETE": "bash_complete", "COMP_WORDS": "portside ro", "COMP_CWORD": "1"}
    )
    assert "plain,robot" in words.out.splitlines()
    sub = cli(
        env={
            "_PORTSIDE_COMPLETE": "bash_complete",
            "COMP_WORDS": "portside artifact c",
            "COMP_CWORD": "2",
        }
    )
    assert "plain,copy" in sub.out.splitlines()


def test_server_start_up_does_not_load_client_libraries() -> None:
    code = (
        "import sys, portside.cli.main; "
        "print(sorted(m for m in ('httpx', 'rich') if sys.modules.get(m)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_lists_walk_every_page(
    admin_cli: Cli, registry: PortsideServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portside.cli import client as api_client
    from portside.cli.credentials import Credentials

    created = {_unique("cli-page-") for _ in range(3)}
    for name in created:
        assert admin_cli("project", "create", name).code == 0
    # The shared server may hold more than one page of projects: compare with the total.
    total = int(client.get("/api/v2.0/projects?page_size=1").headers["X-Total-Count"])
    monkeypatch.setattr(api_client, "PAGE_SIZE", 2)
    with api_client.Api(Credentials(registry.url, "admin", registry.password)) as api:
        pages = list(api.pages("/projects"))
        assert len(pages) >= 2 and all(len(items) <= 2 for items, _ in pages)
        walked = [p["name"] for p in api.list_all("/projects")]
        assert len(walked) == len(set(walked)) == total
        assert created <= set(walked)
        first_three = [p["name"] for p in api.list_all("/projects", limit=3)]
        assert len(set(first_three)) == 3
    limited = admin_cli("project", "list", "--limit", "2", "-o", "json")
    assert len(limited.json()) == 2


def test_long_lists_show_a_progress_bar_on_a_terminal(
    registry: PortsideServer, client: httpx.Client, home: Path
) -> None:
    """On a terminal, walking several pages shows a bar on stderr; piped output never does."""
    project = _unique("cli-tty-")
    created = client.post(
        "/api/v2.0/projects", json={"project_name": project, "metadata": {"public": "false"}}
    )
    assert created.status_code == 201, created.text
    with httpx.Client(base_url=registry.url, timeout=30) as anonymous:
        for index in range(250):  # each refused anonymous pull is one audit entry
            anonymous.get(f"/v2/{project}/app{index}/manifests/latest")
    client.get("/api/v2.0/audit-logs", params={"page_size": 1})  # flushes the queue
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PORTSIDE_")},
        "HOME": str(home),
        "PORTSIDE_URL": registry.url,
        "PORTSIDE_USERNAME": "admin",
        "PORTSIDE_PASSWORD": registry.password,
        "COLUMNS": "120",
        "TERM": "xterm",
    }
    args = [sys.executable, "-m", "portside.cli.main", "audit", "list", "--limit", "300"]
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(args, stdout=terminal, stderr=terminal, env=env)
        os.close(terminal)
        seen = bytearray()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the terminal closed: the command is done
                    break
                if not chunk:
                    break
                seen += chunk
            elif process.poll() is not None:
                break
        assert process.wait(30) == 0, seen[-2000:]
    finally:
        os.close(controller)
    assert b"fetching audit entries" in seen, seen[:2000]
    piped = subprocess.run(args, capture_output=True, env=env, timeout=60)
    assert piped.returncode == 0
    assert b"fetching" not in piped.stderr + piped.stdout


# -- TLS with a private CA -----------------------------------------------------------------------


@dataclass
class Pki:
    ca: Path  # the private CA's certificate: what --ca-bundle is given
    other_ca: Path  # a CA that did not sign the server's certificate
    cert: Path
    key: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A private CA and a server certificate for 127.0.0.1 that it signed."""
    folder = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key = _ca("Portside test CA")
    other_cert, _ = _ca("Some other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(folder / "ca.pem", folder / "other-ca.pem", folder / "tls.crt", folder / "tls.key")
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.other_ca.write_bytes(other_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(_key_pem(key))
    return pki


@pytest.fixture(scope="module")
def tls_registry(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortsideServer]:
    """A Portside serving HTTPS with a certificate from the private CA."""
    env = {"PORTSIDE_SERVER__TLS_CERT": str(pki.cert), "PORTSIDE_SERVER__TLS_KEY": str(pki.key)}
    trust = ssl.create_default_context(cafile=str(pki.ca))
    server = PortsideServer(tmp_path_factory.mktemp("tls"), env, scheme="https", verify=trust)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _login(cli: Cli, server: PortsideServer, *options: str, **kwargs: Any) -> Result:
    return cli(
        "login",
        server.url,
        "-u",
        "admin",
        "--password-stdin",
        *options,
        stdin=server.password + "\n",
        **kwargs,
    )


def test_tls_without_trust_fails_with_a_clear_message(
    cli: Cli, home: Path, tls_registry: PortsideServer, pki: Pki
) -> None:
    done = _login(cli, tls_registry)
    assert done.code == 1
    assert f"cannot verify the TLS certificate of {tls_registry.url}" in done.err
    assert "--ca-bundle" in done.err and "--insecure" in done.err
    assert len(done.err.strip().splitlines()) == 1
    assert not (home / "config" / "portside" / "credentials.json").exists()
    # A CA that did not sign it is no better.
    wrong = _login(cli, tls_registry, "--ca-bundle", str(pki.other_ca))
    assert wrong.code == 1 and "cannot verify the TLS certificate" in wrong.err
    # Nor is the environment's way of asking for the same thing.
    env = {"PORTSIDE_URL": tls_registry.url, "PORTSIDE_USERNAME": "admin"}
    listed = cli("project", "list", env={**env, "PORTSIDE_PASSWORD": tls_registry.password})
    assert listed.code == 1 and "cannot verify the TLS certificate" in listed.err


def test_tls_with_ca_bundle_works_and_login_stores_it(
    cli: Cli, home: Path, tls_registry: PortsideServer, pki: Pki
) -> None:
    done = _login(cli, tls_registry, "--ca-bundle", str(pki.ca))
    assert done.code == 0, done.err
    assert "warning" not in done.err
    stored = json.loads((home / "config" / "portside" / "credentials.json").read_text())
    assert stored["ca_bundle"] == str(pki.ca.resolve()) and "insecure" not in stored
    # Later commands use the stored bundle without repeating it.
    listed = cli("project", "list", "-o", "json")
    assert listed.code == 0, listed.err
    assert "library" in [p["name"] for p in listed.json()]
    # Logging in again to the same URL without the option keeps it.
    assert _login(cli, tls_registry).code == 0
    assert json.loads((home / "config" / "portside" / "credentials.json").read_text())[
        "ca_bundle"
    ] == str(pki.ca.resolve())
    # An option on the command line wins over the stored bundle.
    overridden = cli("project", "list", "--ca-bundle", str(pki.other_ca))
    assert overridden.code == 1 and "cannot verify the TLS certificate" in overridden.err


def test_tls_ca_bundle_from_the_environment(
    cli: Cli, tls_registry: PortsideServer, pki: Pki
) -> None:
    env = {
        "PORTSIDE_URL": tls_registry.url,
        "PORTSIDE_USERNAME": "admin",
        "PORTSIDE_PASSWORD": tls_registry.password,
        "PORTSIDE_CA_BUNDLE": str(pki.ca),
    }
    done = cli("system", "info", "-o", "json", env=env)
    assert done.code == 0, done.err
    assert "warning" not in done.err


def test_tls_insecure_works_with_a_warning(
    cli: Cli, home: Path, tls_registry: PortsideServer
) -> None:
    done = _login(cli, tls_registry, "--insecure")
    assert done.code == 0, done.err
    assert "warning: not verifying the TLS certificate" in done.err
    stored = json.loads((home / "config" / "portside" / "credentials.json").read_text())
    assert stored["insecure"] is True and "ca_bundle" not in stored
    listed = cli("project", "list")
    assert listed.code == 0, listed.err
    assert "warning: not verifying" in listed.err and "library" in listed.out
    cli("logout")
    env = {
        "PORTSIDE_URL": tls_registry.url,
        "PORTSIDE_USERNAME": "admin",
        "PORTSIDE_PASSWORD": tls_registry.password,
        "PORTSIDE_INSECURE": "1",
    }
    from_env = cli("project", "list", env=env)
    assert from_env.code == 0, from_env.err
    assert "warning: not verifying" in from_env.err


def test_tls_bad_ca_bundle_is_a_clear_error(
    cli: Cli, tmp_path: Path, tls_registry: PortsideServer
) -> None:
    missing = _login(cli, tls_registry, "--ca-bundle", str(tmp_path / "nope.pem"))
    assert missing.code == 2 and "nope.pem" in missing.err and "does not exist" in missing.err
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    bad = _login(cli, tls_registry, "--ca-bundle", str(garbage))
    assert bad.code == 1
    assert f"cannot use CA bundle {garbage}" in bad.err
    assert len(bad.err.strip().splitlines()) == 1
