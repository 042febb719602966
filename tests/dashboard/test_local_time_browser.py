"""Issue 20 in a real browser: contacts' time zones from a CSV, a Page's quiet hours, and a
campaign sent "at 10:00 in each person's local time" within a send window; the campaign
page counts who waits for their local time. Bad times are refused beside their field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FB_PAGE, TOKEN = "2401", "EAAlocaltimetoken2401"


@pytest.fixture(scope="module")
def marketer(browser: Any, server: Any) -> Any:
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    yield page
    context.close()


def test_set_up_a_page_and_people_in_their_zones(
    marketer: Any, server: Any, sim_api: httpx.Client, tmp_path: Any
) -> None:
    create_first_admin(marketer, server)
    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": "World Tea", "access_token": TOKEN}
    ).raise_for_status()
    people = [
        {"page_id": FB_PAGE, "psid": p, "first_name": n, "last_user_action": "now"}
        for p, n in (("8001", "Ana"), ("8002", "Ben"), ("8003", "Cy"))
    ]
    sim_api.post("/__sim/users", json=people).raise_for_status()
    marketer.goto("/pages")
    marketer.fill("#connect-page input[name=access_token]", TOKEN)
    marketer.click("#connect-page button[type=submit]")
    expect(marketer.locator(".page-card", has_text="World Tea")).to_be_visible()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    csv_path = tmp_path / "people.csv"
    csv_path.write_text(
        "psid,first_name,last_inbound_at,timezone\n"
        f"8001,Ana,{now},Asia/Manila\n8002,Ben,{now},america/new_york\n8003,Cy,{now},\n"
    )
    marketer.goto("/contacts")
    marketer.set_input_files("#import-form input[type=file]", str(csv_path))
    marketer.click("#import-form button[type=submit]")
    expect(marketer.locator("#import-report")).to_have_attribute("data-state", "completed")
    marketer.goto("/contacts")
    rows = marketer.locator("table.list tbody tr")
    expect(rows.filter(has_text="8001")).to_contain_text("Asia/Manila")
    expect(rows.filter(has_text="8002")).to_contain_text("America/New_York")
    expect(rows.filter(has_text="8003")).to_contain_text("Page's")


def test_a_contacts_zone_is_set_from_the_list_and_an_unknown_one_refused(marketer: Any) -> None:
    marketer.goto("/contacts")
    row = marketer.locator("table.list tbody tr", has_text="8003")
    row.locator("input[name=contact_id]").check()
    marketer.fill("#bulk-tags input[name=timezone]", "Berlin")
    marketer.click("#bulk-tags button:has-text('Set time zone')")
    expect(marketer.locator("body")).to_contain_text('did you mean "Europe/Berlin"')
    marketer.goto("/contacts")
    row = marketer.locator("table.list tbody tr", has_text="8003")
    row.locator("input[name=contact_id]").check()
    marketer.fill("#bulk-tags input[name=timezone]", "europe/berlin")
    marketer.click("#bulk-tags button:has-text('Set time zone')")
    expect(marketer.locator("table.list tbody tr", has_text="8003")).to_contain_text(
        "Europe/Berlin"
    )


def test_page_quiet_hours_are_saved_and_bad_ones_refused(marketer: Any) -> None:
    marketer.goto("/pages")
    card = marketer.locator(".page-card", has_text="World Tea")
    quiet = card.locator("form.quiet-hours")
    quiet.locator("input[name=quiet_start]").fill("25:00")
    quiet.locator("input[name=quiet_end]").fill("08:00")
    quiet.locator("[data-save-quiet]").click()
    expect(marketer.locator("#page-error")).to_contain_text("quiet_hours.start")
    card = marketer.locator(".page-card", has_text="World Tea")
    quiet = card.locator("form.quiet-hours")
    quiet.locator("input[name=quiet_start]").fill("21:00")
    quiet.locator("input[name=quiet_end]").fill("08:00")
    quiet.locator("[data-save-quiet]").click()
    card = marketer.locator(".page-card", has_text="World Tea")
    expect(card.locator(".page-quiet")).to_have_text("21:00–08:00")
    expect(card.locator("input[name=quiet_start]")).to_have_value("21:00")


def _compose(page: Any, at: str, start: str) -> None:
    page.goto("/campaigns/new")
    page.fill("input[name=name]", "Morning tea")
    page.select_option("select[name=page_id]", label="World Tea (active)")
    page.fill("#text", "Tea time, {{first_name|friend}}")
    page.fill("input[name=local_send_at]", at)
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
        page.check(f"input[name=window_days][value={day}]")
    page.fill("input[name=window_start]", start)
    page.fill("input[name=window_end]", "18:00")
    page.click("#save")


def test_the_composer_sends_at_each_persons_ten_oclock(marketer: Any) -> None:
    day = (datetime.now(UTC) + timedelta(days=2)).date()
    at = f"{day:%Y-%m-%d}T10:00"
    _compose(marketer, at, "9am")
    expect(marketer.locator("#err-send_window")).to_contain_text("send_window.start")
    expect(marketer.locator("input[name=name]")).to_have_value("Morning tea")  # nothing lost
    _compose(marketer, at, "09:00")
    marketer.wait_for_url("**/campaigns/*")
    marketer.click("a:has-text('Edit')")
    expect(marketer.locator("input[name=local_send_at]")).to_have_value(at)
    expect(marketer.locator("input[name=window_start]")).to_have_value("09:00")
    expect(marketer.locator("input[name=window_days][value=sun]")).to_be_checked()
    marketer.go_back()
    marketer.click("button:has-text('Start sending')")
    expect(marketer.locator("#status-badge .badge")).to_have_text("sending")
    waiting = marketer.locator("#waiting")
    expect(waiting).to_be_visible()
    expect(waiting.locator("[data-waiting-count]")).to_have_text("3")
    expect(waiting).to_contain_text("waiting for local time")
    assert marketer.problems == []
