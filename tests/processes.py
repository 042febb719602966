"""Real processes for the reliability tests: `pagecast worker` subprocesses, a private
redis-server, and a TCP listener that counts connection attempts.

Every process started here is stopped by its owner's `stop()` (the tests call it in a
`finally` or a fixture teardown); output goes to a log file, never to a pipe that could fill.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

PAGECAST = Path(sys.executable).parent / "pagecast"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment without any Pagecast or Redis/database setting of the caller, plus `extra`.

    Without PYTHONDONTWRITEBYTECODE too: a process then reuses the bytecode an earlier one
    cached instead of compiling every module it imports again (seconds a process)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAGECAST_")
        and k not in ("REDIS_URL", "DATABASE_URL", "PYTHONDONTWRITEBYTECODE")
    }
    env.update(extra)
    return env


class WorkerProcess:
    """One `pagecast worker` process; its output goes to `<workdir>/worker-N.log`."""

    _count = 0

    def __init__(self, workdir: Path, env: dict[str, str], *, concurrency: int | None = None):
        WorkerProcess._count += 1
        self.workdir = workdir
        self.env = env
        self.concurrency = concurrency
        self.log_path = workdir / f"{self._name()}-{WorkerProcess._count}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _name(self) -> str:
        return "worker"

    def _args(self) -> list[str]:
        args = [str(PAGECAST), "worker"]
        if self.concurrency:
            args += ["--concurrency", str(self.concurrency)]
        return args

    def _ready(self) -> bool:
        return " started (concurrency" in self.log()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, *, ready_timeout: float = 30) -> WorkerProcess:
        args = self._args()
        with open(self.log_path, "ab") as log:
            # The working directory is the test's: no `.env` of the checkout is read.
            self.proc = subprocess.Popen(
                args, cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + ready_timeout
        while not self._ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self._name()} exited {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"{self._name()} not ready in {ready_timeout} s:\n{self.log()}"
                )
            time.sleep(0.05)
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no chance to clean up (a crash, the OOM killer, a pulled plug)."""
        if self.alive():
            self.signal(signal.SIGKILL)
            self.wait(10)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Safe to call twice."""
        if not self.alive():
            return
        self.signal(signal.SIGTERM)
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class WebProcess(WorkerProcess):
    """One `pagecast web` process on a free loopback port (ready when /healthz answers)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        super().__init__(workdir, env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _name(self) -> str:
        return "web"

    def _args(self) -> list[str]:
        return [str(PAGECAST), "web", "--host", "127.0.0.1", "--port", str(self.port)]

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                return conn.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False


class ServeProcess(WebProcess):
    """`pagecast serve` (web and worker in one process) on a free loopback port."""

    def _name(self) -> str:
        return "serve"

    def _args(self) -> list[str]:
        return [str(PAGECAST), "serve", "--host", "127.0.0.1", "--port", str(self.port)]


class SimulatorProcess(WebProcess):
    """`pagecast simulator` as its own process on a free loopback port, as a user runs it:
    the Graph side's clock and event loop are not the test's (ready when `/__sim/stats`
    answers)."""

    def _name(self) -> str:
        return "simulator"

    def _args(self) -> list[str]:
        return [str(PAGECAST), "simulator", "--port", str(self.port), "--seed", "1"]

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"GET /__sim/stats HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                return conn.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False


class RedisServer:
    """A private redis-server on a free loopback port, AOF on, data in `directory`."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server") or str(Path(sys.executable).parent / "redis-server")
        self.binary = binary
        self.directory = directory
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisServer:
        args = [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
        ]
        with open(self.directory / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"redis-server did not start: {self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM: redis-server flushes the AOF and exits."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class CountingListener:
    """Accepts TCP connections on a loopback port, counts them and answers nothing."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._open: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            self._open.append(conn)

    def close(self) -> None:
        """Stop listening: afterwards the port is closed (connections are refused)."""
        self._stop.set()
        self._thread.join(5)
        for conn in self._open:
            conn.close()
        self.sock.close()
