"""Two-person approval (issue 22) in a real browser, against `pagecast serve` and the
simulator: the Page's approval threshold set on its settings (a bad value refused beside the
form), an admin's start held for approval (the author is told another person must approve),
a manager's nav badge, the approval panel's Reject (the comment shown to the author) and
Approve (the campaign sends), and the approve permission on the users page.

The tests run in file order and build on each other (one server per module).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin, login, new_page, screenshot
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FB_PAGE, TOKEN = "2601", "EAAapproval2601"
PEOPLE = ("8101", "8102", "8103")
CHECKER, CHECKER_PASSWORD = "checker@example.com", "checker password"


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any) -> Any:
    page = new_page(browser, server)
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def checker(browser: Any, server: Any) -> Any:
    page = new_page(browser, server)
    yield page
    page.context.close()


def card(admin: Any) -> Any:
    return admin.locator(".page-card", has_text="Approval Bakery")


def save_threshold(admin: Any, value: str) -> None:
    card(admin).locator("input[name=approval_threshold]").fill(value)
    card(admin).locator("form.row").first.locator("button[type=submit]").click()


def test_set_up_a_page_people_and_a_second_manager(
    admin: Any, server: Any, sim_api: httpx.Client, tmp_path: Any
) -> None:
    create_first_admin(admin, server)
    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": "Approval Bakery", "access_token": TOKEN}
    ).raise_for_status()
    people = [
        {"page_id": FB_PAGE, "psid": p, "first_name": f"Ana{p}", "last_user_action": "now"}
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
        "psid,first_name,last_inbound_at\n" + "".join(f"{p},Ana{p},{now}\n" for p in PEOPLE)
    )
    admin.goto("/contacts")
    admin.set_input_files("#import-form input[type=file]", str(csv_path))
    admin.click("#import-form button[type=submit]")
    expect(admin.locator("#import-report")).to_have_attribute("data-state", "completed")
    admin.goto("/users")
    form = admin.locator("form[action='/users']")
    form.locator("input[name=email]").fill(CHECKER)
    form.locator("select[name=role]").select_option("manager")
    form.locator("input[name=password]").fill(CHECKER_PASSWORD)
    form.locator("button[type=submit]").click()
    expect(admin.locator(f"input[aria-label='{CHECKER} can approve']")).to_be_checked()


def test_the_threshold_is_off_until_set_and_a_bad_value_is_refused(admin: Any) -> None:
    admin.goto("/pages")
    expect(card(admin).locator(".page-approval")).to_have_text("off")
    save_threshold(admin, "-3")
    expect(admin.locator("#page-error")).to_contain_text("approval_threshold")
    expect(card(admin).locator(".page-approval")).to_have_text("off")
    assert all("422" in line for line in admin.console_errors), admin.console_errors
    admin.console_errors.clear()
    save_threshold(admin, "2")
    expect(admin.locator("#page-error")).to_have_count(0)
    expect(card(admin).locator(".page-approval")).to_have_text("over 2 people")


def test_a_start_to_more_people_awaits_approval_and_its_author_cannot_approve(
    admin: Any,
) -> None:
    admin.goto("/campaigns/new")
    admin.fill("input[name=name]", "Bread day")
    admin.select_option("select[name=page_id]", label="Approval Bakery (active)")
    admin.fill("#text", "Bread day: fresh loaves")
    expect(admin.locator("#eligible-count")).to_have_text("3")
    admin.click("#save")
    admin.wait_for_url("**/campaigns/*")
    start = admin.locator("button[data-action=start]")
    expect(start).to_have_text("Ask approval to start sending")
    start.click()
    assert admin.dialogs[-1] == (
        "confirm",
        "Send to 3 people now: another person must approve it first. Ask now?",
    ), admin.dialogs
    expect(admin.locator("#status-badge .badge")).to_have_text("awaiting_approval")
    expect(admin.locator("#approval-request")).to_contain_text("start it now, to 3 people")
    expect(admin.locator("#approval-author")).to_contain_text("another person must approve it")
    expect(admin.locator("#approve-button")).to_have_count(0)
    expect(admin.locator("#approvals-badge")).to_have_count(0)  # nothing for them to approve
    expect(admin.locator("[data-count=total]")).to_have_text("0")
    screenshot(admin, "approval-awaiting-author")


def test_an_approver_sees_the_badge_and_rejects_with_a_comment(checker: Any, admin: Any) -> None:
    login(checker, CHECKER, CHECKER_PASSWORD)
    expect(checker.locator("#approvals-badge")).to_have_text("1 to approve")
    checker.click("#approvals-badge")
    row = checker.locator("table.list tbody tr", has_text="Bread day")
    expect(row).to_have_count(1)
    row.locator("a", has_text="Bread day").click()
    expect(checker.locator("#approve-button")).to_be_visible()
    expect(checker.locator("#review-eligible")).to_have_text("3")
    screenshot(checker, "approval-panel")
    checker.fill("#reject-comment", "Say which bakery")
    checker.click("#reject-button")
    expect(checker.locator("#status-badge .badge")).to_have_text("draft")
    expect(checker.locator("#approval-comment")).to_have_text("Say which bakery")
    expect(checker.locator("#approvals-badge")).to_have_count(0)
    admin.reload()
    expect(admin.locator("#approval-state")).to_contain_text(f"Rejected by {CHECKER}")
    expect(admin.locator("#approval-comment")).to_have_text("Say which bakery")
    screenshot(admin, "approval-rejected")


def test_asked_again_and_approved_it_sends(checker: Any, admin: Any) -> None:
    admin.click("button:has-text('Start sending')")
    expect(admin.locator("#status-badge .badge")).to_have_text("awaiting_approval")
    checker.goto("/campaigns")
    expect(checker.locator("#approvals-badge")).to_have_text("1 to approve")
    checker.goto(admin.url)
    checker.fill("#approve-comment", "Good to go")
    checker.click("#approve-button")
    expect(checker.locator("#status-badge .badge")).to_have_text("completed", timeout=60_000)
    expect(checker.locator("#approval-state")).to_contain_text(f"Approved by {CHECKER}")
    expect(checker.locator("#approval-state")).to_contain_text("Good to go")
    expect(checker.locator("[data-count=total]")).to_have_text("3")
    screenshot(checker, "approval-approved")


def test_an_admin_withdraws_the_approve_permission(admin: Any, checker: Any) -> None:
    admin.goto("/users")
    box = admin.locator(f"input[aria-label='{CHECKER} can approve']")
    box.uncheck()
    admin.locator("tr", has=box).locator("button:has-text('Save')").click()
    expect(admin.locator(f"input[aria-label='{CHECKER} can approve']")).not_to_be_checked()
    admin.goto("/campaigns/new")
    admin.fill("input[name=name]", "Rolls day")
    admin.select_option("select[name=page_id]", label="Approval Bakery (active)")
    admin.fill("#text", "Rolls day")
    admin.click("#save")
    admin.wait_for_url("**/campaigns/*")
    admin.click("button:has-text('Start sending')")
    expect(admin.locator("#status-badge .badge")).to_have_text("awaiting_approval")
    checker.goto(admin.url)
    expect(checker.locator("#approvals-badge")).to_have_count(0)
    expect(checker.locator("#approval-no-permission")).to_be_visible()
    expect(checker.locator("#approve-button")).to_have_count(0)
    assert checker.console_errors == [] and admin.console_errors == []
