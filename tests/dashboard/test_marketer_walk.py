"""Issue 19's whole walk, in a real browser, as a marketer in Manila does it: connect a Page
with Facebook Login (the simulator's dialog), make a contact a tester, compose a card
carousel followed by a text with a button (a sequence of two messages), read the draft's
review, send a test (the simulator's outbox then holds exactly those two messages, to that
person, and nothing else), schedule it in Manila time, start it, and see it complete with
each person getting both messages in order.

The tests run in file order and build on each other (one server per module)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dashboard_support import create_first_admin
from playwright.sync_api import expect

from pagecast import timezones

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FB_PAGE, NAME, PAGE_TOKEN = "4101", "Harbour Bakery", "EAAwalkharbour4101"
PEOPLE = [("41010", "Ana"), ("41011", "Ben"), ("41012", "Cy")]
TESTER = "41010"
MANILA = timezones.zone("Asia/Manila")
SHOP = "https://shop.example.com/"
PICK = re.compile(r".*/pages/connect/facebook/\d+(#_=_)?$")


@pytest.fixture(scope="module")
def marketer(browser: Any, server: Any) -> Any:
    context = browser.new_context(
        base_url=server.url, timezone_id="Asia/Manila", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.confirmations = []

    def confirm(dialog: Any) -> None:
        page.confirmations.append(dialog.message)
        dialog.accept()

    page.on("dialog", confirm)
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on(
        "console",
        lambda message: page.problems.append(message.text) if message.type == "error" else None,
    )
    yield page
    context.close()


def _outbox(sim_api: httpx.Client) -> list[dict[str, Any]]:
    answer = sim_api.get("/__sim/outbox", params={"page_id": FB_PAGE})
    answer.raise_for_status()
    return list(answer.json()["messages"])


def _is_carousel(message: dict[str, Any], first_name: str) -> bool:
    payload = message.get("attachment", {}).get("payload", {})
    titles = [e["title"] for e in payload.get("elements", [])]
    return payload.get("template_type") == "generic" and titles == [
        f"Pandesal for {first_name}",
        "Ensaymada",
    ]


def _is_text_with_button(message: dict[str, Any], first_name: str) -> bool:
    payload = message.get("attachment", {}).get("payload", {})
    return (
        payload.get("template_type") == "button"
        and payload.get("text") == f"Order by noon, {first_name}!"
        and [b["title"] for b in payload.get("buttons", [])] == ["Order"]
    )


def test_connect_the_page_with_facebook_login(
    marketer: Any, server: Any, sim_api: httpx.Client
) -> None:
    create_first_admin(marketer, server)
    sim_api.post(
        "/__sim/pages", json={"page_id": FB_PAGE, "name": NAME, "access_token": PAGE_TOKEN}
    ).raise_for_status()
    sim_api.post(
        "/__sim/users",
        json=[
            {"page_id": FB_PAGE, "psid": psid, "first_name": name, "last_user_action": "now"}
            for psid, name in PEOPLE
        ],
    ).raise_for_status()
    # Facebook's side: the person who signs in manages the Page and grants everything.
    sim_api.post(
        "/__sim/oauth", json={"user_token": "EAAUwalkmarketer", "pages": [FB_PAGE]}
    ).raise_for_status()
    marketer.goto("/pages")
    marketer.click("#connect-facebook-button")
    marketer.wait_for_url(PICK)
    expect(marketer.locator(f"#choice-{FB_PAGE} input[type=checkbox]")).to_be_checked()
    marketer.click("#choose-pages button[type=submit]")
    expect(marketer.locator(f"#result-{FB_PAGE}")).to_contain_text("connected")
    expect(marketer.locator("#missing-permissions")).to_have_count(0)
    marketer.goto("/pages")
    card = marketer.locator(".page-card", has_text=NAME)
    expect(card.locator(".page-status")).to_contain_text("active")


def test_take_the_browsers_zone_and_make_a_tester(marketer: Any, tmp_path: Any) -> None:
    marketer.goto("/users")
    marketer.click("#use-browser-zone")
    expect(marketer.locator("#current-zone")).to_have_text("Asia/Manila (UTC+08:00)")
    recent = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    csv_path = tmp_path / "people.csv"
    rows = "".join(f"{psid},{name},{recent}\n" for psid, name in PEOPLE)
    csv_path.write_text("psid,first_name,last_inbound_at\n" + rows)
    marketer.goto("/contacts")
    marketer.set_input_files("#import-form input[type=file]", str(csv_path))
    marketer.click("#import-form button[type=submit]")
    expect(marketer.locator("#import-report")).to_have_attribute("data-state", "completed")
    marketer.goto("/contacts")
    marketer.locator("tr", has_text=TESTER).locator("button:has-text('Make tester')").click()
    marketer.wait_for_url("**/contacts?page_id=*")
    expect(marketer.locator("tr", has_text=TESTER).locator(".tag")).to_have_text("tester")
    # The id the CLI and "Chosen contacts" ask for is on the row.
    expect(marketer.locator("tr", has_text=TESTER).locator("[data-contact-id]")).to_have_text(
        re.compile(r"^\d+$")
    )


def test_compose_a_carousel_then_a_text_with_a_button(marketer: Any) -> None:
    marketer.goto("/campaigns/new")
    marketer.fill("input[name=name]", "Morning bake")
    marketer.select_option("select[name=page_id]", label=f"{NAME} (active)")
    marketer.check("input[name=audience_type][value=all]")
    # Message 1: two cards.
    marketer.check("input[name=message_kind][value=cards]")
    marketer.fill("input[name=card0_title]", "Pandesal for {{first_name|you}}")
    marketer.fill("input[name=card0_subtitle]", "Warm from the oven")
    marketer.fill("input[name=card0_image_url]", "https://cdn.example.com/pandesal.jpg")
    marketer.click("details[data-card='1'] summary")
    marketer.fill("input[name=card1_title]", "Ensaymada")
    marketer.fill("input[name=card1_subtitle]", "Butter and cheese")
    marketer.fill("input[name=card1_button0_title]", "See more")
    marketer.fill("input[name=card1_button0_target]", SHOP)
    # Message 2: a text with a button.
    _add_second_message(marketer)
    cards = marketer.locator("#preview-carousel .msg-card")
    expect(cards).to_have_count(2)
    expect(cards.first.locator(".msg-card-title")).to_have_text("Pandesal for Ana")
    expect(marketer.locator("#preview [data-problem]")).to_have_count(0)
    marketer.click("#save")
    marketer.wait_for_url(re.compile(r".*/campaigns/\d+$"))
    expect(marketer.locator("#status-badge .badge")).to_have_text("draft")


def test_the_review_shows_the_page_the_audience_and_the_number(marketer: Any) -> None:
    review = marketer.locator("#review")
    expect(review.locator("#review-page")).to_have_text(NAME)
    expect(review.locator("#review-eligible")).to_have_text("3")
    expect(review.locator("#preview-carousel .msg-card")).to_have_count(2)
    expect(review.locator(".message-label")).to_have_text(["Message 1 of 2", "Message 2 of 2"])
    expect(review.locator("#preview-text-2")).to_have_text("Order by noon, Ana!")
    start = marketer.locator("form[action$='/start']")
    expect(start).to_have_attribute("data-confirm", "Send to 3 people now?")


def test_a_test_reaches_the_tester_with_both_messages_and_nothing_else(
    marketer: Any, sim_api: httpx.Client
) -> None:
    assert _outbox(sim_api) == []
    testers = marketer.locator("#send-test input[name=contact_id]")
    expect(testers).to_have_count(1)
    testers.first.check()
    marketer.click("#send-test-button")
    result = marketer.locator("#test-results [data-test-status]")
    expect(result).to_have_attribute("data-test-status", "sent")
    sent = _outbox(sim_api)
    assert [m["psid"] for m in sent] == [TESTER, TESTER]
    assert _is_carousel(sent[0]["message"], "Ana")
    assert _is_text_with_button(sent[1]["message"], "Ana")
    marketer.reload()
    expect(marketer.locator("[data-count=total]")).to_have_text("0")  # a test counts nothing


def test_schedule_it_in_manila_time(marketer: Any) -> None:
    day = (datetime.now(MANILA) + timedelta(days=2)).date()
    local = datetime(day.year, day.month, day.day, 7, 0, tzinfo=MANILA)
    utc = local.astimezone(UTC)
    marketer.click("a:has-text('Edit')")
    expect(marketer.locator("#zone-label")).to_have_text("Asia/Manila (UTC+08:00)")
    marketer.fill("input[name=scheduled_at]", local.strftime("%Y-%m-%dT%H:%M"))
    marketer.click("#save")
    marketer.wait_for_url(re.compile(r".*/campaigns/\d+$"))
    shown = marketer.locator("#scheduled-at time")
    expect(shown).to_have_attribute("datetime", utc.strftime("%Y-%m-%dT%H:%M:%SZ"))
    marketer.click(f"button:has-text('Schedule for {local:%Y-%m-%d} 07:00 UTC+08:00')")
    expect(marketer.locator("#status-badge .badge")).to_have_text("scheduled")
    assert marketer.confirmations[-1].startswith("Schedule for 3 people at ")


def test_start_it_now_and_see_it_complete_with_both_messages_in_order(
    marketer: Any, sim_api: httpx.Client
) -> None:
    marketer.click("form[action$='/start'] button")
    assert marketer.confirmations[-1] == "Send to 3 people now?"
    expect(marketer.locator("#status-badge .badge")).to_have_text("completed", timeout=60_000)
    expect(marketer.locator("[data-count=total]")).to_have_text("3")
    expect(marketer.locator("[data-count=failed]")).to_have_text("0")
    expect(marketer.locator("#scheduled-at")).to_have_count(0)  # it was sent, not scheduled
    sent = _outbox(sim_api)[2:]  # after the test's two
    for psid, name in PEOPLE:
        theirs = [m["message"] for m in sent if m["psid"] == psid]
        assert len(theirs) == 2, (psid, theirs)
        assert _is_carousel(theirs[0], name) and _is_text_with_button(theirs[1], name)
    assert len(sent) == 2 * len(PEOPLE)
    assert marketer.problems == []


def _add_second_message(page: Any) -> None:
    """ "Add a message", then message 2: a text with one button."""
    page.click("#add-message")
    second = page.locator("fieldset.message-fields[data-message='2']")
    expect(second.locator("legend")).to_contain_text("Message 2 of 2")
    page.check("input[name=m2_message_kind][value=text]")
    page.fill("#m2_text", "Order by noon, {{first_name|friend}}!")
    page.fill("input[name=m2_button0_title]", "Order")
    page.fill("input[name=m2_button0_target]", SHOP)
    expect(page.locator("#preview-text-2")).to_have_text("Order by noon, Ana!")
