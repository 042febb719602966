"""Clicks and replies: what a person does after a campaign message, kept on its delivery.

A click is a button's postback or a quick reply (a message carrying `quick_reply`); a reply
is any other message from the person (echoes are the Page's own, not the person's). Each is
recorded on the person's most recent delivery sent in the 24 hours before it (`clicked_at`,
`replied_at`), both times being Facebook's: the event's timestamp and the delivery's
`sent_at` (the echo's time, else the Send API's answer), with the receipts' `CLOCK_SKEW`.
A contact belongs to one Page, so the delivery is of that Page. A person in an experiment's
holdout got nothing: their holdout delivery stands for a send at the campaign's start, for
replies only (`replied_at`), so the holdout's reply rate is measured as the variants' is.
A message that is an opt-out keyword ("STOP") is no reply (services/webhooks.py).

Webhook events come at least once and in any order: the first time recorded wins (a
delivery that has one keeps it), so a redelivered event changes nothing. Events of another
app's thread (`standby`) are not counted. A batch of events is applied with one SELECT of
its people's recent deliveries (index `ix_deliveries_contact_id_sent_at`) and one UPDATE
per kind (executemany), and nothing when it holds no click or reply.

A campaign's counts are read by a query (`counts`), not kept in counters: two index-only
counts over partial indexes holding only the clicked (replied) deliveries.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Campaign, Delivery, UTCDateTime
from pagecast.services.receipts import CLOCK_SKEW
from pagecast.services.variants import HOLDOUT

__all__ = ["AHEAD", "CLICK", "REPLY", "WINDOW", "Marks", "counts", "kind_of", "when"]

CLICK, REPLY = "click", "reply"
WINDOW = timedelta(hours=24)
AHEAD = timedelta(hours=1)  # the most Facebook's time may run ahead of an event's arrival
_TABLE = Delivery.__table__
_COLUMN = {CLICK: "clicked_at", REPLY: "replied_at"}


def kind_of(event_kind: str, payload: dict[str, Any]) -> str | None:
    """CLICK, REPLY or None for a stored webhook event's kind ("postback", "message", ...)
    and payload."""
    if payload.get("standby"):
        return None
    if event_kind == "postback":
        return CLICK
    if event_kind == "message":
        message = payload.get("message")
        if isinstance(message, dict) and isinstance(message.get("quick_reply"), dict):
            return CLICK
        return REPLY
    return None


def when(at: datetime, received_at: datetime) -> datetime:
    """The time an action is recorded at: Facebook's `at`, compared with the deliveries'
    `sent_at`, also Facebook's (echo times), so not clamped to our clock for a little skew
    (the simulator's clock, moved ahead by tests, included); but a time more than AHEAD
    after the event arrived is no clock's: the arrival is used, as `inbound.touch`'s window
    does (a year-9999 timestamp would overflow the window arithmetic and fail the batch)."""
    return received_at if at > received_at + AHEAD else at


class Marks:
    """The clicks and replies of one batch of webhook events, written at its end."""

    def __init__(self) -> None:
        self._seen: list[tuple[int, str, datetime]] = []

    def note(self, contact_id: int, kind: str | None, at: datetime) -> None:
        if kind is not None:
            self._seen.append((contact_id, kind, at))

    async def write(self, session: AsyncSession) -> None:
        """Record what was noted (deliveries that have a time already keep it)."""
        if not self._seen:
            return
        people = {contact_id for contact_id, _, _ in self._seen}
        times = [at for _, _, at in self._seen]
        since, until = min(times) - WINDOW, max(times) + CLOCK_SKEW
        rows = await session.execute(
            select(_TABLE.c.id, _TABLE.c.contact_id, _TABLE.c.sent_at).where(
                _TABLE.c.contact_id.in_(people),
                _TABLE.c.sent_at >= since,
                _TABLE.c.sent_at <= until,
            )
        )
        # contact id -> (send time, delivery id, a holdout's?) of its candidate deliveries
        sends: dict[int, list[tuple[datetime, int, bool]]] = {}
        for delivery_id, contact_id, sent_at in rows:
            sends.setdefault(contact_id, []).append((sent_at, delivery_id, False))
        if any(kind == REPLY for _, kind, _ in self._seen):
            for delivery_id, contact_id, started_at in await session.execute(
                _holdout_sends(people, since, until)
            ):
                sends.setdefault(contact_id, []).append((started_at, delivery_id, True))
        # (kind, delivery id) -> the earliest time of the batch for it
        found: dict[tuple[str, int], datetime] = {}
        for contact_id, kind, at in self._seen:
            before = [
                s
                for s in sends.get(contact_id, ())
                if at - WINDOW < s[0] <= at + CLOCK_SKEW and (kind == REPLY or not s[2])
            ]
            if before:
                key = (kind, max(before)[1])
                found[key] = min(found.get(key, at), at)
        self._seen.clear()
        for kind, column in _COLUMN.items():
            params = [
                {"b_id": delivery_id, "b_at": at}
                for (which, delivery_id), at in sorted(found.items())
                if which == kind
            ]
            if not params:
                continue
            target = _TABLE.c[column]
            await session.execute(
                update(_TABLE)
                .where(_TABLE.c.id == bindparam("b_id"), target.is_(None))
                .values({column: bindparam("b_at", type_=UTCDateTime())}),
                params,
            )


def _holdout_sends(people: set[int], since: datetime, until: datetime) -> Any:
    """The holdout deliveries of `people` in experiments started in [since, until]: each
    stands for a send at its campaign's start (nothing was sent), so a holdout's reply is
    recorded by the variants' rule (services/experiments.py compares their reply rates)."""
    return (
        select(_TABLE.c.id, _TABLE.c.contact_id, Campaign.started_at)
        .join(Campaign, Campaign.id == _TABLE.c.campaign_id)
        .where(
            _TABLE.c.contact_id.in_(people),
            _TABLE.c.reason == HOLDOUT,
            Campaign.started_at >= since,
            Campaign.started_at <= until,
        )
    )


async def counts(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    """The campaign's deliveries with a click and with a reply (one round trip)."""

    def having(column: str) -> Any:
        return (
            select(func.count())
            .select_from(_TABLE)
            .where(_TABLE.c.campaign_id == campaign_id, _TABLE.c[column].is_not(None))
            .scalar_subquery()
        )

    query = select(having("clicked_at"), having("replied_at"))
    clicked, replied = (await session.execute(query)).one()
    return {"clicked": int(clicked or 0), "replied": int(replied or 0)}
