"""Telling outages from bugs: which failures answer 503 or 507, and which stay 500."""

from __future__ import annotations

import errno

import pytest
from botocore.exceptions import EndpointConnectionError

from portside.db.engine import DatabaseFull, DatabaseUnavailable
from portside.storage.base import PathNotFound, StorageError
from portside.system.failures import outage_of


def _raised_from(outer: Exception, inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except Exception as caught:
        return caught


@pytest.mark.parametrize(
    ("exc", "status", "component"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), 507, "storage"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), 507, "storage"),
        (
            _raised_from(StorageError("S3 PUT failed"), OSError(errno.ENOSPC, "full")),
            507,
            "storage",
        ),
        (DatabaseFull("database or disk is full"), 507, "database"),
        (DatabaseUnavailable("connection refused"), 503, "database"),
        (StorageError("S3 GET of 'blobs/x' failed: SlowDown"), 503, "storage"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), 503, "storage"),
        (OSError(errno.EIO, "Input/output error"), 503, "storage"),
        (OSError(errno.EROFS, "Read-only file system"), 503, "storage"),
    ],
)
def test_outages_are_recognised(exc: BaseException, status: int, component: str) -> None:
    outage = outage_of(exc)
    assert outage is not None
    assert (outage.status, outage.component) == (status, component)


@pytest.mark.parametrize(
    "exc",
    [
        KeyError("a bug"),
        PathNotFound("blobs/x"),
        OSError(errno.ENOENT, "No such file"),
        ValueError("bad input"),
    ],
)
def test_other_failures_are_not_outages(exc: BaseException) -> None:
    assert outage_of(exc) is None


def test_a_bug_while_handling_an_outage_is_still_a_bug() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "full")
        except OSError:
            raise KeyError("a bug in the except block") from None
    except KeyError as exc:
        assert outage_of(exc) is None
    try:
        try:
            raise OSError(errno.ENOSPC, "full")
        except OSError:
            raise KeyError("implicitly chained")  # noqa: B904 - the point of the test
    except KeyError as exc:
        assert outage_of(exc) is None
