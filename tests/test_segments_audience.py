"""Segments and chosen people as campaign audiences (issue 21), on SQLite and PostgreSQL.

A segment is read when the campaign starts (people who joined it after it was saved are
sent to), the preview counts what the start snapshots, chosen people are PSIDs, and a
segment a campaign waits on cannot be deleted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from factories import ADMIN_ACTOR, connected_page, postgresql_only
from pagecast.db import Database
from pagecast.models import Campaign, Contact, Delivery, DeliveryStatus, Role, utcnow
from pagecast.security import Vault
from pagecast.services import sending, snapshots


@pytest.fixture
async def manager(api: Any) -> httpx.AsyncClient:
    return await api(Role.MANAGER)


@pytest.fixture
async def page_id(db: Database, vault: Vault) -> int:
    return (await connected_page(db, vault)).id


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


async def add(
    client: httpx.AsyncClient, page: int, psid: str, *tags: str, seen: datetime | None = None
) -> None:
    body: dict[str, Any] = {"psid": psid, "first_name": f"P{psid}", "tags": list(tags)}
    body["last_inbound_at"] = _iso(seen or utcnow() - timedelta(hours=1))
    answer = await client.post(f"/api/pages/{page}/contacts", json=body)
    assert answer.status_code == 201, answer.text


async def create_campaign(client: httpx.AsyncClient, page: int, audience: dict[str, Any]) -> int:
    body = {"name": "Sale", "page_id": page, "content": {"text": "Hi"}, "audience": audience}
    answer = await client.post("/api/campaigns", json=body)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


async def start(db: Database, campaign_id: int, now: datetime | None = None) -> None:
    async with db.transaction() as session:
        await sending.start(session, ADMIN_ACTOR, campaign_id, now=now)


async def recipients(db: Database, campaign_id: int) -> dict[str, str]:
    """The snapshot: each delivery's PSID and status."""
    async with db.transaction() as session:
        rows = await session.execute(
            select(Contact.psid, Delivery.status)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Delivery.campaign_id == campaign_id)
        )
        return {psid: status.value for psid, status in rows}


async def make_segment(client: httpx.AsyncClient, page: int, name: str, **chosen: Any) -> int:
    answer = await client.post(f"/api/pages/{page}/segments", json={"name": name, "filter": chosen})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


async def test_a_segment_is_evaluated_when_the_campaign_starts(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    await add(manager, page_id, "11", "vip")
    await add(manager, page_id, "12", "news")
    segment = await make_segment(manager, page_id, "VIPs", tags_any=["vip"])
    campaign_id = await create_campaign(
        manager, page_id, {"type": "segment", "segment_id": segment}
    )
    await add(manager, page_id, "13", "vip")  # joins the segment after the campaign was saved
    before = (await manager.get(f"/api/campaigns/{campaign_id}/audience")).json()
    assert (before["total"], before["eligible"]) == (2, 2)

    await start(db, campaign_id)
    assert await recipients(db, campaign_id) == {"11": "pending", "13": "pending"}
    await add(manager, page_id, "14", "vip")  # after the start: not in this campaign
    edited = await manager.patch(
        f"/api/segments/{segment}", json={"filter": {"tags_any": ["news"]}}
    )
    assert edited.status_code == 200, edited.text
    async with db.transaction() as session:
        kept = (await session.get(Campaign, campaign_id)).audience  # type: ignore[union-attr]
    assert kept["filter"] == {"tags_any": ["vip"]} and kept["name"] == "VIPs"  # its own copy
    assert set(await recipients(db, campaign_id)) == {"11", "13"}


async def test_the_preview_counts_what_the_start_snapshots(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    now = utcnow()
    await add(manager, page_id, "21", "vip", "gold")
    await add(manager, page_id, "22", "vip", seen=now - timedelta(days=3))  # outside the window
    await add(manager, page_id, "23", "gold")
    await add(manager, page_id, "24", "vip", "gold", "stop")
    segment = await make_segment(
        manager, page_id, "Gold VIPs", tags_all=["vip", "gold"], tags_none=["stop"]
    )
    wide = await make_segment(manager, page_id, "All VIPs", tags_any=["vip"])
    listed = (await manager.get(f"/api/pages/{page_id}/segments")).json()["items"]
    assert [(s["name"], s["count"]) for s in listed] == [("All VIPs", 3), ("Gold VIPs", 1)]
    for chosen in (segment, wide):
        campaign_id = await create_campaign(
            manager, page_id, {"type": "segment", "segment_id": chosen}
        )
        preview = (await manager.get(f"/api/campaigns/{campaign_id}/audience")).json()
        await start(db, campaign_id, now=now)
        snapshot = await recipients(db, campaign_id)
        assert preview["total"] == len(snapshot)
        assert preview["eligible"] == sum(s == "pending" for s in snapshot.values())
    assert snapshot == {"21": "pending", "22": "skipped", "24": "pending"}


async def test_a_tags_audience_can_need_all_of_its_tags(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    await add(manager, page_id, "31", "vip", "gold")
    await add(manager, page_id, "32", "vip")
    audience = {"type": "tags", "include": ["vip", "gold"], "match": "all"}
    campaign_id = await create_campaign(manager, page_id, audience)
    await start(db, campaign_id)
    assert await recipients(db, campaign_id) == {"31": "pending"}


async def test_chosen_people_are_given_by_psid(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    for psid in ("41", "42", "43"):
        await add(manager, page_id, psid)
    audience = {"type": "contacts", "psids": ["41", "43", "43"]}
    campaign_id = await create_campaign(manager, page_id, audience)
    shown = (await manager.get(f"/api/campaigns/{campaign_id}")).json()["audience"]
    assert shown == {"type": "contacts", "psids": ["41", "43"]}
    await start(db, campaign_id)
    assert await recipients(db, campaign_id) == {"41": "pending", "43": "pending"}


async def test_unknown_psids_are_refused_naming_a_few_and_how_many(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    await add(manager, page_id, "51")
    unknown = [str(9000 + i) for i in range(12)]
    body = {
        "name": "Sale",
        "page_id": page_id,
        "content": {"text": "Hi"},
        "audience": {"type": "contacts", "psids": ["51", *unknown]},
    }
    answer = await manager.post("/api/campaigns", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == "audience.psids"
    assert error["message"].startswith(f"12 PSIDs are not contacts of Page {page_id}: 9000, 9001")
    assert "9009 and 2 more" in error["message"] and "9010" not in error["message"]
    bad = await manager.post(
        "/api/campaigns", json=body | {"audience": {"type": "contacts", "psids": ["12a"]}}
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "audience.psids[0]"
    assert "not a Page-scoped id" in bad.text
    async with db.transaction() as session:
        assert (await session.scalars(select(Campaign))).first() is None


async def test_a_segment_a_draft_waits_on_cannot_be_deleted(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    await add(manager, page_id, "61", "vip")
    segment = await make_segment(manager, page_id, "VIPs", tags_any=["vip"])
    campaign_id = await create_campaign(
        manager, page_id, {"type": "segment", "segment_id": segment}
    )
    refused = await manager.delete(f"/api/segments/{segment}")
    assert refused.status_code == 409, refused.text
    assert f"campaign {campaign_id} (Sale)" in refused.json()["error"]["message"]
    await start(db, campaign_id)  # the campaign now has its own copy of the filter
    assert (await manager.delete(f"/api/segments/{segment}")).status_code == 204
    assert (await manager.get(f"/api/segments/{segment}")).status_code == 404
    duplicate = await manager.post(f"/api/campaigns/{campaign_id}/duplicate")
    assert duplicate.status_code == 201, duplicate.text
    assert duplicate.json()["audience"] == {"type": "segment", "segment_id": segment}
    preview = await manager.get(f"/api/campaigns/{duplicate.json()['id']}/audience")
    assert preview.status_code == 422 and "is not a segment of Page" in preview.text


async def test_segment_input_is_checked_and_names_are_unique_per_page(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    first = await make_segment(manager, page_id, "VIPs", tags_any=["vip"])
    again = await manager.post(f"/api/pages/{page_id}/segments", json={"name": "VIPs"})
    assert again.status_code == 409 and "already has a segment named 'VIPs'" in again.text
    wrong = await manager.post(
        f"/api/pages/{page_id}/segments", json={"name": "x", "filter": {"window": "sometimes"}}
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "filter.window"
    other = await manager.post(
        "/api/campaigns",
        json={
            "name": "Sale",
            "page_id": page_id,
            "content": {"text": "Hi"},
            "audience": {"type": "segment", "segment_id": 999},
        },
    )
    assert other.status_code == 422 and other.json()["error"]["field"] == "audience.segment_id"
    assert (await manager.get("/api/pages/999/segments")).status_code == 404
    assert (await manager.patch("/api/segments/999", json={"name": "y"})).status_code == 404
    # Renamed to a name the Page already uses: a 409 naming it, and the segment unchanged.
    second = await make_segment(manager, page_id, "Regulars", tags_any=["regular"])
    taken = await manager.patch(f"/api/segments/{second}", json={"name": "VIPs"})
    assert taken.status_code == 409 and "already has a segment named 'VIPs'" in taken.text
    assert (await manager.get(f"/api/segments/{second}")).json()["name"] == "Regulars"
    # A flag is JSON's true or false, as the schema says: 0 is refused naming it.
    zero = await manager.patch(f"/api/segments/{first}", json={"filter": {"is_tester": 0}})
    assert zero.status_code == 422 and zero.json()["error"]["field"] == "filter.is_tester"


async def test_a_filter_audience_is_the_contacts_list_filter_at_the_start(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    await add(manager, page_id, "71", "vip")
    await add(manager, page_id, "72", "vip", seen=utcnow() - timedelta(days=2))
    audience = {"type": "filter", "filter": {"tags_any": ["vip"], "window": "inside"}}
    campaign_id = await create_campaign(manager, page_id, audience)
    await start(db, campaign_id)
    assert await recipients(db, campaign_id) == {"71": DeliveryStatus.PENDING.value}


async def test_a_scheduled_start_refused_leaves_the_segment_to_be_read_again(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    """A scheduled start that sends to nobody keeps the campaign scheduled; the segment is
    read again, with its filter of then, when it does start."""
    now = utcnow()
    await add(manager, page_id, "81", "vip", seen=now - timedelta(days=3))  # outside the window
    await add(manager, page_id, "82", "news")
    segment = await make_segment(manager, page_id, "VIPs", tags_any=["vip"])
    body = {
        "name": "Sale",
        "page_id": page_id,
        "content": {"text": "Hi"},
        "audience": {"type": "segment", "segment_id": segment},
        "scheduled_at": _iso(now + timedelta(hours=1)),
    }
    answer = await manager.post("/api/campaigns", json=body)
    assert answer.status_code == 201, answer.text
    campaign_id = int(answer.json()["id"])
    async with db.transaction() as session:
        await sending.schedule(session, ADMIN_ACTOR, campaign_id, now=now)
    async with db.transaction() as session:
        started = await sending.start_scheduled(
            session, campaign_id, now=now + timedelta(hours=1), max_lateness_s=600
        )
    assert started is None  # nobody in the segment can be messaged: it stays scheduled
    async with db.transaction() as session:
        kept = await session.get(Campaign, campaign_id)
        assert kept is not None and kept.status_reason and "as_of" not in kept.audience
    edited = await manager.patch(
        f"/api/segments/{segment}", json={"filter": {"tags_any": ["news"]}}
    )
    assert edited.status_code == 200, edited.text
    await start(db, campaign_id, now=now + timedelta(hours=1, minutes=5))
    assert await recipients(db, campaign_id) == {"82": "pending"}


async def test_more_chosen_psids_than_a_statement_can_bind(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    """33,000 chosen people: more than asyncpg binds in one statement (32,767); the preview
    and the start write the list into the SQL instead."""
    many = 33_000
    psids = [str(10**9 + i) for i in range(many)]
    seen = utcnow() - timedelta(hours=1)
    async with db.transaction() as session:
        await session.execute(
            insert(Contact),
            [{"page_id": page_id, "psid": psid, "last_inbound_at": seen} for psid in psids],
        )
    campaign_id = await create_campaign(manager, page_id, {"type": "contacts", "psids": psids})
    preview = await manager.get(f"/api/campaigns/{campaign_id}/audience")
    assert preview.status_code == 200, preview.text[:300]
    assert (preview.json()["total"], preview.json()["eligible"]) == (many, many)
    await start(db, campaign_id)
    async with db.transaction() as session:
        count = select(func.count()).where(Delivery.campaign_id == campaign_id)
        assert await session.scalar(count) == many


async def test_a_paused_campaign_is_edited_after_its_segment_was_deleted(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    """A started campaign keeps its copy of the segment: deleting the segment does not stop
    a paused campaign's message from being corrected."""
    await add(manager, page_id, "91", "vip")
    segment = await make_segment(manager, page_id, "VIPs", tags_any=["vip"])
    campaign_id = await create_campaign(
        manager, page_id, {"type": "segment", "segment_id": segment}
    )
    await start(db, campaign_id)
    async with db.transaction() as session:
        await sending.pause(session, ADMIN_ACTOR, campaign_id)
    assert (await manager.delete(f"/api/segments/{segment}")).status_code == 204
    edited = await manager.patch(f"/api/campaigns/{campaign_id}", json={"content": {"text": "Hey"}})
    assert edited.status_code == 200, edited.text
    assert edited.json()["audience"]["filter"] == {"tags_any": ["vip"]}


async def test_the_composer_shows_an_audience_saved_by_ids_as_psids(
    manager: httpx.AsyncClient, page_id: int, db: Database, app: Any
) -> None:
    """A draft whose chosen people were saved by internal id (the older form) opens in the
    composer with their PSIDs, so saving it again keeps them."""
    from factories import create_user, session_cookie
    from pagecast.web.deps import SESSION_COOKIE

    for psid in ("95", "96", "97"):
        await add(manager, page_id, psid)
    async with db.transaction() as session:
        ids = {psid: i for psid, i in await session.execute(select(Contact.psid, Contact.id))}
    campaign_id = await create_campaign(
        manager, page_id, {"type": "contacts", "ids": [ids["97"], ids["95"]]}
    )
    user, _ = await create_user(db, Role.MANAGER, email="composer@example.com")
    cookie = await session_cookie(db, user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://pagecast.test",
        cookies={SESSION_COOKIE: cookie},
    ) as browser:
        page = await browser.get(f"/campaigns/{campaign_id}/edit")
    assert page.status_code == 200, page.text[:300]
    assert 'autocomplete="off">95\n97</textarea>' in page.text


@postgresql_only
async def test_a_later_snapshot_slice_reads_the_copy_made_at_the_start(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    """A large audience on PostgreSQL is inserted in slices after the start: a slice written
    after the segment was edited still selects who the segment held at the start."""
    now = utcnow()
    many = 2 * snapshots.SNAPSHOT_FIRST + 200  # half of them inside the window
    async with db.transaction() as session:
        await session.execute(
            insert(Contact),
            [
                {
                    "page_id": page_id,
                    "psid": str(1000 + i),
                    "last_inbound_at": now - (timedelta(hours=1) if i % 2 else timedelta(days=3)),
                }
                for i in range(many)
            ],
        )
    segment = await make_segment(manager, page_id, "Inside", window="inside")
    campaign_id = await create_campaign(
        manager, page_id, {"type": "segment", "segment_id": segment}
    )
    async with db.transaction() as session:
        _, rest = await sending.start_sliced(session, ADMIN_ACTOR, campaign_id)
    assert rest is not None
    edited = await manager.patch(f"/api/segments/{segment}", json={"filter": {}})
    assert edited.status_code == 200, edited.text
    async with db.transaction() as session:
        await snapshots.insert_slice(session, campaign_id, after=rest.after, upto=rest.upto)
    sent_to = await recipients(db, campaign_id)
    assert len(sent_to) == many // 2 and set(sent_to.values()) == {"pending"}
