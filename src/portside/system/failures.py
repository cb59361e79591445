"""What a failure below the API means for the client: the one place that tells an outage of
the database or the storage from a bug.

:func:`outage_of` looks at an exception (and what it was raised from) and answers with the
status the client gets and the component to blame, or None for an ordinary error:

- the database or the storage is full: ``507`` ("storage is full");
- the database cannot be reached or written, or the storage backend fails or times out: ``503``
  with ``Retry-After``.

Both error formats (``/v2/`` and ``/api/v2.0``) and the log use it, so an outage is answered
and logged the same way wherever it surfaces: one line naming it, no traceback.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import dataclass

from portside.db.engine import DatabaseFull, DatabaseUnavailable
from portside.storage.base import PathNotFound, StorageError

__all__ = ["RETRY_AFTER_SECONDS", "Outage", "outage_of"]

RETRY_AFTER_SECONDS = 5  # what a 503 tells clients to wait before trying again

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# The medium refuses the write or the read: an I/O error, a read-only or immutable filesystem.
_FAILING_ERRNOS = frozenset({errno.EIO, errno.EROFS, errno.EPERM, errno.EACCES})


@dataclass(frozen=True, slots=True)
class Outage:
    status: int  # 503 or 507
    component: str  # "database" or "storage", as /health names them
    message: str  # for the client

    @property
    def reason(self) -> str:
        """What failed, for the log: ``database unavailable``, ``storage full``."""
        return f"{self.component} {'full' if self.status == 507 else 'unavailable'}"


_DATABASE_FULL = Outage(507, "database", "storage is full: the database has no room to write")
_DATABASE_DOWN = Outage(503, "database", "the database is unavailable; try again later")
_STORAGE_FULL = Outage(507, "storage", "storage is full: no space left for this write")
_STORAGE_DOWN = Outage(503, "storage", "the storage backend is unavailable; try again later")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from (``raise ... from``), not what it was raised while
    handling: a bug in an ``except OSError`` block is still a bug."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def outage_of(exc: BaseException) -> Outage | None:
    """The outage ``exc`` reports, or None when it is not one."""
    chain = list(_chain(exc))
    # Full first: a driver's StorageError raised from ENOSPC is a full disk, not an outage.
    for error in chain:
        if isinstance(error, DatabaseFull):
            return _DATABASE_FULL
        if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
            return _STORAGE_FULL
    for error in chain:
        if isinstance(error, DatabaseUnavailable):
            return _DATABASE_DOWN
        if isinstance(error, StorageError) and not isinstance(error, PathNotFound):
            return _STORAGE_DOWN
        if type(error).__module__.startswith("botocore."):  # not imported: it costs megabytes
            return _STORAGE_DOWN
        if isinstance(error, OSError) and error.errno in _FAILING_ERRNOS:
            return _STORAGE_DOWN
    return None
