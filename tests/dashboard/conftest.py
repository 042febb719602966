"""Browser tests: Debian's Chromium driven by Playwright against a real `pagecast serve`.

The server is a subprocess with its own data directory (SQLite) whose Graph URL points at
the session's simulator, and the simulator's webhooks come back to it, signed. Playwright's
own browser downloads are never used: `/usr/bin/chromium` (or PAGECAST_TEST_CHROMIUM).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from processes import PAGECAST, clean_env, free_port

CHROMIUM = os.environ.get("PAGECAST_TEST_CHROMIUM", "/usr/bin/chromium")

APP_SECRET = "dashboard-test-app-secret"
VERIFY_TOKEN = "dashboard-verify-token"
SIM_APP_ID = "1517776481860111"  # the simulator's app (GET /__sim/app); its secret is APP_SECRET


@dataclass
class Server:
    url: str
    setup_url: str
    log_path: Path
    proc: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


# Module scope, not session: Playwright's sync API runs its own event loop in this thread
# while it is open, and the rest of the suite needs `asyncio.run` and its own loop after us.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason}; CI=true requires the browser tests to run.")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield chromium
        chromium.close()


def _redis_url() -> str | None:
    """The test Redis, flushed; None lets `serve` start its embedded one."""
    import redis

    url = os.environ.get("PAGECAST_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.ConnectionError:
        return None
    finally:
        client.close()
    return url


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def server(
    simulator: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Server]:
    """`pagecast serve` on a free loopback port, talking to the simulator (reset first); a
    test module's `SERVER_ENV` dict adds or overrides settings of its server."""
    workdir = tmp_path_factory.mktemp("dashboard")
    port = free_port()
    env = clean_env(
        {
            "PAGECAST_DATA_DIR": str(workdir / "data"),
            "PAGECAST_GRAPH_API_URL": simulator.url,
            "PAGECAST_APP_SECRET": APP_SECRET,
            # Connect with Facebook: the simulator's app, and its Login dialog.
            "PAGECAST_APP_ID": SIM_APP_ID,
            "PAGECAST_FACEBOOK_WEB_URL": simulator.url,
            "PAGECAST_WEBHOOK_VERIFY_TOKEN": VERIFY_TOKEN,
            "PAGECAST_RETRY_BASE_SECONDS": "0.2",
            "PAGECAST_RETRY_CAP_SECONDS": "1",
            # Small chunks: a pause takes effect within one chunk.
            "PAGECAST_CHUNK_SIZE": "10",
            "PAGECAST_LOG_LEVEL": "INFO",
        }
        | getattr(request.module, "SERVER_ENV", {})
    )
    redis_url = _redis_url()
    if redis_url:
        env["REDIS_URL"] = redis_url
    httpx.post(f"{simulator.url}/__sim/reset").raise_for_status()
    httpx.post(
        f"{simulator.url}/__sim/webhook",
        json={
            "url": f"http://127.0.0.1:{port}/webhooks/messenger",
            "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN,
            "enabled": True,
        },
    ).raise_for_status()
    log_path = workdir / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(PAGECAST), "serve", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", "", log_path, proc)
    deadline = time.monotonic() + 60
    while not _answers(server.url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"pagecast serve did not start:\n{server.log()}")
        time.sleep(0.1)
    found = re.search(r"(http://\S+/setup/\S+)", server.log())
    assert found, server.log()
    server.setup_url = found.group(1)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if os.environ.get("PAGECAST_KEEP_DASHBOARD_LOG"):
            shutil.copy(log_path, Path(os.environ["PAGECAST_KEEP_DASHBOARD_LOG"]))


@pytest.fixture
def sim_api(simulator: Any) -> Iterator[httpx.Client]:
    """The simulator's control plane (not reset: the module's server depends on its state)."""
    with httpx.Client(base_url=simulator.url, timeout=10) as client:
        yield client
