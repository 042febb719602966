"""Page credentials, `appsecret_proof` and webhook signature checks (HMAC-SHA256 only).

Nothing here ever puts a token or secret into a repr, a str or a log line.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["PageCredentials", "appsecret_proof", "verify_signature"]


class PageCredentials:
    """A Page access token and, when the app requires it, the app secret for `appsecret_proof`.

    Passed per call because one process serves many Pages. `repr()` and `str()` show
    neither value.
    """

    __slots__ = ("_access_token", "_app_secret")

    def __init__(self, access_token: str, app_secret: str | None = None) -> None:
        self._access_token = access_token
        self._app_secret = app_secret or None

    @property
    def access_token(self) -> str:
        return self._access_token

    @property
    def app_secret(self) -> str | None:
        return self._app_secret

    @property
    def appsecret_proof(self) -> str | None:
        """HMAC-SHA256(app_secret, access_token) in hex, or None without an app secret."""
        if self._app_secret is None:
            return None
        return appsecret_proof(self._access_token, self._app_secret)

    def secrets(self) -> tuple[str, ...]:
        """The values to scrub from any text that could reach a log or an exception."""
        return tuple(s for s in (self._access_token, self._app_secret) if s)

    def __repr__(self) -> str:
        secret = "'**********'" if self._app_secret else "None"
        return f"PageCredentials(access_token='**********', app_secret={secret})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PageCredentials):
            return NotImplemented
        return (self._access_token, self._app_secret) == (other._access_token, other._app_secret)

    def __hash__(self) -> int:
        return hash((self._access_token, self._app_secret))

    def __reduce__(self) -> tuple[type[PageCredentials], tuple[str, str | None]]:
        return (PageCredentials, (self._access_token, self._app_secret))


def appsecret_proof(access_token: str, app_secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of the token keyed by the app secret (Graph "Securing requests")."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


def verify_signature(app_secret: str, raw_body: bytes, header: str | None) -> bool:
    """Check an `X-Hub-Signature-256` header: `sha256=<hex>`, HMAC-SHA256 of the raw bytes.

    Only SHA-256 authenticates: a `sha1=` value (the legacy `X-Hub-Signature`, even when put
    into this header and correct) is refused. The HMAC is over the exact raw request bytes:
    Meta escapes non-ASCII as \\uXXXX and `/` as `\\/`, so re-serialised JSON would not
    match (docs/graph-api.md, "A webhook POST"). Constant-time comparison.
    """
    if not app_secret or not header or "=" not in header:
        return False
    algorithm, _, received = header.strip().partition("=")
    if algorithm.strip().lower() != "sha256":
        return False
    digest = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    # Hex case carries no information; Meta sends lowercase.
    return hmac.compare_digest(digest.encode(), received.strip().lower().encode("ascii", "replace"))
