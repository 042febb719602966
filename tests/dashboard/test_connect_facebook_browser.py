"""Connect with Facebook in a real browser: the button on the Pages page, the simulator's
Login dialog, the callback, picking the Page, and the result with the permissions; a
declined permission and a cancelled dialog are explained on the page."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin, new_page, screenshot
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FB_PAGE, NAME, TOKEN = "3101", "Corner Cafe", "EAAconnectbrowser3101"
# The browser keeps the `#_=_` Facebook's dialog appends across the callback's redirect.
PICK = re.compile(r".*/pages/connect/facebook/\d+(#_=_)?$")


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any) -> Any:
    page = new_page(browser, server)
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    create_first_admin(page, server)
    yield page
    page.context.close()


def _consent(sim_api: httpx.Client, **choice: Any) -> None:
    sim_api.post(
        "/__sim/oauth", json={"user_token": "EAAUbrowseruser", "pages": [FB_PAGE], **choice}
    ).raise_for_status()


def test_connect_with_facebook_from_the_button_to_a_connected_page(
    admin: Any, sim_api: httpx.Client
) -> None:
    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": NAME, "access_token": TOKEN}
    ).raise_for_status()
    _consent(sim_api)
    admin.goto("/pages")
    expect(admin.locator("#connect-page")).to_be_visible()  # the pasted token stays
    expect(admin.locator("#connect-facebook-unavailable")).to_have_count(0)
    admin.click("#connect-facebook-button")
    # The simulator's dialog answers at once; the callback sends the browser on to the pick.
    admin.wait_for_url(PICK)
    choice = admin.locator(f"#choice-{FB_PAGE}")
    expect(choice).to_contain_text(NAME)
    expect(choice).to_contain_text(f"Facebook id {FB_PAGE}")
    expect(choice.locator("input[type=checkbox]")).to_be_checked()
    expect(admin.locator("#permission-pages_messaging")).to_contain_text("granted")
    admin.click("#choose-pages button[type=submit]")
    result = admin.locator(f"#result-{FB_PAGE}")
    expect(result).to_contain_text("connected")
    expect(result).to_contain_text("subscribed to its webhooks")
    expect(admin.locator("#missing-permissions")).to_have_count(0)
    for name in ("pages_messaging", "pages_manage_metadata", "pages_read_engagement"):
        expect(admin.locator(f"#permission-{name}")).to_contain_text("granted")
    screenshot(admin, "connect-facebook")
    admin.goto("/pages")
    card = admin.locator(".page-card", has_text=NAME)
    expect(card.locator(".page-status")).to_contain_text("active")
    assert admin.problems == []


def test_a_declined_permission_is_explained_and_the_page_is_marked_connected(
    admin: Any, sim_api: httpx.Client
) -> None:
    _consent(sim_api, decline=["pages_messaging"])
    admin.goto("/pages")
    admin.click("#connect-facebook-button")
    admin.wait_for_url(PICK)
    choice = admin.locator(f"#choice-{FB_PAGE}")
    expect(choice).to_contain_text("connected")  # from the first test
    expect(admin.locator("#missing-permissions")).to_contain_text("pages_messaging")
    choice.locator("input[type=checkbox]").check()
    admin.click("#choose-pages button[type=submit]")
    expect(admin.locator(f"#result-{FB_PAGE}")).to_contain_text("its token was replaced")
    row = admin.locator("#permission-pages_messaging")
    expect(row).to_contain_text("declined")
    expect(row).to_contain_text("nothing can be sent")
    screenshot(admin, "connect-facebook-declined")


def test_a_cancelled_dialog_is_explained_on_the_pages_page(
    admin: Any, sim_api: httpx.Client
) -> None:
    _consent(sim_api, decline=["*"])
    admin.goto("/pages")
    admin.click("#connect-facebook-button")
    admin.wait_for_url("**/pages/connect/facebook/callback*")
    expect(admin.locator("#page-error")).to_contain_text("Facebook Login was cancelled")
    expect(admin.locator("#connect-facebook-button")).to_be_visible()
