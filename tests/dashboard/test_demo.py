"""`pagecast serve --demo`: a newcomer's path from the command to a finished campaign with
receipts, in the browser, with no Facebook app and nothing but the demo's own data dir."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_support import ADMIN_EMAIL, ADMIN_PASSWORD, new_page, screenshot
from playwright.sync_api import expect

from processes import PAGECAST, clean_env, free_port

# A real server, a browser and real sends: generous limits for a loaded CI machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    workdir = tmp_path_factory.mktemp("demo")
    port = free_port()
    log_path = workdir / "serve.log"
    with open(log_path, "wb") as log:
        # No data dir, database or Redis given: the demo must pick its own.
        proc = subprocess.Popen(
            [str(PAGECAST), "serve", "--demo", "--port", str(port)],
            cwd=workdir,
            env=clean_env({}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(log_path.read_text())
        time.sleep(0.2)
    found = re.search(r"(http://\S+/setup/\S+)", log_path.read_text())
    assert found, log_path.read_text()

    class Demo:
        server_url = url
        setup_url = found.group(1)
        directory: Path = workdir

    try:
        yield Demo
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_demo_runs_a_campaign_to_receipts_with_a_banner_everywhere(browser: Any, demo: Any) -> None:
    assert (demo.directory / "pagecast-demo" / "pagecast.db").exists()
    assert not (demo.directory / "pagecast-data").exists()
    # The sandbox Page was connected through Connect with Facebook, not a pasted token.
    with sqlite3.connect(demo.directory / "pagecast-demo" / "pagecast.db") as db:
        connected = db.execute(
            "SELECT details FROM audit_log WHERE action = 'page.connected'"
        ).fetchall()
    assert len(connected) == 1 and '"via": "facebook_login"' in connected[0][0]

    class Target:
        url = demo.server_url

    page = new_page(browser, Target)
    page.goto(demo.setup_url)
    expect(page.locator(".demo-banner")).to_contain_text("local Graph API simulator")
    page.fill("input[name=email]", ADMIN_EMAIL)
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.fill("input[name=password2]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/campaigns")
    page.goto("/campaigns/new")
    page.fill("input[name=name]", "Hello from the sandbox")
    page.select_option("select[name=page_id]", label="Sandbox Bakery (active)")
    page.fill("#text", "Hi ")
    page.click("button.chip >> nth=0")
    expect(page.locator("#eligible-count")).to_have_text("488")
    expect(page.locator("[data-excluded=outside_window]")).to_have_text("12")
    page.click("#save")
    page.click("button:has-text('Start sending')")
    expect(page.locator("#status-badge .badge")).to_have_text("completed", timeout=180_000)
    expect(page.locator("[data-count=failed]")).to_have_text("5")
    # Receipts come back through the simulator's signed webhooks.
    deadline = time.monotonic() + 30
    while page.locator("[data-count=delivered]").inner_text() == "0":
        assert time.monotonic() < deadline, "no delivery receipt arrived"
        time.sleep(1)
        page.reload()
    expect(page.locator(".demo-banner")).to_be_visible()
    screenshot(page, "demo")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    screenshot(page, "demo-phone", full_page=False)
    page.context.close()
