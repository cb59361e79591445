"""Local user accounts: checking a username and password, and managing the accounts themselves.

argon2 is slow on purpose (tens of milliseconds), and clients send basic credentials with many
requests. A successful check is therefore remembered for a short time under an HMAC of the
credentials (never the password itself), so repeated requests cost a dictionary lookup; see
:mod:`portside.auth.verified` (one check at a time per credential, renewed ahead of expiry).
Every change made here drops those caches, so an old password or a deleted account stops
working at once on this replica (other replicas notice within ``cache_ttl``).

Usernames, e-mail addresses and profile fields follow Harbor's rules; :func:`username_problem`
and :func:`profile_problem` say what is wrong with a value, so the API can answer 400.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import ColumnElement, Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from portside.auth.access import Principal
from portside.auth.passwords import generate_password, hash_password, verify_password
from portside.auth.verified import VerifiedCredentials
from portside.db.engine import Database
from portside.db.queries import insert_ignore, now
from portside.db.tables import project_members, users
from portside.registry.cache import LRUCache
from portside.text import has_control_characters, unsafe_text

__all__ = [
    "ADMIN_USERNAME",
    "AccountConflict",
    "Accounts",
    "LastAdminError",
    "UserRecord",
    "password_version",
    "profile_problem",
    "username_problem",
]

log = structlog.get_logger(__name__)
ADMIN_USERNAME = "admin"

# Harbor's forbidden username characters, plus ":" (it ends the username in HTTP basic
# credentials, so such an account could never log in) and control characters.
ILLEGAL_USERNAME_CHARS = ',"~#%$'
_EMAIL_ATOM = r'[^<>()\[\]\\.,;:\s@"\x00-\x1f\x7f]+'
_EMAIL = re.compile(
    rf"{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{{2,}}", re.ASCII
)
MAX_NAME_LENGTH = 255
MAX_COMMENT_LENGTH = 30  # Harbor's limit


class AccountConflict(Exception):
    """The username or e-mail address belongs to another account."""


class LastAdminError(Exception):
    """The change would leave no system admin, and nobody could administer Portside again."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    email: str | None
    realname: str | None
    comment: str | None
    sysadmin_flag: bool
    created_at: dt.datetime
    updated_at: dt.datetime


_RECORD_COLUMNS = (
    users.c.id,
    users.c.username,
    users.c.email,
    users.c.realname,
    users.c.comment,
    users.c.sysadmin_flag,
    users.c.created_at,
    users.c.updated_at,
)


def _record(row: Any) -> UserRecord:
    return UserRecord(
        int(row.id),
        row.username,
        row.email,
        row.realname,
        row.comment,
        bool(row.sysadmin_flag),
        row.created_at,
        row.updated_at,
    )


def username_problem(username: str, robot_prefix: str) -> str | None:
    """Why ``username`` cannot name a new account, or None when it can."""
    if not 1 <= len(username) <= MAX_NAME_LENGTH:
        return f"username must be 1-{MAX_NAME_LENGTH} characters long"
    illegal = any(c in ILLEGAL_USERNAME_CHARS or c == ":" for c in username)
    if illegal or has_control_characters(username):
        return f"username must not contain control characters or any of {ILLEGAL_USERNAME_CHARS}:"
    if username != username.strip():
        return "username must not begin or end with white space"
    if username.startswith(robot_prefix):
        return f"username must not start with {robot_prefix!r}, the robot account prefix"
    return None


def profile_problem(email: str | None, realname: str | None, comment: str | None) -> str | None:
    """Why a profile value is unacceptable (None means "not given" and is always fine)."""
    if email is not None:
        if not email:
            return "email can't be empty"
        if len(email) > MAX_NAME_LENGTH or not _EMAIL.fullmatch(email):
            return "email with illegal format"
    if realname is not None:
        if not 1 <= len(realname) <= MAX_NAME_LENGTH:
            return f"realname must be 1-{MAX_NAME_LENGTH} characters long"
        if any(c in ILLEGAL_USERNAME_CHARS for c in realname) or has_control_characters(realname):
            return (
                f"realname must not contain control characters or any of {ILLEGAL_USERNAME_CHARS}"
            )
    if comment is not None:
        if len(comment) > MAX_COMMENT_LENGTH:
            return f"comment must be at most {MAX_COMMENT_LENGTH} characters long"
        if unsafe_text(comment):
            return "comment must not contain control characters"
    return None


def password_version(row: Any) -> int:
    """The ``version`` of a user's principal: 31 bits of a fingerprint of the password hash.

    Tokens carry it (as robots' tokens carry the secret version), and a request with a token is
    refused once it no longer matches, so a new password revokes every token issued before,
    whichever way it was set (the API, or ``portside admin reset-password`` on the database).
    The hash is salted, so the fingerprint tells a token's holder nothing about the password.
    """
    digest = hashlib.sha256(row.password_hash.encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def _email_taken(connection: Connection, email: str, except_id: int | None) -> bool:
    query = select(users.c.id).where(func.lower(users.c.email) == email.lower())
    if except_id is not None:
        query = query.where(users.c.id != except_id)
    return connection.scalar(query.limit(1)) is not None


class Accounts:
    def __init__(self, db: Database, cache_ttl: float) -> None:
        self._db = db
        self._cache_key = secrets.token_bytes(32)
        # Both caches bound how long a deleted account or changed password goes unseen by
        # another replica; local changes call forget().
        self._verified: VerifiedCredentials[Principal] = VerifiedCredentials(4096, cache_ttl)
        self._principals: LRUCache[str, Principal] = LRUCache(10_000, cache_ttl)

    async def ensure_admin(self, password: str | None) -> str | None:
        """Create the ``admin`` account if no account exists yet.

        Uses ``password`` when given, else generates one. Returns the generated password (to be
        shown once), or None when nothing was generated.
        """
        if await self._db.read(lambda c: c.scalar(select(users.c.id).limit(1))) is not None:
            return None
        generated = None if password else generate_password()
        secret = password or generated
        assert secret is not None
        password_hash = await asyncio.to_thread(hash_password, secret)
        stamp = now()
        created = await self._db.write(
            lambda c: insert_ignore(
                c,
                users,
                username=ADMIN_USERNAME,
                password_hash=password_hash,
                sysadmin_flag=True,
                realname="system admin",
                created_at=stamp,
                updated_at=stamp,
            )
        )
        if created:
            log.info("created admin account", username=ADMIN_USERNAME)
        return generated if created else None

    def _key(self, username: str, password: str) -> bytes:
        message = username.encode() + b"\0" + password.encode()
        return hmac.new(self._cache_key, message, hashlib.sha256).digest()

    async def authenticate(self, username: str, password: str) -> Principal | None:
        """The principal for valid credentials, else None. Takes the same time for unknown
        users as for wrong passwords."""

        async def check() -> Principal | None:
            query = select(users.c.id, users.c.password_hash, users.c.sysadmin_flag).where(
                users.c.username == username
            )
            row = await self._db.read(lambda c: c.execute(query).first())
            password_hash = row.password_hash if row else None
            ok = await asyncio.to_thread(verify_password, password_hash, password)
            if not ok or row is None:
                return None
            return Principal(
                "user", username, int(row.id), bool(row.sysadmin_flag), password_version(row)
            )

        return await self._verified.check(self._key(username, password), check)

    async def principal(self, username: str) -> Principal | None:
        """The account behind a token or session, or None when it no longer exists. Its
        ``version`` is the :func:`password_version` a token must carry."""
        cached = self._principals.get(username)
        if cached is not None:
            return cached
        query = select(users.c.id, users.c.sysadmin_flag, users.c.password_hash).where(
            users.c.username == username
        )

        async def load() -> Principal | None:
            row = await self._db.read(lambda c: c.execute(query).first())
            if row is None:
                return None
            return Principal(
                "user", username, int(row.id), bool(row.sysadmin_flag), password_version(row)
            )

        return await self._principals.fetch(username, load)

    def forget(self) -> None:
        """Drop cached credentials and accounts after a local change to any account."""
        self._verified.forget()
        self._principals.clear()

    # Reading accounts.

    async def get(self, user_id: int) -> UserRecord | None:
        query = select(*_RECORD_COLUMNS).where(users.c.id == user_id)
        row = await self._db.read(lambda c: c.execute(query).first())
        return _record(row) if row is not None else None

    async def list_users(
        self,
        where: Sequence[ColumnElement[bool]],
        order: Sequence[ColumnElement[Any]],
        offset: int,
        limit: int,
    ) -> tuple[int, list[UserRecord]]:
        """One page of the accounts matching every condition in ``where``, and their total."""
        count = select(func.count()).select_from(users).where(*where)
        page = (
            select(*_RECORD_COLUMNS)
            .where(*where)
            .order_by(*order, users.c.id)
            .offset(offset)
            .limit(limit)
        )

        def run(connection: Connection) -> tuple[int, list[UserRecord]]:
            total = int(connection.scalar(count) or 0)
            return total, [_record(row) for row in connection.execute(page)] if total else []

        return await self._db.read(run)

    async def search(self, fragment: str, offset: int, limit: int) -> tuple[int, list[UserRecord]]:
        """Accounts whose username contains ``fragment``, by username."""
        where = [users.c.username.contains(fragment, autoescape=True)]
        return await self.list_users(where, [users.c.username], offset, limit)

    async def password_matches(self, user_id: int, password: str) -> bool:
        """Whether ``password`` is the account's current one (no login, no rate limit: only for
        refusing a "new" password that is the old one)."""
        query = select(users.c.password_hash).where(users.c.id == user_id)
        password_hash = await self._db.read(lambda c: c.scalar(query))
        return await asyncio.to_thread(verify_password, password_hash, password)

    # Changing accounts. Each change drops the credential caches at once.

    async def create(
        self,
        username: str,
        password: str,
        email: str | None,
        realname: str | None,
        comment: str | None,
        sysadmin: bool = False,
    ) -> int:
        """Create an account and return its id. Raises :class:`AccountConflict` when the
        username or e-mail address is taken. Validate the values first."""
        password_hash = await asyncio.to_thread(hash_password, password)
        stamp = now()

        def insert(connection: Connection) -> int:
            taken = select(users.c.id).where(users.c.username == username)
            if connection.scalar(taken) is not None:
                raise AccountConflict(f"username {username!r} is already taken")
            if email and _email_taken(connection, email, None):
                raise AccountConflict(f"email {email!r} is already taken")
            result = connection.execute(
                users.insert().values(
                    username=username,
                    password_hash=password_hash,
                    email=email or None,
                    realname=realname,
                    comment=comment,
                    sysadmin_flag=sysadmin,
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
            assert result.inserted_primary_key is not None
            return int(result.inserted_primary_key[0])

        try:
            user_id = await self._db.write(insert)
        except IntegrityError:  # lost a race for the same username
            raise AccountConflict(f"username {username!r} is already taken") from None
        self.forget()
        return user_id

    async def update_profile(
        self, user_id: int, email: str | None, realname: str | None, comment: str | None
    ) -> UserRecord | None:
        """Change the given profile fields (None leaves one as it is). Returns the account as
        it is now, or None when it does not exist."""
        values: dict[str, Any] = {"updated_at": now()}
        for name, value in (("email", email), ("realname", realname), ("comment", comment)):
            if value is not None:
                values[name] = value

        def change(connection: Connection) -> UserRecord | None:
            if email and _email_taken(connection, email, user_id):
                raise AccountConflict(f"email {email!r} is already taken")
            connection.execute(update(users).where(users.c.id == user_id).values(**values))
            row = connection.execute(select(*_RECORD_COLUMNS).where(users.c.id == user_id))
            found = row.first()
            return _record(found) if found is not None else None

        record = await self._db.write(change)
        self.forget()
        return record

    async def set_password(self, user_id: int, password: str) -> bool:
        """Replace the password; the old one stops working at once. False: no such account."""
        password_hash = await asyncio.to_thread(hash_password, password)
        statement = (
            update(users)
            .where(users.c.id == user_id)
            .values(password_hash=password_hash, updated_at=now())
        )
        changed = await self._db.write(lambda c: c.execute(statement).rowcount)
        self.forget()
        return bool(changed)

    async def set_sysadmin(self, user_id: int, flag: bool) -> bool:
        """Grant or revoke system admin. Raises :class:`LastAdminError` rather than revoke it
        from the last admin. False: no such account."""

        def change(connection: Connection) -> bool:
            if not flag:
                others = (
                    select(func.count())
                    .select_from(users)
                    .where(users.c.sysadmin_flag.is_(True), users.c.id != user_id)
                )
                target = select(users.c.sysadmin_flag).where(users.c.id == user_id)
                if connection.scalar(target) and not connection.scalar(others):
                    raise LastAdminError("cannot revoke system admin from the last system admin")
            statement = (
                update(users)
                .where(users.c.id == user_id)
                .values(sysadmin_flag=flag, updated_at=now())
            )
            return bool(connection.execute(statement).rowcount)

        changed = await self._db.write(change)
        self.forget()
        return changed

    async def delete(self, user_id: int) -> UserRecord | None:
        """Delete the account and its direct project memberships (group memberships go with
        it through the foreign key). Returns what was deleted, or None when nothing was.

        Memberships are deleted explicitly because they reference users by id without a foreign
        key, and a later account could be given the same id.
        """

        def remove(connection: Connection) -> UserRecord | None:
            row = connection.execute(select(*_RECORD_COLUMNS).where(users.c.id == user_id))
            found = row.first()
            if found is None:
                return None
            connection.execute(
                delete(project_members).where(
                    project_members.c.entity_type == "u", project_members.c.entity_id == user_id
                )
            )
            connection.execute(delete(users).where(users.c.id == user_id))
            return _record(found)

        record = await self._db.write(remove)
        self.forget()
        return record
