"""Messenger webhook events: stored raw and idempotently, then processed one by one.

`store` turns a verified POST body into `WebhookEvent` rows, one per messaging event, keyed
so that a redelivered event is recognised (INSERT … ON CONFLICT DO NOTHING). `process` applies
one stored event: inbound messages and postbacks create the contact and open its window,
opt-out / opt-in keywords, delivery and read receipts (watermarks, never backwards) and echoes
of our own sends (the delivery id in `metadata`). Both take a session and never commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from pagecast.models import Contact, Delivery, DeliveryStatus, Page, WebhookEvent, utcnow
from pagecast.schemas import BIGINT_MAX, parse_id
from pagecast.services import contacts, deliveries, policy, receipts, sending

__all__ = [
    "DEFAULT_OPT_OUT_KEYWORDS",
    "OPT_IN_KEYWORDS",
    "OPT_OUT_REPLY",
    "Result",
    "event_time",
    "page_ids",
    "process",
    "set_profile",
    "store",
    "store_many",
]

DEFAULT_OPT_OUT_KEYWORDS = ("STOP", "UNSUBSCRIBE", "STOP ALL")
OPT_IN_KEYWORDS = ("START",)
OPT_OUT_REPLY = (
    "You are unsubscribed and will not get messages from us any more. "
    "Reply START to subscribe again."
)
# The confirmation is a reply inside the standard messaging window.
_REPLY_WINDOW = timedelta(hours=24)

# Kinds of stored events.
MESSAGE, ECHO, POSTBACK = "message", "echo", "postback"
DELIVERY, READ = receipts.DELIVERY, receipts.READ
REACTION, REFERRAL, OPTIN, POLICY, OTHER = "reaction", "referral", "optin", "policy", "other"
# A person acted in the thread: the contact exists and its messaging window opens.
_USER_ACTIONS = frozenset({MESSAGE, POSTBACK, REACTION, REFERRAL, OPTIN})
# An echo proves that these deliveries reached Facebook (a timeout, a dead worker, a retry
# whose earlier attempt did arrive): they become `sent`.
_PROVEN_BY_ECHO = (DeliveryStatus.UNKNOWN, DeliveryStatus.PENDING, DeliveryStatus.FAILED)
ECHO_WATERMARK_STEP = timedelta(seconds=1)


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


async def process(session: AsyncSession, event: WebhookEvent) -> Result:
    """Apply one stored event. Idempotent: processing it again changes nothing.

    An event that cannot be applied yet returns `done=False` before it writes anything (the
    runner relies on it: a batch needs no savepoint per event)."""
    known: dict[str | None, Page | None] = session.info.setdefault(_PAGES, {})
    if event.fb_page_id not in known:  # one lookup per Page and batch
        known[event.fb_page_id] = await session.scalar(
            select(Page).where(Page.fb_page_id == event.fb_page_id)
        )
    page = known[event.fb_page_id]
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
        contact = await _touch(session, page, event.psid, min(at, event.received_at))
        opted_out = False
        if event.kind == MESSAGE:
            text = payload["message"].get("text")
            opted_out = await _keywords(session, page, contact, text, at)
        return Result(
            page_id=page.id,
            contact_id=contact.id,
            psid=contact.psid,
            lookup_profile=contact.first_name is None and contact.last_name is None,
            confirm_opt_out=opted_out and at > utcnow() - _REPLY_WINDOW,
        )
    if event.kind in (DELIVERY, READ):
        return await _receipt(session, page, event.psid, event.kind, payload[event.kind])
    if event.kind == ECHO:
        return await _echo(session, page, event.psid, payload["message"], at)
    return Result(reason=f"{event.kind} events are stored, not acted on")


# ---------------------------------------------------------------- inbound


async def _contact(session: AsyncSession, page: Page, psid: str, *, create: bool) -> Contact | None:
    if create:
        insert = contacts.insert_for(session)
        await session.execute(
            insert(Contact)
            .values(page_id=page.id, psid=psid, created_at=utcnow(), updated_at=utcnow())
            .on_conflict_do_nothing(index_elements=["page_id", "psid"])
        )
    # Locked (PostgreSQL) so that a receipt and an echo of one person are applied one after
    # the other; SQLite transactions are serialised already.
    return await session.scalar(
        select(Contact)
        .where(Contact.page_id == page.id, Contact.psid == psid)
        .options(raiseload(Contact.tags))  # not needed here: no query per event for them
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def _touch(session: AsyncSession, page: Page, psid: str, at: datetime) -> Contact:
    contact = await _contact(session, page, psid, create=True)
    assert contact is not None
    if contact.last_inbound_at is None or contact.last_inbound_at < at:
        contact.last_inbound_at = at
    await session.flush()
    return contact


def _normalise(text: str) -> str:
    return " ".join(text.split()).upper()


async def _keywords(
    session: AsyncSession, page: Page, contact: Contact, text: str | None, at: datetime
) -> bool:
    """Apply an opt-out or opt-in keyword; True when this message opted the contact out."""
    if not text or not isinstance(text, str):
        return False
    said = _normalise(text)
    opt_out = {_normalise(k) for k in (page.opt_out_keywords or DEFAULT_OPT_OUT_KEYWORDS)}
    if said not in opt_out and said not in OPT_IN_KEYWORDS:
        return False
    if contact.consent_changed_at is not None and contact.consent_changed_at >= at:
        return False  # a newer keyword was applied already (events out of order)
    contact.consent_changed_at = at
    opted_out = False
    if said in opt_out and contact.opted_out_at is None:
        contact.opted_out_at = at
        opted_out = True
    elif said in OPT_IN_KEYWORDS and contact.opted_out_at is not None:
        contact.opted_out_at = None
    await session.flush()
    return opted_out


async def set_profile(
    session: AsyncSession,
    contact_id: int,
    *,
    first_name: str | None,
    last_name: str | None,
    locale: str | None = None,
    timezone: float | None = None,
) -> bool:
    """Names from the User Profile API, for a contact that still has none."""
    result = await session.execute(
        update(Contact)
        .where(Contact.id == contact_id, Contact.first_name.is_(None), Contact.last_name.is_(None))
        .values(
            first_name=first_name,
            last_name=last_name,
            locale=func.coalesce(Contact.locale, locale),
            timezone=func.coalesce(Contact.timezone, timezone),
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- receipts and echoes


async def _receipt(
    session: AsyncSession, page: Page, psid: str, kind: str, receipt: dict[str, Any]
) -> Result:
    """Keep the person's watermark and move what it covers now; deliveries whose result is
    not written yet are moved by it when it is (services/receipts.py)."""
    watermark = event_time(receipt.get("watermark"))
    if watermark is None:
        return Result(reason="receipt without a watermark; ignored")
    contact = await _contact(session, page, psid, create=False)
    if contact is None:
        return Result(reason=f"no contact {psid} on Page {page.id}; ignored")
    receipts.note(contact, kind, watermark)
    await session.flush()
    listed = receipt.get("mids") if kind == DELIVERY else None
    mids = (
        [m for m in listed if isinstance(m, str) and "\x00" not in m]
        if isinstance(listed, list)
        else []
    )
    await receipts.advance(session, contact.id, kind, watermark, mids)
    return Result()


_ECHO_SEEN = "pagecast.echo_seen"
_PAGES = "pagecast.pages"


def start_batch(session: AsyncSession) -> None:
    """Before processing a batch of events in one transaction: rows that every event may
    touch (campaign counters, the Page's echo watermark) are written once, by `end_batch`."""
    deliveries.defer_shifts(session)
    session.info[_ECHO_SEEN] = {}


async def end_batch(session: AsyncSession) -> None:
    """Write what the batch deferred, in id order, and complete the campaigns it finished."""
    seen: dict[int, datetime] = session.info.pop(_ECHO_SEEN, None) or {}
    for campaign_id in await deliveries.flush_shifts(session):
        await sending.finish_if_done(session, campaign_id)
    for page_id in sorted(seen):
        await session.execute(
            update(Page)
            .where(
                Page.id == page_id,
                or_(Page.echo_seen_at.is_(None), Page.echo_seen_at < seen[page_id]),
            )
            .values(echo_seen_at=seen[page_id])
            .execution_options(synchronize_session=False)
        )


async def _echo_stream_live(session: AsyncSession, page: Page, claimed_at: datetime | None) -> None:
    """Move the Page's echo watermark (services/reconcile.py) to this delivery's claim time
    (at the end of the batch: `end_batch`). Written at most about once a second per Page: a
    lower watermark only delays a resend."""
    if claimed_at is None:
        return
    seen = page.echo_seen_at
    if seen is not None and claimed_at - seen < ECHO_WATERMARK_STEP:
        return
    batch: dict[int, datetime] = session.info.setdefault(_ECHO_SEEN, {})
    if page.id not in batch or batch[page.id] < claimed_at:
        batch[page.id] = claimed_at


async def _echo(
    session: AsyncSession, page: Page, psid: str, message: dict[str, Any], at: datetime
) -> Result:
    metadata, mid = message.get("metadata"), message.get("mid")
    delivery_id = parse_id(metadata, BIGINT_MAX) if isinstance(metadata, str) else None
    if delivery_id is None or not isinstance(mid, str) or not mid:
        return Result(reason="echo without our metadata (another app or the Page Inbox)")
    contact = await _contact(session, page, psid, create=False)
    if contact is None:
        return Result(reason=f"no contact {psid} on Page {page.id}; echo ignored")
    delivery = await session.scalar(
        select(Delivery)
        .where(Delivery.id == delivery_id, Delivery.contact_id == contact.id)
        .execution_options(populate_existing=True)
    )
    if delivery is None:
        return Result(reason=f"echo names delivery {metadata}, which is not this person's")
    if delivery.status is DeliveryStatus.SENDING:
        # The worker has not written its result yet: note the echo's mid, which its result
        # write keeps and which settles an ambiguous outcome as `sent`
        # (deliveries.settle_echoed). Had the result just been written, try again later.
        # Never waits for the worker's lock on the row (it would deadlock with its result
        # write): a row being written right now is tried again later.
        free = await session.scalar(
            select(Delivery.id)
            .where(Delivery.id == delivery.id, Delivery.status == DeliveryStatus.SENDING)
            .with_for_update(skip_locked=True)
        )
        if free is None:
            return Result(done=False, reason=f"delivery {delivery.id} is being written")
        # Its mid, and Facebook's time for it (the clock of the receipts' watermarks): the
        # result write keeps both.
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id)
            .values(message_id=mid, sent_at=at)
            .execution_options(synchronize_session=False)
        )
        await _echo_stream_live(session, page, delivery.claimed_at)
        return Result()  # its result write settles it (deliveries.settle_echoed)
    now = utcnow()
    if delivery.status in _PROVEN_BY_ECHO:
        moved = await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id, Delivery.status == delivery.status)
            .values(
                status=DeliveryStatus.SENT,
                reason=None,
                message_id=mid,
                sent_at=at,
                next_attempt_at=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount:  # type: ignore[attr-defined]
            await deliveries.shift(
                session, delivery.campaign_id, {delivery.status: -1, DeliveryStatus.SENT: 1}
            )
    elif delivery.status in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ):
        # Confirmed: the echo's mid, and Facebook's own time (the clock of the watermarks).
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id)
            .values(message_id=mid, sent_at=at, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    else:
        return Result(reason=f"delivery {delivery.id} is {delivery.status.value}; echo noted")
    await _echo_stream_live(session, page, delivery.claimed_at)
    # Receipts processed before this echo cover it when their watermark is later.
    await receipts.catch_up(session, [delivery.id])
    return Result()
