"""The Contacts page at the size of a real Page (issue 21) in a real browser against a real
`pagecast serve`: filter by tags, the total, pages of 25 with First/Previous/Next, select
all matching (more than one page), a bulk tag, and Export CSV of the filter."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin, new_page
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PEOPLE = 90
VIP = [n for n in range(PEOPLE) if n % 3 == 0]  # 30: more than one page of 25


@pytest.fixture(scope="module")
def admin(
    browser: Any, server: Any, simulator: Any, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """An admin with a connected Page and PEOPLE imported contacts (every third a vip)."""
    page = new_page(browser, server)
    create_first_admin(page, server)
    httpx.post(
        f"{simulator.url}/__sim/pages",
        json={"page_id": "4401", "name": "Audience Shop", "access_token": "EAAaudience4401"},
    ).raise_for_status()
    page.goto("/pages")
    page.fill("#connect-page input[name=access_token]", "EAAaudience4401")
    page.click("#connect-page button[type=submit]")
    expect(page.get_by_text("Audience Shop").first).to_be_visible()
    recent = (datetime.now(UTC) - timedelta(hours=2)).isoformat(timespec="seconds")
    rows = "".join(
        f"44{n:04d},P{n},Shopper,{'vip' if n in VIP else 'regular'},{recent}\n"
        for n in range(PEOPLE)
    )
    path = tmp_path_factory.mktemp("contacts") / "people.csv"
    path.write_text("psid,first_name,last_name,tags,last_inbound_at\n" + rows)
    page.goto("/contacts")
    page.select_option("#import-form select[name=page_id]", label="Audience Shop")
    page.set_input_files("#import-form input[type=file]", str(path))
    page.click("#import-form button[type=submit]")
    expect(page.locator("#import-report")).to_have_attribute("data-state", "completed")
    yield page
    page.context.close()


def _page_id(admin: Any) -> int:
    pages = admin.request.get("/api/pages").json()["items"]
    return int(next(p["id"] for p in pages if p["name"] == "Audience Shop"))


def test_filter_page_select_all_matching_tag_and_export(admin: Any) -> None:
    page_id = _page_id(admin)
    admin.goto(f"/contacts?page_id={page_id}")
    expect(admin.locator("#contact-total [data-total]")).to_have_text(str(PEOPLE))
    expect(admin.locator("[data-tag-count=vip]")).to_contain_text(str(len(VIP)))
    form = admin.locator("#contact-filters")
    form.locator("input[name=tags_any]").fill("vip")
    form.locator("select[name=limit]").select_option("25")
    form.locator("button[type=submit]").click()
    rows = admin.locator("#bulk-tags tbody tr")
    expect(admin.locator("#contact-total [data-total]")).to_have_text(str(len(VIP)))
    expect(rows).to_have_count(25)
    expect(rows.first.locator("[data-psid]")).to_have_text("440000")
    admin.click("#page-next")
    expect(rows).to_have_count(len(VIP) - 25)
    expect(rows.first.locator("[data-psid]")).to_have_text(f"44{VIP[25]:04d}")
    admin.click("#page-prev")
    expect(rows).to_have_count(25)
    expect(rows.first.locator("[data-psid]")).to_have_text("440000")
    expect(admin.locator("#page-first")).to_have_count(0)  # already the first page

    # Every vip, not only the 25 shown: select all matching, then tag them.
    admin.check("#select-all-matching")
    expect(rows.first.locator("input[name=contact_id]")).to_be_checked()
    admin.select_option("#bulk-action", "tag")
    admin.fill("#bulk-tag", "spring")
    admin.click("#bulk-apply")
    expect(admin.locator("#bulk-result")).to_have_text(f"{len(VIP)} contacts changed.")
    expect(admin.locator("#contact-total [data-total]")).to_have_text(str(len(VIP)))
    form.locator("input[name=tags_any]").fill("")
    form.locator("input[name=tags_all]").fill("spring")
    form.locator("button[type=submit]").click()
    expect(admin.locator("#contact-total [data-total]")).to_have_text(str(len(VIP)))

    with admin.expect_download() as download:
        admin.click("#export-csv")
    assert download.value.suggested_filename == f"page-{page_id}-contacts.csv"
    text = Path(download.value.path()).read_text()
    exported = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["psid"] for r in exported] == [f"44{n:04d}" for n in VIP]
    assert {r["tags"] for r in exported} == {"spring;vip"}
    assert admin.console_errors == []


def test_a_bad_filter_value_is_explained(admin: Any) -> None:
    admin.goto(f"/contacts?page_id={_page_id(admin)}&timezone=Mars/Base")
    expect(admin.locator("body")).to_contain_text("timezone")
