"""Failed logins are rate-limited per account and client address, and per client address, with a
clear error on each way in (``/v2/`` basic auth, ``/service/token`` GET and POST,
``/api/v2.0``); successful logins are neither counted nor slowed; a stranger's failures do not
lock the account out from elsewhere; exempt networks are never limited; the block lifts when
the window moves on or with ``portside admin unlock``; and with Redis the counters are shared
by several servers.

Each test runs servers of its own. Only the tests of the block lifting use a short window
(4 seconds) and depend on timing; the others use per-minute limits. Client
addresses are varied by binding the client to other loopback addresses (127.0.0.x).
"""

from __future__ import annotations

import contextlib
import secrets
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.backends import postgres_database
from tests.support.server import PortsideServer

WINDOW = 4.0
REDIS_URL = "redis://127.0.0.1:6379/0"

StartServer = Callable[[dict[str, str]], PortsideServer]


def _limits(per_account: str, per_address: str, **extra: str) -> dict[str, str]:
    return {
        "PORTSIDE_AUTH__LOGIN_FAILURES_PER_ACCOUNT": per_account,
        "PORTSIDE_AUTH__LOGIN_FAILURES_PER_ADDRESS": per_address,
        "PORTSIDE_LOG__ACCESS_LOG": "false",
        **extra,
    }


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start servers of the test's own with the given settings; all are stopped afterwards."""
    started: list[PortsideServer] = []

    def start(env: dict[str, str]) -> PortsideServer:
        server = PortsideServer(tmp_path / f"portside-{len(started)}", env)
        server.start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def _client(server: PortsideServer, source: str = "127.0.0.1") -> httpx.Client:
    """A client without credentials connecting from loopback address ``source``."""
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=server.url, transport=transport, timeout=10)


def _v2(client: httpx.Client, username: str, password: str) -> httpx.Response:
    return client.get("/v2/", auth=(username, password))


def _assert_oci_429(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    errors = response.json()["errors"]
    assert errors[0]["code"] == "TOOMANYREQUESTS"
    assert "too many failed logins" in errors[0]["message"]


def _assert_harbor_429(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert set(body) == {"errors"}
    assert body["errors"][0]["code"] == "TOO_MANY_REQUESTS"
    assert "too many failed logins" in body["errors"][0]["message"]


def test_blocked_account_gets_a_clear_error_on_every_way_in(start_server: StartServer) -> None:
    server = start_server(_limits("3 per minute", "100 per minute"))
    password = server.password
    with _client(server) as client:
        for _ in range(3):
            assert _v2(client, "admin", "wrong-password").status_code == 401
        # The fourth attempt is refused before the password is looked at: the right one too.
        _assert_oci_429(_v2(client, "admin", password))
        _assert_oci_429(
            client.get(
                "/service/token",
                params={"service": "portside", "scope": "repository:library/x:pull"},
                auth=("admin", password),
            )
        )
        _assert_oci_429(
            client.post(
                "/service/token",
                data={"grant_type": "password", "username": "admin", "password": password},
            )
        )
        _assert_harbor_429(client.get("/api/v2.0/audit-logs", auth=("admin", password)))
        # Another account from the same address is not affected (the address limit is high).
        assert _v2(client, "someone-else", "wrong-password").status_code == 401


def _refused(client: httpx.Client, password: str) -> float:
    """Log in with the right password, which must be refused; when it was sent (monotonic)."""
    sent = time.monotonic()
    _assert_oci_429(_v2(client, "admin", password))
    return sent


def _lift_time(
    client: httpx.Client, password: str, timeout: float, refused_at: float
) -> tuple[float, float]:
    """Poll with the right password until the block lifts. Refused attempts are not failures,
    so polling does not extend the block.

    Returns (when the last refused attempt was sent, when the first accepted one was answered),
    in monotonic time, starting from an attempt refused at ``refused_at``: the block lifted
    between the two. These two bound it however long each request took on a busy machine (an
    accepted login verifies the password, a refused one does not)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent = time.monotonic()
        response = _v2(client, "admin", password)
        if response.status_code == 200:
            return refused_at, time.monotonic()
        _assert_oci_429(response)
        refused_at = sent
        time.sleep(0.1)
    raise AssertionError(f"still blocked after {timeout} seconds")


def test_the_block_lifts_when_the_window_moves_on(start_server: StartServer) -> None:
    server = start_server(_limits(f"3 per {WINDOW:g} seconds", "100 per minute"))
    password = server.password
    with _client(server) as client:
        first_sent = time.monotonic()
        assert _v2(client, "admin", "wrong-password").status_code == 401
        first_done = time.monotonic()
        for _ in range(2):
            assert _v2(client, "admin", "wrong-password").status_code == 401
        assert time.monotonic() < first_sent + WINDOW, "the failures took longer than the window"
        refused_at = _refused(client, password)
        last_refused, lifted = _lift_time(client, password, WINDOW + 5, refused_at)
        # Not before the first failure left the window, and no later than that: the server
        # counted the failure between first_sent and first_done, and refused nothing sent
        # after first_done + WINDOW (the 0.2 s allow for rounding between the two clocks).
        assert lifted >= first_sent + WINDOW - 0.2
        assert last_refused <= first_done + WINDOW + 0.2
        token = client.get("/service/token", auth=("admin", password))
        assert token.status_code == 200, token.text
        assert client.get("/api/v2.0/audit-logs", auth=("admin", password)).status_code == 200


def test_successful_logins_are_not_counted_or_slowed(start_server: StartServer) -> None:
    server = start_server(_limits("3 per minute", "3 per minute"))
    password = server.password

    def login_time(client: httpx.Client) -> float:
        started = time.perf_counter()
        response = client.get("/service/token", auth=("admin", password))
        assert response.status_code == 200, response.text
        return time.perf_counter() - started

    with _client(server) as client:
        # Many more successes than either limit allows failures: none of them is refused.
        baseline = [login_time(client) for _ in range(20)]
        # Two failures (under the limit of three) do not delay the next successes.
        for _ in range(2):
            assert _v2(client, "admin", "wrong-password").status_code == 401
        after_failures = [login_time(client) for _ in range(5)]
        assert statistics.median(after_failures) < statistics.median(baseline) + 0.5
        # The successes did not use up the budget either: one more failure is still allowed
        # (the third), and only then is the account refused.
        assert _v2(client, "admin", "wrong-password").status_code == 401
        _assert_oci_429(_v2(client, "admin", password))


def test_per_address_limit_is_independent_of_the_account(start_server: StartServer) -> None:
    server = start_server(_limits("100 per minute", "4 per minute"))
    password = server.password
    with _client(server, "127.0.0.2") as guesser, _client(server, "127.0.0.3") as bystander:
        # One failure each for four different accounts: no account is near its limit...
        for i in range(4):
            assert _v2(guesser, f"user{i}", "wrong-password").status_code == 401
        # ...but the address is: it may not log in at all now, not even as admin.
        _assert_oci_429(_v2(guesser, "admin", password))
        _assert_oci_429(_v2(guesser, "user9", "wrong-password"))
        # Another address logs in as admin, and may still fail on its own account.
        assert _v2(bystander, "admin", password).status_code == 200
        assert _v2(bystander, "user0", "wrong-password").status_code == 401


def test_a_stranger_cannot_lock_the_account_out_elsewhere(start_server: StartServer) -> None:
    """Failures for an account count per account and address: the guesser locks out himself,
    and the account's owner logs in from his own address."""
    server = start_server(_limits("3 per minute", "100 per minute"))
    password = server.password
    with _client(server, "127.0.0.4") as guesser, _client(server, "127.0.0.5") as owner:
        for _ in range(3):
            assert _v2(guesser, "admin", "wrong-password").status_code == 401
        _assert_oci_429(_v2(guesser, "admin", password))
        assert _v2(owner, "admin", password).status_code == 200
        # The owner's own failures are counted on their own: two more are still allowed.
        for _ in range(2):
            assert _v2(owner, "admin", "wrong-password").status_code == 401
        assert _v2(owner, "admin", password).status_code == 200
        # The guesser may still fail on other accounts (under the address limit).
        assert _v2(guesser, "user1", "wrong-password").status_code == 401


def test_exempt_networks_are_never_counted_or_refused(start_server: StartServer) -> None:
    server = start_server(
        _limits(
            "3 per minute",
            "3 per minute",
            PORTSIDE_AUTH__LOGIN_LIMIT_EXEMPT_NETWORKS='["127.0.0.8/29", "2001:db8::/32"]',
        )
    )
    password = server.password
    with _client(server, "127.0.0.9") as inside, _client(server, "127.0.0.16") as outside:
        for _ in range(6):
            assert _v2(inside, "admin", "wrong-password").status_code == 401
        assert _v2(inside, "admin", password).status_code == 200
        for _ in range(3):
            assert _v2(outside, "admin", "wrong-password").status_code == 401
        _assert_oci_429(_v2(outside, "admin", password))


def test_an_invalid_exempt_network_stops_the_server(tmp_path: Path) -> None:
    server = PortsideServer(
        tmp_path / "bad", {"PORTSIDE_AUTH__LOGIN_LIMIT_EXEMPT_NETWORKS": '["10.0.0.0/33"]'}
    )
    checked = server.run_command("config", "check")
    assert checked.returncode != 0
    assert "login_limit_exempt_networks" in checked.stderr, checked.stderr


def _unlock(server: PortsideServer, *args: str) -> None:
    done = server.run_command("admin", "unlock", *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("unlocked: "), done.stdout


def _accepted_soon(client: httpx.Client, password: str, timeout: float = 10) -> None:
    """The right password is accepted within ``timeout`` seconds (an unlock reaches a running
    server when it next refuses a login, and it looks again every few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        response = _v2(client, "admin", password)
        if response.status_code == 200:
            return
        _assert_oci_429(response)
        assert time.monotonic() < deadline, "still refused after the unlock"
        time.sleep(0.5)


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def test_portside_admin_unlock_lifts_a_refusal(start_server: StartServer, database: str) -> None:
    """The unlock travels through the audit log table, so it is tried on both databases."""
    with contextlib.ExitStack() as stack:
        extra = {}
        if database == "postgres":
            extra["PORTSIDE_DATABASE__URL"] = stack.enter_context(postgres_database())
        server = start_server(_limits("3 per minute", "6 per minute", **extra))
        stack.callback(server.stop)  # before its database is dropped
        _unlock_lifts_a_refusal(server)


def _unlock_lifts_a_refusal(server: PortsideServer) -> None:
    password = server.password
    with _client(server, "127.0.0.20") as first, _client(server, "127.0.0.21") as second:
        for _ in range(3):
            assert _v2(first, "admin", "wrong-password").status_code == 401
        _assert_oci_429(_v2(first, "admin", password))
        _unlock(server, "--user", "admin")
        _accepted_soon(first, password)
        # The unlock does not forgive later failures: three more refuse admin here again.
        for _ in range(3):
            assert _v2(first, "admin", "wrong-password").status_code == 401
        _assert_oci_429(_v2(first, "admin", password))

        # An address over its own limit is unlocked by address.
        for i in range(6):
            assert _v2(second, f"user{i}", "wrong-password").status_code == 401
        _assert_oci_429(_v2(second, "admin", password))
        _unlock(server, "--address", "127.0.0.21")
        _accepted_soon(second, password)

    bad = server.run_command("admin", "unlock", "--address", "not-an-address")
    assert bad.returncode != 0 and "not an IP address" in bad.stderr
    assert server.run_command("admin", "unlock").returncode != 0
    entries = server.client().get("/api/v2.0/audit-logs", params={"q": "operation=unlock"})
    assert entries.status_code == 200, entries.text
    assert {(e["resource_type"], e["resource"]) for e in entries.json()} == {
        ("user", "admin"),
        ("address", "127.0.0.21"),
    }


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"portside-test-{secrets.token_hex(6)}"
    connection = redis.Redis.from_url(REDIS_URL)
    try:
        yield prefix
    finally:
        keys = list(connection.scan_iter(match=f"{prefix}:*"))
        if keys:
            connection.delete(*keys)
        connection.close()


@pytest.mark.slow
def test_redis_counters_are_shared_by_two_servers(
    start_server: StartServer, redis_prefix: str
) -> None:
    env = _limits(
        f"3 per {WINDOW:g} seconds",
        "100 per minute",
        PORTSIDE_AUTH__LOGIN_LIMIT_STORAGE=REDIS_URL,
        PORTSIDE_AUTH__LOGIN_LIMIT_KEY_PREFIX=redis_prefix,
    )
    one = start_server(env)
    two = start_server(env)
    password = one.password
    with _client(one) as a, _client(two) as b:
        first_sent = time.monotonic()
        assert _v2(a, "admin", "wrong-password").status_code == 401
        first_done = time.monotonic()
        assert _v2(a, "admin", "wrong-password").status_code == 401
        assert _v2(b, "admin", "wrong-password").status_code == 401
        assert time.monotonic() < first_sent + WINDOW, "the failures took longer than the window"
        # Neither server alone saw three failures; together they did.
        _refused(a, password)
        refused_at = _refused(b, password)
        keys = redis.Redis.from_url(REDIS_URL)
        try:
            names = [k.decode() for k in keys.scan_iter(match=f"{redis_prefix}:*")]
        finally:
            keys.close()
        assert any("/user/admin/127.0.0.1/" in name for name in names), names
        # Both see the block lift, when the first failure leaves the shared window.
        last_refused, lifted = _lift_time(b, password, WINDOW + 5, refused_at)
        assert lifted >= first_sent + WINDOW - 0.2
        assert last_refused <= first_done + WINDOW + 0.2
        assert _v2(a, "admin", password).status_code == 200
