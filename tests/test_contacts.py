"""Contacts: CRUD, filters, cursor paging, and CSV import with per-row errors."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select

from factories import ADMIN_ACTOR, connected_page, import_contacts, table_counts
from pagecast.db import Database
from pagecast.message_schema import Content
from pagecast.models import Campaign, Contact, Delivery, DeliveryStatus, Role, utcnow
from pagecast.schemas import CampaignCreate, ContactCreate
from pagecast.security import Vault
from pagecast.services import campaigns, contacts, deliveries, pages, snapshot_insert


@pytest.fixture
async def manager(api: Any) -> httpx.AsyncClient:
    return await api(Role.MANAGER)


@pytest.fixture
async def page_id(db: Database, vault: Vault) -> int:
    return (await connected_page(db, vault)).id


async def _import(client: httpx.AsyncClient, page_id: int, data: bytes) -> httpx.Response:
    return await client.post(
        f"/api/pages/{page_id}/contacts/import", content=data, headers={"content-type": "text/csv"}
    )


async def test_create_get_update_delete(manager: httpx.AsyncClient, page_id: int) -> None:
    created = await manager.post(
        f"/api/pages/{page_id}/contacts", json={"psid": "123", "first_name": "Ana", "tags": ["vip"]}
    )
    assert created.status_code == 201
    contact = created.json()
    assert (contact["psid"], contact["tags"], contact["window"]) == ("123", ["vip"], "unknown")
    updated = await manager.patch(
        f"/api/contacts/{contact['id']}", json={"tags": ["new", "vip"], "opted_out": True}
    )
    assert updated.json()["tags"] == ["new", "vip"] and updated.json()["opted_out_at"] is not None
    assert (await manager.delete(f"/api/contacts/{contact['id']}")).status_code == 204
    assert (await manager.get(f"/api/contacts/{contact['id']}")).status_code == 404


async def test_psid_is_unique_per_page(
    manager: httpx.AsyncClient, page_id: int, db: Database, vault: Vault
) -> None:
    assert (
        await manager.post(f"/api/pages/{page_id}/contacts", json={"psid": "1"})
    ).status_code == 201
    again = await manager.post(f"/api/pages/{page_id}/contacts", json={"psid": "1"})
    assert again.status_code == 409 and again.json()["error"]["field"] == "psid"
    other = await connected_page(db, vault, fb_page_id="2002", name="Other")
    assert (
        await manager.post(f"/api/pages/{other.id}/contacts", json={"psid": "1"})
    ).status_code == 201


async def test_filters_and_cursor_paging(manager: httpx.AsyncClient, page_id: int) -> None:
    now = utcnow()
    for i in range(7):
        body: dict[str, Any] = {"psid": str(100 + i), "first_name": f"Person{i}"}
        if i < 3:
            body["last_inbound_at"] = (now - timedelta(hours=1)).isoformat()
        elif i < 5:
            body["last_inbound_at"] = (now - timedelta(days=3)).isoformat()
        if i % 2 == 0:
            body["tags"] = ["even"]
        assert (await manager.post(f"/api/pages/{page_id}/contacts", json=body)).status_code == 201
    url = f"/api/pages/{page_id}/contacts"

    async def psids(**params: Any) -> list[str]:
        return [c["psid"] for c in (await manager.get(url, params=params)).json()["items"]]

    assert await psids(window="inside") == ["100", "101", "102"]
    assert await psids(window="outside") == ["103", "104"]
    assert await psids(window="unknown") == ["105", "106"]
    assert await psids(tag="even") == ["100", "102", "104", "106"]
    assert await psids(q="person3") == ["103"]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await manager.get(url, params=params)).json()
        seen += [c["psid"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(100 + i) for i in range(7)]
    bad = await manager.get(url, params={"cursor": "garbage"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"


async def test_import_upserts_valid_rows_and_reports_invalid_ones(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    data = (
        b"psid,first_name,last_name,tags,last_inbound_at,favourite_colour\n"
        b"111,Ana,Silva,vip;newsletter,2026-11-20T10:00:00Z,blue\n"
        b"222,Ben,,,,\n"
        b"abc,Bad,Psid,,,\n"
        b"333,Cy,,,not-a-date,\n"
        b"222,Ben,Again,,,\n"
    )
    report = await import_contacts(manager, page_id, data)
    assert report["state"] == "completed" and report["progress"] == 1.0
    assert (report["rows"], report["imported"], report["refused"]) == (5, 2, 3)
    assert (report["created"], report["updated"]) == (2, 0)
    assert report["ignored_columns"] == ["favourite_colour"]
    errors = {(e["row"], e["column"]) for e in report["errors"]}
    assert errors == {(4, "psid"), (5, "last_inbound_at"), (6, "psid")}
    assert "already appears on row 3" in next(
        e["reason"] for e in report["errors"] if e["row"] == 6
    )
    contacts = (await manager.get(f"/api/pages/{page_id}/contacts")).json()["items"]
    ana = next(c for c in contacts if c["psid"] == "111")
    assert ana["tags"] == ["newsletter", "vip"] and ana["last_inbound_at"] == "2026-11-20T10:00:00Z"


async def test_import_is_idempotent_and_keeps_what_empty_cells_leave_out(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    first = b"psid,first_name,tags,last_inbound_at\n111,Ana,vip,2026-11-20T10:00:00Z\n"
    second = b"psid,first_name,tags,last_inbound_at\n111,,new,2026-11-19T10:00:00Z\n"
    counts = []
    for data in (first, first, second):
        report = await import_contacts(manager, page_id, data)
        counts.append((report["created"], report["updated"]))
    assert counts == [(1, 0), (0, 1), (0, 1)]
    [ana] = (await manager.get(f"/api/pages/{page_id}/contacts")).json()["items"]
    assert ana["first_name"] == "Ana"  # empty cell kept the name
    assert ana["tags"] == ["new", "vip"]  # tags are added, not replaced
    assert ana["last_inbound_at"] == "2026-11-20T10:00:00Z"  # the later time wins


async def test_import_as_multipart_upload(manager: httpx.AsyncClient, page_id: int) -> None:
    response = await manager.post(
        f"/api/pages/{page_id}/contacts/import",
        files={"file": ("people.csv", b"psid\n1\n2\n", "text/csv")},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["file_name"] == "people.csv" and job["state"] == "running"
    assert response.headers["location"] == f"/api/contacts/imports/{job['id']}"
    await manager.get("/api/contacts/imports")  # the job runs beside other requests
    while job["running"]:
        job = (await manager.get(response.headers["location"])).json()
    assert job["imported"] == 2


@pytest.mark.parametrize(
    ("data", "field", "phrase"),
    [
        (b"id,first_name\n1,Ana\n", "psid", "no `psid` column"),
        (b"psid,first_name\n1,Jos\xe9\n", "file", "not UTF-8"),
        (b"", "file", "empty"),
        (b"\n\n", "file", "empty"),
    ],
)
async def test_import_refuses_a_bad_file_and_writes_nothing(
    manager: httpx.AsyncClient,
    page_id: int,
    db: Database,
    settings: Any,
    data: bytes,
    field: str,
    phrase: str,
) -> None:
    before = await table_counts(db)
    response = await _import(manager, page_id, data)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert phrase in response.json()["error"]["message"]
    assert await table_counts(db) == before  # no job either
    assert not list((settings.data_dir / "imports").glob("*"))  # the upload is not kept


async def test_import_reports_a_5_mb_line_as_a_row_error(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    huge = "x" * (5 * 1024 * 1024)
    data = f"psid,first_name\n1,Ana\n2,{huge}\n3,Cy\n".encode()
    report = await import_contacts(manager, page_id, data)
    assert report["imported"] == 2
    assert report["errors"] == [
        {"row": 3, "column": "first_name", "reason": "is 5,242,880 characters; at most 255"}
    ]


async def test_import_into_an_unknown_page_is_a_404(manager: httpx.AsyncClient) -> None:
    assert (await _import(manager, 987654, b"psid\n1\n")).status_code == 404


async def test_import_of_many_rows_is_written_in_batches(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    rows = "".join(f"{10_000 + i},Name{i},,tag{i % 5},2026-11-20T10:00:00Z\n" for i in range(5000))
    report = await import_contacts(
        manager, page_id, f"psid,first_name,last_name,tags,last_inbound_at\n{rows}".encode()
    )
    assert (report["imported"], report["created"], report["refused"]) == (5000, 5000, 0)
    tagged = (
        await manager.get(f"/api/pages/{page_id}/contacts", params={"tag": "tag3", "limit": 500})
    ).json()
    assert len(tagged["items"]) == 500 and tagged["next_cursor"] is not None


# ------------------------------------------------ deleting a contact with deliveries
# deliveries.contact_id has no foreign key (models.Delivery): the service deletes them.


async def _campaign_with_deliveries(db: Database, page_id: int, psids: list[str]) -> list[int]:
    """Contacts (the last one outside any window) and two started campaigns of them all."""
    async with db.transaction() as session:
        for psid in psids[:-1]:
            await contacts.create(
                session,
                ADMIN_ACTOR,
                page_id,
                ContactCreate(psid=psid, last_inbound_at=utcnow() - timedelta(hours=1)),
            )
        await contacts.create(session, ADMIN_ACTOR, page_id, ContactCreate(psid=psids[-1]))
        ids = []
        for name in ("first", "second"):
            campaign = await campaigns.create(
                session,
                ADMIN_ACTOR,
                CampaignCreate(name=name, page_id=page_id, content=Content(text="Hi")),
            )
            await snapshot_insert.snapshot(session, campaign, utcnow())
            ids.append(campaign.id)
    return ids


async def _rows_and_counters(db: Database, campaign_id: int) -> tuple[Counter[str], Counter[str]]:
    async with db.transaction() as session:
        rows = Counter(
            s.value
            for s in await session.scalars(
                select(Delivery.status).where(Delivery.campaign_id == campaign_id)
            )
        )
        campaign = await session.get(Campaign, campaign_id)
    assert campaign is not None
    counters = Counter({s.value: getattr(campaign, f"n_{s.value}") for s in DeliveryStatus})
    assert campaign.n_total == rows.total()
    return rows, +counters


async def _contact_id(db: Database, psid: str) -> int:
    async with db.transaction() as session:
        found = await session.scalar(select(Contact.id).where(Contact.psid == psid))
    assert found is not None
    return found


async def test_deleting_a_contact_deletes_its_deliveries_and_their_counts(
    db: Database, page_id: int
) -> None:
    first, second = await _campaign_with_deliveries(db, page_id, ["11", "12", "13", "14"])
    claimer, now, twelve = "worker-1", utcnow(), await _contact_id(db, "12")
    async with db.transaction() as session:
        claimed = await deliveries.claim(session, first, 0, 10**9, worker_id=claimer, now=now)
        sent = next(c for c in claimed if c.contact_id == twelve)
        await deliveries.record(
            session,
            first,
            [deliveries.Outcome(sent.delivery_id, DeliveryStatus.SENT, message_id="m.12")],
            worker_id=claimer,
            now=now,
        )
    # "11" is sending in the first campaign, "12" sent, "14" skipped (no window); all pending
    # or skipped in the second.
    for psid in ("11", "12", "14"):
        contact_id = await _contact_id(db, psid)
        async with db.transaction() as session:
            await contacts.delete(session, ADMIN_ACTOR, contact_id)
        async with db.transaction() as session:
            left = await session.scalar(
                select(func.count()).where(Delivery.contact_id == contact_id)
            )
        assert left == 0
    assert await _rows_and_counters(db, first) == (Counter(sending=1), Counter(sending=1))
    assert await _rows_and_counters(db, second) == (Counter(pending=1), Counter(pending=1))


async def test_a_delivery_whose_contact_went_meanwhile_is_dropped_at_its_claim(
    db: Database, page_id: int
) -> None:
    # A contact deleted while a snapshot inserted it: the delete did not see the new row.
    first, _ = await _campaign_with_deliveries(db, page_id, ["21", "22", "23"])
    gone, kept = await _contact_id(db, "21"), await _contact_id(db, "22")
    async with db.transaction() as session:
        await session.execute(sql_delete(Contact).where(Contact.id == gone))
    async with db.transaction() as session:
        claimed = await deliveries.claim(session, first, 0, 10**9, worker_id="w", now=utcnow())
    assert [c.contact_id for c in claimed] == [kept]
    rows, counters = await _rows_and_counters(db, first)
    assert rows == counters == Counter(sending=1, skipped=1)


async def test_deleting_a_page_with_campaign_history_keeps_its_contacts(
    db: Database, page_id: int
) -> None:
    # pages -> contacts cascades; a Page with campaigns (so with deliveries) is only
    # disconnected, so no delivery can lose its contact that way.
    first, _ = await _campaign_with_deliveries(db, page_id, ["31", "32"])
    async with db.transaction() as session:
        assert await pages.delete(session, ADMIN_ACTOR, page_id) is not None
    rows, counters = await _rows_and_counters(db, first)
    assert rows == counters == Counter(pending=1, skipped=1)
