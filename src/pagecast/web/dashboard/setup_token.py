"""The one-time first-run setup token: printed by `pagecast serve`, used once to create the
first admin.

Only its SHA-256 is kept, in `<data_dir>/setup-token` (mode 0600), so every web process that
shares the data directory accepts it, and it is deleted as soon as it is used.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from pagecast.private_files import private_dir, write_private

__all__ = ["check", "consume", "issue"]

_FILE = "setup-token"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(data_dir: Path) -> str:
    """A fresh token (replacing any earlier one); returns it for printing."""
    token = secrets.token_urlsafe(24)
    write_private(private_dir(data_dir) / _FILE, _digest(token).encode())
    return token


def check(data_dir: Path, token: str) -> bool:
    try:
        stored = (data_dir / _FILE).read_text().strip()
    except FileNotFoundError:
        return False
    return bool(token) and hmac.compare_digest(stored, _digest(token))


def consume(data_dir: Path) -> None:
    (data_dir / _FILE).unlink(missing_ok=True)
