"""Password hashing with argon2id (argon2-cffi's defaults, RFC 9106's second recommendation),
and Harbor's password policy."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "PASSWORD_POLICY",
    "generate_password",
    "hash_password",
    "password_problem",
    "verify_password",
]

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128
PASSWORD_POLICY = (
    f"the password must be {MIN_PASSWORD_LENGTH}-{MAX_PASSWORD_LENGTH} characters long with at "
    "least 1 uppercase letter, 1 lowercase letter and 1 number"
)

_hasher = PasswordHasher()
# Verified against when the account does not exist, so that case costs the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches. Constant work whether or not the account exists."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    """Why ``password`` breaks Harbor's policy, or None when it is acceptable.

    Harbor asks for 8 to 128 characters with an ASCII upper-case letter, an ASCII lower-case
    letter and a digit; other characters are allowed but count towards no class. Length is in
    characters (Harbor counts UTF-8 bytes; the two agree for ASCII passwords).
    """
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        return PASSWORD_POLICY
    if not (
        any("A" <= c <= "Z" for c in password)
        and any("a" <= c <= "z" for c in password)
        and any("0" <= c <= "9" for c in password)
    ):
        return PASSWORD_POLICY
    return None


def generate_password() -> str:
    """A random password that satisfies Harbor's policy."""
    while True:
        candidate = secrets.token_urlsafe(18)
        if password_problem(candidate) is None:
            return candidate
