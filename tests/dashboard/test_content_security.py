"""The dashboard under its Content-Security-Policy in a real browser: every main page, its
HTMX fragments, live progress and the error page run without a single CSP violation (no
inline script, no inline style, no `javascript:` link), and every answer carries the
security headers (issue 17, item 13).

Violations are caught two ways: Chromium's console ("Refused to ... because it violates the
following Content Security Policy directive") and `securitypolicyviolation` events recorded
by a script Playwright injects before the page's own (injected scripts are not subject to
the page's policy).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from dashboard_support import ADMIN_EMAIL, ADMIN_PASSWORD, new_page
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FB_PAGE, TOKEN = "4001", "EAAcsp4001"
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


@pytest.fixture(scope="module")
def watched(browser: Any, server: Any) -> Any:
    """A browser page whose console CSP messages land in `page.csp_console`."""
    page = new_page(browser, server)
    page.csp_console = []
    page.add_init_script(RECORD_VIOLATIONS)

    def on_console(message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or text.startswith("Refused to"):
            page.csp_console.append(text)

    page.on("console", on_console)
    yield page
    page.context.close()


def violations(page: Any) -> list[str]:
    return [*page.csp_console, *(page.evaluate("window.__cspViolations || []"))]


def visit(page: Any, path: str) -> None:
    response = page.goto(path)
    assert response is not None
    headers = response.headers
    policy = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy and "script-src 'self';" in policy, (path, policy)
    assert "'unsafe-inline'" not in policy
    assert headers.get("x-content-type-options") == "nosniff", path
    assert headers.get("referrer-policy") == "same-origin", path
    page.wait_for_load_state("load")
    assert violations(page) == [], (path, violations(page))


def test_every_main_page_runs_without_a_csp_violation(
    watched: Any, server: Any, sim_api: httpx.Client
) -> None:
    page = watched
    visit(page, server.setup_url)
    page.fill("input[name=email]", ADMIN_EMAIL)
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.fill("input[name=password2]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/campaigns")
    assert violations(page) == []

    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": "Policy Bakery", "access_token": TOKEN}
    ).raise_for_status()
    sim_api.post(
        "/__sim/users",
        json=[
            {
                "page_id": FB_PAGE,
                "psid": str(6000 + i),
                "first_name": f"P{i}",
                "last_user_action": "now",
            }
            for i in range(5)
        ],
    ).raise_for_status()
    visit(page, "/pages")
    page.fill("#connect-page input[name=access_token]", TOKEN)
    page.click("#connect-page button[type=submit]")
    expect(page.locator("body")).to_contain_text("Policy Bakery")
    visit(page, "/contacts")
    page.click("button:has-text('Sync from Facebook')")
    expect(page.locator("#sync-status .badge")).to_have_text("completed", timeout=60_000)

    # The composer: live preview and eligible count are HTMX fragments.
    visit(page, "/campaigns/new")
    page.fill("input[name=name]", "Under the policy")
    page.select_option("select[name=page_id]", label="Policy Bakery (active)")
    page.fill("#text", "Hello ")
    page.click("button.chip >> nth=0")
    expect(page.locator("#eligible-count")).to_have_text("5")
    page.click("#save")
    page.wait_for_url("**/campaigns/*")
    campaign = page.url
    page.click("button:has-text('Start sending')")
    expect(page.locator("#status-badge .badge")).to_have_text("completed", timeout=60_000)
    # Bar widths come from data-width through dashboard.js, not from style attributes.
    page.reload()
    expect(page.locator(".progress-card .fill")).to_have_attribute("style", "width: 100%;")
    segments = page.locator(".seg")
    assert segments.count() >= 1
    assert all("width:" in (s.get_attribute("style") or "") for s in segments.all())
    assert violations(page) == [], violations(page)

    for path in ("/campaigns", campaign, "/contacts", "/pages", "/queue", "/users"):
        visit(page, path)
    # The error page's "Go back" link is a script of ours now, not `javascript:`.
    visit(page, "/campaigns/987654")
    page.click("a[data-back]")
    page.wait_for_url("**/users")
    assert violations(page) == []


def test_headers_on_api_static_and_refused_answers(server: Any) -> None:
    for path in ("/healthz", "/static/dashboard.js", "/api/campaigns", "/login"):
        answer = httpx.get(f"{server.url}{path}")
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path
        assert answer.headers["x-content-type-options"] == "nosniff", path
        # The test server is reached over http (no PAGECAST_PUBLIC_URL): no HSTS.
        assert "strict-transport-security" not in answer.headers
