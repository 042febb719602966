"""Who may receive a message is written twice in services/audience.py: the SQL CASE of the
snapshot and the preview (`exclusion_reason`) and its Python twin, the send-time re-check
(`excluded_now`). They must agree on every combination, the window's boundary included,
evaluated through real SQL on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import hypothesis
import pytest
from hypothesis import strategies as st
from sqlalchemy import delete, select

from factories import connected_page
from pagecast.db import Database
from pagecast.models import Contact, MessagingType, Page
from pagecast.security import Vault
from pagecast.services import audience

_WINDOWS = (audience.STANDARD_WINDOW, audience.TAG_WINDOW)
_TICK = timedelta(microseconds=1)
_NOW = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
# How long before `now` the person last wrote: on either window's edge (to the microsecond),
# or anywhere in the last few weeks (and a little in the future: clocks differ).
_AGO = st.one_of(
    st.sampled_from([w + d for w in _WINDOWS for d in (-_TICK, timedelta(0), _TICK)]),
    st.timedeltas(min_value=timedelta(hours=-1), max_value=timedelta(days=30)),
)
_PERSON = st.tuples(st.booleans(), st.booleans(), st.none() | _AGO)


@pytest.fixture
async def page(db: Database, vault: Vault) -> Page:
    return await connected_page(db, vault)


@hypothesis.settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(
    now=_NOW,
    people=st.lists(_PERSON, min_size=1, max_size=12),
    messaging_type=st.sampled_from(list(MessagingType)),
)
async def test_the_sql_rule_and_its_python_twin_agree(
    db: Database,
    page: Page,
    now: datetime,
    people: list[tuple[bool, bool, timedelta | None]],
    messaging_type: MessagingType,
) -> None:
    async with db.transaction() as session:
        contacts = [
            Contact(
                page_id=page.id,
                psid=uuid.uuid4().hex,
                opted_out_at=now - timedelta(days=1) if opted_out else None,
                unreachable_at=now - timedelta(days=2) if unreachable else None,
                last_inbound_at=None if ago is None else now - ago,
            )
            for opted_out, unreachable, ago in people
        ]
        session.add_all(contacts)
        await session.flush()
        ids = [c.id for c in contacts]
    try:
        async with db.transaction() as session:
            in_sql = dict(
                (
                    await session.execute(
                        select(Contact.id, audience.exclusion_reason(messaging_type, now)).where(
                            Contact.id.in_(ids)
                        )
                    )
                ).all()
            )
            # The twin reads the person as the database gives them back.
            read = list(await session.scalars(select(Contact).where(Contact.id.in_(ids))))
            in_python = {c.id: audience.excluded_now(c, messaging_type, now) for c in read}
        assert in_sql == in_python
        assert set(in_python.values()) <= {None, *audience.EXCLUSION_REASONS}
    finally:
        async with db.transaction() as session:
            await session.execute(delete(Contact).where(Contact.id.in_(ids)))


@pytest.mark.parametrize(
    ("opted_out", "unreachable", "ago", "messaging_type", "reason"),
    [
        (True, True, None, MessagingType.UPDATE, "opted_out"),  # the first reason wins
        (False, True, None, MessagingType.UPDATE, "unreachable"),
        (False, False, None, MessagingType.UPDATE, "window_unknown"),
        (False, False, timedelta(hours=24), MessagingType.UPDATE, None),  # on the edge: in
        (False, False, timedelta(hours=24) + _TICK, MessagingType.UPDATE, "outside_window"),
        (False, False, timedelta(hours=24) + _TICK, MessagingType.RESPONSE, "outside_window"),
        (False, False, timedelta(days=7), MessagingType.MESSAGE_TAG, None),
        (False, False, timedelta(days=7) + _TICK, MessagingType.MESSAGE_TAG, "outside_window"),
    ],
)
def test_the_python_rule_by_case(
    opted_out: bool,
    unreachable: bool,
    ago: timedelta | None,
    messaging_type: MessagingType,
    reason: str | None,
) -> None:
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    person = Contact(
        opted_out_at=now if opted_out else None,
        unreachable_at=now if unreachable else None,
        last_inbound_at=None if ago is None else now - ago,
    )
    assert audience.excluded_now(person, messaging_type, now) == reason
