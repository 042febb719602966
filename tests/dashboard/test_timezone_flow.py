"""Issue 19 in a real browser: a marketer in Manila takes the browser's zone, schedules a
campaign in Manila time, and reads every time in it, with UTC on hover; a past schedule is
refused beside the field, and the page keeps its navigation.

The browser itself runs in Asia/Manila (Playwright's `timezone_id`), so the suggestion the
settings page makes comes from `Intl.DateTimeFormat().resolvedOptions().timeZone`, under the
app's Content-Security-Policy (no inline script).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin
from playwright.sync_api import expect

from pagecast import timezones

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FB_PAGE, TOKEN = "2301", "EAAtimezonetoken2301"
MANILA = timezones.zone("Asia/Manila")


@pytest.fixture(scope="module")
def marketer(browser: Any, server: Any) -> Any:
    context = browser.new_context(
        base_url=server.url, timezone_id="Asia/Manila", viewport={"width": 1280, "height": 860}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the Schedule confirmation
    # Script errors and Content-Security-Policy refusals (a 404's console line is not ours).
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on(
        "console",
        lambda message: (
            page.problems.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    yield page
    context.close()


def test_set_up_with_a_page_and_contacts(
    marketer: Any, server: Any, sim_api: httpx.Client, tmp_path: Any
) -> None:
    create_first_admin(marketer, server)
    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": "Manila Bakery", "access_token": TOKEN}
    ).raise_for_status()
    marketer.goto("/pages")
    marketer.fill("#connect-page input[name=access_token]", TOKEN)
    marketer.click("#connect-page button[type=submit]")
    card = marketer.locator(".page-card", has_text="Manila Bakery")
    expect(card.locator(".page-zone")).to_have_text("UTC")
    # The Page's own zone, on its settings.
    card.locator("input[name=timezone]").fill("Europe/Berlin")
    card.locator("button[type=submit]").click()
    expect(card.locator(".page-zone")).to_have_text("Europe/Berlin")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    csv_path = tmp_path / "people.csv"
    csv_path.write_text(f"psid,first_name,last_inbound_at\n7001,Ana,{now}\n7002,Ben,{now}\n")
    marketer.goto("/contacts")
    marketer.set_input_files("#import-form input[type=file]", str(csv_path))
    marketer.click("#import-form button[type=submit]")
    expect(marketer.locator("#import-report")).to_have_attribute("data-state", "completed")


def test_the_settings_page_proposes_the_browsers_zone(marketer: Any) -> None:
    marketer.goto("/users")
    expect(marketer.locator("#current-zone")).to_have_text("UTC")
    suggestion = marketer.locator("#use-browser-zone")
    expect(suggestion).to_have_text("Use my browser's zone (Asia/Manila)")
    suggestion.click()
    marketer.wait_for_url(re.compile(r".*/users#timezone$"))
    expect(marketer.locator("#current-zone")).to_have_text("Asia/Manila (UTC+08:00)")
    expect(marketer.locator("#use-browser-zone")).to_be_hidden()  # nothing left to propose
    # The sessions' times are now Manila times, with UTC in their title.
    started = marketer.locator("#own-sessions time").first
    expect(started).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\+08:00$"))
    expect(started).to_have_attribute("title", re.compile(r" UTC$"))


def _compose(page: Any, name: str, at: str) -> None:
    page.goto("/campaigns/new")
    page.fill("input[name=name]", name)
    page.select_option("select[name=page_id]", label="Manila Bakery (active)")
    page.fill("#text", "Pandesal is ready")
    page.fill("input[name=scheduled_at]", at)
    page.click("#save")


def test_a_past_schedule_is_refused_beside_the_field(marketer: Any) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).astimezone(MANILA)
    _compose(marketer, "Too late", past.strftime("%Y-%m-%dT%H:%M"))
    expect(marketer.locator("#zone-label")).to_have_text("Asia/Manila (UTC+08:00)")
    expect(marketer.locator("#err-scheduled_at")).to_contain_text("in the past")
    expect(marketer.locator("nav[aria-label=Main]")).to_be_visible()
    expect(marketer.locator("input[name=name]")).to_have_value("Too late")  # nothing lost


def test_a_schedule_in_manila_time_is_shown_in_it_with_utc_on_hover(marketer: Any) -> None:
    day = (datetime.now(MANILA) + timedelta(days=2)).date()
    local = datetime(day.year, day.month, day.day, 9, 30, tzinfo=MANILA)
    utc = local.astimezone(UTC)
    _compose(marketer, "Breakfast", local.strftime("%Y-%m-%dT%H:%M"))
    marketer.wait_for_url(re.compile(r".*/campaigns/\d+$"))
    shown = marketer.locator("#scheduled-at time")
    expect(shown).to_have_text(f"{local:%Y-%m-%d} 09:30:00 UTC+08:00")
    expect(shown).to_have_attribute("datetime", utc.strftime("%Y-%m-%dT%H:%M:%SZ"))
    expect(shown).to_have_attribute("title", f"{utc:%Y-%m-%d %H:%M:%S} UTC")
    berlin = f"{local.astimezone(timezones.zone('Europe/Berlin')):%Y-%m-%d %H:%M:%S}"
    expect(marketer.locator("#scheduled-page-zone")).to_contain_text(
        f"{berlin} {timezones.offset_text('Europe/Berlin', utc)} in the Page's zone, Europe/Berlin"
    )
    marketer.click(f"button:has-text('Schedule for {local:%Y-%m-%d} 09:30 UTC+08:00')")
    expect(marketer.locator("#status-badge .badge")).to_have_text("scheduled")
    trail = marketer.locator(".audit time")
    expect(trail.first).to_have_text(re.compile(r"UTC\+08:00$"))
    expect(trail.first).to_have_attribute("title", re.compile(r" UTC$"))
    # The edit form shows the time back as it was typed.
    marketer.click("a:has-text('Edit')")
    expect(marketer.locator("input[name=scheduled_at]")).to_have_value(f"{local:%Y-%m-%dT%H:%M}")
    assert marketer.problems == []
