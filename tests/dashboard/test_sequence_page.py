"""A campaign's page shows every message of its sequence, in order (issue 19), in a real
browser against a real `pagecast serve`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin, new_page
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SEQUENCE = [
    {"attachment": {"type": "image", "url": "https://example.com/sale.png"}},
    {
        "text": "Hi {{first_name|there}}, 20% off today",
        "buttons": [{"type": "web_url", "title": "Shop now", "url": "https://example.com/shop"}],
    },
    {"text": "Reply STOP to opt out"},
]


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any, simulator: Any) -> Any:
    """An admin (through the setup link) with a connected Page."""
    page = new_page(browser, server)
    create_first_admin(page, server)
    httpx.post(
        f"{simulator.url}/__sim/pages",
        json={"page_id": "4001", "name": "Sequence Shop", "access_token": "EAAsequence4001"},
    ).raise_for_status()
    page.goto("/pages")
    page.fill("#connect-page input[name=access_token]", "EAAsequence4001")
    page.click("#connect-page button[type=submit]")
    expect(page.get_by_text("Sequence Shop").first).to_be_visible()
    yield page
    page.context.close()


def _create(admin: Any, body: dict[str, Any]) -> int:
    """A draft through the API with the browser's session (and its CSRF token)."""
    admin.goto("/campaigns")
    csrf = admin.locator("input[name=csrf_token]").first.get_attribute("value")
    pages = admin.request.get("/api/pages").json()["items"]
    answer = admin.request.post(
        "/api/campaigns",
        data={"page_id": pages[0]["id"], **body},
        headers={"X-CSRF-Token": csrf or ""},
    )
    assert answer.status == 201, answer.text()
    return int(answer.json()["id"])


def test_the_campaign_page_shows_every_message_of_the_sequence_in_order(admin: Any) -> None:
    campaign_id = _create(admin, {"name": "Three steps", "messages": SEQUENCE})
    admin.goto(f"/campaigns/{campaign_id}")
    section = admin.locator("#messages")
    expect(section.locator("h2")).to_contain_text("3, sent in this order")
    items = section.locator("li.message")
    expect(items).to_have_count(3)
    expect(items.nth(0)).to_contain_text("Image")
    expect(items.nth(0).locator("a")).to_have_attribute("href", "https://example.com/sale.png")
    expect(items.nth(1)).to_contain_text("Hi {{first_name|there}}, 20% off today")
    expect(items.nth(1).locator(".chip")).to_have_text("Shop now")
    expect(items.nth(2)).to_contain_text("Reply STOP to opt out")
    expect(items.nth(2)).to_contain_text("Message 3 of 3")


def test_a_single_message_campaign_shows_its_one_message(admin: Any) -> None:
    campaign_id = _create(admin, {"name": "One step", "content": {"text": "Just this"}})
    admin.goto(f"/campaigns/{campaign_id}")
    expect(admin.locator("#messages h2")).to_have_text("Message")
    expect(admin.locator("#messages li.message")).to_have_count(1)
    expect(admin.locator("#messages")).to_contain_text("Just this")
