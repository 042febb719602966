"""`pagecast serve | web | worker | simulator`: the long-running processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from typing import Any

import typer

from pagecast import eventloop
from pagecast.cli.base import app, fail, load_settings, masked, state
from pagecast.errors import PagecastError

# ------------------------------------------------------------------ processes


def _logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The Graph transport's line per request is DEBUG: `--log-level DEBUG` shows it.
    for noisy in ("alembic", "httpx", "httpcore", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def _prepare(ctx: Any) -> int:
    """Migrate the default SQLite database; returns the number of users."""
    from pagecast.db import upgrade
    from pagecast.services import users

    if ctx.settings.uses_default_database():
        await upgrade(ctx.db)
    async with ctx.db.transaction() as session:
        return await users.count(session)


def _web_server(application: Any, host: str, port: int, log_level: str) -> Any:
    """A uvicorn server that leaves SIGINT and SIGTERM to `_processes`: uvicorn re-raises
    SIGTERM after its shutdown, which would kill the in-process worker before it records its
    in-flight sends. uvicorn and the web app are imported here, not at the top: a worker
    process has no use for the web stack (8 MB of its memory)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(application, host=host, port=port, log_level=log_level.lower())
    return Server(config)


async def _processes(
    host: str, port: int, *, web: bool, worker: bool, concurrency: int | None, demo: bool = False
) -> None:
    """Run the web app and/or a worker in this process, with the embedded Redis when no
    REDIS_URL is set, until SIGINT/SIGTERM."""
    from pagecast.context import AppContext
    from pagecast.embedded_redis import EmbeddedRedis
    from pagecast.settings import get_settings
    from pagecast.worker import build

    settings = get_settings()
    loop_kind = type(asyncio.get_running_loop()).__module__.partition(".")[0]
    logging.getLogger("pagecast").info("event loop: %s", loop_kind)
    sandbox = None
    if demo:
        from pagecast import demo as demo_mode

        settings, sandbox = demo_mode.start(settings, host=host, port=port)
    embedded = None
    redis_url = settings.redis_url
    if redis_url is None and (worker or web):
        embedded = EmbeddedRedis(settings.data_dir)
        redis_url = await embedded.start()
        logging.getLogger("pagecast").info("embedded Redis at %s", redis_url)
    if worker and not web:  # after the embedded Redis started: a web process may share it
        _lower_priority(settings.worker_nice)
    ctx = AppContext(settings, redis_url=redis_url)
    try:
        try:
            user_count = await _prepare(ctx)
        except Exception as exc:
            if state["debug"]:
                raise
            fail(
                f"The database at {masked(settings.resolved_database_url())} is not ready ({exc}). "
                "Run `pagecast db upgrade` first."
            )
        if sandbox is not None:
            await demo_mode.seed(ctx, sandbox)
            typer.echo(
                f"Demo mode: a sandbox Page with {demo_mode.PEOPLE} simulated people; messages go "
                f"to the local simulator at {settings.graph_api_url}, never to Facebook. "
                f"Data in {settings.data_dir}/ (delete it to start over)."
            )
        if web and user_count == 0:
            from pagecast.web.dashboard import setup_token

            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            typer.echo(
                "No users yet. Create the first admin with this one-time link:\n"
                f"  http://{shown}:{port}/setup/{setup_token.issue(settings.data_dir)}"
            )
            if sandbox is None:
                typer.echo(
                    "or: uv run pagecast users create --email you@example.com --role admin "
                    "--password '…'"
                )
        sender = build(ctx, concurrency=concurrency) if worker else None
        if not web:
            assert sender is not None
            await sender.run()
            return
        from pagecast.web.app import create_app

        typer.echo(f"Pagecast on http://{host}:{port} (API docs at /docs)")
        application = create_app(settings, context=ctx)
        application.state.demo = demo
        server = _web_server(application, host, port, settings.log_level)
        task = asyncio.create_task(sender.run(install_signals=False)) if sender else None

        def stop() -> None:
            server.should_exit = True
            if sender is not None:
                sender.stopping.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        await server.serve()
        if task is not None:
            stop()
            await task
    finally:
        # In order: the web server stopped accepting and answered what it had, the worker
        # finished its sends, then the connections close, and the embedded Redis goes last.
        await ctx.close()
        if embedded is not None:
            await embedded.stop()
            logging.getLogger("pagecast").info("embedded Redis stopped")
        if sandbox is not None:
            sandbox.stop()


def _lower_priority(nice: int) -> None:
    """Run this process at nice value `nice` or lower priority still (never raise it: an
    operator may have started it lower). Threads and processes started later inherit it;
    the embedded Redis, started before, does not."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > current:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        logging.getLogger("pagecast").info("worker process at nice %d", nice)


def _run_processes(
    host: str | None,
    port: int | None,
    *,
    web: bool,
    worker: bool,
    concurrency: int | None = None,
    demo: bool = False,
) -> None:
    settings = load_settings()
    if not demo:  # the demo keeps its secret key in its own data directory
        settings.resolved_secret_key()  # generated on first run, before anything needs it
    _logging(settings.log_level)
    try:
        eventloop.run(
            _processes(
                host or settings.host,
                port or settings.port,
                web=web,
                worker=worker,
                concurrency=concurrency,
                demo=demo,
            ),
            settings.event_loop,
        )
    except PagecastError as exc:
        if state["debug"]:
            raise
        fail(exc.message)


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Address to listen on (default PAGECAST_HOST)."),
    port: int | None = typer.Option(None, help="Port to listen on (default PAGECAST_PORT)."),
    demo: bool = typer.Option(
        False,
        "--demo",
        help="Sandbox: a simulated Page with 500 people, in ./pagecast-demo; nothing reaches "
        "Facebook.",
    ),
) -> None:
    """Run Pagecast: the web app, the API and a sending worker (the one-command default)."""
    _run_processes(host, port, web=True, worker=True, demo=demo)


@app.command()
def web(
    host: str | None = typer.Option(None, help="Address to listen on."),
    port: int | None = typer.Option(None, help="Port to listen on."),
) -> None:
    """Run the web app and API only (workers run with `pagecast worker`)."""
    _run_processes(host, port, web=True, worker=False)


@app.command()
def worker(
    concurrency: int | None = typer.Option(
        None, help="Sends in flight at once (default PAGECAST_WORKER_CONCURRENCY)."
    ),
) -> None:
    """Run a sending worker (any number, on any machines, against the same database and Redis)."""
    _run_processes(None, None, web=False, worker=True, concurrency=concurrency)


@app.command()
def simulator(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback only)."),
    port: int = typer.Option(8900, help="Port to listen on."),
    seed: int = typer.Option(0, help="Seed of every random decision the simulator makes."),
    latency_ms: str = typer.Option(
        "0", help="Added latency per Graph call in ms: a number or a range such as 50-150."
    ),
    webhook_url: str | None = typer.Option(None, help="Where to POST webhook events."),
    app_secret: str | None = typer.Option(None, help="App secret that signs webhook events."),
    verify_token: str | None = typer.Option(None, help="Verify token for the webhook handshake."),
) -> None:
    """Run the local Messenger Graph API simulator (no Facebook needed)."""
    from pagecast.simulator.server import run

    run(
        host=host,
        port=port,
        seed=seed,
        latency_ms=latency_ms,
        webhook_url=webhook_url,
        app_secret=app_secret,
        verify_token=verify_token,
    )
