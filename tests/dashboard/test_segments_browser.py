"""Segments and "New campaign to these people" in a real browser (issue 21), against a real
`pagecast serve` and the simulator: a semicolon-separated CSV (European Excel) is imported,
the contacts list is filtered, "New campaign to these people" opens the composer with that
filter as the audience, and the started campaign sends to exactly them (the simulator's
outbox); ticked contacts give a campaign to their PSIDs; a filter saved as a segment is
listed with its count, and a campaign waiting on it keeps it from being deleted.

The tests run in file order and build on each other (one server per module).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin, new_page, screenshot
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FB_PAGE, TOKEN = "9101", "EAAsegments9101"
PEOPLE = [(str(9100 + i), f"Eva{i}") for i in range(8)]
VIP = {psid for psid, _ in PEOPLE if int(psid) % 2}  # 9101, 9103, 9105, 9107


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any) -> Any:
    page = new_page(browser, server)
    yield page
    page.context.close()


def _outbox(sim_api: httpx.Client) -> list[str]:
    answer = sim_api.get("/__sim/outbox", params={"page_id": FB_PAGE})
    answer.raise_for_status()
    return [m["psid"] for m in answer.json()["messages"]]


def test_a_semicolon_csv_is_imported(
    admin: Any, server: Any, sim_api: httpx.Client, tmp_path: Any
) -> None:
    create_first_admin(admin, server)
    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": "Segment Deli", "access_token": TOKEN}
    ).raise_for_status()
    sim_api.post(
        "/__sim/users",
        json=[
            {"page_id": FB_PAGE, "psid": psid, "first_name": name, "last_user_action": "now"}
            for psid, name in PEOPLE
        ],
    ).raise_for_status()
    admin.goto("/pages")
    admin.fill("#connect-page input[name=access_token]", TOKEN)
    admin.click("#connect-page button[type=submit]")
    expect(admin.locator(".page-card", has_text="Segment Deli")).to_be_visible()
    seen = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    quoted_tags = {True: '"vip;new"', False: "regular"}  # a semicolon inside a cell is quoted
    rows = [f'{psid};"{name}, Jr";{quoted_tags[psid in VIP]};{seen}' for psid, name in PEOPLE]
    csv_path = tmp_path / "excel.csv"
    csv_path.write_text("psid;first_name;tags;last_inbound_at\n" + "\n".join(rows) + "\n")
    admin.goto("/contacts")
    admin.set_input_files("#import-form input[type=file]", str(csv_path))
    admin.click("#import-form button[type=submit]")
    report = admin.locator("#import-report")
    expect(report).to_have_attribute("data-state", "completed")
    expect(report).to_contain_text(
        f"{len(PEOPLE)} rows read: {len(PEOPLE)} created, 0 updated, 0 refused"
    )


def test_new_campaign_to_the_filtered_people_sends_to_exactly_them(
    admin: Any, sim_api: httpx.Client
) -> None:
    admin.goto("/contacts")
    admin.fill("#contact-filters input[name=tags_any]", "vip")
    admin.click("#contact-filters button[type=submit]")
    expect(admin.locator("input[name=contact_id]")).to_have_count(len(VIP))
    admin.click("#campaign-to-filter")
    admin.wait_for_url("**/campaigns/new?*")
    expect(admin.locator("input[name=audience_type][value=filter]")).to_be_checked()
    expect(admin.locator("#audience-filter")).to_contain_text("tags_any: vip")
    expect(admin.locator("#eligible-count")).to_have_text(str(len(VIP)))
    admin.fill("input[name=name]", "VIP pickles")
    admin.fill("#text", "Pickles for you")
    screenshot(admin, "composer-from-contacts")
    admin.click("#save")
    admin.wait_for_url("**/campaigns/*")
    expect(admin.locator("#review-rules")).to_contain_text("matching a filter")
    admin.click("button:has-text('Start sending')")
    expect(admin.locator("#status-badge .badge")).to_have_text("completed", timeout=60_000)
    assert sorted(_outbox(sim_api)) == sorted(VIP)


def test_new_campaign_to_ticked_people_uses_their_psids(admin: Any) -> None:
    admin.goto("/contacts")
    for psid in ("9100", "9102"):
        admin.locator("tr", has_text=psid).locator("input[name=contact_id]").check()
    admin.click("#campaign-to-selected")
    admin.wait_for_url("**/campaigns/new?*")
    expect(admin.locator("input[name=audience_type][value=contacts]")).to_be_checked()
    expect(admin.locator("textarea[name=psids]")).to_have_value("9100\n9102")
    expect(admin.locator("#eligible-count")).to_have_text("2")


def test_a_filter_saved_as_a_segment_is_listed_and_guarded(admin: Any) -> None:
    admin.goto("/contacts?tags_any=regular")
    admin.fill("#save-segment input[name=name]", "Regulars")
    admin.click("#save-segment button[type=submit]")
    admin.wait_for_url("**/segments?page_id=*")
    row = admin.locator("#segments tr", has_text="Regulars")
    expect(row.locator("td.num")).to_have_text(str(len(PEOPLE) - len(VIP)))
    screenshot(admin, "segments")
    row.locator("a.segment-campaign").click()
    admin.wait_for_url("**/campaigns/new?*")
    expect(admin.locator("input[name=audience_type][value=segment]")).to_be_checked()
    expect(admin.locator("#eligible-count")).to_have_text(str(len(PEOPLE) - len(VIP)))
    admin.fill("input[name=name]", "Regular rye")
    admin.fill("#text", "Rye today")
    admin.click("#save")
    admin.wait_for_url("**/campaigns/*")
    admin.goto("/segments")
    admin.locator("#segments tr", has_text="Regulars").locator("button:has-text('Delete')").click()
    expect(admin.locator("body")).to_contain_text("Regular rye")  # the refusal names it
    admin.goto("/segments")
    expect(admin.locator("#segments tr", has_text="Regulars")).to_have_count(1)


def test_select_all_matching_gives_a_campaign_to_the_filter(admin: Any) -> None:
    admin.goto("/contacts?tags_any=vip")
    admin.check("#select-all-matching")
    admin.click("#campaign-to-selected")
    admin.wait_for_url("**/campaigns/new?*")
    expect(admin.locator("input[name=audience_type][value=filter]")).to_be_checked()
    expect(admin.locator("#eligible-count")).to_have_text(str(len(VIP)))
