"""Bearer tokens for ``/v2/``, as in the Docker registry token spec (docs/spec/auth/jwt.md).

Tokens are ES256 JWTs whose ``access`` claim lists the granted actions per resource. The
signing key is generated on first start and kept in the database, so every replica signs and
verifies with the same keys; a token names its key with ``kid``, which allows rotation.

Verifying a signature costs about 0.1 ms, so verified tokens are remembered until they expire.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from portside.auth.access import SCANNER, Principal, Scope
from portside.db.engine import Database
from portside.db.queries import insert_ignore, now
from portside.db.tables import signing_keys
from portside.registry.cache import LRUCache

__all__ = ["IssuedToken", "TokenClaims", "TokenError", "TokenService"]

_ALGORITHM = "ES256"
_LEEWAY_SECONDS = 30


class TokenError(Exception):
    """The token is malformed, forged, expired or meant for another service."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: dt.datetime


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    kind: str
    account_id: int | None
    version: int
    expires_at: float
    access: dict[tuple[str, str], frozenset[str]]
    # Scanner tokens only: the digests the holder may pull.
    digests: frozenset[str] = frozenset()

    def allows(self, resource_type: str, name: str, action: str) -> bool:
        granted = self.access.get((resource_type, name), frozenset())
        return action in granted or "*" in granted


class TokenService:
    def __init__(
        self,
        db: Database,
        issuer: str,
        service: str,
        ttl_seconds: int,
        lifetime: Callable[[], int] | None = None,
    ) -> None:
        """``lifetime``, when given, says how long each new token lives (the run-time
        configuration's ``token_expiration``); otherwise ``ttl_seconds``."""
        self._db = db
        self._lifetime = lifetime
        self.issuer = issuer
        self.service = service
        self.ttl_seconds = ttl_seconds
        self._signing_kid = ""
        self._signing_key: Any = None
        self._public_keys: dict[str, Any] = {}
        self._verified: LRUCache[str, TokenClaims] = LRUCache(20_000, float(ttl_seconds))

    async def start(self) -> None:
        """Load the newest signing key, generating and storing one on first start."""
        query = (
            select(signing_keys.c.kid, signing_keys.c.private_pem)
            .where(signing_keys.c.algorithm == _ALGORITHM)
            .order_by(signing_keys.c.created_at.desc())
            .limit(1)
        )
        row = await self._db.read(lambda c: c.execute(query).first())
        if row is None:
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
            kid = secrets.token_hex(16)
            await self._db.write(
                lambda c: insert_ignore(
                    c,
                    signing_keys,
                    kid=kid,
                    algorithm=_ALGORITHM,
                    private_pem=pem,
                    created_at=now(),
                )
            )
            self._signing_kid, self._signing_key = kid, key
        else:
            self._signing_kid = row.kid
            self._signing_key = serialization.load_pem_private_key(
                row.private_pem.encode(), password=None
            )
        self._public_keys[self._signing_kid] = self._signing_key.public_key()

    def issue(self, principal: Principal, granted: list[Scope]) -> IssuedToken:
        issued = int(time.time())
        ttl = self._lifetime() if self._lifetime is not None else self.ttl_seconds
        claims = {
            "iss": self.issuer,
            "sub": principal.name,
            "aud": self.service,
            "iat": issued,
            "nbf": issued - _LEEWAY_SECONDS,
            "exp": issued + ttl,
            "jti": secrets.token_urlsafe(12),
            # Who the subject is, so a request with this token is checked against the
            # account's current state: kind, and for robots the secret version.
            # A deleted account re-created under the same name gets a new id: the old
            # account's tokens must not work for it.
            "kind": principal.kind,
            "uid": principal.id,
            "ver": principal.version,
            "access": [
                {"type": s.type, "name": s.name, "actions": sorted(s.actions)} for s in granted
            ],
        }
        token = jwt.encode(
            claims, self._signing_key, algorithm=_ALGORITHM, headers={"kid": self._signing_kid}
        )
        return IssuedToken(token, ttl, dt.datetime.fromtimestamp(issued, dt.UTC))

    def issue_scanner_token(
        self, repository: str, digests: Iterable[str], ttl_seconds: int
    ) -> IssuedToken:
        """A pull token for one scan: ``repository`` and only these ``digests`` (the artifact's
        manifests and blobs), for ``ttl_seconds``. It names no account, so it cannot be
        revoked early; keep the lifetime to what the scan needs."""
        issued = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": SCANNER.name,
            "aud": self.service,
            "iat": issued,
            "nbf": issued - _LEEWAY_SECONDS,
            "exp": issued + ttl_seconds,
            "jti": secrets.token_urlsafe(12),
            "kind": SCANNER.kind,
            "uid": None,
            "ver": 0,
            "access": [{"type": "repository", "name": repository, "actions": ["pull"]}],
            "digests": sorted(set(digests)),
        }
        token = jwt.encode(
            claims, self._signing_key, algorithm=_ALGORITHM, headers={"kid": self._signing_kid}
        )
        return IssuedToken(token, ttl_seconds, dt.datetime.fromtimestamp(issued, dt.UTC))

    async def _public_key(self, kid: str) -> Any:
        key = self._public_keys.get(kid)
        if key is not None:
            return key
        query = select(signing_keys.c.private_pem).where(signing_keys.c.kid == kid)
        pem = await self._db.read(lambda c: c.scalar(query))
        if pem is None:
            raise TokenError("token signed with an unknown key")
        key = serialization.load_pem_private_key(pem.encode(), password=None).public_key()
        self._public_keys[kid] = key
        return key

    async def verify(self, token: str) -> TokenClaims:
        """Check signature, issuer, audience and lifetime. Raises :class:`TokenError`."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at < time.time():
                self._verified.discard(token)
                raise TokenError("token expired")
            return cached
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            if not isinstance(kid, str) or len(kid) > 64:
                raise TokenError("token has no valid key id")
            payload = jwt.decode(
                token,
                await self._public_key(kid),
                algorithms=[_ALGORITHM],
                audience=self.service,
                issuer=self.issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from None
        kind, version, uid = payload.get("kind"), payload.get("ver"), payload.get("uid")
        if kind not in ("user", "robot", "anonymous", "scanner") or not isinstance(version, int):
            raise TokenError("token does not name its subject's kind")
        if uid is not None and not isinstance(uid, int):
            raise TokenError("token has an invalid account id")
        digests = payload.get("digests")
        if kind == "scanner" and not (
            isinstance(digests, list) and digests and all(isinstance(d, str) for d in digests)
        ):
            raise TokenError("a scanner token must list the digests it may pull")
        claims = TokenClaims(
            str(payload["sub"]),
            kind,
            uid,
            version,
            float(payload["exp"]),
            _access(payload),
            frozenset(digests) if kind == "scanner" and isinstance(digests, list) else frozenset(),
        )
        self._verified.put(token, claims)
        return claims


def _access(payload: dict[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    access: dict[tuple[str, str], frozenset[str]] = {}
    entries = payload.get("access")
    if not isinstance(entries, list):
        return access
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("actions"), list):
            key = (str(entry.get("type")), str(entry.get("name")))
            access[key] = access.get(key, frozenset()) | frozenset(map(str, entry["actions"]))
    return access
