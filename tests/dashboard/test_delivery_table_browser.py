"""The campaign page's deliveries table (issues 20 and 21) in a real browser against a real
`pagecast serve`: Next and Previous by keyset, the status, variant and error code filters,
and "Download CSV" of the current filter."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin, new_page
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PEOPLE = 120  # deliveries of the campaign: 50 a page, so 3 pages
FAILED = [n for n in range(PEOPLE) if n % 10 == 3]  # 12, with 551 or (every third) 613


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any, simulator: Any) -> Any:
    """An admin (through the setup link) with a connected Page."""
    page = new_page(browser, server)
    create_first_admin(page, server)
    httpx.post(
        f"{simulator.url}/__sim/pages",
        json={"page_id": "4301", "name": "Listing Shop", "access_token": "EAAlisting4301"},
    ).raise_for_status()
    page.goto("/pages")
    page.fill("#connect-page input[name=access_token]", "EAAlisting4301")
    page.click("#connect-page button[type=submit]")
    expect(page.get_by_text("Listing Shop").first).to_be_visible()
    yield page
    page.context.close()


def _status(n: int) -> str:
    return "failed" if n in FAILED else ("read" if n % 2 else "delivered")


@pytest.fixture(scope="module")
def campaign_id(admin: Any, server: Any) -> int:
    """A finished campaign of PEOPLE deliveries, written into the server's database as the
    engine leaves them (its counters too)."""
    admin.goto("/campaigns")
    csrf = admin.locator("input[name=csrf_token]").first.get_attribute("value")
    page_id = admin.request.get("/api/pages").json()["items"][0]["id"]
    answer = admin.request.post(
        "/api/campaigns",
        data={"page_id": page_id, "name": "Listed", "content": {"text": "Hi"}},
        headers={"X-CSRF-Token": csrf or ""},
    )
    assert answer.status == 201, answer.text()
    campaign = int(answer.json()["id"])
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    database = Path(server.log_path).parent / "data" / "pagecast.db"
    with sqlite3.connect(database, timeout=30) as conn:
        for n in range(PEOPLE):
            contact = conn.execute(
                "INSERT INTO contacts (page_id, psid, first_name, last_name, created_at, "
                "updated_at) VALUES (?, ?, ?, 'Listed', ?, ?)",
                (page_id, f"43{n:04d}", f"P{n}", now, now),
            ).lastrowid
            failed = n in FAILED
            conn.execute(
                "INSERT INTO deliveries (campaign_id, contact_id, status, attempts, parts_sent, "
                "variant, error_code, error_kind, error_message, sent_at, updated_at) "
                "VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)",
                (
                    campaign,
                    contact,
                    _status(n),
                    0 if failed else 1,
                    "AB"[n % 2],
                    (613 if n % 3 == 0 else 551) if failed else None,
                    "recipient_unreachable" if failed else None,
                    "(#551) This person isn't available" if failed else None,
                    None if failed else now,
                    now,
                ),
            )
        counts = {s: sum(_status(n) == s for n in range(PEOPLE)) for s in ("read", "delivered")}
        conn.execute(
            "UPDATE campaigns SET status = 'completed', n_total = ?, n_read = ?, "
            "n_delivered = ?, n_failed = ? WHERE id = ?",
            (PEOPLE, counts["read"], counts["delivered"], len(FAILED), campaign),
        )
    return campaign


def _first_psid(admin: Any) -> str:
    return admin.locator("#deliveries tbody tr").first.locator("td").nth(1).inner_text()


def test_next_and_previous_page_through_every_delivery(admin: Any, campaign_id: int) -> None:
    admin.goto(f"/campaigns/{campaign_id}")
    rows = admin.locator("#deliveries tbody tr")
    expect(admin.locator("#deliveries .meta")).to_contain_text(f"{PEOPLE} deliveries")
    expect(rows).to_have_count(50)
    expect(admin.locator("#deliveries-previous")).to_have_count(0)
    assert _first_psid(admin) == "430000"
    admin.click("#deliveries-next")
    expect(rows.first.locator("td").nth(1)).to_have_text("430050")
    expect(rows).to_have_count(50)
    admin.click("#deliveries-next")
    expect(rows.first.locator("td").nth(1)).to_have_text("430100")
    expect(rows).to_have_count(PEOPLE - 100)
    expect(admin.locator("#deliveries-next")).to_have_count(0)  # the last page
    admin.click("#deliveries-previous")
    expect(rows.first.locator("td").nth(1)).to_have_text("430050")
    expect(rows.last.locator("td").nth(1)).to_have_text("430099")
    admin.click("#deliveries-previous")
    expect(rows.first.locator("td").nth(1)).to_have_text("430000")
    expect(admin.locator("#deliveries-previous")).to_have_count(0)
    assert admin.console_errors == []


def test_filters_narrow_the_table_and_the_csv_link_follows(admin: Any, campaign_id: int) -> None:
    admin.goto(f"/campaigns/{campaign_id}")
    rows = admin.locator("#deliveries tbody tr")
    expect(rows).to_have_count(50)
    form = admin.locator("#deliveries-card form.filters")
    form.locator("select[name=status]").select_option("failed")  # a change submits
    expect(rows).to_have_count(len(FAILED))
    expect(admin.locator("#deliveries .meta")).to_contain_text(f"{len(FAILED)} deliveries")
    expect(admin.locator("#csv-link")).to_have_attribute(
        "href", f"/campaigns/{campaign_id}/deliveries.csv?status=failed"
    )
    form.locator("input[name=code]").fill("613")
    form.locator("input[name=variant]").fill("B")
    form.locator("button[type=submit]").click()
    wanted = [n for n in FAILED if n % 3 == 0 and n % 2]
    expect(rows).to_have_count(len(wanted))
    for i, n in enumerate(wanted):
        expect(rows.nth(i).locator("td").nth(1)).to_have_text(f"43{n:04d}")
        expect(rows.nth(i)).to_contain_text("613")
    href = admin.locator("#csv-link").get_attribute("href") or ""
    assert "status=failed" in href and "variant=B" in href and "code=613" in href
    form.locator("input[name=code]").fill("six")
    form.locator("button[type=submit]").click()
    expect(admin.locator("#deliveries-note")).to_contain_text("'six' is not a number")
    assert admin.console_errors == []


def test_download_csv_is_the_current_filter(admin: Any, campaign_id: int) -> None:
    admin.goto(f"/campaigns/{campaign_id}")
    form = admin.locator("#deliveries-card form.filters")
    form.locator("select[name=status]").select_option("failed")
    expect(admin.locator("#deliveries tbody tr")).to_have_count(len(FAILED))
    with admin.expect_download() as download:
        admin.click("#csv-link")
    assert download.value.suggested_filename == f"campaign-{campaign_id}-deliveries.csv"
    text = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["psid"] for r in rows] == [f"43{n:04d}" for n in FAILED]
    assert {r["status"] for r in rows} == {"failed"}
    assert rows[0]["error_code"] in ("551", "613") and rows[0]["variant"] in ("A", "B")
