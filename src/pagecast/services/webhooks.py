"""Messenger webhook events: read from a body, stored raw and idempotently, then applied one
by one, each by the module of its kind.

`store` turns a verified POST body into `WebhookEvent` rows, one per messaging event, keyed
so that a redelivered event is recognised (INSERT … ON CONFLICT DO NOTHING). `process` applies
one stored event within a `Batch`: a person's messages and postbacks (services/inbound.py:
the contact, its window, opt-out / opt-in keywords), delivery and read receipts
(services/receipts.py), echoes of our own sends (services/echoes.py), policy enforcement
(services/policy.py). Both take a session and never commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Page, WebhookEvent, utcnow
from pagecast.services import contacts, echoes, engagement, inbound, policy, receipts, sending
from pagecast.services.counters import Shifts

__all__ = [
    "Batch",
    "Result",
    "event_time",
    "page_ids",
    "process",
    "store",
    "store_many",
]

# The confirmation is a reply inside the standard messaging window.
_REPLY_WINDOW = timedelta(hours=24)

# Kinds of stored events.
MESSAGE, ECHO, POSTBACK = "message", "echo", "postback"
DELIVERY, READ = receipts.DELIVERY, receipts.READ
REACTION, REFERRAL, OPTIN, POLICY, OTHER = "reaction", "referral", "optin", "policy", "other"
# A person acted in the thread: the contact exists and its messaging window opens.
_USER_ACTIONS = frozenset({MESSAGE, POSTBACK, REACTION, REFERRAL, OPTIN})


@dataclass(frozen=True)
class Result:
    """What processing one event did. `done` False: try again later (see `reason`).

    The caller makes the Graph calls asked for after the commit: the User Profile lookup of
    a contact without a name, and the one confirmation reply to an opt-out."""

    done: bool = True
    reason: str | None = None
    page_id: int | None = None
    contact_id: int | None = None
    psid: str | None = None
    lookup_profile: bool = False
    confirm_opt_out: bool = False
    # Campaigns a policy unblock resumed: (id, priority), to plan again after the commit.
    resumed: tuple[tuple[int, str], ...] = ()


class Batch:
    """What a batch of events applied in one transaction writes once, at its end (`end`):
    the campaign counters (each row's lock taken once, in id order, so concurrent batches
    never deadlock on them), the Pages' echo watermarks and the clicks and replies seen
    (services/engagement.py); and the Pages it looked up."""

    def __init__(self) -> None:
        self.shifts = Shifts()
        self.engagement = engagement.Marks()
        self.watermarks = echoes.Watermarks()
        self.pages: dict[str | None, Page | None] = {}

    async def page(self, session: AsyncSession, fb_page_id: str | None) -> Page | None:
        """The connected Page of this id (one lookup per Page and batch)."""
        if fb_page_id not in self.pages:
            self.pages[fb_page_id] = await session.scalar(
                select(Page).where(Page.fb_page_id == fb_page_id)
            )
        return self.pages[fb_page_id]

    async def end(self, session: AsyncSession) -> None:
        """Write what the batch kept, and complete the campaigns it finished."""
        # Deliveries before the campaign rows the counters lock (services/receipts.py).
        await self.engagement.write(session)
        for campaign_id in await self.shifts.flush(session):
            await sending.finish_if_done(session, campaign_id)
        await self.watermarks.write(session)


def page_ids(body: Any) -> list[str]:
    """The Facebook Page ids named by the body's entries (to pick the signing secret)."""
    if not isinstance(body, dict) or not isinstance(body.get("entry"), list):
        return []
    return [str(e["id"]) for e in body["entry"] if isinstance(e, dict) and e.get("id") is not None]


def event_time(value: Any) -> datetime | None:
    """Epoch milliseconds (or seconds, which Meta sometimes sends: values below 1e12); None
    for anything else, a time outside what a datetime holds included."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return None
    seconds = value if value < 1e12 else value / 1000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _kind(event: dict[str, Any]) -> str:
    message = event.get("message")
    if isinstance(message, dict):
        return ECHO if message.get("is_echo") else MESSAGE
    for key, kind in (
        ("postback", POSTBACK),
        ("delivery", DELIVERY),
        ("read", READ),
        ("reaction", REACTION),
        ("referral", REFERRAL),
        ("optin", OPTIN),
        ("policy_enforcement", POLICY),
    ):
        if isinstance(event.get(key), dict):
            return kind
    return OTHER


def _psid(event: dict[str, Any], kind: str) -> str | None:
    # In an echo the Page is the sender and the person the recipient.
    side = event.get("recipient" if kind == ECHO else "sender")
    if isinstance(side, dict) and side.get("id") is not None:
        return str(side["id"])
    return None


def _key(page: str, psid: str | None, kind: str, event: dict[str, Any]) -> str:
    body = event.get("message") or event.get("postback") or {}
    mid = body.get("mid") if isinstance(body, dict) else None
    if kind in (MESSAGE, ECHO) and mid:
        return f"mid:{mid}"
    if kind in (DELIVERY, READ):
        watermark = event[kind].get("watermark")
        if watermark is not None:
            return f"{kind}:{page}:{psid}:{watermark}"
    if kind == POSTBACK:
        return f"postback:{mid}" if mid else f"postback:{page}:{psid}:{event.get('timestamp')}"
    # Anything else: the event's own content (a redelivery carries the same bytes).
    digest = hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()
    return f"{kind}:{page}:{digest}"


_ID_LENGTH = 64  # the columns that hold Facebook ids (Page ids, PSIDs)


def _an_id(value: Any, what: str) -> str:
    """A Facebook id from a body, or ValueError saying why it cannot be one."""
    text = str(value)
    if len(text) > _ID_LENGTH or "\x00" in text:
        raise ValueError(f"{what} is not a Facebook id (at most {_ID_LENGTH} characters, no NUL)")
    return text


def _events(body: dict[str, Any]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    if body.get("object") != "page":
        return []
    for entry in body.get("entry") or []:
        if not isinstance(entry, dict) or entry.get("id") is None:
            continue
        page = _an_id(entry["id"], "entry.id")
        # Standby events (another app owns the thread) have the same shapes.
        for field in ("messaging", "standby"):
            for event in entry.get(field) or []:
                if not isinstance(event, dict):
                    continue
                kind = _kind(event)
                psid = _psid(event, kind)
                if psid is not None:
                    _an_id(psid, f"entry.{field}.sender.id")
                key = _key(page, psid, kind, event)
                if "\x00" in key:
                    raise ValueError(f"entry.{field}: a message id contains a NUL character")
                # The same event twice in one POST (two entries) is stored once.
                rows.setdefault(
                    key,
                    {
                        "event_key": key[:255],
                        "fb_page_id": page,
                        "psid": psid,
                        "kind": kind,
                        "payload": event | ({"standby": True} if field == "standby" else {}),
                    },
                )
    return list(rows.values())


async def store(session: AsyncSession, body: dict[str, Any]) -> list[WebhookEvent]:
    """Store the body's events; returns the ones not seen before (redeliveries are skipped)."""
    rows = _events(body)
    if not rows:
        return []
    now = utcnow()
    insert = contacts.insert_for(session)
    ids = list(
        await session.scalars(
            insert(WebhookEvent)
            .values([row | {"received_at": now} for row in rows])
            .on_conflict_do_nothing(index_elements=["event_key"])
            .returning(WebhookEvent.id)
        )
    )
    if not ids:
        return []
    stored = await session.scalars(
        select(WebhookEvent).where(WebhookEvent.id.in_(ids)).order_by(WebhookEvent.id)
    )
    return list(stored)


async def store_many(
    session: AsyncSession, bodies: Sequence[dict[str, Any]]
) -> list[list[int] | str]:
    """Store the events of several bodies at once (the webhook intake's batches).

    For each body, the ids of its events not seen before (an event in two bodies counts for
    the first), or, when the body could not be read, why (nothing of it is stored).
    """
    owner: dict[str, int] = {}
    unique: list[dict[str, Any]] = []
    found: list[list[int] | str] = []
    for i, body in enumerate(bodies):
        try:
            rows = _events(body)
        except ValueError as exc:
            found.append(f"The webhook body is not a Messenger webhook: {exc}")
            continue
        except (AttributeError, KeyError, TypeError, RecursionError):
            found.append("The webhook body is not a Messenger webhook")
            continue
        found.append([])
        for row in rows:
            if row["event_key"] not in owner:
                owner[row["event_key"]] = i
                unique.append(row)
    now = utcnow()
    insert = contacts.insert_for(session)
    for start in range(0, len(unique), 500):  # well under SQLite's bound-parameter limit
        chunk = unique[start : start + 500]
        result = await session.execute(
            insert(WebhookEvent)
            .values([row | {"received_at": now} for row in chunk])
            .on_conflict_do_nothing(index_elements=["event_key"])
            .returning(WebhookEvent.id, WebhookEvent.event_key)
        )
        for event_id, key in result:
            ids = found[owner[key]]
            assert isinstance(ids, list)
            ids.append(event_id)
    return found


async def process(session: AsyncSession, event: WebhookEvent, batch: Batch) -> Result:
    """Apply one stored event. Idempotent: processing it again changes nothing.

    An event that cannot be applied yet returns `done=False` before it writes anything (the
    runner relies on it: a batch needs no savepoint per event)."""
    page = await batch.page(session, event.fb_page_id)
    if page is None:
        return Result(reason=f"Page {event.fb_page_id} is not connected; event ignored")
    payload = event.payload
    at = event_time(payload.get("timestamp")) or event.received_at
    if event.kind == POLICY:  # about the Page itself: no person in it
        applied = await policy.apply(session, page.id, payload["policy_enforcement"], at)
        return Result(reason=applied.note, page_id=page.id, resumed=applied.resumed)
    if event.psid is None:
        return Result(reason="no person in the event; ignored")
    if event.kind in _USER_ACTIONS:
        # A timestamp from the future (clock skew) must not hold a window open.
        contact = await inbound.touch(session, page, event.psid, min(at, event.received_at))
        kind = engagement.kind_of(event.kind, payload)
        opted_out = False
        if event.kind == MESSAGE:
            text = payload["message"].get("text")
            opted_out = await inbound.keywords(session, page, contact, text, at)
            if inbound.is_opt_out(page, text):
                kind = None  # "STOP" is no reply to the campaign
        # Facebook's time, as the deliveries' sent_at (services/engagement.py); one far
        # ahead of its arrival is taken as the arrival, as the window's is.
        batch.engagement.note(contact.id, kind, engagement.when(at, event.received_at))
        return Result(
            page_id=page.id,
            contact_id=contact.id,
            psid=contact.psid,
            lookup_profile=contact.first_name is None and contact.last_name is None,
            confirm_opt_out=opted_out and at > utcnow() - _REPLY_WINDOW,
        )
    if event.kind in (DELIVERY, READ):
        receipt = payload[event.kind]
        watermark = event_time(receipt.get("watermark"))
        if watermark is None:
            return Result(reason="receipt without a watermark; ignored")
        listed = receipt.get("mids") if event.kind == DELIVERY else None
        mids = (
            [m for m in listed if isinstance(m, str) and "\x00" not in m]
            if isinstance(listed, list)
            else []
        )
        note = await receipts.apply(
            session, page.id, event.psid, event.kind, watermark, mids, shifts=batch.shifts
        )
        return Result(reason=note)
    if event.kind == ECHO:
        message = payload["message"]
        metadata, mid = message.get("metadata"), message.get("mid")
        ours = echoes.parse_metadata(metadata) if isinstance(metadata, str) else None
        if ours is None or not isinstance(mid, str) or not mid:
            return Result(reason="echo without our metadata (another app or the Page Inbox)")
        delivery_id, part = ours
        if part is not None:  # a sequence's message that more follow
            note = await echoes.apply_part(
                session, page, event.psid, delivery_id, part, watermarks=batch.watermarks
            )
            return Result(reason=note)
        try:
            note = await echoes.apply(
                session,
                page,
                event.psid,
                delivery_id,
                mid,
                at,
                shifts=batch.shifts,
                watermarks=batch.watermarks,
            )
        except echoes.BeingWritten as exc:
            return Result(done=False, reason=str(exc))
        return Result(reason=note)
    return Result(reason=f"{event.kind} events are stored, not acted on")
