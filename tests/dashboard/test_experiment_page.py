"""A/B tests in the dashboard (issue 20), in a real browser against a real `pagecast serve`:
the composer's A/B section saves variants and an experiment; the campaign page shows each
variant's counts and rates with a bar, the decision's reason, and "Pick B as winner".

The page's numbers come from the deliveries: the test writes an experiment that waits for a
decision straight into the server's SQLite database (sends, reads and a decision without
waiting the hour the experiment would take)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin, new_page, screenshot
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PAGE_NAME = "AB Shop"
REASON = "B leads A by 30 points on read rate; not significant at 95 % (p = 0.21); pick a winner."


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any, simulator: Any) -> Any:
    """An admin (through the setup link) with a connected Page."""
    page = new_page(browser, server)
    create_first_admin(page, server)
    httpx.post(
        f"{simulator.url}/__sim/pages",
        json={"page_id": "4201", "name": PAGE_NAME, "access_token": "EAAabtest4201"},
    ).raise_for_status()
    page.goto("/pages")
    page.fill("#connect-page input[name=access_token]", "EAAabtest4201")
    page.click("#connect-page button[type=submit]")
    expect(page.get_by_text(PAGE_NAME).first).to_be_visible()
    yield page
    page.context.close()


def _database(server: Any) -> Path:
    return Path(server.log_path).parent / "data" / "pagecast.db"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def _waiting_for_a_decision(server: Any, campaign_id: int) -> None:
    """The campaign as an experiment whose test is over without a significant winner: 10
    people got A (2 read), 10 got B (5 read), 5 wait for the winner."""
    now = datetime.now(UTC)
    with sqlite3.connect(_database(server)) as db:
        rows = [("A", "read")] * 2 + [("A", "sent")] * 8 + [("B", "read")] * 5
        rows += [("B", "sent")] * 5 + [("*", "pending")] * 5
        for contact_id, (variant, status) in enumerate(rows, start=900_000):
            db.execute(
                "INSERT INTO deliveries (campaign_id, contact_id, status, attempts, parts_sent,"
                " sent_at, read_at, variant, updated_at) VALUES (?, ?, ?, 1, 1, ?, ?, ?, ?)",
                (
                    campaign_id,
                    contact_id,
                    status,
                    _stamp(now) if status != "pending" else None,
                    _stamp(now) if status == "read" else None,
                    variant,
                    _stamp(now),
                ),
            )
        db.execute(
            "UPDATE campaigns SET status = 'sending', started_at = ?, experiment_state ="
            " 'deciding', experiment_reason = ?, decided_at = ?, n_total = 25, n_read = 7,"
            " n_sent = 13, n_pending = 5 WHERE id = ?",
            (_stamp(now - timedelta(hours=2)), REASON, _stamp(now), campaign_id),
        )


def test_the_composer_saves_variants_and_an_experiment(admin: Any) -> None:
    admin.goto("/campaigns/new")
    admin.fill("input[name=name]", "Shipping or discount")
    admin.select_option("select[name=page_id]", label=f"{PAGE_NAME} (active)")
    admin.fill("#text", "Hi {{first_name|there}}, 10% off today")
    admin.check("#ab-on")
    admin.click("#ab-test summary")
    admin.fill("textarea[name=ab_text_B]", "Hi {{first_name|there}}, free shipping today")
    admin.fill("input[name=ab_weight_B]", "2")
    admin.fill("input[name=ab_test_percent]", "20")
    admin.fill("input[name=ab_holdout_percent]", "10")
    admin.select_option("select[name=ab_metric]", "read_rate")
    screenshot(admin, "composer-ab-test")
    admin.click("#save")
    expect(admin.locator("#experiment")).to_be_visible()
    expect(admin.locator("#experiment-status")).to_contain_text("testing")
    expect(admin.locator("#variant-results tr[data-variant=B]")).to_be_visible()
    campaign_id = int(admin.url.rstrip("/").split("/")[-1])
    saved = admin.request.get(f"/api/campaigns/{campaign_id}").json()
    assert [v["key"] for v in saved["variants"]] == ["A", "B"]
    assert saved["variants"][1] == {
        "key": "B",
        "content": {"text": "Hi {{first_name|there}}, free shipping today"},
        "weight": 2,
    }
    assert saved["experiment"]["test_percent"] == 20
    assert saved["experiment"]["holdout_percent"] == 10
    assert saved["experiment"]["decide_after_seconds"] == 3600
    # Editing the draft shows the section filled in.
    admin.goto(f"/campaigns/{campaign_id}/edit")
    expect(admin.locator("#ab-on")).to_be_checked()
    expect(admin.locator("textarea[name=ab_text_B]")).to_have_value(
        "Hi {{first_name|there}}, free shipping today"
    )


def test_a_bad_variant_is_shown_in_words_and_nothing_is_saved(admin: Any) -> None:
    admin.goto("/campaigns/new")
    admin.fill("input[name=name]", "Bad split")
    admin.select_option("select[name=page_id]", label=f"{PAGE_NAME} (active)")
    admin.fill("#text", "Hello")
    admin.check("#ab-on")
    admin.click("#ab-test summary")
    admin.fill("textarea[name=ab_text_B]", "Hi {{city}}")
    admin.click("#save")
    expect(admin.locator("body")).to_contain_text("variants[1].content.text")
    expect(admin.locator("body")).to_contain_text("{{city}}")
    names = [c["name"] for c in admin.request.get("/api/campaigns").json()["items"]]
    assert "Bad split" not in names


def test_the_campaign_page_shows_results_and_picks_a_winner(admin: Any, server: Any) -> None:
    admin.goto("/campaigns")
    csrf = admin.locator("input[name=csrf_token]").first.get_attribute("value")
    page_id = admin.request.get("/api/pages").json()["items"][0]["id"]
    created = admin.request.post(
        "/api/campaigns",
        data={
            "name": "Decide me",
            "page_id": page_id,
            "variants": [
                {"key": "A", "content": {"text": "10% off"}},
                {"key": "B", "content": {"text": "Free shipping"}},
            ],
            "experiment": {"test_percent": 80, "holdout_percent": 0},
        },
        headers={"X-CSRF-Token": csrf or ""},
    )
    assert created.status == 201, created.text()
    campaign_id = int(created.json()["id"])
    _waiting_for_a_decision(server, campaign_id)
    admin.goto(f"/campaigns/{campaign_id}")
    expect(admin.locator("#experiment-status")).to_contain_text("deciding")
    expect(admin.locator("#experiment-reason")).to_have_text(REASON)
    expect(admin.locator("#messages h2")).to_contain_text("Variants: 2")
    expect(admin.locator("#messages [data-variant=B]")).to_be_visible()
    expect(admin.locator("#messages")).to_contain_text("Free shipping")
    row_b = admin.locator("#variant-results tr[data-variant=B]")
    expect(row_b.locator("[data-cell=sent]")).to_have_text("10")
    expect(row_b.locator("[data-cell=read]")).to_have_text("5")
    expect(row_b).to_contain_text("50.0 %")
    expect(admin.locator("#variant-results [data-chart=B] [role=progressbar]")).to_have_attribute(
        "aria-valuenow", "50.0"
    )
    screenshot(admin, "campaign-ab-deciding")
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.click("button[data-winner=B]")
    expect(admin.locator("#experiment-winner")).to_contain_text("B")
    expect(admin.locator("#pick-winner")).to_have_count(0)
    body = admin.request.get(f"/api/campaigns/{campaign_id}").json()
    assert body["experiment"]["winner"] == "B"
    assert body["experiment"]["reason"] == "B picked by hand."
