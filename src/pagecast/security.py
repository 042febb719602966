"""Secrets handling: password hashes, API tokens, session cookies, Page-token encryption.

`Vault` encrypts Page tokens at rest with Fernet under a key derived from Pagecast's secret
key. API tokens and session secrets are random, shown once, and stored as SHA-256 hashes
(they are long random strings, so a fast hash is enough); passwords get argon2, which costs
tens to hundreds of milliseconds of CPU: `Passwords` runs it in a few threads beside the
event loop, never on it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

from pagecast.errors import ConfigError
from pagecast.schemas import parse_id

__all__ = [
    "PASSWORDS",
    "TOKEN_PREFIX",
    "Passwords",
    "Vault",
    "hash_token",
    "new_api_token",
    "new_session_cookie",
    "parse_session_cookie",
]

TOKEN_PREFIX = "pct_"
_hasher = PasswordHasher()
_T = TypeVar("_T")


class Passwords:
    """argon2 hashes and checks in a pool of `workers` threads (argon2 releases the GIL), so
    the event loop keeps answering while they run and at most `workers` run at once.

    `verify` with no hash (an unknown email, a user without a password) checks against a
    dummy hash all the same: a login for an email that does not exist takes as long as a
    wrong password for one that does.
    """

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="pagecast-argon2")
        self._dummy: str | None = None
        self._lock = threading.Lock()
        self.checks = 0  # argon2 verifications run, dummy ones included
        self.running = 0
        self.peak = 0  # the most that ran at once

    def resize(self, workers: int) -> None:
        """Run at most `workers` at once from now on (the `password_hash_concurrency` setting)."""
        if workers != self.workers:
            old, self._pool = (
                self._pool,
                ThreadPoolExecutor(workers, thread_name_prefix="pagecast-argon2"),
            )
            self.workers = workers
            old.shutdown(wait=False)

    async def hash(self, password: str) -> str:
        return await self._run(_hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        if not password_hash:
            if self._dummy is None:
                self._dummy = await self._run(_hasher.hash, secrets.token_urlsafe(16))
            await self._run(_check, self._dummy, password)
            return False
        return await self._run(_check, password_hash, password)

    async def _run(self, fn: Callable[[str, str], _T] | Callable[[str], _T], *args: str) -> _T:
        def counted() -> _T:
            with self._lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
                if fn is _check:
                    self.checks += 1
            try:
                return fn(*args)
            finally:
                with self._lock:
                    self.running -= 1

        return await asyncio.get_running_loop().run_in_executor(self._pool, counted)


def _check(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# The process's password pool; `AppContext` sizes it from the settings.
PASSWORDS = Passwords()


def new_session_cookie(session_id: int) -> tuple[str, str]:
    """A session cookie for the session row `session_id` and the hash of its secret to store."""
    secret = secrets.token_urlsafe(32)
    return f"{session_id}.{secret}", hash_token(secret)


def parse_session_cookie(cookie: str) -> tuple[int, str] | None:
    """(session id, hash of its secret) of a well-formed session cookie, else None."""
    raw_id, _, secret = cookie.partition(".")
    session_id = parse_id(raw_id)  # the id column's bounds: a larger one is no session
    if session_id is None or not (secret.isascii() and 0 < len(secret) < 100):
        return None
    return session_id, hash_token(secret)


def new_api_token() -> str:
    """A fresh API token: recognisable prefix, 256 bits of randomness."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Vault:
    """Encrypts and decrypts secrets at rest, and derives CSRF tokens from session cookies."""

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

    def csrf_token(self, session_cookie: str) -> str:
        return self._mac("csrf:" + session_cookie)

    def _mac(self, payload: str) -> str:
        return hmac.new(self._signing_key, payload.encode(), hashlib.sha256).hexdigest()
