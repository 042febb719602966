"""`services/contact_filter.clauses`: who matches each field of a `ContactFilter`, through
real SQL on SQLite and PostgreSQL, and the filter's own input checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from factories import connected_page
from pagecast.contact_filter_schema import ContactFilter
from pagecast.db import Database
from pagecast.models import Contact
from pagecast.security import Vault
from pagecast.services import contact_filter, contacts

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

# psid: (first, last, tags, last inbound, opted out, unreachable, tester, zone)
PEOPLE: dict[str, tuple[Any, ...]] = {
    "1": (
        "Ana",
        "Reyes",
        ["vip", "manila"],
        NOW - timedelta(hours=1),
        False,
        False,
        True,
        "Asia/Manila",
    ),
    "2": ("Ben", "Cruz", ["vip"], NOW - timedelta(days=2), False, False, False, None),
    "3": ("Cara", "Reyes", ["manila"], None, True, False, False, "Asia/Manila"),
    "4": (None, None, [], NOW - timedelta(days=9), False, True, False, "Europe/Paris"),
    "5": (
        "Dan",
        "Ong",
        ["vip", "manila", "late"],
        NOW - timedelta(hours=30),
        False,
        False,
        False,
        None,
    ),
}


@pytest.fixture
async def seeded(db: Database, vault: Vault) -> int:
    page = await connected_page(db, vault)
    async with db.transaction() as session:
        for psid, (first, last, tags, inbound, out, gone, tester, zone) in PEOPLE.items():
            person = Contact(
                page_id=page.id,
                psid=psid,
                first_name=first,
                last_name=last,
                last_inbound_at=inbound,
                opted_out_at=NOW if out else None,
                unreachable_at=NOW if gone else None,
                is_tester=tester,
                timezone=zone,
            )
            session.add(person)
            await session.flush()
            await contacts.add_tags(session, [(person.id, t) for t in tags])
    return page.id


CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({}, ["1", "2", "3", "4", "5"]),
    ({"tags_any": ["vip", "late"]}, ["1", "2", "5"]),
    ({"tags_all": ["vip", "manila"]}, ["1", "5"]),
    ({"tags_all": ["vip", "manila", "vip"]}, ["1", "5"]),
    ({"tags_none": ["manila"]}, ["2", "4"]),
    ({"tags_all": ["manila"], "tags_none": ["late"]}, ["1", "3"]),
    ({"window": "inside"}, ["1"]),
    ({"window": "outside"}, ["2", "4", "5"]),
    ({"window": "unknown"}, ["3"]),
    ({"opted_out": True}, ["3"]),
    ({"opted_out": False, "unreachable": False}, ["1", "2", "5"]),
    ({"unreachable": True}, ["4"]),
    ({"is_tester": True}, ["1"]),
    ({"is_tester": False}, ["2", "3", "4", "5"]),
    ({"inbound_from": "2026-03-08", "inbound_to": "2026-03-09"}, ["2", "5"]),
    ({"inbound_from": "2026-03-09T06:00:00Z"}, ["1", "5"]),
    ({"inbound_to": "2026-03-08"}, ["2", "4"]),
    ({"q": "reyes"}, ["1", "3"]),
    ({"q": "ana reyes"}, ["1"]),
    ({"q": "4"}, ["4"]),
    ({"timezone": "asia/manila"}, ["1", "3"]),
    ({"tags_any": ["vip"], "window": "outside", "q": "o"}, ["5"]),
]


@pytest.mark.parametrize(("given", "expected"), CASES, ids=[str(c[0]) for c in CASES])
async def test_each_filter_selects_its_contacts(
    db: Database, seeded: int, given: dict[str, Any], expected: list[str]
) -> None:
    f = ContactFilter.model_validate(given)
    async with db.reading() as session:
        found = await session.scalars(
            select(Contact.psid)
            .where(*contact_filter.clauses(seeded, f, NOW))
            .order_by(Contact.psid)
        )
        assert list(found) == expected


async def test_another_pages_contacts_never_match(db: Database, vault: Vault, seeded: int) -> None:
    other = await connected_page(db, vault, fb_page_id="2002", name="Other")
    async with db.reading() as session:
        found = await session.scalars(
            select(Contact.psid).where(*contact_filter.clauses(other.id, ContactFilter(), NOW))
        )
        assert list(found) == []


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"inbound_from": "2026-03-09", "inbound_to": "2026-03-01"}, "inbound_to"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"window": "sometimes"}, "window"),
        ({"tags_any": [""]}, "tags_any"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_filters_are_refused_naming_the_field(given: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ContactFilter.model_validate(given)
    assert field in str(info.value)
