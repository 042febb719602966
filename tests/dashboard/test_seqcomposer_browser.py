"""The composer's sequence of messages in a real browser (issue 19): "image, then text with
buttons" composed with "Add a message", previewed as two Messenger messages in order, a
problem named by its message, saved, shown on the campaign page, and edited back.

The tests run in file order and build on each other (one server per module)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin, new_page, screenshot
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FB_PAGE, TOKEN = "7301", "EAAseqcomposer7301"
PAGE_LABEL = "Sequence Bakery (active)"
IMAGE = "https://cdn.example.com/croissant.png"
SHOP = "https://shop.example.com/order"


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any) -> Any:
    page = new_page(browser, server)
    yield page
    page.context.close()


def test_setup_a_page_with_people(
    admin: Any, server: Any, sim_api: httpx.Client, tmp_path: Any
) -> None:
    create_first_admin(admin, server)
    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": "Sequence Bakery", "access_token": TOKEN}
    ).raise_for_status()
    admin.goto("/pages")
    admin.fill("#connect-page input[name=access_token]", TOKEN)
    admin.click("#connect-page button[type=submit]")
    expect(admin.locator(".page-card", has_text="Sequence Bakery")).to_be_visible()
    seen = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    csv_path = tmp_path / "people.csv"
    csv_path.write_text(f"psid,first_name,last_name,last_inbound_at\n7300,Noa,Kim,{seen}\n")
    admin.goto("/contacts")
    admin.set_input_files("#import-form input[type=file]", str(csv_path))
    admin.click("#import-form button[type=submit]")
    expect(admin.locator("#import-report")).to_have_attribute("data-state", "completed")


def test_compose_an_image_then_a_text_with_buttons(admin: Any) -> None:
    admin.goto("/campaigns/new")
    admin.fill("input[name=name]", "Fresh croissants")
    admin.select_option("select[name=page_id]", label=PAGE_LABEL)
    admin.check("input[name=message_kind][value=media]")
    admin.fill("input[name=attachment_url]", IMAGE)
    admin.click("#add-message")  # a submit button: the form comes back with message 2
    second = admin.locator("fieldset.message-fields[data-message='2']")
    expect(second.locator("legend")).to_have_text("Message 2 of 2")
    # What was typed before is kept, and message 1 is still the image.
    expect(admin.locator("input[name=name]")).to_have_value("Fresh croissants")
    expect(admin.locator("input[name=attachment_url]")).to_have_value(IMAGE)
    expect(admin.locator("input[name=message_kind][value=media]")).to_be_checked()
    admin.fill("#m2_text", "Hi {{first_name|there}}, fresh from the oven")
    admin.fill("input[name=m2_button0_title]", "Order")
    admin.fill("input[name=m2_button0_target]", SHOP)
    preview = admin.locator("#preview")
    expect(preview.locator("#preview-message .media-name")).to_have_text("croissant.png")
    expect(preview.locator("#preview-message-2 #preview-text-2")).to_have_text(
        "Hi Noa, fresh from the oven"
    )
    expect(preview.locator("#preview-message-2 .bubble-button")).to_have_text("Order")
    expect(preview.locator(".message-label")).to_have_text(["Message 1 of 2", "Message 2 of 2"])
    # A problem in message 2 is named by its field path, and only message 2 is held back.
    admin.fill("input[name=m2_button0_title]", "A button title far too long")
    expect(preview.locator("[data-problem='messages[1]']")).to_contain_text(
        "messages[1].buttons[0].title"
    )
    expect(preview.locator("#preview-message")).to_be_visible()
    expect(preview.locator("#preview-message-2")).to_have_count(0)
    admin.fill("input[name=m2_button0_title]", "Order")
    expect(preview.locator("#preview-message-2")).to_be_visible()
    expect(preview.locator("[data-problem]")).to_have_count(0)
    screenshot(admin, "composer-sequence")
    admin.click("#save")
    admin.wait_for_url(re.compile(r"/campaigns/\d+$"))
    items = admin.locator("#messages li.message")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("Image")
    expect(items.nth(1)).to_contain_text("Hi {{first_name|there}}, fresh from the oven")
    expect(items.nth(1).locator(".chip")).to_have_text("Order")
    assert admin.console_errors == []


def test_editing_shows_both_messages_and_remove_makes_it_one(admin: Any) -> None:
    admin.click("a.button[href$='/edit']")
    expect(admin.locator("fieldset.message-fields legend")).to_have_text(
        ["Message 1 of 2", "Message 2 of 2"]
    )
    expect(admin.locator("#m2_text")).to_have_value("Hi {{first_name|there}}, fresh from the oven")
    admin.click("button[data-remove-message='2']")
    expect(admin.locator("fieldset.message-fields")).to_have_count(1)
    expect(admin.locator("fieldset.message-fields legend")).to_have_text("Message")
    admin.press("input[name=name]", "Enter")  # Enter saves; it never adds a message
    admin.wait_for_url(re.compile(r"/campaigns/\d+$"))
    expect(admin.locator("#messages li.message")).to_have_count(1)
    expect(admin.locator("#messages")).not_to_contain_text("fresh from the oven")


def test_upload_once_in_a_later_message_stores_its_attachment_id(admin: Any) -> None:
    admin.goto("/campaigns/new")
    admin.fill("input[name=name]", "Text then poster")
    admin.select_option("select[name=page_id]", label=PAGE_LABEL)
    admin.fill("#text", "A poster for you")
    admin.click("#add-message")
    admin.check("input[name=m2_message_kind][value=media]")
    admin.fill("input[name=m2_attachment_url]", "https://cdn.example.com/poster-2.jpg")
    admin.check("input[name=m2_upload_once]")
    expect(admin.locator("#preview-message-2 .media-name")).to_have_text("poster-2.jpg")
    admin.click("#save")
    admin.wait_for_url(re.compile(r"/campaigns/\d+$"))
    admin.goto(admin.url + "/edit")
    assert admin.input_value("input[name=m2_attachment_id]").isdigit()
    assert admin.input_value("input[name=m2_attachment_url]") == ""
    expect(admin.locator("#text")).to_have_value("A poster for you")
