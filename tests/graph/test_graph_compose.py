"""Issue 19, rich messages through the real Graph client against the simulator: the
Attachment Upload API, sends by `attachment_id`, and the generic template's limits."""

from __future__ import annotations

from typing import Any

import pytest
from graph_support import Sim

from pagecast.graph import ErrorKind, GraphError, SendResult
from pagecast.message_schema import Content
from pagecast.services import content

IMAGE = "https://cdn.example.com/sale.jpg"


def _cards(count: int, **card: Any) -> dict[str, Any]:
    element = {"title": "Summer sale", "subtitle": "Up to 50% off"} | card
    return {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "generic", "elements": [element] * count},
        }
    }


async def test_upload_answers_an_id_that_a_send_reuses(sim: Sim) -> None:
    creds = await sim.page()
    await sim.users({"psid": "u1"})
    attachment_id = await sim.graph.upload_attachment(creds, kind="image", url=IMAGE)
    assert attachment_id.isdigit()
    message = {"attachment": {"type": "image", "payload": {"attachment_id": attachment_id}}}
    assert isinstance(await sim.graph.send_message(creds, psid="u1", message=message), SendResult)
    [sent] = await sim.outbox("u1")
    assert sent["message"]["attachment"]["payload"] == {"attachment_id": attachment_id}


async def test_a_send_with_an_unknown_attachment_id_fails_as_facebook_does(sim: Sim) -> None:
    creds = await sim.page()
    await sim.users({"psid": "u1"})
    message = {"attachment": {"type": "image", "payload": {"attachment_id": "999999"}}}
    with pytest.raises(GraphError) as info:
        await sim.graph.send_message(creds, psid="u1", message=message)
    assert (info.value.code, info.value.subcode) == (100, 2018074)
    assert info.value.kind is ErrorKind.BAD_REQUEST
    assert await sim.outbox("u1") == []


async def test_an_id_is_kept_per_page(sim: Sim) -> None:
    creds = await sim.page()
    other = await sim.page("2002", token="other-page-token", name="Other")
    await sim.users({"psid": "u1"})
    foreign = await sim.graph.upload_attachment(other, kind="image", url=IMAGE)
    message = {"attachment": {"type": "image", "payload": {"attachment_id": foreign}}}
    with pytest.raises(GraphError) as info:
        await sim.graph.send_message(creds, psid="u1", message=message)
    assert info.value.subcode == 2018074


async def test_an_unfetchable_url_is_refused_at_upload(sim: Sim) -> None:
    creds = await sim.page()
    await sim.post("knobs", {"attachment_fail_urls": ["broken.example.com"]})
    with pytest.raises(GraphError) as info:
        await sim.graph.upload_attachment(
            creds, kind="image", url="https://broken.example.com/a.jpg"
        )
    assert (info.value.code, info.value.subcode) == (100, 2018008)


async def test_a_carousel_that_pagecast_builds_is_accepted(sim: Sim) -> None:
    creds = await sim.page()
    await sim.users({"psid": "u1"})
    card = {
        "title": "Hi {{first_name|there}}",
        "subtitle": "Sale",
        "image_url": IMAGE,
        "default_action": {"url": "https://shop.example.com"},
        "buttons": [{"type": "web_url", "title": "Shop", "url": "https://shop.example.com"}],
    }
    message = content.to_message(
        Content.model_validate({"cards": [card] * 10}), {"first_name": "Ana"}
    )
    await sim.graph.send_message(creds, psid="u1", message=message)
    [sent] = await sim.outbox("u1")
    elements = sent["message"]["attachment"]["payload"]["elements"]
    assert len(elements) == 10 and elements[0]["title"] == "Hi Ana"


@pytest.mark.parametrize(
    ("message", "named"),
    [
        (_cards(11), "[elements]"),
        (_cards(1, title="x" * 81), "[title]"),
        (_cards(1, subtitle="x" * 81), "[subtitle]"),
        (_cards(1, buttons=[{"type": "postback", "title": "b", "payload": "P"}] * 4), "[buttons]"),
        (_cards(1, buttons=[{"type": "web_url", "title": "x" * 21, "url": IMAGE}]), "[title]"),
        (_cards(1, subtitle=None), "At least one property must be set in addition to title"),
    ],
)
async def test_generic_template_limits_are_refused_like_facebook(
    sim: Sim, message: dict[str, Any], named: str
) -> None:
    creds = await sim.page()
    await sim.users({"psid": "u1"})
    with pytest.raises(GraphError) as info:
        await sim.graph.send_message(creds, psid="u1", message=message)
    assert info.value.code == 100 and info.value.kind is ErrorKind.BAD_REQUEST
    assert named in info.value.message
    assert await sim.outbox("u1") == []
