"""The wire form of webhook POSTs: loopback-only URLs, Meta's serialisation and the
`X-Hub-Signature-256` / `X-Hub-Signature` headers over the exact bytes (docs/simulator.md,
"Webhooks")."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlsplit

__all__ = ["check_loopback", "serialize", "sign"]

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def check_loopback(url: str) -> str:
    host = urlsplit(url).hostname or ""
    if host not in _LOOPBACK and not host.startswith("127."):
        raise ValueError(
            f"Webhook URL {url!r} is not a loopback address; the simulator only "
            "posts to 127.0.0.1, ::1 or localhost."
        )
    return url


def serialize(payload: dict[str, Any], *, escape_slashes: bool = True) -> bytes:
    """Meta's wire form: ASCII-only JSON, no spaces, `/` escaped as `\\/`."""
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    if escape_slashes:
        text = text.replace("/", "\\/")
    return text.encode("ascii")


def sign(body: bytes, secret: str, mode: str = "ok") -> dict[str, str]:
    """`X-Hub-Signature-256` and legacy `X-Hub-Signature` over the exact bytes (with knobs)."""
    if mode == "missing":
        return {}
    key = (secret + "-wrong" if mode == "wrong" else secret).encode()
    sha256 = hmac.new(key, body, hashlib.sha256).hexdigest()
    sha1 = hmac.new(key, body, hashlib.sha1).hexdigest()
    if mode == "uppercase":
        sha256, sha1 = sha256.upper(), sha1.upper()
    return {"X-Hub-Signature-256": f"sha256={sha256}", "X-Hub-Signature": f"sha1={sha1}"}
