"""Outbound webhooks in a real browser (issue 22), against a real `pagecast serve` (its worker
sends the deliveries) and a receiver on a loopback port in this test: an admin registers an
endpoint and sees its secret once, sends a test ping that arrives signed with that secret,
sends it again from the delivery log, and sees the banner when the failure rule turns the
endpoint off.

The tests run in file order and build on each other (one server per module).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import create_first_admin, new_page, screenshot
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# The receiver is on 127.0.0.1: allowed here, as on-premise installs do; quick polling.
SERVER_ENV = {
    "PAGECAST_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
    "PAGECAST_WEBHOOKS_POLL_SECONDS": "0.2",
}
GOT: list[tuple[dict[str, str], bytes]] = []
STATE: dict[str, Any] = {}


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        GOT.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"thanks")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/in"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any) -> Any:
    page = new_page(browser, server)
    yield page
    page.context.close()


def _wait(condition: Any, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    parts = dict(p.split("=", 1) for p in headers["Pagecast-Signature"].split(","))
    mac = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), parts["v1"])


def test_an_admin_registers_an_endpoint_and_sees_its_secret_once(
    admin: Any, server: Any, receiver: str
) -> None:
    create_first_admin(admin, server)
    admin.click("nav >> text=Webhooks")
    admin.wait_for_url("**/outbound-webhooks")
    admin.fill("#new-endpoint input[name=url]", receiver)
    admin.fill("#new-endpoint input[name=description]", "Our CRM")
    admin.check("#new-endpoint input[value='campaign.started']")
    admin.check("#new-endpoint input[value='campaign.completed']")
    with admin.expect_response(lambda r: r.request.method == "POST") as answered:
        admin.click("#new-endpoint button[type=submit]")
    assert answered.value.headers["cache-control"] == "no-store"  # no cached copy
    secret = admin.locator("#secret-value").inner_text()
    assert secret.startswith("whsec_")
    expect(admin.locator("#new-secret")).to_contain_text("only this once")
    expect(admin.locator("#endpoints")).to_contain_text("campaign.started, campaign.completed")
    screenshot(admin, "outbound-webhooks-created")
    STATE["secret"] = secret
    admin.goto("/outbound-webhooks")
    assert secret not in admin.content()
    expect(admin.locator("#new-secret")).to_have_count(0)


def test_a_test_ping_arrives_signed_and_can_be_sent_again(admin: Any) -> None:
    admin.click("text=Send test ping")
    admin.wait_for_url("**/outbound-webhooks/1")
    _wait(lambda: len(GOT) == 1, "the ping")
    headers, body = GOT[0]
    assert json.loads(body)["type"] == "webhook.ping"
    assert _verified(STATE["secret"], headers, body)
    assert headers["User-Agent"].startswith("Pagecast-Webhooks/")

    def delivered() -> bool:
        admin.reload()
        return admin.locator("#deliveries [data-status]").first.inner_text() == "delivered"

    _wait(delivered, "the log to show the delivery")
    expect(admin.locator("#deliveries")).to_contain_text("200")
    expect(admin.locator("#deliveries")).to_contain_text("thanks")
    screenshot(admin, "outbound-webhooks-log")
    admin.click("#deliveries >> text=Send again")
    _wait(lambda: len(GOT) == 2, "the delivery sent again")
    assert json.loads(GOT[1][1])["id"] == json.loads(body)["id"]
    assert _verified(STATE["secret"], *GOT[1])


def test_admins_are_told_when_the_failure_rule_turns_an_endpoint_off(
    admin: Any, server: Any
) -> None:
    # Three days of failures, written as the sender would leave them; the worker's next pass
    # applies the rule.
    database = Path(server.log_path).parent / "data" / "pagecast.db"
    since = (datetime.now(UTC) - timedelta(days=3, minutes=1)).replace(tzinfo=None)
    with sqlite3.connect(database) as connection:
        connection.execute(
            "UPDATE webhook_endpoints SET failing_since = ? WHERE id = 1", (since.isoformat(" "),)
        )

    def turned_off() -> bool:
        admin.goto("/campaigns")
        return admin.locator("#webhooks-off").count() == 1

    _wait(turned_off, "the banner")
    expect(admin.locator("#webhooks-off")).to_contain_text("turned off")
    screenshot(admin, "outbound-webhooks-turned-off-banner", full_page=False)
    admin.click("#webhooks-off a")
    expect(admin.locator("#disabled-reason")).to_contain_text("3 days")
    expect(admin.locator("#ping")).to_have_count(0)
    admin.click("#enable")
    expect(admin.locator("#webhooks-off")).to_have_count(0)
    expect(admin.locator("#ping")).to_be_visible()
    # The secret is in no log line of the server (web and worker).
    assert STATE["secret"] not in server.log()


def test_an_admin_edits_the_events_makes_a_new_secret_and_deletes_the_endpoint(
    admin: Any,
) -> None:
    admin.goto("/outbound-webhooks/1")
    admin.uncheck("#edit-endpoint input[value='campaign.started']")
    admin.check("#edit-endpoint input[value='contact.opted_out']")
    admin.click("#edit-endpoint button[type=submit]")
    admin.goto("/outbound-webhooks")
    expect(admin.locator("#endpoints")).to_contain_text("campaign.completed, contact.opted_out")
    admin.goto("/outbound-webhooks/1")
    admin.uncheck("#edit-endpoint input[value='campaign.completed']")
    admin.uncheck("#edit-endpoint input[value='contact.opted_out']")
    admin.click("#edit-endpoint button[type=submit]")
    expect(admin.locator("main")).to_contain_text("choose at least one event")
    admin.goto("/outbound-webhooks/1")
    with admin.expect_response(lambda r: r.request.method == "POST") as answered:
        admin.click("#rotate")
    assert answered.value.headers["cache-control"] == "no-store"
    new = admin.locator("#secret-value").inner_text()
    assert new.startswith("whsec_") and new != STATE["secret"]
    admin.goto("/outbound-webhooks/1")
    assert new not in admin.content()
    expect(admin.locator("#new-secret")).to_have_count(0)
    admin.click("#delete")
    admin.wait_for_url("**/outbound-webhooks")
    expect(admin.locator("main")).to_contain_text("No endpoints yet.")
