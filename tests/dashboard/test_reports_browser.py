"""Issue 21 in a real browser: a campaign paused mid-send keeps every number live (the
outcome legend and the Retry count after the pause), Retry is offered only for failures a
retry can cure, the chart has labelled axes, and the campaign list shows its columns and
filters, archives a finished campaign and deletes a draft.

The tests run in file order and build on each other (one server per module)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin, new_page, screenshot
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# A temporary error fails at once (no retry left), so it fails while the campaign is paused.
SERVER_ENV = {"PAGECAST_MAX_ATTEMPTS": "1"}

FB_PAGE, TOKEN = "2101", "EAAreportstoken2101"
PEOPLE = 12  # psids 6000..6011, sent in this order
BLOCKED = ("6000", "6001")  # they blocked the Page: 551, which no retry cures
TRANSIENT = "6002"  # a temporary error (no retry left): a retry can cure it


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any) -> Any:
    page = new_page(browser, server)
    yield page
    page.context.close()


def test_setup_a_page_with_people(
    admin: Any, server: Any, sim_api: httpx.Client, tmp_path: Any
) -> None:
    create_first_admin(admin, server)
    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": "Report Bakery", "access_token": TOKEN}
    ).raise_for_status()
    admin.goto("/pages")
    admin.fill("#connect-page input[name=access_token]", TOKEN)
    admin.click("#connect-page button[type=submit]")
    expect(admin.locator(".page-card", has_text="Report Bakery")).to_be_visible()
    people = [
        {
            "page_id": FB_PAGE,
            "psid": str(6000 + i),
            "first_name": f"Bo{i}",
            "last_user_action": "now",
        }
        for i in range(PEOPLE)
    ]
    sim_api.post("/__sim/users", json=people).raise_for_status()
    for psid in BLOCKED:
        sim_api.post(
            "/__sim/users/status", json={"page_id": FB_PAGE, "psid": psid, "status": "blocked"}
        ).raise_for_status()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    lines = ["psid,first_name,last_inbound_at"] + [
        f"{p['psid']},{p['first_name']},{now}" for p in people
    ]
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    admin.goto("/contacts")
    admin.set_input_files("#import-form input[type=file]", str(csv_path))
    admin.click("#import-form button[type=submit]")
    expect(admin.locator("#import-report")).to_have_attribute("data-state", "completed")


def compose(page: Any, name: str, rate: str = "2") -> None:
    page.goto("/campaigns/new")
    page.fill("input[name=name]", name)
    page.select_option("select[name=page_id]", label="Report Bakery (active)")
    page.fill("#text", "Warm rolls today")
    page.fill("input[name=send_rate]", rate)
    page.click("#save")
    page.wait_for_url("**/campaigns/*")


def on_the_wire(sim_api: httpx.Client, psid: str, timeout: float = 30.0) -> None:
    """Wait until the simulator has received a send to `psid` (recorded on arrival, before
    its latency)."""
    deadline = time.monotonic() + timeout
    while True:
        calls = sim_api.get("/__sim/calls", params={"page_id": FB_PAGE}).json()["calls"]
        if any(c["psid"] == psid and c["path"].endswith("/messages") for c in calls):
            return
        assert time.monotonic() < deadline, f"no send to {psid} within {timeout} s"
        time.sleep(0.05)


def test_paused_mid_send_the_legend_stays_live(admin: Any, sim_api: httpx.Client) -> None:
    # Every answer takes 4 s: the first sends (to people who blocked the Page) are on the
    # wire when Pause is clicked, and answer after the page has shown the pause.
    sim_api.post("/__sim/latency", json={"ms": "4000"}).raise_for_status()
    compose(admin, "Paused rolls", rate="0.5")
    admin.click("button:has-text('Start sending')")
    expect(admin.locator("#status-badge .badge")).to_have_text("sending")
    expect(admin.locator("#live-state")).to_contain_text("server-sent events")
    on_the_wire(sim_api, BLOCKED[0])
    admin.click("button:has-text('Pause')")
    expect(admin.locator("#status-badge .badge")).to_have_text("paused")
    admin.evaluate("window.__sameDocument = true")
    legend = admin.locator("#outcome-legend [data-legend=failed]")
    expect(legend).to_have_text("0")  # nothing had answered when the page showed the pause
    stats = admin.locator(".progress-card [data-count=failed]")
    expect(stats).not_to_have_text("0", timeout=30_000)
    expect(admin.locator(".progress-card [data-count=sending]")).to_have_text("0", timeout=30_000)
    failed = stats.inner_text()
    expect(legend).to_have_text(failed)  # the legend follows, without a reload
    # They blocked the Page: no retry is offered for them.
    expect(admin.locator("button[data-action=retry-failed]")).to_have_count(0)
    assert admin.evaluate("window.__sameDocument") is True
    screenshot(admin, "campaign-paused-live")
    sim_api.post("/__sim/latency", json={"ms": "0"}).raise_for_status()


def test_retry_count_appears_live_for_curable_failures_only_and_the_chart_has_axes(
    admin: Any, sim_api: httpx.Client
) -> None:
    sim_api.post(
        "/__sim/script",
        json={"match": {"psid": TRANSIENT}, "responses": [{"code": 1, "http": 500, "times": 1}]},
    ).raise_for_status()
    admin.click("button:has-text('Resume')")
    admin.evaluate("window.__sameDocument = true")
    # The temporary error brings the Retry button while the campaign sends on.
    expect(admin.locator("button[data-action=retry-failed]")).to_have_text(
        "Retry 1 failed", timeout=30_000
    )
    expect(admin.locator("#status-badge .badge")).to_have_text("completed", timeout=60_000)
    assert admin.evaluate("window.__sameDocument") is True
    # Three failed; only the temporary error can be retried.
    expect(admin.locator(".progress-card [data-count=failed]")).to_have_text("3")
    expect(admin.locator("#outcome-legend [data-legend=failed]")).to_have_text("3")
    expect(admin.locator("button[data-action=retry-failed]")).to_have_text("Retry 1 failed")
    expect(admin.locator("#retry-rule")).to_contain_text("1 of the 3 failed can be sent again")
    chart = admin.locator("#over-time-chart")
    expect(chart.locator(".x-title")).to_have_text("Time (UTC)")
    expect(chart.locator(".y-title")).to_have_text("Messages")
    expect(chart.locator(".x-tick")).to_have_count(3)
    assert chart.locator(".y-tick").count() >= 2
    expect(chart.locator(".y-tick").first).to_have_text("0")
    assert chart.locator("[data-series=sent] circle").count() == 30
    screenshot(admin, "campaign-report")


def test_the_list_shows_columns_and_filters(admin: Any) -> None:
    compose(admin, "Draft scones")
    admin.goto("/campaigns")
    headers = admin.locator("#campaign-list thead th").all_inner_texts()
    for name in ("Page", "Created", "Started", "Finished", "Sent", "Delivered", "Read", "Failed"):
        assert name in headers, headers
    done = admin.locator("#campaign-list tr", has_text="Paused rolls")
    expect(done.locator("[data-col=sent]")).to_have_text(str(PEOPLE - 3))
    expect(done.locator("[data-col=failed]")).to_have_text("3")
    expect(done.locator("[data-col=finished] time")).to_have_count(1)
    expect(done).to_contain_text("Report Bakery")
    admin.fill("form.filters input[name=q]", "scones")
    admin.click("form.filters button[type=submit]")
    expect(admin.locator("#campaign-list tbody tr")).to_have_count(1)
    expect(admin.locator("#campaign-list tbody tr")).to_contain_text("Draft scones")
    admin.goto("/campaigns")
    admin.select_option("form.filters select[name=status]", "completed")
    admin.click("form.filters button[type=submit]")
    expect(admin.locator("#campaign-list tbody tr")).to_have_count(1)
    expect(admin.locator("#campaign-list tbody tr")).to_contain_text("Paused rolls")
    screenshot(admin, "campaign-list")


def test_archive_unarchive_and_delete_a_draft(admin: Any) -> None:
    admin.goto("/campaigns")
    row = admin.locator("#campaign-list tr", has_text="Paused rolls")
    row.locator("button[data-row-action=archive]").click()
    admin.wait_for_url("**/campaigns")
    expect(admin.locator("#campaign-list tr", has_text="Paused rolls")).to_have_count(0)
    admin.check("#show-archived")
    admin.click("form.filters button[type=submit]")
    archived = admin.locator("#campaign-list tr", has_text="Paused rolls")
    expect(archived).to_contain_text("archived")
    archived.locator("button[data-row-action=unarchive]").click()
    admin.goto("/campaigns")
    expect(admin.locator("#campaign-list tr", has_text="Paused rolls")).to_have_count(1)
    # A draft has Delete (with a confirmation); a finished campaign has none.
    expect(
        admin.locator("#campaign-list tr", has_text="Paused rolls").locator(
            "[data-row-action=delete]"
        )
    ).to_have_count(0)
    admin.locator("#campaign-list tr", has_text="Draft scones").locator(
        "button[data-row-action=delete]"
    ).click()
    admin.wait_for_url("**/campaigns")
    expect(admin.locator("#campaign-list tr", has_text="Draft scones")).to_have_count(0)
    assert any("Delete the draft" in message for _, message in admin.dialogs)
    assert any("Archive" in message for _, message in admin.dialogs)


def test_page_overview_has_the_days_on_a_chart_with_axes(admin: Any) -> None:
    admin.goto("/pages")
    admin.locator(".page-card", has_text="Report Bakery").locator("[data-overview]").click()
    admin.wait_for_url("**/pages/*/overview")
    expect(admin.locator("#overview-sent")).to_have_text(str(PEOPLE - 3))
    expect(admin.locator("#overview-failed")).to_have_text("3")
    expect(admin.locator("#overview-opt-outs")).to_have_text("0")
    expect(admin.locator("#overview-throttle")).to_have_text("not throttled")
    expect(admin.locator("#overview-token")).to_contain_text("Connected and sending.")
    chart = admin.locator("#page-days-chart")
    expect(chart.locator(".x-title")).to_have_text("Day (UTC)")
    expect(chart.locator(".y-title")).to_have_text("Messages")
    expect(chart.locator(".x-tick").last).to_have_text(datetime.now(UTC).strftime("%m-%d"))
    assert chart.locator("[data-series=sent] circle").count() == 30
    screenshot(admin, "page-overview")
