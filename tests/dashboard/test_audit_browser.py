"""The Audit page in a real browser, against `pagecast serve` (issue 22): what people did in
the dashboard is listed with time (the viewer's zone), actor, action, object (a link while it
exists) and change; the filter form makes a shareable URL; "Older" pages by cursor; "Download
CSV" exports the filtered rows; a manager has no Audit link and is refused the page.

The tests run in file order and build on each other (one server per module).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_support import ADMIN_EMAIL, create_first_admin, login, new_page, screenshot
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

MANAGER, MANAGER_PASSWORD = "mia@example.com", "mia's long password"


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any) -> Any:
    page = new_page(browser, server)
    yield page
    page.context.close()


def _row(page: Any, action: str) -> Any:
    return page.locator(
        "#audit tbody tr", has=page.locator(f"code.audit-action:text-is('{action}')")
    )


def test_what_people_do_is_listed_with_actor_object_and_change(
    admin: Any, browser: Any, server: Any
) -> None:
    create_first_admin(admin, server)
    admin.goto("/users")
    admin.fill("#timezone-input", "Asia/Manila")
    admin.click("#timezone-form button[type=submit]")
    expect(admin.locator("#current-zone")).to_contain_text("Manila")
    admin.fill("form[action='/users'] input[name=email]", MANAGER)
    admin.fill("form[action='/users'] input[name=password]", MANAGER_PASSWORD)
    admin.click("form[action='/users'] button[type=submit]")
    expect(admin.locator(f"text={MANAGER}").first).to_be_visible()
    # Someone mistypes the manager's password in another browser.
    other = new_page(browser, server)
    other.goto("/login")
    other.fill("input[name=email]", MANAGER)
    other.fill("input[name=password]", "not the password")
    other.click("button[type=submit]")
    expect(other.locator("body")).to_contain_text("Wrong email or password")
    other.context.close()

    admin.click("nav[aria-label=Main] a:text-is('Audit')")
    admin.wait_for_url("**/audit")
    expect(_row(admin, "user.created").first).to_be_visible()
    failed = _row(admin, "auth.login_failed")
    expect(failed.locator(".audit-actor")).to_have_text(MANAGER)
    expect(failed.locator(".audit-change")).to_contain_text("reason: wrong password")
    expect(failed.locator(".audit-change")).to_contain_text("ip: 127.0.0.1")
    zone = _row(admin, "user.updated").locator(".audit-change")
    expect(zone).to_contain_text('timezone: "UTC" → "Asia/Manila"')
    # The time is in the viewer's zone (UTC on hover).
    expect(failed.locator("time")).to_contain_text("UTC+08:00")
    created = _row(admin, "user.created").filter(has_text=MANAGER)
    expect(created.locator(".audit-object a")).to_have_attribute("href", "/users")
    assert "not the password" not in admin.content()
    screenshot(admin, "audit")


def test_the_filter_form_is_a_shareable_url_and_csv_exports_its_rows(
    admin: Any, server: Any
) -> None:
    admin.goto("/audit")
    admin.fill("#audit-filters input[name=action]", "user.")
    admin.fill("#audit-filters input[name=actor]", ADMIN_EMAIL)
    admin.click("#audit-filters button[type=submit]")
    admin.wait_for_url("**/audit?*action=user.*")
    assert "actor=admin%40example.com" in admin.url
    actions = admin.locator("#audit code.audit-action").all_inner_texts()
    assert actions and all(a.startswith("user.") for a in actions), actions
    shared = admin.url
    admin.goto("/audit")
    admin.goto(shared)  # the same view from the link
    assert admin.locator("#audit code.audit-action").all_inner_texts() == actions
    with admin.expect_download() as download:
        admin.click("#audit-csv")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:5] == ["id", "at", "actor", "actor_id", "action"]
    assert [r[4] for r in rows[1:]] == actions
    assert {r[2] for r in rows[1:]} == {ADMIN_EMAIL}


def test_older_pages_by_cursor_and_a_deleted_object_has_no_link(admin: Any, server: Any) -> None:
    admin.goto("/audit?limit=2")
    first = admin.locator("#audit tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.auditId)"
    )
    seen = list(first)
    while admin.locator("#audit-older").count():
        admin.click("#audit-older")
        seen += admin.locator("#audit tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.auditId)"
        )
    ids = [int(i) for i in seen]
    assert len(ids) > 4 and ids == sorted(set(ids), reverse=True)  # every entry once
    expect(admin.locator("#audit-newest")).to_be_visible()

    # Delete the manager through the API (a token made in the dashboard).
    admin.goto("/users")
    admin.fill("form[action='/tokens'] input[name=name]", "script")
    admin.click("form[action='/tokens'] button[type=submit]")
    token = admin.locator("#new-token").inner_text()
    auth = {"Authorization": f"Bearer {token}"}
    people = httpx.get(f"{server.url}/api/users", headers=auth).json()["items"]
    mia = next(u["id"] for u in people if u["email"] == MANAGER)
    assert httpx.delete(f"{server.url}/api/users/{mia}", headers=auth).status_code == 204
    admin.goto(f"/audit?object_type=user&object_id={mia}")
    created = _row(admin, "user.created")
    expect(created.locator(".audit-object")).to_contain_text("(deleted)")
    assert created.locator(".audit-object a").count() == 0
    expect(_row(admin, "user.deleted").locator(".audit-change")).to_contain_text(MANAGER)
    assert token not in admin.content()


def test_a_bad_filter_says_what_is_wrong_and_managers_have_no_audit(
    admin: Any, browser: Any, server: Any
) -> None:
    admin.goto("/audit?action=no%20spaces")
    expect(admin.locator("#audit-error")).to_contain_text("action: 'no spaces' is not an action")
    admin.goto("/users")
    admin.fill("form[action='/users'] input[name=email]", "max@example.com")
    admin.fill("form[action='/users'] input[name=password]", MANAGER_PASSWORD)
    admin.click("form[action='/users'] button[type=submit]")
    manager = new_page(browser, server)
    login(manager, "max@example.com", MANAGER_PASSWORD)
    assert manager.locator("nav[aria-label=Main] a:text-is('Audit')").count() == 0
    answer = manager.goto("/audit")
    assert answer is not None and answer.status == 403
    manager.context.close()
