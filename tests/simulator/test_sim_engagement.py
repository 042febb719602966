"""Content-dependent engagement (docs/simulator.md, "Engagement"): the `engagement` knob's
rules pick a message by its text or a card's title, replace p_read, and make the person
click its first postback button (or quick reply) and reply, on the simulator's clock, the
same way for the same seed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sim_support import PAGE_ID, PSID, Receiver, add_page, add_user, send

BUTTONS = {
    "attachment": {
        "type": "template",
        "payload": {
            "template_type": "button",
            "text": "Big Sale today",
            "buttons": [
                {"type": "web_url", "url": "https://example.com/sale", "title": "Site"},
                {"type": "postback", "title": "Yes please", "payload": "SALE_YES"},
                {"type": "postback", "title": "No", "payload": "SALE_NO"},
            ],
        },
    }
}
CARDS = {
    "attachment": {
        "type": "template",
        "payload": {
            "template_type": "generic",
            "elements": [
                {"title": "Plain card", "subtitle": "nothing"},
                {
                    "title": "Winter Offer",
                    "buttons": [{"type": "postback", "title": "Shop", "payload": "SHOP"}],
                },
            ],
        },
    }
}
QUICK = {
    "text": "Pick a colour for the Sale",
    "quick_replies": [
        {"content_type": "text", "title": "Red", "payload": "RED"},
        {"content_type": "text", "title": "Blue", "payload": "BLUE"},
    ],
}


@pytest.fixture
async def page(http: httpx.AsyncClient, hook: Receiver) -> httpx.AsyncClient:
    await add_page(http)
    await add_user(http)
    return http


async def knobs(http: httpx.AsyncClient, **values: Any) -> dict[str, Any]:
    response = await http.post("/__sim/knobs", json=values)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def send_message(http: httpx.AsyncClient, message: dict[str, Any], psid: str = PSID) -> str:
    response = await send(
        http, {"recipient": {"id": psid}, "messaging_type": "UPDATE", "message": message}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["message_id"])


async def advance(http: httpx.AsyncClient, seconds: float) -> None:
    response = await http.post("/__sim/clock/advance", json={"seconds": seconds})
    assert response.status_code == 200, response.text


async def flush(http: httpx.AsyncClient) -> None:
    """Every pending event made due now and posted (the emitter's queue drained)."""
    response = await http.post("/__sim/webhook/flush")
    assert response.status_code == 200, response.text


async def pending(http: httpx.AsyncClient, hook: Receiver) -> int:
    """Events still waiting for their time, once the echo and delivery receipt are in."""
    await hook.wait_for(1, "delivery")
    return int((await http.get("/__sim/webhook")).json()["pending"])


async def test_a_click_is_the_first_postback_button_after_the_click_delay(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    await knobs(
        page,
        engagement=[{"match": "Sale", "p_click": 1.0}],
        click_delay=[100, 100],
        reply_delay=[50, 50],
    )
    await send_message(page, BUTTONS)
    await advance(page, 99)
    assert await pending(page, hook) == 1  # the click, not due yet
    assert hook.events("postback") == []
    await advance(page, 1)
    [event] = await hook.wait_for(1, "postback")
    assert event["sender"] == {"id": PSID} and event["recipient"] == {"id": PAGE_ID}
    assert event["postback"]["payload"] == "SALE_YES"
    assert event["postback"]["title"] == "Yes please"
    assert event["postback"]["mid"].startswith("m_")
    assert all(e["message"].get("is_echo") for e in hook.events("message"))


async def test_a_card_title_matches_and_its_button_is_clicked(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    await knobs(page, engagement=[{"match": "Winter", "p_click": 1.0}], click_delay=[5, 5])
    await send_message(page, CARDS)
    await advance(page, 5)
    [event] = await hook.wait_for(1, "postback")
    assert event["postback"]["payload"] == "SHOP" and event["postback"]["title"] == "Shop"


async def test_quick_replies_are_clicked_as_a_message_with_quick_reply(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    await knobs(page, engagement=[{"match": "Sale", "p_click": 1.0}], click_delay=[5, 5])
    await send_message(page, QUICK)
    await advance(page, 5)
    clicks = [e for e in await hook.wait_for(2, "message") if not e["message"].get("is_echo")]
    [click] = clicks
    assert click["message"]["quick_reply"] == {"payload": "RED"}
    assert click["message"]["text"] == "Red"
    assert hook.events("postback") == []


async def test_a_reply_is_an_inbound_text_message(page: httpx.AsyncClient, hook: Receiver) -> None:
    await knobs(
        page,
        engagement=[{"match": "Sale", "p_reply": 1.0, "reply_text": "Is it still on?"}],
        reply_delay=[30, 30],
    )
    await send_message(page, {"text": "Our Sale starts now"})
    await advance(page, 29)
    assert await pending(page, hook) == 1
    assert [e for e in hook.events("message") if not e["message"].get("is_echo")] == []
    await advance(page, 1)
    events = await hook.wait_for(2, "message")
    [reply] = [e for e in events if not e["message"].get("is_echo")]
    assert reply["message"]["text"] == "Is it still on?"
    assert "quick_reply" not in reply["message"]
    assert reply["sender"] == {"id": PSID}


async def test_a_rule_replaces_p_read_and_only_for_the_messages_it_matches(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    await knobs(page, p_read=0.0, engagement=[{"match": "Sale", "p_read": 1.0}])
    await add_user(page, psid="111")
    await send_message(page, {"text": "Nothing special"}, psid="111")
    await send_message(page, {"text": "The Sale is here"})
    await advance(page, 1)
    reads = await hook.wait_for(1, "read")
    await flush(page)
    assert [e["sender"]["id"] for e in hook.events("read")] == [PSID]
    assert len(reads) == 1


async def test_no_rule_matching_means_no_click_and_no_reply(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    await knobs(
        page,
        engagement=[{"match": "Winter", "p_click": 1.0, "p_reply": 1.0}],
        click_delay=[1, 1],
        reply_delay=[1, 1],
    )
    await send_message(page, BUTTONS)
    await advance(page, 10)
    await flush(page)
    assert hook.events("postback") == []
    assert all(e["message"].get("is_echo") for e in hook.events("message"))


async def test_a_message_never_delivered_is_neither_clicked_nor_replied_to(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    await knobs(
        page,
        p_delivered=0.0,
        engagement=[{"match": "Sale", "p_click": 1.0, "p_reply": 1.0}],
        click_delay=[1, 1],
        reply_delay=[1, 1],
    )
    await send_message(page, BUTTONS)
    await advance(page, 10)
    await flush(page)
    assert hook.events("postback") == []
    assert all(e["message"].get("is_echo") for e in hook.events("message"))


async def test_the_first_matching_rule_wins(page: httpx.AsyncClient, hook: Receiver) -> None:
    await knobs(
        page,
        engagement=[{"match": "Big", "p_click": 0.0}, {"match": "Sale", "p_click": 1.0}],
        click_delay=[1, 1],
    )
    await send_message(page, BUTTONS)
    await advance(page, 5)
    await flush(page)
    assert hook.events("postback") == []


async def _clicked(http: httpx.AsyncClient, hook: Receiver) -> list[str]:
    await knobs(http, engagement=[{"match": "Sale", "p_click": 0.5}], click_delay=[1, 60])
    psids = [str(900 + i) for i in range(40)]
    for psid in psids:
        await add_user(http, psid=psid)
        await send_message(http, BUTTONS, psid=psid)
    await advance(http, 60)
    await flush(http)
    return sorted(e["sender"]["id"] for e in hook.events("postback"))


async def test_the_same_seed_gives_the_same_clicks(
    page: httpx.AsyncClient, hook: Receiver, receiver: tuple[Receiver, str]
) -> None:
    first = await _clicked(page, hook)
    assert 8 <= len(first) <= 32, first  # about half of 40
    await page.post("/__sim/reset")
    hook.requests.clear()
    await page.post("/__sim/webhook", json={"url": receiver[1]})
    await add_page(page)
    await knobs(page, p_read=0.0, p_delivered=1.0, delivery_delay=[0, 0])
    assert await _clicked(page, hook) == first


@pytest.mark.parametrize(
    ("rules", "said"),
    [
        ({"match": "x"}, "engagement must be a list"),
        (["x"], "engagement[0] must be an object"),
        ([{"p_click": 0.5}], "engagement[0].match must be a non-empty string"),
        ([{"match": ""}], "engagement[0].match must be a non-empty string"),
        (
            [{"match": "a"}, {"match": "b", "p_click": 2}],
            "engagement[1].p_click must be a probability",
        ),
        ([{"match": "a", "p_read": "high"}], "engagement[0].p_read must be a probability"),
        ([{"match": "a", "p_clik": 0.1}], "unknown keys ['p_clik']"),
    ],
)
async def test_bad_rules_are_refused_naming_the_rule_and_nothing_changes(
    http: httpx.AsyncClient, rules: Any, said: str
) -> None:
    response = await http.post("/__sim/knobs", json={"engagement": rules, "p_read": 0.25})
    assert response.status_code == 400
    assert said in response.json()["error"], response.text
    current = (await http.get("/__sim/knobs")).json()
    assert current["engagement"] == [] and current["p_read"] == 0.6


async def test_rules_read_back_from_the_knobs(http: httpx.AsyncClient) -> None:
    body = await knobs(http, engagement=[{"match": "Sale", "p_read": 1, "p_click": 0.4}])
    assert body["engagement"] == [{"match": "Sale", "p_read": 1.0, "p_click": 0.4}]
    assert body["click_delay"] == [5.0, 600.0] and body["reply_delay"] == [30.0, 3600.0]
