"""The data directory and its secrets are private to the user Pagecast runs as.

The data directory is mode 0700; the SQLite database (with its `-wal` and `-shm` files), the
secret key, the setup token and the demo's app secret are 0600, whatever the umask (they were
0644 in a 0755 directory under the usual umask 022). Files and directories made by an
earlier version with wider modes are tightened when Pagecast next opens them.

SQLite creates `-wal` and `-shm` with the mode of the database file, so the database file is
created 0600 before SQLite opens it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = ["prepare_sqlite", "private_dir", "tighten", "write_private"]


def tighten(path: Path, mode: int) -> None:
    """Narrow `path` to `mode` when it exists, is ours and allows more."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & ~mode:
        path.chmod(mode)


def private_dir(path: Path) -> Path:
    """Create `path` (mode 0700) or tighten it to 0700; returns it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    tighten(path, 0o700)
    return path


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write a file that only its owner may read (0600, also when it existed with more).

    Raises:
        FileExistsError: `exclusive` and the file exists (two processes raced to create it).
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)


def prepare_sqlite(database: Path) -> None:
    """Before SQLite opens `database`: its directory exists, and it, its `-wal` and its `-shm`
    are 0600 (a new database is created empty with that mode, which SQLite then reuses)."""
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        tighten(path, 0o600)
