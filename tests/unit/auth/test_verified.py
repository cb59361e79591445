"""The credential cache's rules that a server test cannot pin down: what a check under way may
do after :meth:`VerifiedCredentials.forget`, a waiter giving up, a failed background check."""

from __future__ import annotations

import asyncio

import pytest

from portside.auth.verified import VerifiedCredentials
from portside.db.engine import DatabaseUnavailable

KEY = b"k"


class SlowCheck:
    """A check that answers ``value`` when released, counting its runs."""

    def __init__(self, value: str | None = "principal") -> None:
        self.value = value
        self.runs = 0
        self.release = asyncio.Event()

    async def __call__(self) -> str | None:
        self.runs += 1
        await self.release.wait()
        return self.value


async def test_concurrent_checks_of_one_credential_run_once() -> None:
    cache: VerifiedCredentials[str] = VerifiedCredentials(10, 60)
    check = SlowCheck()
    waiters = [asyncio.create_task(cache.check(KEY, check)) for _ in range(20)]
    await asyncio.sleep(0)
    check.release.set()
    assert await asyncio.gather(*waiters) == ["principal"] * 20
    assert check.runs == 1
    assert await cache.check(KEY, check) == "principal" and check.runs == 1  # remembered


async def test_a_waiter_giving_up_does_not_cancel_the_check() -> None:
    cache: VerifiedCredentials[str] = VerifiedCredentials(10, 60)
    check = SlowCheck()
    impatient = asyncio.create_task(cache.check(KEY, check))
    patient = asyncio.create_task(cache.check(KEY, check))
    await asyncio.sleep(0)
    impatient.cancel()
    check.release.set()
    assert await patient == "principal"
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_a_check_under_way_when_forgotten_neither_fills_the_cache_nor_is_joined() -> None:
    cache: VerifiedCredentials[str] = VerifiedCredentials(10, 60)
    old = SlowCheck("old password's principal")
    before = asyncio.create_task(cache.check(KEY, old))
    await asyncio.sleep(0)
    cache.forget()  # the password changed here
    new = SlowCheck(None)
    after = asyncio.create_task(cache.check(KEY, new))
    await asyncio.sleep(0)
    old.release.set()
    new.release.set()
    assert await before == "old password's principal"  # it asked before the change
    assert await after is None
    assert new.runs == 1
    assert await cache.check(KEY, new) is None and new.runs == 2  # nothing was remembered


async def test_a_wrong_credential_is_not_remembered() -> None:
    cache: VerifiedCredentials[str] = VerifiedCredentials(10, 60)
    check = SlowCheck(None)
    check.release.set()
    assert await cache.check(KEY, check) is None
    assert await cache.check(KEY, check) is None
    assert check.runs == 2


async def test_refresh_ahead_renews_and_a_failed_refresh_drops_the_entry() -> None:
    cache: VerifiedCredentials[str] = VerifiedCredentials(10, 0.2)
    check = SlowCheck()
    check.release.set()
    assert await cache.check(KEY, check) == "principal"
    await asyncio.sleep(0.12)  # the second half of the entry's life
    assert await cache.check(KEY, check) == "principal"  # answered at once...
    await asyncio.sleep(0.01)
    assert check.runs == 2  # ...and checked again behind it

    check.release.clear()  # from now on a check would wait: none may be in the open
    await asyncio.sleep(0.12)  # past the first entry's life: the renewed entry answers
    assert await asyncio.wait_for(cache.check(KEY, check), 0.05) == "principal"
    await asyncio.sleep(0)
    assert check.runs == 3  # and is being renewed in turn

    check.value = None  # meanwhile the password changed on another replica
    check.release.set()
    await asyncio.sleep(0.01)
    refused = SlowCheck(None)
    refused.release.set()
    assert await cache.check(KEY, refused) is None and refused.runs == 1  # the entry is gone


async def test_a_checked_credential_stays_good_while_the_database_is_down() -> None:
    """Past its lifetime, a credential whose check cannot reach the database answers with its
    last good check (stale if error); one never checked before fails with the outage."""
    cache: VerifiedCredentials[str] = VerifiedCredentials(10, 0.01)

    async def good() -> str | None:
        return "principal"

    async def outage() -> str | None:
        raise DatabaseUnavailable("connection refused")

    assert await cache.check(KEY, good) == "principal"
    await asyncio.sleep(0.02)  # expired
    assert await cache.check(KEY, outage) == "principal"
    with pytest.raises(DatabaseUnavailable):
        await cache.check(b"never checked", outage)
