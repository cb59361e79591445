"""Local user accounts: the first admin, and checking a username and password.

argon2 is slow on purpose (tens of milliseconds), and clients send basic credentials with many
requests. A successful check is therefore remembered for a short time under an HMAC of the
credentials (never the password itself), so repeated requests cost a dictionary lookup.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

import structlog
from sqlalchemy import select

from portside.auth.access import Principal
from portside.auth.passwords import generate_password, hash_password, verify_password
from portside.db.engine import Database
from portside.db.queries import insert_ignore, now
from portside.db.tables import users
from portside.registry.cache import LRUCache

__all__ = ["Accounts"]

log = structlog.get_logger(__name__)
ADMIN_USERNAME = "admin"


class Accounts:
    def __init__(self, db: Database, cache_ttl: float = 60.0) -> None:
        self._db = db
        self._cache_key = secrets.token_bytes(32)
        self._verified: LRUCache[bytes, Principal] = LRUCache(4096, cache_ttl)

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
        key = self._key(username, password)
        cached = self._verified.get(key)
        if cached is not None:
            return cached
        query = select(users.c.id, users.c.password_hash, users.c.sysadmin_flag).where(
            users.c.username == username
        )
        row = await self._db.read(lambda c: c.execute(query).first())
        ok = await asyncio.to_thread(verify_password, row.password_hash if row else None, password)
        if not ok or row is None:
            return None
        principal = Principal("user", username, int(row.id), bool(row.sysadmin_flag))
        self._verified.put(key, principal)
        return principal

    async def principal_by_name(self, username: str) -> Principal | None:
        query = select(users.c.id, users.c.sysadmin_flag).where(users.c.username == username)
        row = await self._db.read(lambda c: c.execute(query).first())
        if row is None:
            return None
        return Principal("user", username, int(row.id), bool(row.sysadmin_flag))
