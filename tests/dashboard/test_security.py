"""The dashboard's security in a real browser: escaping, roles enforced by the server, CSRF,
session cookie flags, login rate limiting, a one-time setup link."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin, login, new_page
from playwright.sync_api import expect

# A real server, a browser and real sends: generous limits for a loaded CI machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

XSS = "<script>alert(1)</script>"
VIEWER_EMAIL, VIEWER_PASSWORD = "viewer@example.com", "viewer password"


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any, simulator: Any) -> Any:
    """An admin (through the setup link) with a connected Page and a draft named like a script."""
    page = new_page(browser, server)
    create_first_admin(page, server)
    httpx.post(
        f"{simulator.url}/__sim/pages",
        json={"page_id": "3001", "name": "Secure Shop", "access_token": "EAAsecure3001"},
    ).raise_for_status()
    page.goto("/pages")
    page.fill("#connect-page input[name=access_token]", "EAAsecure3001")
    page.click("#connect-page button[type=submit]")
    page.goto("/campaigns/new")
    page.fill("input[name=name]", XSS)
    page.select_option("select[name=page_id]", label="Secure Shop (active)")
    page.fill("#text", "Hello")
    page.click("#save")
    page.wait_for_url("**/campaigns/1")
    page.goto("/users")
    form = page.locator("form[action='/users']")
    form.locator("input[name=email]").fill(VIEWER_EMAIL)
    form.locator("select[name=role]").select_option("viewer")
    form.locator("input[name=password]").fill(VIEWER_PASSWORD)
    form.locator("button[type=submit]").click()
    expect(page.locator("table.list").first).to_contain_text(VIEWER_EMAIL)
    yield page
    page.context.close()


def test_a_campaign_named_like_a_script_renders_as_text(admin: Any) -> None:
    for url in ("/campaigns", "/campaigns/1"):
        admin.goto(url)
        expect(admin.get_by_text(XSS).first).to_be_visible()
    assert admin.locator("h1").inner_text() == XSS
    assert [d for d in admin.dialogs if d[0] == "alert"] == []


def test_viewer_sees_no_send_button_and_the_server_refuses_anyway(
    browser: Any, server: Any, admin: Any
) -> None:
    viewer = new_page(browser, server)
    login(viewer, VIEWER_EMAIL, VIEWER_PASSWORD)
    expect(viewer.locator("a:has-text('New campaign')")).to_have_count(0)
    viewer.goto("/campaigns/1")
    expect(viewer.locator("#status-badge .badge")).to_have_text("draft")
    expect(viewer.locator(".actions button")).to_have_count(0)
    csrf = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = viewer.request.post("/campaigns/1/start", form={"csrf_token": csrf or ""})
    assert answer.status == 403
    assert "campaigns:send" in answer.text()
    api = viewer.request.post("/api/campaigns/1/start", headers={"X-CSRF-Token": csrf or ""})
    assert api.status == 403
    viewer.goto("/queue")
    expect(viewer.locator("h1")).to_have_text("Not allowed")
    viewer.context.close()
    admin.goto("/campaigns/1")
    expect(admin.locator("#status-badge .badge")).to_have_text("draft")


def test_state_changing_requests_need_the_csrf_token(admin: Any) -> None:
    admin.goto("/campaigns/1")
    assert admin.request.post("/campaigns/1/start", form={}).status == 403
    assert admin.request.post("/campaigns/1/start", form={"csrf_token": "forged"}).status == 403
    assert admin.request.post("/campaigns/1/duplicate", headers={"X-CSRF-Token": "x"}).status == 403
    admin.reload()
    expect(admin.locator("#status-badge .badge")).to_have_text("draft")


def test_session_cookie_is_httponly_and_samesite_lax(admin: Any) -> None:
    (cookie,) = [c for c in admin.context.cookies() if c["name"] == "pagecast_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert admin.evaluate("document.cookie").find("pagecast_session") == -1


def test_login_attempts_are_rate_limited(browser: Any, server: Any, admin: Any) -> None:
    page = new_page(browser, server)
    for _ in range(5):
        page.goto("/login")
        page.fill("input[name=email]", VIEWER_EMAIL)
        page.fill("input[name=password]", "wrong password")
        page.click("button[type=submit]")
        expect(page.locator(".alert")).to_contain_text("password")
    page.fill("input[name=email]", VIEWER_EMAIL)
    page.fill("input[name=password]", VIEWER_PASSWORD)  # right, but too late
    page.click("button[type=submit]")
    expect(page.locator(".alert")).to_contain_text("Too many login attempts")
    page.context.close()


def test_the_setup_link_works_once_and_anonymous_visitors_go_to_login(server: Any) -> None:
    assert httpx.get(server.setup_url).status_code == 403
    answer = httpx.get(f"{server.url}/campaigns/1")
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/campaigns/1"
    assert httpx.post(f"{server.url}/campaigns/1/start").status_code == 401
