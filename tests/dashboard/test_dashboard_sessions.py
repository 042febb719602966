"""Login sessions in a real browser: the list on the users page, signing one out, an admin's
"sign out everywhere", logout (issue 17, item 6)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from dashboard_support import (
    create_first_admin,
    login,
    new_page,
    screenshot,
)
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

MANAGER_EMAIL, MANAGER_PASSWORD = "manager@example.com", "manager password"


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any) -> Any:
    """The first admin (through the setup link), who adds a manager."""
    page = new_page(browser, server)
    create_first_admin(page, server)
    page.goto("/users")
    form = page.locator("form[action='/users']")
    form.locator("input[name=email]").fill(MANAGER_EMAIL)
    form.locator("select[name=role]").select_option("manager")
    form.locator("input[name=password]").fill(MANAGER_PASSWORD)
    form.locator("button[type=submit]").click()
    expect(page.locator("table.list").first).to_contain_text(MANAGER_EMAIL)
    yield page
    page.context.close()


def _signed_out(page: Any) -> None:
    page.goto("/campaigns")
    page.wait_for_url("**/login?next=/campaigns")


def test_you_see_your_sessions_and_sign_one_out(browser: Any, server: Any, admin: Any) -> None:
    laptop, phone = new_page(browser, server), new_page(browser, server)
    login(laptop, MANAGER_EMAIL, MANAGER_PASSWORD)
    login(phone, MANAGER_EMAIL, MANAGER_PASSWORD)
    laptop.goto("/users")
    rows = laptop.locator("#own-sessions tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="this browser")).to_have_count(1)
    expect(laptop.locator("#other-sessions")).to_have_count(0)  # a manager sees only theirs
    screenshot(laptop, "sessions")
    rows.filter(has_not_text="this browser").get_by_role("button", name="Sign out").click()
    expect(rows).to_have_count(1)
    _signed_out(phone)
    laptop.goto("/campaigns")
    expect(laptop).to_have_url(f"{server.url}/campaigns")
    laptop.context.close()
    phone.context.close()


def test_an_admin_signs_a_user_out_everywhere(browser: Any, server: Any, admin: Any) -> None:
    manager = new_page(browser, server)
    login(manager, MANAGER_EMAIL, MANAGER_PASSWORD)
    admin.goto("/users")
    expect(admin.locator("#other-sessions tbody")).to_contain_text(MANAGER_EMAIL)
    admin.get_by_role("button", name=f"Sign {MANAGER_EMAIL} out everywhere").click()
    admin.wait_for_url("**/users")
    expect(admin.locator("#other-sessions tbody")).not_to_contain_text(MANAGER_EMAIL)
    _signed_out(manager)
    manager.context.close()


def test_logout_ends_the_session_not_just_the_cookie(browser: Any, server: Any) -> None:
    page = new_page(browser, server)
    login(page, MANAGER_EMAIL, MANAGER_PASSWORD)
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "pagecast_session"]
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    copied = httpx.get(f"{server.url}/api/me", cookies={"pagecast_session": cookie["value"]})
    assert copied.status_code == 401
    page.context.close()
