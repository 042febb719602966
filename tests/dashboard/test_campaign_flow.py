"""A campaign manager's day in a real browser, against a real `pagecast serve` and the
simulator: first-run setup, connect a Page, import contacts, compose with a live preview,
send and watch progress over SSE, pause/resume, retry a scripted failure, a revoked token
explained and reconnected, and the queue page's worker.

The tests run in file order and build on each other (one server per module), as a person
would; each one names the step it checks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dashboard_support import (
    ADMIN_EMAIL,
    create_first_admin,
    login,
    new_page,
    screenshot,
)
from playwright.sync_api import expect

# A real server, a browser and real sends: generous limits for a loaded CI machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FB_PAGE, TOKEN = "2001", "EAAdashboardtoken2001"
PEOPLE = 60  # psids 5000..5059
BLOCKED = ("5057", "5058", "5059")  # they blocked the Page: Send answers 551
OUTSIDE = ("5055", "5056")  # last message three days ago: outside the 24-hour window
ELIGIBLE = PEOPLE - len(OUTSIDE)


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any) -> Any:
    page = new_page(browser, server)
    yield page
    page.context.close()


def test_first_run_setup_creates_the_admin_and_logs_in(admin: Any, server: Any) -> None:
    create_first_admin(admin, server)
    expect(admin.locator(".who")).to_contain_text(ADMIN_EMAIL)
    admin.click("text=Log out")
    admin.wait_for_url("**/login")
    screenshot(admin, "login")
    login(admin)
    # The link worked once.
    assert httpx.get(server.setup_url).status_code == 403


def test_connect_a_page_with_its_token(admin: Any, sim_api: httpx.Client) -> None:
    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": "Dashboard Bakery", "access_token": TOKEN}
    ).raise_for_status()
    admin.goto("/pages")
    admin.fill("#connect-page input[name=access_token]", "not-a-token")
    admin.click("#connect-page button[type=submit]")
    expect(admin.locator("#page-error")).to_contain_text("Facebook refused the access token")
    admin.fill("#connect-page input[name=access_token]", TOKEN)
    admin.click("#connect-page button[type=submit]")
    card = admin.locator(".page-card", has_text="Dashboard Bakery")
    expect(card.locator(".page-status .badge")).to_have_text("active")
    screenshot(admin, "pages")


def test_import_contacts_reports_bad_rows(admin: Any, sim_api: httpx.Client, tmp_path: Any) -> None:
    now = datetime.now(UTC)
    people = [
        {
            "page_id": FB_PAGE,
            "psid": str(5000 + i),
            "first_name": f"Ann{i}",
            "last_name": "Lee",
            "last_user_action": "now",
        }
        for i in range(PEOPLE)
    ]
    sim_api.post("/__sim/users", json=people).raise_for_status()
    for psid in BLOCKED:
        sim_api.post(
            "/__sim/users/status", json={"page_id": FB_PAGE, "psid": psid, "status": "blocked"}
        ).raise_for_status()
    lines = ["psid,first_name,last_name,tags,last_inbound_at"]
    for person in people:
        seen = now - timedelta(days=3) if person["psid"] in OUTSIDE else now
        tags = "vip" if int(person["psid"]) % 2 else "regular"
        lines.append(
            f"{person['psid']},{person['first_name']},Lee,{tags},{seen.isoformat(timespec='seconds')}"
        )
    lines.append("not-a-psid,Bad,Row,,")
    csv_path = tmp_path / "contacts.csv"
    csv_path.write_text("\n".join(lines) + "\n")

    admin.goto("/contacts")
    admin.set_input_files("#import-form input[type=file]", str(csv_path))
    admin.click("#import-form button[type=submit]")
    # The answer is the running import's card; it polls itself until the import has ended.
    report = admin.locator("#import-report")
    expect(report).to_have_attribute("data-state", "running")  # shown for a second at least
    expect(report).to_have_attribute("data-state", "completed")
    expect(report).to_contain_text(
        f"{PEOPLE + 1} rows read: {PEOPLE} created, 0 updated, 1 refused"
    )
    expect(report.locator("progress")).to_have_attribute("value", "100")
    expect(report.locator("td").first).to_have_text(str(PEOPLE + 2))  # spreadsheet row number
    expect(admin.locator("#import-state")).to_have_text("Uploaded; importing in the background.")
    assert admin.locator("#import-progress").get_attribute("hidden") is None  # upload progress
    screenshot(admin, "contact-import")
    admin.goto("/contacts")
    expect(admin.locator("ul.imports li").first).to_contain_text("completed")
    admin.goto("/contacts?tag=vip")
    expect(admin.locator("input[name=contact_id]")).to_have_count(PEOPLE // 2)
    screenshot(admin, "contacts")


def compose(page: Any, name: str, *, rate: str = "10", text: str = "Fresh bread today, ") -> None:
    page.goto("/campaigns/new")
    page.fill("input[name=name]", name)
    page.select_option("select[name=page_id]", label="Dashboard Bakery (active)")
    page.fill("#text", text)
    page.click("button.chip >> nth=0")  # {{first_name|there}}
    page.fill("input[name=send_rate]", rate)


def test_compose_shows_eligible_count_and_preview(admin: Any) -> None:
    compose(admin, "Monday bread")
    admin.fill("input[name=button0_title]", "Order")
    admin.fill("input[name=button0_target]", "https://example.com/order")
    expect(admin.locator("#eligible-count")).to_have_text(str(ELIGIBLE))
    expect(admin.locator("[data-excluded=outside_window]")).to_have_text(str(len(OUTSIDE)))
    expect(admin.locator("#preview-text")).to_have_text("Fresh bread today, Ann0")
    expect(admin.locator(".bubble-button")).to_have_text("Order")
    # Audience by tag: the count follows the form.
    admin.check("input[name=audience_type][value=tags]")
    admin.fill("input[name=include]", "vip")
    expect(admin.locator("#eligible-count")).to_have_text(str(PEOPLE // 2 - 1))  # 5055 is vip
    admin.check("input[name=audience_type][value=all]")
    expect(admin.locator("#eligible-count")).to_have_text(str(ELIGIBLE))
    screenshot(admin, "composer")
    # A field error is shown next to its field, and nothing is saved.
    admin.select_option("select[name=messaging_type]", "MESSAGE_TAG")
    admin.click("#save")
    expect(admin.locator("#err-tag")).to_contain_text("needs a tag")
    admin.select_option("select[name=messaging_type]", "UPDATE")
    admin.click("#save")
    admin.wait_for_url("**/campaigns/1")
    expect(admin.locator("#status-badge .badge")).to_have_text("draft")


def test_start_and_watch_progress_reach_100_percent_over_sse(admin: Any) -> None:
    admin.goto("/campaigns/1")
    admin.click("button:has-text('Start sending')")
    admin.wait_for_url("**/campaigns/1")
    admin.evaluate("window.__sameDocument = true")
    expect(admin.locator("#live-state")).to_contain_text("server-sent events")
    expect(admin.locator("#status-badge .badge")).to_have_text("sending")
    expect(admin.locator("[data-field=percent]")).to_have_text("100", timeout=60_000)
    assert admin.evaluate("window.__sameDocument") is True  # no reload happened
    expect(admin.locator("#status-badge .badge")).to_have_text("completed", timeout=30_000)
    expect(admin.locator("[data-count=failed]")).to_have_text(str(len(BLOCKED)))
    errors = admin.locator("#errors")
    expect(errors).to_contain_text("551")
    expect(errors).to_contain_text("cannot receive messages")
    expect(admin.locator("#deliveries .meta")).to_contain_text(
        f"{PEOPLE} deliveries"
    )  # skipped ones too
    admin.fill("#campaign form.filters input[name=q]", "5001")
    admin.click("#campaign form.filters button[type=submit]")
    expect(admin.locator("#deliveries tbody tr")).to_have_count(1)
    assert "q=5001" in (admin.locator("#csv-link").get_attribute("href") or "")
    screenshot(admin, "campaign")


def test_pause_and_resume_and_polling_when_sse_is_unavailable(
    admin: Any, browser: Any, server: Any
) -> None:
    compose(admin, "Tuesday buns", rate="8")
    admin.click("#save")
    admin.wait_for_url("**/campaigns/2")
    admin.click("button:has-text('Start sending')")
    admin.wait_for_url("**/campaigns/2")
    admin.click("button:has-text('Pause')")
    expect(admin.locator("#status-badge .badge")).to_have_text("paused")
    expect(admin.locator("[data-count=sending]")).to_have_text("0", timeout=30_000)
    pending = int(admin.locator("[data-count=pending]").inner_text())
    assert pending > 0
    # A second browser without EventSource follows the same campaign by polling.
    watcher = new_page(browser, server)
    watcher.add_init_script("delete window.EventSource")
    login(watcher)
    watcher.goto("/campaigns/2")
    expect(watcher.locator("#live-state")).to_contain_text("polling every 3 s")
    admin.click("button:has-text('Resume')")
    expect(admin.locator("[data-field=percent]")).to_have_text("100", timeout=60_000)
    expect(watcher.locator("[data-field=percent]")).to_have_text("100", timeout=30_000)
    watcher.context.close()
    expect(admin.locator("#status-badge .badge")).to_have_text("completed", timeout=30_000)
    trail = admin.locator(".audit")
    expect(trail).to_contain_text("campaign.paused")
    expect(trail).to_contain_text("campaign.resumed")


def test_retry_failed_after_a_scripted_failure(admin: Any, sim_api: httpx.Client) -> None:
    sim_api.post(
        "/__sim/script",
        # A temporary error on each of the 5 attempts (PAGECAST_MAX_ATTEMPTS' default): the
        # retries run out, and a retry can cure it (issue 21: a refused message cannot).
        json={
            "match": {"psid": "5003"},
            "responses": [{"code": 1, "http": 500, "times": 5}],
        },
    ).raise_for_status()
    compose(admin, "Wednesday rolls", rate="40")
    admin.click("#save")
    admin.wait_for_url("**/campaigns/3")
    admin.click("button:has-text('Start sending')")
    expect(admin.locator("#status-badge .badge")).to_have_text("completed", timeout=60_000)
    expect(admin.locator("[data-count=failed]")).to_have_text("1")
    expect(admin.locator("#errors")).to_contain_text("A temporary Facebook error; retries ran out")
    admin.click("button:has-text('Retry 1 failed')")
    expect(admin.locator("[data-count=failed]")).to_have_text("0", timeout=60_000)
    expect(admin.locator("#status-badge .badge")).to_have_text("completed", timeout=30_000)


def test_revoked_token_is_explained_and_reconnecting_fixes_it(
    admin: Any, sim_api: httpx.Client
) -> None:
    sim_api.post("/__sim/tokens/revoke", json={"access_token": TOKEN, "subcode": 460})
    compose(admin, "Thursday tarts", rate="40")
    admin.click("#save")
    admin.wait_for_url("**/campaigns/4")
    admin.click("button:has-text('Start sending')")
    expect(admin.locator("#status-badge .badge")).to_have_text("paused", timeout=60_000)
    problem = admin.locator("#page-problem")
    expect(problem).to_contain_text("Page token expired or revoked")
    expect(problem).to_contain_text("Reconnect the Page")
    screenshot(admin, "revoked-token")
    fresh = TOKEN + "b"
    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": "Dashboard Bakery", "access_token": fresh}
    ).raise_for_status()
    admin.click("#page-problem a")
    card = admin.locator(".page-card", has_text="Dashboard Bakery")
    expect(card.locator(".page-status .badge")).to_have_text("token_invalid")
    card.locator("input[name=access_token]").fill(fresh)
    card.locator("button[type=submit]").click()
    expect(card.locator(".page-status .badge")).to_have_text("active")
    admin.goto("/campaigns/4")
    admin.click("button:has-text('Resume')")
    expect(admin.locator("#status-badge .badge")).to_have_text("completed", timeout=60_000)


def test_queue_page_shows_a_worker_and_the_list_shows_every_campaign(admin: Any) -> None:
    admin.goto("/queue")
    expect(admin.locator("#workers tr.worker")).to_have_count(1)
    # Both queues are counted: the sending jobs and the webhook events.
    expect(admin.locator("#queue-sending [data-queue=waiting]")).to_be_visible()
    expect(admin.locator("#queue-webhooks [data-webhook-queue=waiting]")).to_be_visible()
    screenshot(admin, "queue")
    admin.goto("/campaigns")
    expect(admin.locator("table.list tbody tr")).to_have_count(4)
    admin.select_option("select[name=status]", "completed")
    admin.click("form.filters button[type=submit]")
    expect(admin.locator("table.list tbody tr")).to_have_count(4)
    admin.fill("input[name=q]", "tues")
    admin.click("form.filters button[type=submit]")
    expect(admin.locator("table.list tbody tr")).to_have_count(1)
    admin.goto("/campaigns")
    screenshot(admin, "campaigns")


def test_sync_contacts_from_facebook_with_progress(admin: Any, sim_api: httpx.Client) -> None:
    # Last: the sync brings every simulated person's latest message time in.
    sim_api.post(
        "/__sim/users",
        json=[
            {
                "page_id": FB_PAGE,
                "psid": "5999",
                "first_name": "Newcomer",
                "last_user_action": "now",
            }
        ],
    ).raise_for_status()
    admin.goto("/contacts")
    admin.click("button:has-text('Sync from Facebook')")
    status = admin.locator("#sync-status .badge")
    expect(status).to_have_text("completed", timeout=60_000)
    expect(admin.locator("#sync-status")).to_contain_text("1 contacts added")
    admin.goto("/contacts?q=Newcomer")
    expect(admin.locator("input[name=contact_id]")).to_have_count(1)
