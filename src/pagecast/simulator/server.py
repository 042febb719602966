"""Serving the simulator: `run` for `pagecast simulator`, `SimulatorServer` for tests.

Both bind to loopback only. `SimulatorServer` runs uvicorn in a background thread on a free
port and exposes `.url`, `.app` and `.state`.
"""

from __future__ import annotations

import gc
import ipaddress
import socket
import threading
import time
from types import TracebackType

import uvicorn
import uvloop

from pagecast.errors import ConfigError
from pagecast.simulator import SimulatorApp, create_app
from pagecast.simulator.clock import Clock
from pagecast.simulator.control import parse_latency
from pagecast.simulator.state import SimState

__all__ = ["SimulatorServer", "check_host", "no_full_collections", "run"]


def check_host(host: str) -> str:
    """Refuse anything but a loopback address: the simulator is for this machine only."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"The simulator only listens on loopback addresses; {host!r} is not one. "
            "Use --host 127.0.0.1 (or ::1)."
        )
    return host


def run(
    *,
    host: str,
    port: int,
    seed: int,
    latency_ms: str,
    webhook_url: str | None,
    app_secret: str | None,
    verify_token: str | None,
) -> None:
    """Serve the simulator until interrupted (the `pagecast simulator` command)."""
    check_host(host)
    no_full_collections()
    try:
        latency = parse_latency(latency_ms)
        app = create_app(
            seed=seed,
            latency_ms=latency,
            webhook_url=webhook_url,
            app_secret=app_secret,
            verify_token=verify_token,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
        lifespan="on",
    )


def no_full_collections() -> None:
    """Leave the simulator's heap out of Python's automatic full collections.

    The simulator keeps every call and message it took (`state.calls`, the outbox), so a full
    collection walks all of them: 60 ms at 120,000 objects, and it grows with the run. For
    that long the event loop takes in nothing, and the calls waiting meanwhile are all
    counted at once when it resumes, so a Page's busiest second gains calls that its sender
    spaced a second apart (Graph counts calls as they arrive, with no such pause). The young
    generations are still collected; a full collection runs only when asked for.
    """
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 2**31 - 1)


class SimulatorServer:
    """Run a simulator under uvicorn in a background thread (`with SimulatorServer() as s`)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        latency_ms: tuple[float, float] = (0, 0),
        webhook_url: str | None = None,
        app_secret: str | None = None,
        verify_token: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.host = check_host(host)
        self.port = port
        self.app: SimulatorApp = create_app(
            seed=seed,
            latency_ms=latency_ms,
            webhook_url=webhook_url,
            app_secret=app_secret,
            verify_token=verify_token,
            clock=clock,
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> SimState:
        return self.app.state

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> SimulatorServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            http="httptools",
            loop="none",
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        server = self._server

        def serve() -> None:
            # uvloop sets TCP_NODELAY on accepted sockets; without it the body of a response
            # waits for the client's delayed ACK of the headers (about 40 ms per call).
            loop = uvloop.new_event_loop()
            try:
                loop.run_until_complete(server.serve(sockets=[sock]))
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name="pagecast-simulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The simulator did not start on {self.url}.")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
