"""Issue 20 (engagement, frequency cap) in a real browser, against `pagecast serve` and the
simulator: a Page's frequency cap set on its settings (a bad value refused beside the form,
"off" by emptying it), a campaign whose people click its button (the simulator's
`engagement` knob) showing its clicks, and the next campaign's preview counting the people
the cap now excludes.

The tests run in file order and build on each other (one server per module).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin, new_page
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FB_PAGE, TOKEN = "2501", "EAAfrequencycap2501"
PEOPLE = ("8001", "8002", "8003")


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any) -> Any:
    page = new_page(browser, server)
    yield page
    page.context.close()


def card(admin: Any) -> Any:
    return admin.locator(".page-card", has_text="Cap Bakery")


def save_cap(admin: Any, messages: str, days: str) -> None:
    card(admin).locator("input[name=cap_messages]").fill(messages)
    card(admin).locator("input[name=cap_days]").fill(days)
    card(admin).locator("button[type=submit]").click()


def test_set_up_a_page_and_people(
    admin: Any, server: Any, sim_api: httpx.Client, tmp_path: Any
) -> None:
    create_first_admin(admin, server)
    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": "Cap Bakery", "access_token": TOKEN}
    ).raise_for_status()
    people = [
        {"page_id": FB_PAGE, "psid": p, "first_name": f"Kim{p}", "last_user_action": "now"}
        for p in PEOPLE
    ]
    sim_api.post("/__sim/users", json=people).raise_for_status()
    admin.goto("/pages")
    admin.fill("#connect-page input[name=access_token]", TOKEN)
    admin.click("#connect-page button[type=submit]")
    expect(card(admin).locator(".page-status .badge")).to_have_text("active")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    csv_path = tmp_path / "people.csv"
    csv_path.write_text(
        "psid,first_name,last_inbound_at\n" + "".join(f"{p},Kim{p},{now}\n" for p in PEOPLE)
    )
    admin.goto("/contacts")
    admin.set_input_files("#import-form input[type=file]", str(csv_path))
    admin.click("#import-form button[type=submit]")
    expect(admin.locator("#import-report")).to_have_attribute("data-state", "completed")


def test_the_cap_is_off_until_set_and_a_bad_value_is_refused(admin: Any) -> None:
    admin.goto("/pages")
    expect(card(admin).locator(".page-cap")).to_have_text("off")
    save_cap(admin, "0", "7")
    expect(admin.locator("#page-error")).to_contain_text("frequency_cap.messages")
    expect(card(admin).locator(".page-cap")).to_have_text("off")
    save_cap(admin, "2", "")
    expect(admin.locator("#page-error")).to_contain_text("frequency_cap.days")
    # The two refusals answered 422 (the browser logs each); nothing else is expected.
    assert all("422" in line for line in admin.console_errors), admin.console_errors
    admin.console_errors.clear()
    save_cap(admin, "1", "7")
    expect(admin.locator("#page-error")).to_have_count(0)
    expect(card(admin).locator(".page-cap")).to_have_text("at most 1 per person in 7 days")
    admin.reload()
    expect(card(admin).locator("input[name=cap_messages]")).to_have_value("1")
    expect(card(admin).locator("input[name=cap_days]")).to_have_value("7")
    # Emptied: off; set again for the campaigns below.
    save_cap(admin, "", "")
    expect(card(admin).locator(".page-cap")).to_have_text("off")
    save_cap(admin, "1", "7")
    expect(card(admin).locator(".page-cap")).to_have_text("at most 1 per person in 7 days")


def compose(admin: Any, name: str) -> None:
    admin.goto("/campaigns/new")
    admin.fill("input[name=name]", name)
    admin.select_option("select[name=page_id]", label="Cap Bakery (active)")
    admin.fill("#text", "Bread day: fresh loaves")
    admin.fill("input[name=button0_title]", "Keep one")
    admin.fill("input[name=button0_target]", "KEEP_ONE")


def test_clicks_on_a_campaigns_button_show_on_its_page(admin: Any, sim_api: httpx.Client) -> None:
    sim_api.post(
        "/__sim/knobs",
        json={"engagement": [{"match": "Bread", "p_click": 1.0}], "click_delay": [5, 5]},
    ).raise_for_status()
    compose(admin, "Bread day")
    expect(admin.locator("#eligible-count")).to_have_text("3")
    admin.click("#save")
    admin.wait_for_url("**/campaigns/*")
    url = admin.url
    expect(admin.locator("[data-engaged=clicked]")).to_have_text("0")
    admin.click("button:has-text('Start sending')")
    admin.wait_for_url(url)
    expect(admin.locator("#status-badge .badge")).to_have_text("completed", timeout=60_000)
    sim_api.post("/__sim/clock/advance", json={"seconds": 10}).raise_for_status()
    clicked = admin.locator("[data-engaged=clicked]")
    for _ in range(60):  # the clicks arrive as webhooks; each reload reads the counts again
        admin.reload()
        if clicked.inner_text() == "3":
            break
        admin.wait_for_timeout(250)
    expect(clicked).to_have_text("3")
    expect(admin.locator("[data-engaged=replied]")).to_have_text("0")


def test_the_next_campaigns_preview_counts_the_people_over_the_cap(admin: Any) -> None:
    compose(admin, "Bread again")
    expect(admin.locator("#eligible-count")).to_have_text("0")
    expect(admin.locator("[data-excluded=frequency_cap]")).to_have_text("3")
    assert admin.console_errors == []
