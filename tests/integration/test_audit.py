"""The audit log: what is recorded (push, pull, delete, logins), the listing endpoints with their
filters, paging and access rules (``/api/v2.0/audit-logs``, ``/projects/{p}/logs``), purging by
age, and forwarding to syslog over UDP.

Everything runs against real servers over HTTP, except the purge itself, which is also tested on
a real SQLite database with entries written through :class:`~portside.audit.log.AuditLog` under
a clock the test sets.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from portside.audit.log import AuditEntry, AuditLog, iso8601
from portside.audit.purge import purge_before, purge_once
from portside.audit.syslog import SyslogForwarder, parse_syslog_address
from portside.db.engine import Database
from portside.db.migrate import upgrade
from portside.db.tables import audit_logs
from tests.support.oci import (
    OCI_MANIFEST,
    blob_path,
    image_manifest,
    manifest_path,
    push_blob,
    push_content,
    random_blob,
)
from tests.support.server import PortsideServer

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
PASSWORD = "Audit-Test-1"
# Harbor's AuditLog model, plus Portside's result and client_ip.
FIELDS = {"id", "username", "resource", "resource_type", "operation", "op_time"}
FIELDS |= {"result", "client_ip"}


# -- helpers ------------------------------------------------------------------------------------


def _logs(client: httpx.Client, path: str = "/api/v2.0/audit-logs", **params: Any) -> Any:
    response = client.get(path, params={"page_size": 100, **params})
    assert response.status_code == 200, response.text
    return response.json()


def _of(entries: list[dict[str, Any]], operation: str) -> list[str]:
    return sorted(e["resource"] for e in entries if e["operation"] == operation)


def _parse_time(value: str) -> dt.datetime:
    assert ISO_Z.match(value), value
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(stamp: dt.datetime) -> str:
    return stamp.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _assert_harbor_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errors"}, body
    assert len(body["errors"]) == 1
    assert set(body["errors"][0]) == {"code", "message"}
    message: str = body["errors"][0]["message"]
    return message


def _create_user(client: httpx.Client, username: str) -> None:
    response = client.post(
        "/api/v2.0/users",
        json={"username": username, "password": PASSWORD, "email": f"{username}@example.com"},
    )
    assert response.status_code == 201, response.text


def _create_project(client: httpx.Client, name: str) -> None:
    response = client.post(
        "/api/v2.0/projects", json={"project_name": name, "metadata": {"public": "false"}}
    )
    assert response.status_code == 201, response.text


def _add_member(client: httpx.Client, project: str, username: str, role_id: int) -> None:
    response = client.post(
        f"/api/v2.0/projects/{project}/members",
        json={"role_id": role_id, "member_user": {"username": username}},
    )
    assert response.status_code == 201, response.text


def _unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


# -- what is recorded ---------------------------------------------------------------------------


def test_push_pull_and_delete_are_recorded(
    registry: PortsideServer, client: httpx.Client, repo: str
) -> None:
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    tagged = image_manifest()
    by_digest = image_manifest()
    push_content(client, repo, tagged, "v1")
    push_content(client, repo, by_digest)
    accept = {"Accept": OCI_MANIFEST}
    assert client.get(manifest_path(repo, "v1"), headers=accept).status_code == 200
    assert client.get(manifest_path(repo, by_digest.digest), headers=accept).status_code == 200
    # Not pulls, as in Harbor: a HEAD, and a blob download.
    assert client.head(manifest_path(repo, "v1"), headers=accept).status_code == 200
    assert client.get(blob_path(repo, tagged.blobs[0].digest)).status_code == 200
    loose = random_blob()
    push_blob(client, repo, loose)
    assert client.delete(manifest_path(repo, "v1")).status_code == 202
    assert client.delete(manifest_path(repo, by_digest.digest)).status_code == 202
    assert client.delete(blob_path(repo, loose.digest)).status_code == 202

    entries = _logs(client, q=f"resource=~{repo}")
    assert _of(entries, "push") == sorted([f"{repo}:v1", f"{repo}@{by_digest.digest}"])
    assert _of(entries, "pull") == sorted([f"{repo}:v1", f"{repo}@{by_digest.digest}"])
    deletes = {(e["resource_type"], e["resource"]) for e in entries if e["operation"] == "delete"}
    assert deletes == {
        ("tag", f"{repo}:v1"),
        ("artifact", f"{repo}@{by_digest.digest}"),
        ("blob", f"{repo}@{loose.digest}"),
    }
    assert len(entries) == 7, entries
    for entry in entries:
        assert set(entry) == FIELDS
        assert entry["username"] == "admin"
        assert entry["result"] == "success"
        assert entry["client_ip"] == "127.0.0.1"
        if entry["operation"] in ("push", "pull"):
            assert entry["resource_type"] == "artifact"
        assert started <= _parse_time(entry["op_time"]) <= dt.datetime.now(dt.UTC)
    # Newest first by default: the deletes came last.
    assert [e["operation"] for e in entries[:3]] == ["delete"] * 3
    # Every one of them belongs to the library project.
    in_project = _logs(client, "/api/v2.0/projects/library/logs", q=f"resource=~{repo}")
    assert [e["id"] for e in in_project] == [e["id"] for e in entries]


def test_logins_are_recorded_with_the_client_address(
    registry: PortsideServer, client: httpx.Client
) -> None:
    stranger = _unique("nobody")
    # From another loopback address: its failure neither counts against 127.0.0.1's login limit
    # (shared by the session's tests) nor could be confused with them.
    transport = httpx.HTTPTransport(local_address="127.0.0.7")
    with httpx.Client(base_url=registry.url, transport=transport, timeout=10) as other:
        assert other.get("/v2/", auth=(stranger, "wrong-Passw0rd")).status_code == 401
        token = other.get("/service/token", auth=(registry.username, registry.password))
        assert token.status_code == 200, token.text

    failed = _logs(client, q=f"username={stranger},operation=login")
    assert len(failed) == 1, failed
    assert failed[0]["result"] == "failure"
    assert failed[0]["resource"] == stranger
    assert failed[0]["client_ip"] == "127.0.0.7"

    succeeded = _logs(client, q="username=admin,operation=login,client_ip=127.0.0.7")
    assert succeeded, "the token login is missing"
    assert {e["result"] for e in succeeded} == {"success"}


# -- listing: filters, sorting, paging, errors ----------------------------------------------------


def test_filters_sorting_and_paging(client: httpx.Client, repo: str) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    manifests = [image_manifest() for _ in range(3)]
    for i, manifest in enumerate(manifests):
        push_content(client, repo, manifest, f"t{i}")
    assert client.get(manifest_path(repo, "t0"), headers={"Accept": OCI_MANIFEST}).is_success
    after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    mine = f"resource=~{repo}"

    pushes = _logs(client, q=f"{mine},operation=push")
    assert _of(pushes, "push") == [f"{repo}:t{i}" for i in range(3)]
    assert len(pushes) == 3
    exact = _logs(client, q=f"resource={repo}:t1")
    assert [(e["operation"], e["resource"]) for e in exact] == [("push", f"{repo}:t1")]
    quoted = _logs(client, q=f'resource="{repo}:t1"')
    assert [e["id"] for e in quoted] == [e["id"] for e in exact]
    any_of = _logs(client, q=f"{mine},operation=(pull delete)")
    assert [(e["operation"], e["resource"]) for e in any_of] == [("pull", f"{repo}:t0")]
    assert _logs(client, q=f"{mine},resource_type=artifact,username=admin,result=success")
    assert _logs(client, q=f"{mine},username=someone-else") == []
    assert _logs(client, q=f"{mine},result=failure") == []

    window = f"op_time=[{_iso(before)}~{_iso(after)}]"
    assert len(_logs(client, q=f"{mine},{window}")) == 4
    assert _logs(client, q=f"{mine},op_time=[{_iso(after)}~]") == []
    assert _logs(client, q=f"{mine},op_time=[~{_iso(before)}]") == []
    # Harbor's own time format, "YYYY-MM-DD hh:mm:ss" (UTC), works as well.
    harbor_format = before.strftime("%Y-%m-%d %H:%M:%S")
    assert len(_logs(client, q=f"{mine},op_time=[{harbor_format}~]")) == 4
    # A time copied from a listing finds that entry.
    first = pushes[-1]
    assert [e["id"] for e in _logs(client, q=f"{mine},op_time={first['op_time']}")] == [first["id"]]

    newest_first = _logs(client, q=mine)
    oldest_first = _logs(client, q=mine, sort="op_time")
    assert [e["id"] for e in oldest_first] == [e["id"] for e in reversed(newest_first)]
    assert [e["id"] for e in _logs(client, q=mine, sort="-id")] == sorted(
        (e["id"] for e in newest_first), reverse=True
    )
    by_resource = _logs(client, q=mine, sort="resource,operation")
    assert [(e["resource"], e["operation"]) for e in by_resource] == sorted(
        (e["resource"], e["operation"]) for e in newest_first
    )

    seen = []
    for page in (1, 2):
        response = client.get(
            "/api/v2.0/audit-logs", params={"q": mine, "page": page, "page_size": 3}
        )
        assert response.status_code == 200
        assert response.headers["X-Total-Count"] == "4"
        seen += [e["id"] for e in response.json()]
        link = response.headers.get("Link", "")
        assert ('rel="next"' in link) == (page == 1), link
        assert ('rel="prev"' in link) == (page == 2), link
    assert seen == [e["id"] for e in newest_first]


@pytest.mark.parametrize(
    "params",
    [
        {"q": "password=x"},
        {"q": "operation"},
        {"q": "op_time=[yesterday~]"},
        {"q": "op_time=~2024"},
        {"q": "op_time=[2024-01-01]"},
        {"q": "op_time=0001-01-01T00:00:00+01:00"},
        {"q": "username=~a\x00b"},
        {"q": "resource=a\x00"},
        {"q": "resource=" + "x" * 600},
        {"q": "x" * 3000},
        {"sort": "password"},
        {"page_size": "1000"},
        {"page": "0"},
        {"page": "abc"},
    ],
)
def test_bad_listing_input_is_a_harbor_400(client: httpx.Client, params: dict[str, str]) -> None:
    for path in ("/api/v2.0/audit-logs", "/api/v2.0/projects/library/logs"):
        response = client.get(path, params=params)
        _assert_harbor_error(response, 400)
        assert response.json()["errors"][0]["code"] == "BAD_REQUEST"


# -- who sees what ------------------------------------------------------------------------------


def test_anonymous_callers_see_nothing(registry: PortsideServer) -> None:
    with httpx.Client(base_url=registry.url, timeout=10) as anonymous:
        for path in ("/api/v2.0/audit-logs", "/api/v2.0/projects/library/logs"):
            response = anonymous.get(path)
            _assert_harbor_error(response, 401)
            assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_members_see_only_their_projects_entries(
    registry: PortsideServer, client: httpx.Client
) -> None:
    mine, other = _unique("audit-a-"), _unique("audit-b-")
    manager, limited, outsider = _unique("adm"), _unique("lim"), _unique("out")
    for project in (mine, other):
        _create_project(client, project)
    for user in (manager, limited, outsider):
        _create_user(client, user)
    _add_member(client, mine, manager, 1)  # projectAdmin: holds log:list
    _add_member(client, mine, limited, 5)  # limitedGuest: does not
    _add_member(client, other, limited, 5)
    push_content(client, f"{mine}/app", image_manifest(), "v1")
    push_content(client, f"{other}/app", image_manifest(), "v1")

    admin_view = _logs(client, f"/api/v2.0/projects/{mine}/logs")
    assert f"{mine}/app:v1" in _of(admin_view, "push")
    assert all(e["resource"].find(other) == -1 for e in admin_view)

    def as_user(name: str) -> httpx.Client:
        return httpx.Client(base_url=registry.url, auth=(name, PASSWORD), timeout=10)

    with as_user(manager) as member:
        everything = _logs(member)
        # Exactly the entries of the project it may list logs in: no other project's, and none
        # that belong to no project (logins, user changes).
        assert [e["id"] for e in everything] == [e["id"] for e in admin_view]
        assert [e["id"] for e in _logs(member, f"/api/v2.0/projects/{mine}/logs")] == [
            e["id"] for e in admin_view
        ]
        _assert_harbor_error(member.get(f"/api/v2.0/projects/{other}/logs"), 403)
        # Filters narrow the visible entries; they never widen them.
        assert _logs(member, q=f"resource=~{other}") == []
        assert _of(_logs(member, q="operation=push"), "push") == [f"{mine}/app:v1"]

    for name in (limited, outsider):
        with as_user(name) as user:
            response = user.get("/api/v2.0/audit-logs")
            assert response.status_code == 200, response.text
            assert response.json() == []
            assert response.headers["X-Total-Count"] == "0"
            _assert_harbor_error(user.get(f"/api/v2.0/projects/{mine}/logs"), 403)


# -- syslog forwarding --------------------------------------------------------------------------


@pytest.fixture
def syslog_socket() -> Iterator[socket.socket]:
    """A UDP socket on loopback standing in for a syslog daemon."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


def _received(sock: socket.socket, wanted: str, timeout: float = 10) -> list[dict[str, Any]]:
    """Syslog lines received until one mentions ``wanted`` (or the time is up), as JSON."""
    entries = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        line = data.decode()  # one entry per datagram, no NUL terminator
        match = re.fullmatch(r"<(\d+)>portside-audit: (\{.*\})", line)
        assert match, line
        assert int(match[1]) == 4 * 8 + 6  # facility auth, severity info
        entries.append(json.loads(match[2]))
        if wanted in line:
            break
    return entries


def test_entries_are_forwarded_to_syslog_over_udp(
    fresh_registry: PortsideServer, syslog_socket: socket.socket
) -> None:
    port = syslog_socket.getsockname()[1]
    fresh_registry.env = {"PORTSIDE_AUDIT__SYSLOG_ADDRESS": f"127.0.0.1:{port}"}
    fresh_registry.start()
    repo = f"library/{_unique('syslog')}"
    with fresh_registry.client() as client:
        manifest = image_manifest()
        push_content(client, repo, manifest, "v1")
        forwarded = _received(syslog_socket, f"{repo}:v1")
        pushes = [e for e in forwarded if e["operation"] == "push"]
        assert pushes, forwarded
        entry = pushes[0]
        assert entry["resource"] == f"{repo}:v1"
        assert entry["resource_type"] == "artifact"
        assert entry["username"] == "admin"
        assert entry["result"] == "success"
        assert entry["client_ip"] == "127.0.0.1"
        assert entry["detail"] == manifest.digest
        assert ISO_Z.match(entry["op_time"])
        # The database has it too.
        stored = _logs(client, q=f"resource={repo}:v1,operation=push")
        assert len(stored) == 1
        assert stored[0]["op_time"] == entry["op_time"]


# -- purging by age -----------------------------------------------------------------------------


class _Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.slow),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated metadata database of the test's own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.db'}"
        upgrade(url)
        yield url
        return
    from tests.support.backends import postgres_database

    with postgres_database() as url:
        upgrade(url)
        yield url


def _count(url: str, *where: Any) -> int:
    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        clause = " AND ".join(where) or "1"
        return int(
            connection.execute(f"SELECT count(*) FROM audit_logs WHERE {clause}").fetchone()[0]
        )
    finally:
        connection.close()


class _CountingDatabase(Database):
    """Counts write transactions, to see a purge work in batches."""

    writes = 0

    async def write(self, transaction: Any) -> Any:
        self.writes += 1
        return await super().write(transaction)


async def test_purge_deletes_old_entries_in_batches_and_records_itself(database_url: str) -> None:
    db = _CountingDatabase(database_url)
    start = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
    clock = _Clock(start)
    audit = AuditLog(db, clock=clock)
    try:
        for days_ago, count in ((100, 23), (31, 2), (29, 3)):
            clock.now = start - dt.timedelta(days=days_ago)
            for i in range(count):
                audit.record("admin", "pull", "artifact", f"old{days_ago}/{i}", "success", None)
        clock.now = start - dt.timedelta(days=30)  # exactly at the cutoff: kept
        audit.record("admin", "pull", "artifact", "at-cutoff", "success", None)
        await audit.flush()
        assert await db.read(lambda c: c.scalar(select(func.count()).select_from(audit_logs))) == 29

        clock.now = start
        db.writes = 0
        deleted = await purge_once(db, audit, dt.timedelta(days=30), batch_size=4)
        assert deleted == 25
        assert db.writes == 7  # six full batches of four, then the last one
        await audit.flush()

        rows = await db.read(
            lambda c: list(c.execute(select(audit_logs).order_by(audit_logs.c.id)))
        )
        kept = sorted(r.resource for r in rows if r.operation == "pull")
        assert kept == sorted(["at-cutoff", *(f"old29/{i}" for i in range(3))])
        purges = [r for r in rows if r.operation == "purge"]
        assert len(purges) == 1
        assert purges[0].username == "system"
        assert purges[0].resource_type == "audit_log"
        assert purges[0].detail == "25 entries deleted"
        assert "2024-05-02T12:00:00" in purges[0].resource

        # Nothing left to purge: nothing deleted, and no new purge entry.
        assert await purge_once(db, audit, dt.timedelta(days=30)) == 0
        await audit.flush()
        assert await db.read(lambda c: c.scalar(select(func.count()).select_from(audit_logs))) == 5
        with pytest.raises(ValueError, match="time zone"):
            await purge_before(db, dt.datetime(2024, 1, 1))
    finally:
        await audit.close()
        await db.close()


async def test_hostile_values_cannot_poison_a_batch(database_url: str) -> None:
    """PostgreSQL refuses NUL in text; one such entry must not fail its batch (and every later
    one, since a failed batch is retried), whatever a caller sent as its username."""
    db = Database(database_url)
    audit = AuditLog(db)
    try:
        audit.record("nul\x00name", "login", "user", "nul\x00name", "failure", "10.0.0.1")
        audit.record("x" * 1000, "push" * 20, "artifact", "r" * 2000, "success", "1" * 100)
        audit.record("admin", "pull", "artifact", "library/after:1", "success", None)
        await audit.flush()
        rows = await db.read(
            lambda c: list(c.execute(select(audit_logs).order_by(audit_logs.c.id)))
        )
        assert [r.resource[:12] for r in rows] == ["nul\ufffdname", "r" * 12, "library/afte"]
        assert (len(rows[1].username), len(rows[1].resource), len(rows[1].operation)) == (
            255,
            512,
            32,
        )
    finally:
        await audit.close()
        await db.close()


async def test_identical_pulls_in_a_batch_become_one_entry_with_their_count(
    database_url: str,
) -> None:
    db = Database(database_url)
    audit = AuditLog(db)
    try:
        for _ in range(5):
            audit.record("ci", "pull", "artifact", "library/app:1", "success", "10.0.0.9")
        audit.record("ci", "pull", "artifact", "library/app:1", "success", "10.0.0.8")
        audit.record("ci", "push", "artifact", "library/app:2", "success", "10.0.0.9")
        audit.record("ci", "push", "artifact", "library/app:2", "success", "10.0.0.9")
        await audit.flush()
        rows = await db.read(
            lambda c: list(c.execute(select(audit_logs).order_by(audit_logs.c.id)))
        )
        summary = [(r.operation, r.client_ip, r.detail) for r in rows]
        assert summary[1:] == [
            ("pull", "10.0.0.8", None),
            ("push", "10.0.0.9", None),
            ("push", "10.0.0.9", None),  # only pulls are merged
        ]
        assert summary[0][:2] == ("pull", "10.0.0.9")
        assert summary[0][2].startswith("5 identical pulls until ")
    finally:
        await audit.close()
        await db.close()


async def test_identical_pulls_between_two_writes_are_counted_not_queued(
    database_url: str,
) -> None:
    """However many identical pulls arrive between two writes (more than one write's batch,
    here), they make one row that says how many and when the last was; the next write's pulls
    are counted afresh. Syslog gets the same entries as the database."""
    ticks = iter(range(1_000_000))
    start = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    db = Database(database_url)
    audit = AuditLog(db, clock=lambda: start + dt.timedelta(milliseconds=next(ticks)))
    forwarded: list[AuditEntry] = []

    class Collector:
        def send(self, entries: list[AuditEntry]) -> None:
            forwarded.extend(entries)

        def close(self) -> None:
            pass

    audit.forward(Collector())
    try:
        for _ in range(2_000):
            audit.record("ci", "pull", "artifact", "library/app:1", "success", "10.0.0.9")
        audit.record("ci", "push", "artifact", "library/app:2", "success", "10.0.0.9")
        await audit.flush()
        for _ in range(3):
            audit.record("ci", "pull", "artifact", "library/app:1", "success", "10.0.0.9")
        await audit.flush()
        rows = await db.read(
            lambda c: list(c.execute(select(audit_logs).order_by(audit_logs.c.id)))
        )
        assert [(r.operation, r.detail) for r in rows] == [
            ("pull", "2000 identical pulls until 2026-03-01T12:00:01.999Z"),
            ("push", None),
            ("pull", "3 identical pulls until 2026-03-01T12:00:02.003Z"),
        ]
        assert iso8601(rows[0].op_time) == "2026-03-01T12:00:00.000Z"  # the first pull's
        assert [(e.operation, e.detail) for e in forwarded] == [
            (r.operation, r.detail) for r in rows
        ]
    finally:
        await audit.close()
        await db.close()


def test_server_purges_entries_older_than_the_retention(fresh_registry: PortsideServer) -> None:
    fresh_registry.start()  # creates and migrates the database
    fresh_registry.stop()
    url = f"sqlite:///{fresh_registry.data_dir / 'portside.db'}"
    marker = _unique("ancient")

    async def write_old_entries() -> None:
        db = Database(url)
        audit = AuditLog(db, clock=lambda: dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
        for i in range(3):
            audit.record("admin", "pull", "artifact", f"{marker}/{i}", "success", None)
        await audit.close()
        await db.close()

    asyncio.run(write_old_entries())
    assert _count(url, f"resource LIKE '{marker}/%'") == 3

    fresh_registry.env = {
        "PORTSIDE_AUDIT__RETENTION_DAYS": "1",
        "PORTSIDE_AUDIT__PURGE_INTERVAL_SECONDS": "1",
    }
    fresh_registry.start()
    with fresh_registry.client() as client:
        push_content(client, f"library/{marker}", image_manifest(), "recent")
        deadline = time.monotonic() + 15
        purges: list[dict[str, Any]] = []
        while not purges and time.monotonic() < deadline:
            time.sleep(0.2)
            purges = _logs(client, q="operation=purge")
        assert purges, "no purge within 15 seconds"
        assert purges[0]["username"] == "system"
        assert _logs(client, q=f"resource=~{marker}/") == []
        assert _of(_logs(client, q=f"resource=~{marker}"), "push") == [f"library/{marker}:recent"]


def _entry(resource: str) -> AuditEntry:
    return AuditEntry(
        dt.datetime(2024, 6, 1, 12, 0, 0, 123000, tzinfo=dt.UTC),
        "admin",
        "push",
        "artifact",
        resource,
        "success",
        "127.0.0.1",
        7,
        None,
    )


def test_syslog_to_a_local_socket(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as daemon:
        daemon.bind(str(path))
        daemon.settimeout(5)
        forwarder = SyslogForwarder(str(path))
        try:
            forwarder.send([_entry("library/a:1"), _entry("library/b:2")])
            lines = [daemon.recv(65536).decode(), daemon.recv(65536).decode()]
        finally:
            forwarder.close()
    for line, resource in zip(lines, ("library/a:1", "library/b:2"), strict=True):
        match = re.fullmatch(r"<38>portside-audit: (\{.*\})\x00", line)
        assert match, line
        entry = json.loads(match[1])
        assert entry["resource"] == resource
        assert entry["op_time"] == "2024-06-01T12:00:00.123Z"
        assert entry["project_id"] == 7


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("127.0.0.1:514", ("127.0.0.1", 514)),
        ("syslog.example:1514", ("syslog.example", 1514)),
        ("[::1]:514", ("::1", 514)),
        ("/dev/log", "/dev/log"),
    ],
)
def test_syslog_addresses(value: str, parsed: object) -> None:
    assert parse_syslog_address(value) == parsed


@pytest.mark.parametrize("value", ["localhost", "host:", ":514", "host:0", "host:70000", "h:x"])
def test_bad_syslog_addresses_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="syslog address"):
        parse_syslog_address(value)
