"""Issue 20 in a real browser: a marketer makes a recurring series on the Series page (a bad
cron expression is refused beside the field), reads its next runs in their zone, sees its
first run appear as a campaign of its own (the `serve` worker makes it at its time), then
pauses, resumes and ends it."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin, new_page
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FB_PAGE, TOKEN = "2401", "EAAseriestoken2401"


@pytest.fixture(scope="module")
def marketer(browser: Any, server: Any) -> Any:
    page = new_page(browser, server)
    yield page
    page.context.close()


def test_set_up_a_page_with_contacts(
    marketer: Any, server: Any, sim_api: httpx.Client, tmp_path: Any
) -> None:
    create_first_admin(marketer, server)
    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": "Series Shop", "access_token": TOKEN}
    ).raise_for_status()
    sim_api.post(
        "/__sim/users",
        json=[
            {"page_id": FB_PAGE, "psid": p, "first_name": n, "last_user_action": "now"}
            for p, n in (("8001", "Ana"), ("8002", "Ben"))
        ],
    ).raise_for_status()
    marketer.goto("/pages")
    marketer.fill("#connect-page input[name=access_token]", TOKEN)
    marketer.click("#connect-page button[type=submit]")
    expect(marketer.locator(".page-card", has_text="Series Shop")).to_be_visible()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    csv_path = tmp_path / "people.csv"
    csv_path.write_text(f"psid,first_name,last_inbound_at\n8001,Ana,{now}\n8002,Ben,{now}\n")
    marketer.goto("/contacts")
    marketer.set_input_files("#import-form input[type=file]", str(csv_path))
    marketer.click("#import-form button[type=submit]")
    expect(marketer.locator("#import-report")).to_have_attribute("data-state", "completed")


def test_a_bad_cron_is_refused_beside_the_schedule(marketer: Any) -> None:
    marketer.goto("/campaigns")
    marketer.click("nav >> text=Series")
    expect(marketer.locator("h1")).to_have_text("Series")
    marketer.click("#new-series")
    marketer.fill("input[name=name]", "Welcome series")
    marketer.select_option("select[name=page_id]", label="Series Shop (active)")
    marketer.check("input[name=schedule_kind][value=cron]")
    marketer.fill("input[name=cron]", "0 9 * *")
    marketer.fill("textarea[name=text]", "Welcome {{first_name|there}}!")
    marketer.click("#save")
    expect(marketer.locator("#err-schedule")).to_contain_text("has 4 fields")
    # What was typed is kept.
    expect(marketer.locator("input[name=cron]")).to_have_value("0 9 * *")
    expect(marketer.locator("textarea[name=text]")).to_have_value("Welcome {{first_name|there}}!")
    marketer.console_errors.clear()  # the refusal's own 422, as the browser logs it


def test_a_series_is_created_and_its_first_run_is_a_campaign(marketer: Any, server: Any) -> None:
    marketer.fill("input[name=cron]", "* * * * *")  # every minute: the first run comes soon
    marketer.fill("input[name=timezone]", "Asia/Manila")
    marketer.click("#save")
    marketer.wait_for_url("**/series/*")
    expect(marketer.locator("#schedule-text")).to_have_text("Cron * * * * * (Asia/Manila)")
    expect(marketer.locator("#upcoming li")).to_have_count(5)
    expect(marketer.locator("#no-runs")).to_be_visible()
    # Its first run is brought forward to now in the server's database (rather than waiting
    # for the next minute); the worker of `pagecast serve` makes it at its next sweep (every
    # 15 s).
    series_id = int(marketer.url.rstrip("/").rsplit("/", 1)[1])
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    with closing(sqlite3.connect(server.log_path.parent / "data" / "pagecast.db")) as db, db:
        db.execute("UPDATE series SET next_run_at = ? WHERE id = ?", (now, series_id))
    deadline = time.monotonic() + 60
    while not marketer.locator("#runs tbody tr").count():
        assert time.monotonic() < deadline, "no run appeared"
        marketer.wait_for_timeout(1000)
        marketer.reload()
    run = marketer.locator("#runs tbody tr").first
    run.locator("a").click()
    marketer.wait_for_url("**/campaigns/*")
    expect(marketer.locator("h1")).to_contain_text("Welcome series ·")
    assert marketer.console_errors == []


def test_pause_resume_and_end(marketer: Any) -> None:
    marketer.goto("/series")
    expect(marketer.locator("#series-list tbody tr")).to_have_count(1)
    marketer.click("#series-list a")
    marketer.click("#series-pause")
    expect(marketer.locator("h1 .badge")).to_have_text("paused")
    expect(marketer.locator("#upcoming")).to_contain_text("none (paused)")
    marketer.click("#series-resume")
    expect(marketer.locator("h1 .badge")).to_have_text("active")
    expect(marketer.locator("#upcoming li")).to_have_count(5)
    marketer.click("#series-end")
    expect(marketer.locator("h1 .badge")).to_have_text("ended")
    expect(marketer.locator("#series-resume")).to_have_count(0)
    assert marketer.console_errors == []
