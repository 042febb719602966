"""Secrets handling: password hashes, API tokens, Page-token encryption, session cookies.

`Vault` encrypts Page tokens at rest with Fernet under a key derived from Pagecast's secret
key. API tokens are random, shown once, and stored as SHA-256 hashes (they are long random
strings, so a fast hash is enough; passwords get argon2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

from pagecast.errors import ConfigError

__all__ = [
    "TOKEN_PREFIX",
    "Vault",
    "hash_password",
    "hash_token",
    "new_api_token",
    "verify_password",
]

TOKEN_PREFIX = "pct_"
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_api_token() -> str:
    """A fresh API token: recognisable prefix, 256 bits of randomness."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Vault:
    """Encrypts and decrypts secrets at rest, and signs session cookies."""

    def __init__(self, secret_key: bytes) -> None:
        derived = hashlib.sha256(b"pagecast-fernet:" + secret_key).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))
        self._signing_key = hashlib.sha256(b"pagecast-session:" + secret_key).digest()

    def __repr__(self) -> str:
        return "Vault(<secret>)"

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ConfigError(
                "A stored Page token cannot be decrypted with the current secret key "
                "(PAGECAST_SECRET_KEY or <data_dir>/secret.key changed). Reconnect the Page "
                "with a new token."
            ) from exc

    def sign_session(self, user_id: int, ttl_seconds: int) -> str:
        payload = f"{user_id}.{int(time.time()) + ttl_seconds}.{secrets.token_urlsafe(8)}"
        return f"{payload}.{self._mac(payload)}"

    def read_session(self, cookie: str) -> int | None:
        """The user id of a valid, unexpired session cookie, else None."""
        payload, _, mac = cookie.rpartition(".")
        # Bytes: compare_digest raises TypeError on a str with non-ASCII characters, and a
        # cookie is whatever the client sent.
        if not payload or not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        user_id, expires, _nonce = payload.split(".", 2)
        if int(expires) < time.time():
            return None
        return int(user_id)

    def csrf_token(self, session_cookie: str) -> str:
        return self._mac("csrf:" + session_cookie)

    def _mac(self, payload: str) -> str:
        return hmac.new(self._signing_key, payload.encode(), hashlib.sha256).hexdigest()
