"""The composer's one set of rules and its Messenger preview, and the templates pages, in a
real browser (issue 19, Compose): a live character counter that never cuts, errors in words
at once (unknown placeholders, unknown contact ids, a card's limits), a carousel previewed
for a real contact, "upload once", and templates listed, created, edited, used and saved
from the composer.

The tests run in file order and build on each other (one server per module)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin, new_page, screenshot
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FB_PAGE, TOKEN = "7101", "EAAcompose7101"
PAGE_LABEL = "Compose Cafe (active)"
SHOP = "https://shop.example.com/sale"


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any) -> Any:
    page = new_page(browser, server)  # records console errors
    yield page
    page.context.close()


def test_setup_a_page_with_people(
    admin: Any, server: Any, sim_api: httpx.Client, tmp_path: Any
) -> None:
    create_first_admin(admin, server)
    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": "Compose Cafe", "access_token": TOKEN}
    ).raise_for_status()
    admin.goto("/pages")
    admin.fill("#connect-page input[name=access_token]", TOKEN)
    admin.click("#connect-page button[type=submit]")
    expect(admin.locator(".page-card", has_text="Compose Cafe")).to_be_visible()
    seen = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    rows = [f"{7100 + i},Mia{i},Lee,{seen}" for i in range(3)]
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("psid,first_name,last_name,last_inbound_at\n" + "\n".join(rows) + "\n")
    admin.goto("/contacts")
    admin.set_input_files("#import-form input[type=file]", str(csv_path))
    admin.click("#import-form button[type=submit]")
    expect(admin.locator("#import-report")).to_have_attribute("data-state", "completed")


def _start(admin: Any, name: str) -> None:
    admin.goto("/campaigns/new")
    admin.fill("input[name=name]", name)
    admin.select_option("select[name=page_id]", label=PAGE_LABEL)


def test_the_counter_shows_the_limit_and_nothing_is_cut(admin: Any) -> None:
    _start(admin, "Long text")
    counter = admin.locator("#text-count")
    admin.fill("#text", "Hello")
    expect(counter).to_have_text("5 / 2,000 characters")
    admin.fill("#text", "x" * 3000)  # a paste longer than Messenger allows
    assert len(admin.input_value("#text")) == 3000  # kept, not silently cut to 2,000
    expect(counter).to_contain_text("3,000 / 2,000 characters: 1,000 over Messenger's limit")
    expect(counter).to_have_class("hint counter over")
    problem = admin.locator("#preview [data-problem=content]")
    expect(problem).to_contain_text("content.text can be 3,000 characters once personalised")
    admin.fill("input[name=button0_title]", "Order")  # with buttons, the limit is 640
    admin.fill("input[name=button0_target]", SHOP)
    admin.fill("#text", "y" * 700)
    expect(counter).to_contain_text("700 / 640 characters: 60 over")
    admin.click("#save")
    expect(admin.locator("#err-content")).to_contain_text("Messenger allows at most 640")
    assert "pydantic" not in admin.content()
    assert len(admin.input_value("#text")) == 700


def test_errors_show_in_words_at_once_not_only_at_save(admin: Any) -> None:
    admin.console_errors.clear()  # the refused Save above answered 422
    _start(admin, "Mixed")
    admin.fill("#text", "Hi {{city}}, fresh bread today")
    problem = admin.locator("#preview [data-problem=content]")
    expect(problem).to_contain_text("Unknown personalisation {{city}} in content.text")
    admin.fill("#text", "Hi {{first_name|there}}")
    expect(admin.locator("#preview-text")).to_have_text("Hi Mia0")
    expect(problem).to_have_count(0)
    admin.fill("input[name=preview_contact]", "3")  # pick another contact of the Page
    expect(admin.locator("#preview-text")).to_have_text("Hi Mia2")
    admin.fill("input[name=preview_contact]", "999")
    expect(admin.locator("#preview [data-problem=preview_contact]")).to_contain_text(
        "999 is not a contact of this Page"
    )
    admin.fill("input[name=preview_contact]", "")
    admin.check("input[name=audience_type][value=contacts]")
    admin.fill("textarea[name=psids]", "7100\n424242, 434343")  # PSIDs (issue 21)
    expect(admin.locator("#preview [data-problem=audience]")).to_contain_text(
        "not contacts of Page"
    )
    admin.check("input[name=audience_type][value=all]")
    # A URL and a text in one message: refused in words, never pydantic's summary.
    admin.check("input[name=message_kind][value=media]")
    admin.fill("input[name=attachment_url]", "https://cdn.example.com/a.jpg")
    admin.check("input[name=message_kind][value=cards]")
    admin.fill("input[name=card0_title]", "")
    expect(admin.locator("#preview [data-problem=content]")).to_contain_text("content.cards")
    assert "errors.pydantic.dev" not in admin.inner_text("#preview")
    assert admin.console_errors == []


def test_a_carousel_is_previewed_as_messenger_shows_it(admin: Any) -> None:
    _start(admin, "Carousel")
    admin.check("input[name=message_kind][value=cards]")
    expect(admin.locator(".kind-section[data-kind=text]")).to_be_hidden()
    for i in range(3):
        if i:
            admin.click(f"details[data-card='{i}'] summary")
        admin.fill(f"input[name=card{i}_title]", f"Deal {i + 1} for {{{{first_name|you}}}}")
        admin.fill(f"input[name=card{i}_subtitle]", "Up to 50% off")
        admin.fill(f"input[name=card{i}_image_url]", f"https://cdn.example.com/deal{i}.jpg")
        admin.fill(f"input[name=card{i}_button0_title]", "Shop now")
        admin.fill(f"input[name=card{i}_button0_target]", SHOP)
    admin.fill("input[name=quick_replies]", "Yes, Later")
    cards = admin.locator("#preview-carousel .msg-card")
    expect(cards).to_have_count(3)
    expect(cards.first.locator(".msg-card-title")).to_have_text("Deal 1 for Mia0")
    expect(cards.nth(2).locator(".media-name")).to_have_text("deal2.jpg")
    expect(admin.locator("#preview .quick span")).to_have_count(2)
    overflow = admin.eval_on_selector(
        "#preview-carousel",
        "el => [el.scrollWidth, el.clientWidth, getComputedStyle(el).overflowX]",
    )
    assert overflow[0] > overflow[1] and overflow[2] == "auto"  # scrolls sideways
    # A card button over 20 characters: named by its path, at once.
    admin.fill("input[name=card1_button0_title]", "Shop the whole summer sale")
    expect(admin.locator("#preview [data-problem=content]")).to_have_text(
        "content.cards[1].buttons[0].title: has 26 characters; at most 20 are allowed; shorten it"
    )
    admin.fill("input[name=card1_button0_title]", "Shop")
    expect(admin.locator("#preview [data-problem]")).to_have_count(0)
    expect(cards).to_have_count(3)
    screenshot(admin, "composer-carousel")
    admin.click("#save")
    admin.wait_for_url("**/campaigns/*")
    admin.goto(admin.url + "/edit")
    expect(admin.locator("input[name=card2_title]")).to_have_value("Deal 3 for {{first_name|you}}")
    expect(admin.locator("input[name=message_kind][value=cards]")).to_be_checked()


def test_upload_once_sends_the_attachment_by_its_id(admin: Any) -> None:
    _start(admin, "Poster")
    admin.check("input[name=message_kind][value=media]")
    admin.fill("input[name=attachment_url]", "https://cdn.example.com/poster.jpg")
    admin.check("input[name=upload_once]")
    expect(admin.locator("#preview .media-name")).to_have_text("poster.jpg")
    admin.click("#save")
    admin.wait_for_url("**/campaigns/*")
    admin.goto(admin.url + "/edit")
    attachment_id = admin.input_value("input[name=attachment_id]")
    assert attachment_id.isdigit()
    # The same URL again reuses the Page's id: no second upload.
    _start(admin, "Poster again")
    admin.check("input[name=message_kind][value=media]")
    admin.fill("input[name=attachment_url]", "https://cdn.example.com/poster.jpg")
    admin.check("input[name=upload_once]")
    admin.click("#save")
    admin.wait_for_url("**/campaigns/*")
    admin.goto(admin.url + "/edit")
    assert admin.input_value("input[name=attachment_id]") == attachment_id


def test_templates_list_create_edit_use_and_save_from_the_composer(admin: Any) -> None:
    admin.goto("/campaigns")
    admin.click("nav[aria-label=Main] >> text=Templates")
    admin.wait_for_url("**/templates")
    expect(admin.locator(".empty")).to_have_text("No template yet.")
    admin.click("#new-template")
    admin.fill("input[name=name]", "Weekly cards")
    admin.check("input[name=message_kind][value=cards]")
    admin.fill("input[name=card0_title]", "This week, {{first_name|friend}}")
    admin.fill("input[name=card0_subtitle]", "x" * 81)
    expect(admin.locator("#preview [data-problem=content]")).to_contain_text(
        "content.cards[0].subtitle"
    )
    expect(admin.locator("#eligible-count")).to_have_count(0)  # no audience on a template
    admin.fill("input[name=card0_subtitle]", "Fresh picks")
    expect(admin.locator("#preview .msg-card-title")).to_have_text("This week, Mia0")
    admin.click("#save")
    admin.wait_for_url("**/templates?saved=*")
    expect(admin.locator("#template-saved")).to_contain_text("Weekly cards")
    row = admin.locator("#templates tr", has_text="Weekly cards")
    expect(row).to_contain_text("1 card(s)")
    # Edit: a refusal keeps what was typed and says what is wrong.
    row.locator("a", has_text="Weekly cards").click()
    admin.fill("input[name=card0_title]", "Hi {{city}}")
    admin.click("#save")
    expect(admin.locator("#err-content")).to_contain_text("Unknown personalisation {{city}}")
    admin.console_errors.clear()  # that refusal answered 422
    admin.fill("input[name=card0_title]", "This week")
    admin.click("#save")
    admin.wait_for_url("**/templates?saved=*")
    # Use it: the composer starts with its message.
    admin.locator("#templates tr", has_text="Weekly cards").locator(".use-template").click()
    admin.wait_for_url("**/campaigns/new?template=*")
    expect(admin.locator("input[name=card0_title]")).to_have_value("This week")
    expect(admin.locator("input[name=message_kind][value=cards]")).to_be_checked()
    # Save a campaign's message as a template.
    admin.fill("input[name=name]", "From template")
    admin.select_option("select[name=page_id]", label=PAGE_LABEL)
    admin.fill("input[name=template_name]", "Copied cards")
    admin.click("#save-template")
    admin.wait_for_url("**/templates?saved=*")
    expect(admin.locator("#templates tr", has_text="Copied cards")).to_contain_text("1 card(s)")
    screenshot(admin, "templates")
    assert admin.console_errors == []
