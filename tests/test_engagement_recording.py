# ruff: noqa: F811  (the fixtures imported from test_webhooks are parameters here)
"""Clicks and replies (services/engagement.py): a postback or a quick reply is a click, any
other message from the person a reply, each recorded once on the person's most recent
delivery sent in the 24 hours before it, whatever the order or the number of times the
events arrive; the campaign's counts show them (API, CLI).

The campaign test runs the whole pipeline: the simulator's `engagement` knob makes people
click and reply, and its webhooks reach the app on a loopback port. The rule tests post
Facebook's events to the app themselves (processed inline) with chosen times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from pagecast.db import Database
from pagecast.models import Campaign, Contact, Delivery, DeliveryStatus, utcnow
from pagecast.services import deliveries, engagement, variants
from pagecast.settings import Settings
from test_receipts import claimed_campaign, write_results
from test_sending import (
    PAGE,
    RunningWorker,
    add_people,
    deliveries_by_psid,
    new_campaign,
    setup_page,
    wait_for,
)
from test_webhooks import (  # noqa: F401  (fixtures)
    LoopbackApp,
    _engine_settings,
    engine,
    envelope,
    hook,
    hook_settings,
    inline_app,
    people_admin,
    point_simulator,
    post,
    until,
)

BUTTONS = {
    "text": "Big Sale for {{first_name|you}}",
    "buttons": [
        {"type": "web_url", "title": "Shop", "url": "https://example.com/sale"},
        {"type": "postback", "title": "Tell me more", "payload": "SALE_MORE"},
    ],
}
QUICK = {
    "text": "Pick a colour",
    "quick_replies": [
        {"title": "Red", "payload": "RED"},
        {"title": "Blue", "payload": "BLUE"},
    ],
}


async def engaged(client: httpx.AsyncClient, campaign_id: int) -> dict[str, int]:
    body = (await client.get(f"/api/campaigns/{campaign_id}")).json()
    return body["engagement"]  # type: ignore[no-any-return]


async def advance(sim: httpx.AsyncClient, seconds: float) -> None:
    assert (await sim.post("/__sim/clock/advance", json={"seconds": seconds})).status_code == 200


async def test_people_who_click_and_reply_are_counted_on_the_campaign_they_answer(
    people_admin: httpx.AsyncClient,
    engine: Any,
    sim: httpx.AsyncClient,
    engine_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(people_admin, sim)
    psids = await add_people(sim, people_admin, page_id, 4)
    sale = await new_campaign(people_admin, page_id, content=BUTTONS)
    colour = await new_campaign(people_admin, page_id, name="Colour", content=QUICK)
    async with LoopbackApp(engine) as url:
        await point_simulator(
            sim,
            url,
            p_read=0.0,
            engagement=[
                {"match": "Sale", "p_click": 1.0},
                {"match": "colour", "p_click": 1.0, "p_reply": 1.0, "reply_text": "Nice"},
            ],
            click_delay=[30, 30],
            reply_delay=[40, 40],
        )
        async with RunningWorker(engine_settings, db):
            assert (await people_admin.post(f"/api/campaigns/{sale}/start")).status_code == 202
            await wait_for(people_admin, sale, {"completed"})
            assert await engaged(people_admin, sale) == {"clicked": 0, "replied": 0}
            await advance(sim, 35)  # the clicks fall due on Facebook's clock

            async def all_clicked() -> bool:
                return (await engaged(people_admin, sale))["clicked"] == 4

            await until(all_clicked)
            assert (await people_admin.post(f"/api/campaigns/{colour}/start")).status_code == 202
            await wait_for(people_admin, colour, {"completed"})
            await advance(sim, 35)  # the quick replies (30 s after the send)

            async def all_picked() -> bool:
                return await engaged(people_admin, colour) == {"clicked": 4, "replied": 0}

            await until(all_picked)
            await advance(sim, 10)  # then the replies (40 s)

            async def all_answered() -> bool:
                return await engaged(people_admin, colour) == {"clicked": 4, "replied": 4}

            await until(all_answered)
    # The replies went to the most recent message (Colour), not to the Sale.
    assert await engaged(people_admin, sale) == {"clicked": 4, "replied": 0}
    rows = await deliveries_by_psid(db, sale)
    later = await deliveries_by_psid(db, colour)
    for psid in psids:
        assert rows[psid].clicked_at is not None and rows[psid].replied_at is None
        assert later[psid].clicked_at is not None and later[psid].replied_at is not None
        assert later[psid].clicked_at < later[psid].replied_at  # type: ignore[operator]
        assert rows[psid].clicked_at < later[psid].sent_at  # type: ignore[operator]


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def postback(psid: str, at: datetime, mid: str, payload: str = "SALE_MORE") -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": PAGE},
        "timestamp": ms(at),
        "postback": {"mid": mid, "title": "Tell me more", "payload": payload},
    }


def message(psid: str, at: datetime, mid: str, **extra: Any) -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": PAGE},
        "timestamp": ms(at),
        "message": {"mid": mid, "text": "Red"} | extra,
    }


def same(a: datetime | None, b: datetime) -> bool:
    """The stored time is `b` (SQLite gives it back without a zone)."""
    assert a is not None
    return abs(a.replace(tzinfo=UTC) - b) < timedelta(milliseconds=1)


async def test_the_first_click_and_reply_within_24_hours_are_kept_once(
    people_admin: httpx.AsyncClient, hook: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    campaign_id, (a, b, c, d, e), rows = await claimed_campaign(people_admin, sim, db, 5)
    sent = utcnow() - timedelta(hours=30)
    await write_results(
        db,
        campaign_id,
        [
            deliveries.Outcome(rows[p].id, DeliveryStatus.SENT, message_id=f"m_{p}", sent_at=sent)
            for p in (a, b, c, d, e)
        ],
        now=sent,
    )
    click_a = sent + timedelta(minutes=1)
    events = [
        postback(a, click_a, "m_click_a"),
        postback(a, click_a, "m_click_a"),  # the same event twice in one body
        message(b, sent + timedelta(hours=2), "m_reply_b", text="When does it end?"),
        message(c, sent + timedelta(minutes=5), "m_quick_c", quick_reply={"payload": "RED"}),
        postback(d, sent + timedelta(hours=25), "m_late_d"),  # more than 24 h after the send
        postback(e, sent - timedelta(minutes=1), "m_early_e"),  # before the send
        # Someone Pagecast never messaged: a contact, no engagement anywhere.
        message("77777", sent + timedelta(minutes=3), "m_stranger"),
        # The Page's own echo of a message is not a reply.
        {
            "sender": {"id": PAGE},
            "recipient": {"id": b},
            "timestamp": ms(sent + timedelta(minutes=2)),
            "message": {"is_echo": True, "mid": "m_page_echo", "text": "Hello"},
        },
    ]
    assert (await post(hook, envelope(*events))).status_code == 200
    # Redelivered, and a later click and reply of a who clicked already: the first time stays.
    assert (await post(hook, envelope(events[0]))).status_code == 200
    later = [
        postback(a, click_a + timedelta(minutes=9), "m_click_a2"),
        message(b, sent + timedelta(hours=1), "m_reply_b_earlier_arriving_late"),
    ]
    assert (await post(hook, envelope(*later))).status_code == 200
    got = await deliveries_by_psid(db, campaign_id)
    assert same(got[a].clicked_at, click_a) and got[a].replied_at is None
    assert got[b].clicked_at is None and same(got[b].replied_at, sent + timedelta(hours=2))
    assert same(got[c].clicked_at, sent + timedelta(minutes=5)) and got[c].replied_at is None
    for psid in (d, e):
        assert (got[psid].clicked_at, got[psid].replied_at) == (None, None)
    assert await engaged(people_admin, campaign_id) == {"clicked": 2, "replied": 1}
    async with db.transaction() as session:
        stranger = await session.scalar(select(Contact).where(Contact.psid == "77777"))
        assert stranger is not None
        assert (
            await session.scalar(select(Delivery).where(Delivery.contact_id == stranger.id)) is None
        )


async def test_the_most_recent_send_of_the_person_gets_the_click(
    people_admin: httpx.AsyncClient, hook: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    """Two campaigns reached the person (hours apart): a click after both counts for the
    second one only; a click between them for the first one."""
    first, (a,), rows = await claimed_campaign(people_admin, sim, db, 1)
    early = utcnow() - timedelta(hours=5)
    await write_results(
        db, first, [deliveries.Outcome(rows[a].id, DeliveryStatus.SENT, sent_at=early)], now=early
    )
    page_id = (await people_admin.get(f"/api/campaigns/{first}")).json()["page_id"]
    second = await new_campaign(people_admin, page_id, name="Second")
    assert (await people_admin.post(f"/api/campaigns/{second}/start")).status_code == 202
    [row] = (await deliveries_by_psid(db, second)).values()
    async with db.transaction() as session:
        [claimed] = await deliveries.claim(
            session, second, row.id, row.id, worker_id="w:1:alive", now=utcnow()
        )
    recent = utcnow() - timedelta(hours=1)
    await write_results(
        db,
        second,
        [deliveries.Outcome(claimed.delivery_id, DeliveryStatus.SENT, sent_at=recent)],
        now=recent,
    )
    between, after = early + timedelta(hours=1), recent + timedelta(minutes=10)
    await post(hook, envelope(postback(a, after, "m_after")))
    await post(hook, envelope(postback(a, between, "m_between")))
    assert same((await deliveries_by_psid(db, second))[a].clicked_at, after)
    assert same((await deliveries_by_psid(db, first))[a].clicked_at, between)


def test_what_counts_as_a_click_or_a_reply() -> None:
    assert engagement.kind_of("postback", {"postback": {}}) == engagement.CLICK
    assert engagement.kind_of("message", {"message": {"quick_reply": {"payload": "X"}}}) == (
        engagement.CLICK
    )
    assert engagement.kind_of("message", {"message": {"text": "hi"}}) == engagement.REPLY
    assert engagement.kind_of("message", {"message": {"text": "hi"}, "standby": True}) is None
    for other in ("reaction", "referral", "optin", "echo", "read", "delivery"):
        assert engagement.kind_of(other, {}) is None


async def test_stop_is_no_reply_and_a_far_future_time_is_clamped(
    people_admin: httpx.AsyncClient, hook: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    """An opt-out keyword is not counted as a reply; an event dated in year 9999 is recorded
    at the time it arrived (as its window is) and does not fail its batch."""
    campaign_id, (a, b, c), rows = await claimed_campaign(people_admin, sim, db, 3)
    sent = utcnow() - timedelta(hours=1)
    await write_results(
        db,
        campaign_id,
        [
            deliveries.Outcome(rows[p].id, DeliveryStatus.SENT, message_id=f"m_{p}", sent_at=sent)
            for p in (a, b, c)
        ],
        now=sent,
    )
    future = message(b, sent, "m_future", text="Hello from the future")
    future["timestamp"] = ms(datetime(9999, 12, 31, tzinfo=UTC))
    events = [
        message(a, sent + timedelta(minutes=5), "m_stop", text="stop"),
        future,
        message(c, sent + timedelta(minutes=7), "m_reply_c", text="Thanks"),
    ]
    before = utcnow()
    assert (await post(hook, envelope(*events))).status_code == 200
    got = await deliveries_by_psid(db, campaign_id)
    assert got[a].replied_at is None
    assert got[b].replied_at is not None
    assert before - timedelta(seconds=1) <= got[b].replied_at.replace(tzinfo=UTC) <= utcnow()
    assert same(got[c].replied_at, sent + timedelta(minutes=7))
    assert await engaged(people_admin, campaign_id) == {"clicked": 0, "replied": 2}


async def test_the_holdouts_replies_follow_the_variants_rule(
    people_admin: httpx.AsyncClient, hook: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    """A person of the holdout replied when they wrote a reply (not a click) within 24 hours
    of the campaign's start, as if it had sent them its message then."""
    page_id = await setup_page(people_admin, sim)
    await add_people(sim, people_admin, page_id, 40)
    two = [{"key": k, "content": {"text": f"Offer {k}"}} for k in "AB"]
    experiment = {"test_percent": 20, "holdout_percent": 50}
    campaign_id = await new_campaign(
        people_admin, page_id, content=None, variants=two, experiment=experiment
    )
    assert (await people_admin.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    rows = await deliveries_by_psid(db, campaign_id)
    held = sorted(p for p, d in rows.items() if d.reason == variants.HOLDOUT)
    assert len(held) >= 5, held
    start = utcnow() - timedelta(hours=30)
    async with db.transaction() as session:
        await session.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(started_at=start)
        )
    events = [
        message(held[0], start + timedelta(hours=1), "m_h0", text="Tell me more"),
        message(held[1], start + timedelta(hours=25), "m_h1", text="Too late"),
        message(held[2], start + timedelta(hours=2), "m_h2", quick_reply={"payload": "RED"}),
        message(held[3], start - timedelta(hours=1), "m_h3", text="Before the start"),
        message(held[4], start + timedelta(hours=3), "m_h4", text="STOP"),
    ]
    assert (await post(hook, envelope(*events))).status_code == 200
    holdout = (await people_admin.get(f"/api/campaigns/{campaign_id}")).json()["experiment"][
        "holdout"
    ]
    assert (holdout["size"], holdout["replied"]) == (len(held), 1), holdout
