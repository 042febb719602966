"""Review and test before sending, in a real browser (issue 19): a contact is made a tester on
the Contacts page; a draft's page shows the review (the Page, the audience in words, eligible
now and the excluded by reason, the rate, the expected duration, the message for a real
person); Start asks with the number; "Send test" reaches that tester only (the simulator's
outbox) and shows the result, and the campaign still counts nothing.

The tests run in file order and build on each other (one server per module)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin, new_page, screenshot
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FB_PAGE, TOKEN = "8001", "EAAreview8001"


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any) -> Any:
    page = new_page(browser, server)
    yield page
    page.context.close()


def test_a_contact_is_made_a_tester_on_the_contacts_page(
    admin: Any, server: Any, sim_api: httpx.Client, tmp_path: Any
) -> None:
    create_first_admin(admin, server)
    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": "Review Cafe", "access_token": TOKEN}
    ).raise_for_status()
    people = [("8000", "Ana"), ("8001", "Ben"), ("8002", "Cy"), ("8003", "Dee")]
    sim_api.post(
        "/__sim/users",
        json=[
            {"page_id": FB_PAGE, "psid": psid, "first_name": name, "last_user_action": "now"}
            for psid, name in people
        ],
    ).raise_for_status()
    admin.goto("/pages")
    admin.fill("#connect-page input[name=access_token]", TOKEN)
    admin.click("#connect-page button[type=submit]")
    expect(admin.locator(".page-card", has_text="Review Cafe")).to_be_visible()
    now = datetime.now(UTC)
    recent = (now - timedelta(hours=1)).isoformat(timespec="seconds")
    old = (now - timedelta(days=3)).isoformat(timespec="seconds")  # outside the window
    rows = [f"{psid},{name},{old if name == 'Dee' else recent}" for psid, name in people]
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("psid,first_name,last_inbound_at\n" + "\n".join(rows) + "\n")
    admin.goto("/contacts")
    admin.set_input_files("#import-form input[type=file]", str(csv_path))
    admin.click("#import-form button[type=submit]")
    expect(admin.locator("#import-report")).to_have_attribute("data-state", "completed")
    admin.goto("/contacts")
    ana = admin.locator("tr", has_text="8000")
    ana.locator("button:has-text('Make tester')").click()
    admin.wait_for_url("**/contacts?page_id=*")
    expect(admin.locator("tr", has_text="8000").locator(".tag")).to_have_text("tester")
    expect(admin.locator("tr", has_text="8001").locator(".tag")).to_have_count(0)
    admin.select_option("select[name=is_tester]", "yes")
    admin.click("form.filters button[type=submit]")
    expect(admin.locator("tbody tr")).to_have_count(1)
    expect(admin.locator("tbody tr")).to_contain_text("8000")


def test_a_drafts_page_reviews_it_and_start_asks_with_the_number(admin: Any) -> None:
    admin.goto("/campaigns/new")
    admin.fill("input[name=name]", "Morning menu")
    admin.select_option("select[name=page_id]", label="Review Cafe (active)")
    admin.fill("#text", "Hi {{first_name|there}}, fresh croissants today!")
    expect(admin.locator("#eligible-count")).to_have_text("3")
    admin.click("#save")
    admin.wait_for_url("**/campaigns/*")
    review = admin.locator("#review")
    expect(review.locator("#review-page")).to_have_text("Review Cafe")
    expect(review.locator("#review-rules")).to_contain_text("Everyone who messaged Review Cafe")
    expect(review.locator("#review-eligible")).to_have_text("3")
    expect(review.locator("#review-excluded")).to_have_text(
        "1 outside the 24-hour messaging window"
    )
    expect(review.locator("#review-duration")).to_have_text("about 1 second")
    expect(review.locator("#preview-text")).to_have_text("Hi Ana, fresh croissants today!")
    start = admin.locator("form[action$='/start']")
    expect(start).to_have_attribute("data-confirm", "Send to 3 people now?")
    assert admin.console_errors == []


def test_send_test_reaches_that_tester_only_and_counts_nothing(
    admin: Any, sim_api: httpx.Client
) -> None:
    testers = admin.locator("#send-test input[name=contact_id]")
    expect(testers).to_have_count(1)  # the Page's only tester
    testers.first.check()
    admin.click("#send-test-button")
    result = admin.locator("#test-results [data-test-status]")
    expect(result).to_have_attribute("data-test-status", "sent")
    expect(result).to_contain_text("Ana: sent")
    sent = sim_api.get("/__sim/outbox", params={"page_id": FB_PAGE}).json()["messages"]
    assert [(m["psid"], m["message"]) for m in sent] == [
        ("8000", {"text": "Hi Ana, fresh croissants today!"})
    ]
    screenshot(admin, "campaign-review")
    admin.reload()
    expect(admin.locator("[data-count=total]")).to_have_text("0")
    expect(admin.locator("#status-badge .badge")).to_have_text("draft")
    expect(admin.locator(".audit")).to_contain_text("campaign.test_sent")
    assert admin.console_errors == []
