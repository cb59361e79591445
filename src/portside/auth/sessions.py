"""Login sessions for the web UI, as Harbor has them: a ``sid`` cookie plus a CSRF token.

The cookie carries a random token; the database stores only its SHA-256, so a leaked
database (or backup) holds no usable session. Each session also has its own CSRF token, which
the API sends in ``X-Harbor-CSRF-Token`` and wants back on every unsafe request made with the
cookie.

Lifetime: a session ends after :data:`IDLE_SECONDS` (30 minutes) without a request, and in any
case :data:`ABSOLUTE_SECONDS` (12 hours) after login. Activity slides the idle deadline forward,
written at most once a minute per session so a busy UI does not write on every request.
Expired sessions are refused and deleted when seen; the rest are purged at each login.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select

from portside.db.engine import Database
from portside.db.queries import as_utc, now
from portside.db.tables import sessions, users

__all__ = [
    "ABSOLUTE_SECONDS",
    "IDLE_SECONDS",
    "NewSession",
    "SessionRecord",
    "Sessions",
    "session_id",
]

IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 12 * 60 * 60
_EXTEND_AFTER = dt.timedelta(seconds=60)
_MAX_TOKEN_LENGTH = 128
_PURGE_BATCH = 1000


def session_id(token: str) -> str:
    """The stored id of a cookie token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str  # goes into the cookie, never stored
    csrf_token: str
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    user_id: int
    username: str
    csrf_token: str
    expires_at: dt.datetime


class Sessions:
    def __init__(
        self,
        db: Database,
        idle_seconds: int = IDLE_SECONDS,
        absolute_seconds: int = ABSOLUTE_SECONDS,
        clock: Callable[[], dt.datetime] = now,
    ) -> None:
        self._db = db
        self._idle = dt.timedelta(seconds=idle_seconds)
        self._absolute = dt.timedelta(seconds=absolute_seconds)
        self._clock = clock

    async def create(self, user_id: int) -> NewSession:
        """Start a session for ``user_id``; expired sessions of anyone are purged on the way."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        stamp = self._clock()
        expires = stamp + min(self._idle, self._absolute)

        def insert(connection: Connection) -> None:
            _purge(connection, stamp)
            connection.execute(
                sessions.insert().values(
                    id=session_id(token),
                    user_id=user_id,
                    csrf_token=csrf,
                    created_at=stamp,
                    expires_at=expires,
                )
            )

        await self._db.write(insert)
        return NewSession(token, csrf, expires)

    async def resolve(self, token: str) -> SessionRecord | None:
        """The live session behind a cookie token, its idle deadline moved forward; None for an
        unknown or expired one (an expired one is deleted)."""
        if not token or len(token) > _MAX_TOKEN_LENGTH or not token.isascii():
            return None
        key = session_id(token)
        query = (
            select(
                sessions.c.user_id,
                users.c.username,
                sessions.c.csrf_token,
                sessions.c.created_at,
                sessions.c.expires_at,
            )
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.id == key)
        )
        row = await self._db.read(lambda c: c.execute(query).first())
        if row is None:
            return None
        stamp = self._clock()
        expires = as_utc(row.expires_at)
        if expires <= stamp:
            await self._db.write(lambda c: c.execute(delete(sessions).where(sessions.c.id == key)))
            return None
        slid = min(stamp + self._idle, as_utc(row.created_at) + self._absolute)
        if slid - expires >= _EXTEND_AFTER:
            await self._db.write(
                lambda c: c.execute(
                    sessions.update().where(sessions.c.id == key).values(expires_at=slid)
                )
            )
            expires = slid
        return SessionRecord(key, int(row.user_id), row.username, row.csrf_token, expires)

    async def delete(self, token: str) -> bool:
        """End the session behind a cookie token; False when there was none."""
        if not token or len(token) > _MAX_TOKEN_LENGTH or not token.isascii():
            return False
        key = session_id(token)
        deleted = await self._db.write(
            lambda c: c.execute(delete(sessions).where(sessions.c.id == key)).rowcount
        )
        return bool(deleted)

    async def delete_for_user(self, user_id: int) -> int:
        """End every session of an account (after a password change, for example)."""
        return int(
            await self._db.write(
                lambda c: c.execute(delete(sessions).where(sessions.c.user_id == user_id)).rowcount
            )
        )

    async def purge_expired(self) -> int:
        stamp = self._clock()
        return int(await self._db.write(lambda c: _purge(c, stamp)))


def _purge(connection: Connection, stamp: dt.datetime) -> int:
    """Delete up to one batch of expired sessions (bounded, so a login never waits long)."""
    expired = (
        select(sessions.c.id)
        .where(sessions.c.expires_at <= stamp.astimezone(dt.UTC))
        .limit(_PURGE_BATCH)
        .scalar_subquery()
    )
    return connection.execute(delete(sessions).where(sessions.c.id.in_(expired))).rowcount
