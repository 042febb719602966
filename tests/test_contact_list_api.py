"""`GET /api/pages/{id}/contacts` (issue 21): the filters as query parameters, the total,
cursor pages in each sort (forward and back), tag counts, bulk actions by ids and by
filter, the CSV export, and bad input named by field. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from factories import connected_page, import_contacts, table_counts
from pagecast.contact_filter_schema import ContactBulk, ContactFilter
from pagecast.db import Database
from pagecast.models import AuditLog, Contact, Page, Role, utcnow
from pagecast.permissions import Actor
from pagecast.security import Vault
from pagecast.services import contact_bulk, inbound

N = 23


@pytest.fixture
async def manager(api: Any) -> httpx.AsyncClient:
    return await api(Role.MANAGER)


@pytest.fixture
async def page_id(db: Database, vault: Vault) -> int:
    """A Page with N contacts: names repeat (so sorts have ties), every third has no name,
    every fourth never wrote, tags cycle."""
    page = await connected_page(db, vault)
    now = utcnow()
    async with db.transaction() as session:
        for i in range(N):
            session.add(
                Contact(
                    page_id=page.id,
                    psid=str(1000 + i),
                    first_name=None if i % 3 == 0 else f"N{i % 5}",
                    last_name="Lee",
                    last_inbound_at=None if i % 4 == 0 else now - timedelta(hours=i % 7 * 10),
                    created_at=now - timedelta(minutes=i % 6),
                    updated_at=now,
                )
            )
    return page.id


async def _walk(client: httpx.AsyncClient, url: str, **params: Any) -> list[str]:
    """Every psid through next_cursor, then back through prev_cursor: both must agree."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        answer = await client.get(url, params=params | ({"cursor": cursor} if cursor else {}))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["total"] == N
        pages.append([c["psid"] for c in body["items"]])
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
    back: list[list[str]] = [pages[-1]]
    cursor = body["prev_cursor"]
    while cursor is not None:
        body = (await client.get(url, params=params | {"cursor": cursor})).json()
        back.insert(0, [c["psid"] for c in body["items"]])
        cursor = body["prev_cursor"]
    assert back == pages
    return [psid for p in pages for psid in p]


@pytest.mark.parametrize(
    "sort", ["id", "-id", "name", "-name", "last_inbound", "-last_inbound", "created", "-created"]
)
async def test_every_sort_pages_each_contact_once_both_ways(
    db: Database, manager: httpx.AsyncClient, page_id: int, sort: str
) -> None:
    seen = await _walk(manager, f"/api/pages/{page_id}/contacts", sort=sort, limit=4)
    assert sorted(seen) == sorted(str(1000 + i) for i in range(N))
    key = sort.removeprefix("-")
    column = {
        "id": Contact.id,
        "name": Contact.first_name,
        "last_inbound": Contact.last_inbound_at,
        "created": Contact.created_at,
    }[key]
    async with db.reading() as session:
        rows = list(await session.execute(select(Contact.psid, column, Contact.id)))
    filled = [r for r in rows if r[1] is not None]
    filled.sort(key=lambda r: (r[1], r[2]), reverse=sort.startswith("-"))
    empty = sorted(
        (r for r in rows if r[1] is None), key=lambda r: r[2], reverse=sort.startswith("-")
    )
    assert seen == [r[0] for r in filled + empty]


async def test_filters_total_and_tag_counts(manager: httpx.AsyncClient, page_id: int) -> None:
    report = await import_contacts(
        manager,
        page_id,
        b"psid,first_name,tags\n1000,Ann,vip;manila\n1001,Bo,vip\n1002,Cy,manila\n1003,Di,VIP-2\n",
    )
    assert report["state"] == "completed", report
    url = f"/api/pages/{page_id}/contacts"

    async def found(**params: Any) -> tuple[int, list[str]]:
        body = (await manager.get(url, params=params)).json()
        return body["total"], [c["psid"] for c in body["items"]]

    assert await found(tags_all="vip,manila") == (1, ["1000"])
    assert await found(tags_any=["vip", "manila"]) == (3, ["1000", "1001", "1002"])
    assert await found(tag="vip") == (2, ["1000", "1001"])
    assert (await found(tags_none="vip,manila"))[0] == N - 3
    assert await found(q="1002") == (1, ["1002"])
    assert (await found(window="unknown", limit=2))[0] == 6
    tags = (await manager.get(f"/api/pages/{page_id}/tags", params={"q": "v"})).json()
    assert tags["items"] == [{"name": "vip", "contacts": 2}, {"name": "VIP-2", "contacts": 1}]
    every = (await manager.get(f"/api/pages/{page_id}/tags")).json()["items"]
    assert [t["name"] for t in every] == ["manila", "vip", "VIP-2"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "garbage"}, "cursor"),
        ({"sort": "age"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"window": "maybe"}, "window"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"inbound_from": "2026-02-01", "inbound_to": "2026-01-01"}, "inbound_to"),
        ({"inbound_from": "yesterday"}, "inbound_from"),
        ({"opted_out": "perhaps"}, "opted_out"),
    ],
)
async def test_bad_query_is_a_422_naming_the_field(
    manager: httpx.AsyncClient, page_id: int, params: dict[str, Any], field: str
) -> None:
    answer = await manager.get(f"/api/pages/{page_id}/contacts", params=params)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field or error["message"].startswith(f"{field}: "), error


async def test_a_cursor_of_another_sort_is_refused(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    url = f"/api/pages/{page_id}/contacts"
    cursor = (await manager.get(url, params={"limit": 2, "sort": "name"})).json()["next_cursor"]
    answer = await manager.get(url, params={"cursor": cursor, "sort": "created"})
    assert answer.status_code == 422
    assert "belongs to the sort 'name'" in answer.json()["error"]["message"]


async def test_bulk_by_ids_and_by_filter(
    db: Database, manager: httpx.AsyncClient, page_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"/api/pages/{page_id}/contacts"
    ids = [c["id"] for c in (await manager.get(url, params={"limit": 3})).json()["items"]]
    tagged = await manager.post(f"{url}/bulk", json={"action": "tag", "tag": "picked", "ids": ids})
    assert tagged.json() == {"changed": 3}
    again = await manager.post(f"{url}/bulk", json={"action": "tag", "tag": "picked", "ids": ids})
    assert again.json() == {"changed": 0}
    assert (await manager.get(url, params={"tag": "picked"})).json()["total"] == 3
    # By filter, in batches smaller than the match (the batching must not skip or repeat).
    monkeypatch.setattr(contact_bulk, "BATCH", 4)
    body = {"action": "tag", "tag": "quiet", "filter": {"window": "unknown"}}
    assert (await manager.post(f"{url}/bulk", json=body)).json() == {"changed": 6}
    body = {"action": "untag", "tag": "picked", "filter": {"tags_all": ["picked", "quiet"]}}
    assert (await manager.post(f"{url}/bulk", json=body)).json() == {"changed": 1}
    out = {"action": "opt_out", "filter": {"tags_any": ["quiet"]}}
    assert (await manager.post(f"{url}/bulk", json=out)).json() == {"changed": 6}
    assert (await manager.get(url, params={"opted_out": True})).json()["total"] == 6
    async with db.reading() as session:
        actions = list(await session.scalars(select(AuditLog.action).order_by(AuditLog.id)))
    assert actions[-4:] == ["contacts.tag", "contacts.tag", "contacts.untag", "contacts.opt_out"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "tag", "ids": [1]}, "tag"),
        ({"action": "tag", "tag": "x"}, "ids"),
        ({"action": "tag", "tag": "x", "ids": [1], "filter": {}}, "ids"),
        ({"action": "paint", "ids": [1]}, "action"),
        ({"action": "opt_out", "filter": {"window": "never"}}, "filter.window"),
        ({"action": "opt_out", "ids": [999999]}, "ids"),
    ],
)
async def test_bad_bulk_is_refused_and_changes_nothing(
    db: Database, manager: httpx.AsyncClient, page_id: int, body: dict[str, Any], field: str
) -> None:
    before = await table_counts(db)
    answer = await manager.post(f"/api/pages/{page_id}/contacts/bulk", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    # A rule across fields has no one field in pydantic's error; its message starts with it.
    assert error["field"] == field or error["message"].startswith(f"{field}: "), error
    assert await table_counts(db) == before


async def test_csv_export_of_a_filter_imports_back(
    db: Database, vault: Vault, manager: httpx.AsyncClient, page_id: int
) -> None:
    url = f"/api/pages/{page_id}/contacts"
    await manager.post(f"{url}/bulk", json={"action": "tag", "tag": ["a", "b"][0], "filter": {}})
    await manager.post(f"{url}/bulk", json={"action": "tag", "tag": "=sum", "ids": [1, 2]})
    answer = await manager.get(url, params={"window": "inside"}, headers={"accept": "text/csv"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    expected = (await manager.get(url, params={"window": "inside"})).json()["total"]
    assert len(rows) == expected > 0
    assert list(rows[0]) == [
        "psid",
        "first_name",
        "last_name",
        "tags",
        "last_inbound_at",
        "timezone",
    ]
    other = await connected_page(db, vault, fb_page_id="2002", name="Copy")
    report = await import_contacts(manager, other.id, answer.content)
    assert (report["created"], report["refused"]) == (expected, 0), report
    copied = (
        await manager.get(f"/api/pages/{other.id}/contacts", params={"tag": "a", "limit": 500})
    ).json()
    assert copied["total"] == expected
    assert (
        await manager.get("/api/pages/99999/contacts", headers={"accept": "text/csv"})
    ).status_code == 404


_LATE_ARRIVAL = {
    # A person writes to the Page while a bulk opt-out by filter runs: when the first contact
    # is opted out, a new contact appears (after the action began, so not among its matches).
    "sqlite": [
        "CREATE TRIGGER late_arrival AFTER UPDATE OF opted_out_at ON contacts "
        "WHEN NEW.id = (SELECT min(id) FROM contacts) BEGIN "
        "INSERT INTO contacts (page_id, psid, is_tester, created_at, updated_at) "
        "VALUES (NEW.page_id, 'late', 0, NEW.updated_at, NEW.updated_at); END"
    ],
    "postgresql": [
        "CREATE FUNCTION late_arrival() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.id = (SELECT min(id) FROM contacts) THEN "
        "INSERT INTO contacts (page_id, psid, is_tester, created_at, updated_at) "
        "VALUES (NEW.page_id, 'late', false, NEW.updated_at, NEW.updated_at); END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER late_arrival AFTER UPDATE OF opted_out_at ON contacts "
        "FOR EACH ROW EXECUTE FUNCTION late_arrival()",
    ],
}
_NO_LATE_ARRIVAL = {
    "sqlite": ["DROP TRIGGER late_arrival"],
    "postgresql": ["DROP TRIGGER late_arrival ON contacts", "DROP FUNCTION late_arrival()"],
}


async def test_bulk_by_filter_leaves_contacts_created_while_it_runs_alone(
    db: Database, manager: httpx.AsyncClient, page_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contact_bulk, "BATCH", 4)
    async with db.transaction() as session:
        for statement in _LATE_ARRIVAL[db.dialect]:
            await session.execute(text(statement))
    try:
        body = {"action": "opt_out", "filter": {}}
        answer = await manager.post(f"/api/pages/{page_id}/contacts/bulk", json=body)
    finally:
        async with db.transaction() as session:
            for statement in _NO_LATE_ARRIVAL[db.dialect]:
                await session.execute(text(statement))
    assert answer.json() == {"changed": N}
    async with db.reading() as session:
        late = await session.scalar(select(Contact).where(Contact.psid == "late"))
    assert late is not None and late.opted_out_at is None


async def test_a_bulk_opt_out_is_not_undone_by_an_older_keyword_arriving_late(
    db: Database, manager: httpx.AsyncClient, page_id: int
) -> None:
    url = f"/api/pages/{page_id}/contacts"
    first = (await manager.get(url, params={"limit": 1})).json()["items"][0]["id"]
    out = await manager.post(f"{url}/bulk", json={"action": "opt_out", "ids": [first]})
    assert out.json() == {"changed": 1}
    async with db.transaction() as session:
        contact = await session.get(Contact, first)
        assert contact is not None and contact.opted_out_at is not None
        page = await session.get(Page, page_id)
        assert page is not None
        # "START" written a minute before the opt-out, delivered by Facebook after it.
        written = contact.opted_out_at - timedelta(minutes=1)
        await inbound.keywords(session, page, contact, "START", written)
    async with db.reading() as session:
        contact = await session.get(Contact, first)
        assert contact is not None and contact.opted_out_at is not None


@pytest.mark.parametrize(
    "params",
    [
        {"inbound_to": "9999-12-31"},
        {"inbound_from": "0001-01-01T00:00:00+01:00"},
        {"inbound_from": "9999-12-31T23:59:59"},
    ],
)
async def test_a_date_out_of_range_is_a_422_naming_it(
    manager: httpx.AsyncClient, page_id: int, params: dict[str, Any]
) -> None:
    answer = await manager.get(f"/api/pages/{page_id}/contacts", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == next(iter(params))


def _cursor(sort: str, value: Any) -> str:
    data = {"s": sort, "v": value, "i": 1, "d": "next"}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


@pytest.mark.parametrize(
    ("sort", "value"),
    [
        ("name", "a\u0000b"),  # PostgreSQL refuses NUL in text
        ("name", {"a": 1}),
        ("created", "2026-01-01T00:00:00"),  # no offset
        ("-last_inbound", "0001-01-01T00:00:00+05:00"),  # before year 1 in UTC
        ("created", 5),
    ],
)
async def test_a_tampered_cursor_is_a_422_not_a_500(
    manager: httpx.AsyncClient, page_id: int, sort: str, value: Any
) -> None:
    params = {"sort": sort, "cursor": _cursor(sort, value)}
    answer = await manager.get(f"/api/pages/{page_id}/contacts", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == "cursor"


async def test_a_search_for_percent_or_underscore_finds_those_letters(
    db: Database, manager: httpx.AsyncClient, page_id: int
) -> None:
    async with db.transaction() as session:
        session.add(Contact(page_id=page_id, psid="p1", first_name="50%_off", updated_at=utcnow()))
    url = f"/api/pages/{page_id}/contacts"
    for q in ("%", "_", "0%_"):
        assert (await manager.get(url, params={"q": q})).json()["total"] == 1, q


_SECOND_BATCH_FAILS = {
    "sqlite": [
        "CREATE TRIGGER second_batch_fails BEFORE UPDATE OF opted_out_at ON contacts "
        "WHEN NEW.id > (SELECT min(id) FROM contacts) + 3 BEGIN SELECT RAISE(ABORT, 'down'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION second_batch_fails() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.id > (SELECT min(id) FROM contacts) + 3 THEN RAISE EXCEPTION 'down'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER second_batch_fails BEFORE UPDATE OF opted_out_at ON contacts "
        "FOR EACH ROW EXECUTE FUNCTION second_batch_fails()",
    ],
}
_SECOND_BATCH_WORKS = {
    "sqlite": ["DROP TRIGGER second_batch_fails"],
    "postgresql": [
        "DROP TRIGGER second_batch_fails ON contacts",
        "DROP FUNCTION second_batch_fails()",
    ],
}


async def test_a_bulk_action_failing_part_way_audits_the_batches_done(
    db: Database, page_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contact_bulk, "BATCH", 4)
    async with db.transaction() as session:
        for statement in _SECOND_BATCH_FAILS[db.dialect]:
            await session.execute(text(statement))
    body = ContactBulk(action="opt_out", filter=ContactFilter())
    try:
        with pytest.raises(DBAPIError):
            await contact_bulk.apply(db, Actor.system(), page_id, body, utcnow())
    finally:
        async with db.transaction() as session:
            for statement in _SECOND_BATCH_WORKS[db.dialect]:
                await session.execute(text(statement))
    async with db.reading() as session:
        entry = await session.scalar(select(AuditLog).order_by(AuditLog.id.desc()).limit(1))
    assert entry is not None and entry.action == "contacts.opt_out"
    assert entry.details == {
        "action": "opt_out",
        "tag": None,
        "changed": 4,
        "failed_part_way": True,
        "filter": {},
    }
