"""CSV exports keep every cell that a spreadsheet would run as a formula text (issue 17,
item 15): `=`, `+`, `-`, `@`, tab and carriage return at the start of a cell."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest

from factories import ADMIN_ACTOR, connected_page, create_user, session_cookie
from pagecast.csv_export import csv_lines, safe_cell
from pagecast.db import Database
from pagecast.models import Contact, Delivery, DeliveryStatus, Role, utcnow
from pagecast.schemas import CampaignCreate
from pagecast.services import campaigns
from pagecast.web.deps import SESSION_COOKIE

DANGEROUS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


@pytest.mark.parametrize("value", DANGEROUS)
def test_a_cell_a_spreadsheet_would_run_stays_text(value: str) -> None:
    assert safe_cell(value) == "'" + value


def test_other_cells_are_written_as_they_are() -> None:
    assert [safe_cell(v) for v in ("Ann", "", None, 42, -3, 1.5, "a=b")] == [
        "Ann", "", "", 42, -3, 1.5, "a=b"
    ]  # fmt: skip


async def test_csv_lines_neutralises_every_cell() -> None:
    text = "".join([line async for line in csv_lines(["=h"], [[v] for v in DANGEROUS])])
    cells = [row[0] for row in csv.reader(io.StringIO(text, newline=""))]
    assert cells == ["'=h"] + ["'" + v for v in DANGEROUS]


async def test_the_deliveries_export_neutralises_names_ids_and_errors(
    app: Any, db: Database, vault: Any
) -> None:
    page = await connected_page(db, vault)
    async with db.transaction() as session:
        draft = await campaigns.create(
            session,
            ADMIN_ACTOR,
            CampaignCreate(name="Export", page_id=page.id, content={"text": "Hi"}),
        )
        contact = Contact(
            page_id=page.id,
            psid="-1+2",
            first_name='=HYPERLINK("http://evil")',
            last_name="\tTab",
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        session.add(contact)
        await session.flush()
        session.add(
            Delivery(
                campaign_id=draft.id,
                contact_id=contact.id,
                status=DeliveryStatus.FAILED,
                error_message="@cmd|' /C calc'!A0",
                attempts=1,
            )
        )
    user, _ = await create_user(db, Role.MANAGER, email="export@example.com")
    cookie = await session_cookie(db, user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    ) as client:
        answer = await client.get(f"/campaigns/{draft.id}/deliveries.csv")
    assert answer.status_code == 200, answer.text
    rows = list(csv.DictReader(io.StringIO(answer.text, newline="")))
    assert len(rows) == 1
    row = rows[0]
    assert row["psid"] == "'-1+2"
    assert row["first_name"] == '\'=HYPERLINK("http://evil")'
    assert row["last_name"] == "'\tTab"
    assert row["error_message"] == "'@cmd|' /C calc'!A0"
    assert row["status"] == "failed" and row["attempts"] == "1"
