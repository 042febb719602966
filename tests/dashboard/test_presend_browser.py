"""A first visit and the checks before a send, in a real browser (issue 19): no console error
(the favicon answers), the composer warns about a tag no contact has and suggests the Page's
tags, and Start on a campaign that would reach nobody is refused on the campaign's own page
(409, the reason, the navigation), which stays a draft.

The tests run in file order and build on each other (one server per module)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin, new_page
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FB_PAGE, TOKEN = "7001", "EAApresend7001"


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any) -> Any:
    """A browser page whose console errors (`new_page`) and failed answers are recorded."""
    page = new_page(browser, server)
    page.failed = []
    page.on(
        "response", lambda r: page.failed.append((r.status, r.url)) if r.status >= 400 else None
    )
    yield page
    page.context.close()


def test_a_first_visit_logs_no_console_error_and_has_a_favicon(admin: Any, server: Any) -> None:
    create_first_admin(admin, server)
    for path in ("/campaigns", "/contacts", "/pages"):
        admin.goto(path)
        admin.wait_for_load_state("networkidle")
    assert admin.console_errors == [] and admin.failed == []
    expect(admin.locator("#sending-unavailable")).to_have_count(0)  # Redis answers
    href = admin.locator("link[rel=icon]").get_attribute("href")
    assert href == "/static/favicon.svg"
    icon = admin.request.get(href)
    assert icon.status == 200 and icon.headers["content-type"] == "image/svg+xml"
    ico = admin.request.get("/favicon.ico")
    assert ico.status == 200 and ico.headers["content-type"] == "image/vnd.microsoft.icon"


def test_the_composer_warns_about_a_tag_nobody_has_and_suggests_the_known_ones(
    admin: Any, sim_api: httpx.Client, tmp_path: Any
) -> None:
    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": "Presend Bakery", "access_token": TOKEN}
    ).raise_for_status()
    admin.goto("/pages")
    admin.fill("#connect-page input[name=access_token]", TOKEN)
    admin.click("#connect-page button[type=submit]")
    expect(admin.locator(".page-card", has_text="Presend Bakery")).to_be_visible()
    # Three people who last wrote three days ago: outside the 24-hour window.
    seen = (datetime.now(UTC) - timedelta(days=3)).isoformat(timespec="seconds")
    rows = [
        f"{7000 + i},P{i},Lee,{tags},{seen}"
        for i, tags in enumerate(["vip", "vip;regular", "regular"])
    ]
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("psid,first_name,last_name,tags,last_inbound_at\n" + "\n".join(rows) + "\n")
    admin.goto("/contacts")
    admin.set_input_files("#import-form input[type=file]", str(csv_path))
    admin.click("#import-form button[type=submit]")
    expect(admin.locator("#import-report")).to_have_attribute("data-state", "completed")

    admin.goto("/campaigns/new")
    admin.fill("input[name=name]", "Typo")
    admin.select_option("select[name=page_id]", label="Presend Bakery (active)")
    admin.fill("#text", "Fresh bread")
    admin.check("input[name=audience_type][value=tags]")
    admin.fill("input[name=include]", "vipp")
    warning = admin.locator("#preview [data-warning='audience.include']")
    expect(warning).to_have_text(
        "audience.include: No contact of this Page has the tag 'vipp'. Known tags: regular, vip."
    )
    options = admin.locator("#known-tags option")
    expect(options).to_have_count(2)
    assert [o.get_attribute("value") for o in options.all()] == ["regular", "vip"]
    # Suggestions keep the tags typed before the last comma.
    admin.fill("input[name=include]", "vip, re")
    expect(options.first).to_have_attribute("value", "vip, regular")
    expect(warning).to_contain_text("'re'")
    admin.fill("input[name=include]", "vipp")
    admin.click("#save")  # a warning, not an error: saved
    admin.wait_for_url("**/campaigns/*")
    expect(admin.locator("#status-badge .badge")).to_have_text("draft")
    expect(admin.locator("[data-warning='audience.include']")).to_contain_text("'vipp'")
    assert admin.console_errors == []


def test_start_with_nobody_eligible_is_refused_on_the_campaign_page(admin: Any) -> None:
    admin.goto("/campaigns/new")
    admin.fill("input[name=name]", "Nobody in the window")
    admin.select_option("select[name=page_id]", label="Presend Bakery (active)")
    admin.fill("#text", "Fresh bread")
    expect(admin.locator("#eligible-count")).to_have_text("0")
    admin.click("#save")
    admin.wait_for_url("**/campaigns/*")
    campaign_url = admin.url
    with admin.expect_response(lambda r: r.url.endswith("/start")) as answer:
        admin.click("button:has-text('Start sending')")
    assert answer.value.status == 409
    refusal = admin.locator("#action-refused")
    expect(refusal).to_contain_text("has no eligible people")
    expect(refusal).to_contain_text(
        "matches 3 contacts of Page Presend Bakery, but none can be messaged now: "
        "3 outside the 24-hour messaging window"
    )
    expect(refusal).to_contain_text("it stays a draft")
    expect(admin.locator("nav[aria-label=Main]")).to_be_visible()  # not a dead end
    expect(admin.locator("#status-badge .badge")).to_have_text("draft")
    expect(admin.locator("button:has-text('Start sending')")).to_be_visible()
    admin.goto(campaign_url)
    expect(admin.locator("#status-badge .badge")).to_have_text("draft")
    expect(admin.locator("[data-count=total]")).to_have_text("0")
