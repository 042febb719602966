"""Message sequences (issue 19): up to 3 messages per campaign, sent in order to each person,
one delivery per person, exactly once as a whole.

The API's `messages` field and its refusals, then the engine end to end: API start → queue
(real Redis) → worker → the Graph simulator through the real Graph client, on both database
backends. What "Facebook" got is read from the simulator's outbox and call log.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

import httpx
import pytest
from sqlalchemy import update

import test_sending
from factories import connected_page
from pagecast.db import Database
from pagecast.models import Delivery, DeliveryStatus, Role
from pagecast.security import Vault
from pagecast.settings import Settings
from test_sending import (
    PAGE,
    RunningWorker,
    add_people,
    deliveries_by_psid,
    new_campaign,
    outbox,
    setup_page,
    wait_for,
)

# The fixtures of test_sending (an app with a worker's settings, an admin and a manager).
sending_settings = test_sending.sending_settings
engine_app = test_sending.engine_app
admin = test_sending.admin
manager = test_sending.manager

IMAGE = {"attachment": {"type": "image", "url": "https://example.com/sale.png"}}
BUTTONS = {
    "text": "Hi {{first_name|there}}, 20% off today",
    "buttons": [{"type": "web_url", "title": "Shop", "url": "https://example.com/shop"}],
}
CLOSING = {"text": "Reply STOP to opt out"}
SEQUENCE = [IMAGE, BUTTONS, CLOSING]


def by_person(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The outbox's messages of each person, in the order Facebook accepted them."""
    got: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        got[message["psid"]].append(message)
    return got


def part_of(message: dict[str, Any]) -> str:
    """Which of SEQUENCE an outbox message is: image, buttons or closing."""
    body = message["message"]
    if body.get("attachment", {}).get("type") == "image":
        return "image"
    if body.get("attachment", {}).get("type") == "template":
        return "buttons"
    return "closing" if body.get("text") == CLOSING["text"] else "other"


def metadata_of(delivery_id: int, parts: int) -> list[str]:
    """The metadata of a delivery's messages: `<id>:<k>` while more follow, `<id>` last."""
    return [f"{delivery_id}:{k}" for k in range(1, parts)] + [str(delivery_id)]


async def send_calls(sim: httpx.AsyncClient, psid: str) -> list[dict[str, Any]]:
    calls = (await sim.get("/__sim/calls", params={"page_id": PAGE})).json()["calls"]
    return [c for c in calls if c["path"].endswith("/me/messages") and c["psid"] == psid]


# ------------------------------------------------------------------ the API


async def test_a_sequence_is_saved_and_read_as_messages_with_content_its_first(
    api: Any, db: Database, vault: Vault
) -> None:
    manager = await api(Role.MANAGER)
    page = await connected_page(db, vault)
    created = await manager.post(
        "/api/campaigns", json={"name": "Launch", "page_id": page.id, "messages": SEQUENCE}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["messages"] == SEQUENCE and body["content"] == IMAGE
    read = (await manager.get(f"/api/campaigns/{body['id']}")).json()
    assert read["messages"] == SEQUENCE and read["content"] == IMAGE
    # A single message reads as a list of one; `messages` with one is just that.
    single = await manager.post(
        "/api/campaigns", json={"name": "One", "page_id": page.id, "messages": [CLOSING]}
    )
    assert single.status_code == 201, single.text
    assert single.json()["messages"] == [CLOSING] and single.json()["content"] == CLOSING
    # PATCH: messages replace the sequence, content turns it into one message.
    two = await manager.patch(f"/api/campaigns/{body['id']}", json={"messages": [BUTTONS, CLOSING]})
    assert two.status_code == 200, two.text
    assert two.json()["messages"] == [BUTTONS, CLOSING] and two.json()["content"] == BUTTONS
    renamed = await manager.patch(f"/api/campaigns/{body['id']}", json={"name": "Renamed"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["messages"] == [BUTTONS, CLOSING]
    one = await manager.patch(f"/api/campaigns/{body['id']}", json={"content": IMAGE})
    assert one.status_code == 200, one.text
    assert one.json()["messages"] == [IMAGE] and one.json()["content"] == IMAGE


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            {"content": CLOSING, "messages": [IMAGE]},
            "content",
            "content and messages: give only one",
        ),
        ({"messages": [IMAGE, BUTTONS, CLOSING, CLOSING]}, "messages", "at most 3"),
        ({"messages": []}, "messages", "at least 1"),
        ({"messages": [IMAGE, {"text": "x" * 2001}]}, "messages[1].text", "2,001"),
        ({"messages": [IMAGE, {"text": "Hi {{city}}"}]}, "messages[1].text", "{{city}}"),
        (
            {"messages": [IMAGE, {"text": "a", "attachment": IMAGE["attachment"]}]},
            "messages[1]",
            "",
        ),
    ],
    ids=["with-content", "four", "none", "too-long", "unknown-placeholder", "bad-message"],
)
async def test_a_bad_sequence_is_refused_naming_the_field_and_saves_nothing(
    api: Any,
    db: Database,
    vault: Vault,
    body: dict[str, Any],
    field: str,
    words: str,
) -> None:
    manager = await api(Role.MANAGER)
    page = await connected_page(db, vault)
    answer = await manager.post("/api/campaigns", json={"name": "Bad", "page_id": page.id} | body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"].startswith(field) and words in error["message"], error
    assert (await manager.get("/api/campaigns")).json()["items"] == []


async def test_a_template_campaign_takes_no_messages(api: Any, db: Database, vault: Vault) -> None:
    manager = await api(Role.MANAGER)
    page = await connected_page(db, vault)
    template = await manager.post("/api/templates", json={"name": "T", "content": CLOSING})
    assert template.status_code == 201, template.text
    answer = await manager.post(
        "/api/campaigns",
        json={
            "name": "Both",
            "page_id": page.id,
            "template_id": template.json()["id"],
            "messages": [IMAGE, CLOSING],
        },
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["message"].startswith("messages and template_id:")
    # Made with the template alone, it answers no messages of its own (docs/sending.md).
    made = await manager.post(
        "/api/campaigns",
        json={"name": "T", "page_id": page.id, "template_id": template.json()["id"]},
    )
    assert made.status_code == 201, made.text
    assert made.json()["messages"] == [] and made.json()["content"] is None
    assert made.json()["template_id"] == template.json()["id"]


# ------------------------------------------------------------------ the engine


@pytest.mark.parametrize(
    ("parts", "batch"),
    [(2, 1), (3, 1), (3, 50)],
    ids=["two-parts", "three-parts", "three-parts-graph-batches"],
)
async def test_every_person_gets_every_message_of_the_sequence_once_in_order(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
    parts: int,
    batch: int,
) -> None:
    sending_settings = sending_settings.model_copy(update={"send_batch_size": batch})
    page_id = await setup_page(admin, sim)
    people = await add_people(sim, manager, page_id, 30)
    sequence = SEQUENCE[-parts:] if parts == 2 else SEQUENCE
    campaign_id = await new_campaign(manager, page_id, content=None, messages=sequence)
    started = await manager.post(f"/api/campaigns/{campaign_id}/start")
    assert started.status_code == 202, started.text
    assert started.json()["counts"]["pending"] == 30  # one delivery per person
    async with RunningWorker(sending_settings, db):
        done = await wait_for(manager, campaign_id, {"completed"})
    assert done["counts"]["sent"] == 30 and done["counts"]["total"] == 30
    rows = await deliveries_by_psid(db, campaign_id)
    got = by_person(await outbox(sim))
    expected = [part_of({"message": m, "psid": ""}) for m in _wire(sequence)]
    assert sorted(got) == sorted(people)
    for psid in people:
        assert [part_of(m) for m in got[psid]] == expected, psid
        assert [m["metadata"] for m in got[psid]] == metadata_of(rows[psid].id, parts)
        # Sent once its last message was accepted: that one's mid, and every part counted.
        assert rows[psid].status is DeliveryStatus.SENT
        assert rows[psid].message_id == got[psid][-1]["mid"]
        assert rows[psid].parts_sent == parts and rows[psid].attempts == 1
    first = got[people[0]]
    assert any("P" + people[0] in str(m["message"]) for m in first)  # personalised


def _wire(sequence: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What each message of `sequence` looks like on the wire, enough for `part_of`."""
    return [
        {"attachment": {"type": "template"}}
        if m.get("buttons")
        else {"attachment": m["attachment"]}
        if "attachment" in m
        else {"text": m["text"]}
        for m in sequence
    ]


async def test_a_message_failing_for_a_moment_is_retried_from_that_message_only(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    unlucky, fine = await add_people(sim, manager, page_id, 2)
    # The first message goes through, the second fails twice (code 2: try again later).
    await sim.post(
        "/__sim/script",
        json={
            "match": {"psid": unlucky},
            "responses": [{"ok": True}, {"code": 2, "http": 500, "times": 2}, {"ok": True}],
        },
    )
    campaign_id = await new_campaign(manager, page_id, content=None, messages=SEQUENCE)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    async with RunningWorker(sending_settings, db):
        await wait_for(manager, campaign_id, {"completed"})
    got = by_person(await outbox(sim))
    assert [part_of(m) for m in got[unlucky]] == ["image", "buttons", "closing"]
    assert [part_of(m) for m in got[fine]] == ["image", "buttons", "closing"]
    # Five calls: the image once, the buttons three times (two failures), the closing once.
    calls = await send_calls(sim, unlucky)
    assert [c["status"] for c in calls] == [200, 500, 500, 200, 200]
    rows = await deliveries_by_psid(db, campaign_id)
    assert (rows[unlucky].status, rows[unlucky].attempts, rows[unlucky].parts_sent) == (
        DeliveryStatus.SENT,
        3,
        3,
    )


async def test_a_permanent_failure_at_the_second_message_leaves_the_first_sent_once(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    refused, fine = await add_people(sim, manager, page_id, 2)
    await sim.post(
        "/__sim/script",
        json={
            "match": {"psid": refused},
            "responses": [{"ok": True}, {"code": 100, "message": "Invalid parameter"}],
        },
    )
    campaign_id = await new_campaign(manager, page_id, content=None, messages=SEQUENCE)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    running = RunningWorker(sending_settings, db)
    running.worker.config = dataclasses.replace(running.worker.config, sweep_seconds=0.3)
    async with running:
        done = await wait_for(manager, campaign_id, {"completed"})
    got = by_person(await outbox(sim))
    assert [part_of(m) for m in got[refused]] == ["image"]
    assert [part_of(m) for m in got[fine]] == ["image", "buttons", "closing"]
    assert len(await send_calls(sim, refused)) == 2  # never sent the image again
    rows = await deliveries_by_psid(db, campaign_id)
    row = rows[refused]
    assert (row.status, row.reason, row.error_code, row.parts_sent) == (
        DeliveryStatus.FAILED,
        "bad_request",
        100,
        1,
    )
    assert "Invalid parameter" in (row.error_message or "")
    assert (done["counts"]["sent"], done["counts"]["failed"]) == (1, 1)


async def test_a_resent_sequence_starts_after_the_messages_already_accepted(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    """A delivery put back to pending with one message accepted (a retry, a resume, a
    reconciliation) gets the other two only: the claim reads `parts_sent`."""
    page_id = await setup_page(admin, sim)
    (psid,) = await add_people(sim, manager, page_id, 1)
    campaign_id = await new_campaign(manager, page_id, content=None, messages=SEQUENCE)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    async with db.transaction() as session:
        await session.execute(
            update(Delivery).where(Delivery.campaign_id == campaign_id).values(parts_sent=1)
        )
    async with RunningWorker(sending_settings, db):
        await wait_for(manager, campaign_id, {"completed"})
    got = by_person(await outbox(sim))
    assert [part_of(m) for m in got[psid]] == ["buttons", "closing"]
    rows = await deliveries_by_psid(db, campaign_id)
    assert [m["metadata"] for m in got[psid]] == metadata_of(rows[psid].id, 3)[1:]


async def test_a_single_message_campaign_sends_as_before(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    """One message: one call per person, the delivery id alone as metadata, parts_sent 1."""
    page_id = await setup_page(admin, sim)
    people = await add_people(sim, manager, page_id, 5)
    campaign_id = await new_campaign(manager, page_id)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    async with RunningWorker(sending_settings, db):
        await wait_for(manager, campaign_id, {"completed"})
    rows = await deliveries_by_psid(db, campaign_id)
    sent = await outbox(sim)
    assert sorted(m["psid"] for m in sent) == sorted(people)
    assert {m["metadata"] for m in sent} == {str(rows[p].id) for p in people}
    assert {rows[p].parts_sent for p in people} == {1}


async def test_a_started_sequence_keeps_its_number_of_messages(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
) -> None:
    """A paused campaign's messages can be edited, not added or removed (its deliveries count
    the messages each person has had); a duplicate takes the whole sequence."""
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    campaign_id = await new_campaign(manager, page_id, content=None, messages=SEQUENCE)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    assert (await manager.post(f"/api/campaigns/{campaign_id}/pause")).status_code == 200
    for change in ({"messages": [IMAGE, BUTTONS]}, {"content": CLOSING}):
        refused = await manager.patch(f"/api/campaigns/{campaign_id}", json=change)
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["field"] == "messages" and "started with 3 message(s)" in error["message"]
    edited = [IMAGE, BUTTONS, {"text": "Last call"}]
    kept = await manager.patch(f"/api/campaigns/{campaign_id}", json={"messages": edited})
    assert kept.status_code == 200, kept.text
    assert kept.json()["messages"] == edited
    copy = await manager.post(f"/api/campaigns/{campaign_id}/duplicate")
    assert copy.status_code == 201, copy.text
    assert copy.json()["messages"] == edited and copy.json()["content"] == IMAGE


async def test_the_composer_shows_every_message_of_a_sequence_and_saves_them_all(
    app: Any, db: Database, vault: Vault
) -> None:
    """The dashboard's form holds every message of a sequence (`m2_`, `m3_` fields): saving
    it with the first message changed keeps the others as they are."""
    from factories import create_user, session_cookie
    from pagecast.web.dashboard import message_form
    from pagecast.web.deps import SESSION_COOKIE

    page = await connected_page(db, vault)
    user, raw = await create_user(db, Role.MANAGER, email="composer@example.com")
    cookie = await session_cookie(db, user)
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://t",
            headers={"Authorization": f"Bearer {raw}"},
        ) as api_client,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://t",
            cookies={SESSION_COOKIE: cookie},
        ) as browser,
    ):
        created = await api_client.post(
            "/api/campaigns", json={"name": "Steps", "page_id": page.id, "messages": SEQUENCE}
        )
        campaign_id = created.json()["id"]
        form = await browser.get(f"/campaigns/{campaign_id}/edit")
        assert "Message 3 of 3" in form.text and 'name="m3_text"' in form.text
        csrf = app.state.context.vault.csrf_token(cookie)
        saved = await browser.post(
            f"/campaigns/{campaign_id}/edit",
            data=message_form.sequence_values(SEQUENCE)
            | {"csrf_token": csrf, "name": "Steps", "page_id": str(page.id)}
            | {"message_kind": "text", "text": "New"},
        )
        assert saved.status_code == 303, saved.text
        read = (await api_client.get(f"/api/campaigns/{campaign_id}")).json()
    assert read["messages"] == [{"text": "New"}, BUTTONS, CLOSING]
