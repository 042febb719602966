"""`GET /api/campaigns/{id}/deliveries` (issues 20 and 21): keyset pages that list every
delivery once while statuses change, the filters, the CSV by `Accept: text/csv`, bad input
named by field, and the campaign's read permission. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import text, update

from factories import ADMIN_ACTOR, connected_page
from pagecast.db import Database
from pagecast.models import Contact, Delivery, DeliveryStatus, MessagingType, Role, utcnow
from pagecast.schemas import CampaignCreate
from pagecast.services import campaigns, delivery_list
from pagecast.web import render

STATUS_CYCLE = (
    DeliveryStatus.PENDING,
    DeliveryStatus.SENT,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.READ,
    DeliveryStatus.FAILED,
    DeliveryStatus.SKIPPED,
)


async def seed(db: Database, vault: Any, n: int, **campaign: Any) -> tuple[int, list[int]]:
    """A campaign with `n` deliveries, each to its own contact: statuses cycle through
    STATUS_CYCLE, variants alternate A/B, failures carry 551 (or 613 when i % 4 == 2), skipped
    ones `outside_window`. Returns the campaign id and the delivery ids in order."""
    page = await connected_page(db, vault)
    now = utcnow()
    async with db.transaction() as session:
        draft = await campaigns.create(
            session,
            ADMIN_ACTOR,
            CampaignCreate(name="Listed", page_id=page.id, content={"text": "Hi"}, **campaign),
        )
        people = [
            Contact(
                page_id=page.id,
                psid=f"90{i:04d}",
                first_name=f"Ann{i}",
                last_name="Lee",
                created_at=now,
                updated_at=now,
            )
            for i in range(n)
        ]
        session.add_all(people)
        await session.flush()
        rows = []
        for i, person in enumerate(people):
            status = STATUS_CYCLE[i % len(STATUS_CYCLE)]
            failed = status is DeliveryStatus.FAILED
            rows.append(
                Delivery(
                    campaign_id=draft.id,
                    contact_id=person.id,
                    status=status,
                    variant="AB"[i % 2],
                    attempts=1 if status is not DeliveryStatus.PENDING else 0,
                    sent_at=now if status in STATUS_CYCLE[1:4] else None,
                    reason="outside_window" if status is DeliveryStatus.SKIPPED else None,
                    error_code=(613 if i % 4 == 2 else 551) if failed else None,
                    error_subcode=2018278 if failed and i % 3 else None,
                    error_kind="recipient_unreachable" if failed else None,
                    error_message="(#551) This person isn't available" if failed else None,
                    fbtrace_id=f"trace{i}" if failed else None,
                )
            )
        session.add_all(rows)
        await session.flush()
        return draft.id, [r.id for r in rows]


async def walk(client: Any, campaign_id: int, **params: Any) -> list[dict[str, Any]]:
    """Every page of the listing, following next_cursor."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = dict(params) | ({"cursor": cursor} if cursor else {})
        answer = await client.get(f"/api/campaigns/{campaign_id}/deliveries", params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def test_paging_lists_every_delivery_once_while_statuses_change(
    api: Any, db: Database, vault: Any
) -> None:
    campaign_id, ids = await seed(db, vault, 45)
    client = await api(Role.VIEWER)
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        query: dict[str, Any] = {"limit": 7} | ({"cursor": cursor} if cursor else {})
        answer = await client.get(f"/api/campaigns/{campaign_id}/deliveries", params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        # The worker moves rows on both sides of the cursor between two pages.
        async with db.transaction() as session:
            moved = [i for n, i in enumerate(ids) if n % 5 == pages % 5]
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_(moved))
                .values(status=STATUS_CYCLE[pages % len(STATUS_CYCLE)])
            )
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids  # each once, in id order
    assert pages == 7  # 45 rows, 7 a page: the last page is not followed by an empty one


async def test_an_exact_last_page_has_no_next_cursor(api: Any, db: Database, vault: Any) -> None:
    campaign_id, ids = await seed(db, vault, 10)
    client = await api(Role.VIEWER)
    answer = await client.get(f"/api/campaigns/{campaign_id}/deliveries", params={"limit": 10})
    assert [i["id"] for i in answer.json()["items"]] == ids
    assert answer.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, lambda n: n % 6 == 4),
        ({"status": ["sent", "read"]}, lambda n: n % 6 in (1, 3)),
        ({"status": "sent,READ"}, lambda n: n % 6 in (1, 3)),
        ({"variant": "B"}, lambda n: n % 2 == 1),
        ({"error_code": 613}, lambda n: n % 6 == 4 and n % 4 == 2),
        ({"reason": "outside_window"}, lambda n: n % 6 == 5),
        (
            {"status": "failed", "variant": "A", "error_code": 551},
            lambda n: n % 6 == 4 and n % 4 != 2,
        ),
        ({"q": "900007"}, lambda n: n == 7),
        ({"q": "ann1"}, lambda n: str(n).startswith("1")),
    ],
    ids=["status", "repeated", "comma", "variant", "error_code", "reason", "all", "psid", "name"],
)
async def test_each_filter_lists_exactly_its_deliveries(
    api: Any, db: Database, vault: Any, params: dict[str, Any], expected: Any
) -> None:
    campaign_id, ids = await seed(db, vault, 30)
    client = await api(Role.VIEWER)
    listed = await walk(client, campaign_id, limit=4, **params)
    assert [i["id"] for i in listed] == [d for n, d in enumerate(ids) if expected(n)]
    assert listed  # every case matches someone


async def test_an_item_has_the_person_the_outcome_and_the_reason_in_words(
    api: Any, db: Database, vault: Any
) -> None:
    campaign_id, ids = await seed(db, vault, 6, messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
    client = await api(Role.VIEWER)
    items = (await client.get(f"/api/campaigns/{campaign_id}/deliveries")).json()["items"]
    assert [i["id"] for i in items] == ids
    assert list(items[4]) == list(render.DELIVERY_FIELDS)
    failed, skipped, sent = items[4], items[5], items[1]
    assert failed | {"id": 0, "contact_id": 0} == {
        "id": 0,
        "contact_id": 0,
        "psid": "900004",
        "first_name": "Ann4",
        "last_name": "Lee",
        "status": "failed",
        "reason": None,
        "reason_words": None,
        "variant": "A",
        "due_at": None,
        "sent_at": None,
        "delivered_at": None,
        "read_at": None,
        "clicked_at": None,
        "replied_at": None,
        "attempts": 1,
        "error_code": 551,
        "error_subcode": 2018278,
        "error_kind": "recipient_unreachable",
        "error_message": "(#551) This person isn't available",
        "fbtrace_id": "trace4",
    }
    assert skipped["reason"] == "outside_window"
    assert skipped["reason_words"] == "outside the 7-day messaging window"  # a tag's window
    assert sent["sent_at"].endswith("Z") and sent["status"] == "sent"


def test_reasons_the_engine_writes_read_as_words() -> None:
    words = delivery_list.reason_text
    assert words("opted_out", MessagingType.UPDATE) == "opted out"
    assert words("outside_window", MessagingType.UPDATE) == ("outside the 24-hour messaging window")
    assert words("retries_exhausted", MessagingType.UPDATE).startswith("temporary errors")
    assert words("some_new_reason", MessagingType.UPDATE) == "some new reason"
    assert words(None, MessagingType.UPDATE) is None


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def test_csv_by_accept_streams_every_matching_delivery_with_the_item_columns(
    api: Any, db: Database, vault: Any
) -> None:
    campaign_id, ids = await seed(db, vault, 24)
    client = await api(Role.VIEWER)
    answer = await client.get(
        f"/api/campaigns/{campaign_id}/deliveries",
        params={"status": "failed,skipped", "limit": 1, "cursor": "ignored for a file"},
        headers={"Accept": "text/csv"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="campaign-{campaign_id}-deliveries.csv"'
    )
    assert answer.text.splitlines()[0] == ",".join(render.DELIVERY_FIELDS)
    rows = _csv(answer.text)
    assert [int(r["id"]) for r in rows] == [d for n, d in enumerate(ids) if n % 6 in (4, 5)]
    assert {r["status"] for r in rows} == {"failed", "skipped"}
    assert rows[1]["reason_words"] == "outside the 24-hour messaging window"
    json_too = await client.get(
        f"/api/campaigns/{campaign_id}/deliveries",
        headers={"Accept": "application/json, text/csv;q=0.5"},
    )
    assert json_too.headers["content-type"] == "application/json"


async def test_the_csv_reads_in_bounded_batches(db: Database, vault: Any) -> None:
    """Constant memory: the export holds one batch at a time, each read in its own
    transaction, and the batches together are every matching row once."""
    campaign_id, ids = await seed(db, vault, 20)
    sizes: list[int] = []
    listed: list[int] = []
    async for batch in delivery_list.batches(db, campaign_id, delivery_list.Filters(), size=6):
        sizes.append(len(batch))
        listed += [item.id for item in batch]
    assert sizes == [6, 6, 6, 2] and listed == ids


BAD: Sequence[tuple[dict[str, Any], str, str]] = [
    ({"status": "sent,bogus"}, "status", "'bogus' is not a delivery status"),
    ({"error_code": "abc"}, "error_code", "integer"),
    ({"cursor": "not-a-cursor"}, "cursor", "use next_cursor as given"),
    ({"limit": 0}, "limit", "greater than or equal to 1"),
    ({"limit": 501}, "limit", "less than or equal to 500"),
    ({"variant": "ABCDEFGHIJ"}, "variant", "at most 8"),
]


@pytest.mark.parametrize(
    ("params", "field", "said"), BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)]
)
@pytest.mark.parametrize("accept", ["application/json", "text/csv"])
async def test_bad_input_is_a_422_naming_the_field(
    api: Any, db: Database, vault: Any, params: dict[str, Any], field: str, said: str, accept: str
) -> None:
    campaign_id, _ = await seed(db, vault, 2)
    client = await api(Role.VIEWER)
    answer = await client.get(
        f"/api/campaigns/{campaign_id}/deliveries", params=params, headers={"Accept": accept}
    )
    if accept == "text/csv" and field == "cursor":
        assert answer.status_code == 200  # a file has no pages: the cursor is not read
        return
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and said in error["message"], error


async def test_an_unknown_campaign_is_a_404_even_for_a_csv(api: Any, db: Database) -> None:
    client = await api(Role.VIEWER)
    for accept in ("application/json", "text/csv"):
        answer = await client.get("/api/campaigns/999/deliveries", headers={"Accept": accept})
        assert answer.status_code == 404 and "Campaign 999 does not exist" in answer.text


async def test_reading_deliveries_needs_the_campaigns_read_permission(
    api: Any, client: Any, db: Database, vault: Any
) -> None:
    campaign_id, _ = await seed(db, vault, 3)
    path = f"/api/campaigns/{campaign_id}/deliveries"
    assert (await client.get(path)).status_code == 401
    assert (await client.get(path, headers={"Accept": "text/csv"})).status_code == 401
    for role in (Role.VIEWER, Role.MANAGER, Role.ADMIN):
        reader = await api(role)
        assert len((await reader.get(path)).json()["items"]) == 3


async def _scans(db: Database, filters: delivery_list.Filters) -> str:
    statement = delivery_list.query(1, filters, limit=51)
    sql = str(statement.compile(db.engine.sync_engine, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN " if db.dialect == "postgresql" else "EXPLAIN QUERY PLAN "
    async with db.transaction() as session:
        return "\n".join(str(row) for row in await session.execute(text(explain + sql)))


async def test_a_rare_status_error_code_or_reason_is_read_through_its_index(db: Database) -> None:
    """Migration 0023: a page of pending rows at the end of a large campaign, or of a code or
    reason 1 in 1,000, comes from an index in id order, not a walk of the whole campaign."""
    generated = (
        "SELECT g FROM generate_series(1, 20000) g"
        if db.dialect == "postgresql"
        else "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 20000) "
        "SELECT g FROM s"
    )
    async with db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO deliveries (campaign_id, contact_id, status, attempts, parts_sent, "
                "reason, error_code, updated_at) "
                "SELECT 1, g, CASE WHEN g > 19900 THEN 'pending' ELSE 'read' END, 1, 1, "
                "CASE WHEN g % 1000 = 7 THEN 'opted_out' END, "
                "CASE WHEN g % 1000 = 3 THEN 10 END, CURRENT_TIMESTAMP "
                f"FROM ({generated}) AS n"
            )
        )
        await session.execute(
            text("ANALYZE deliveries" if db.dialect == "postgresql" else "ANALYZE")
        )
    for filters, index in (
        (delivery_list.Filters(statuses=(DeliveryStatus.PENDING,)), "status_id"),
        (delivery_list.Filters(error_code=10), "error_code"),
        (delivery_list.Filters(reason="opted_out"), "reason"),
    ):
        assert f"ix_deliveries_campaign_id_{index}" in await _scans(db, filters), filters
