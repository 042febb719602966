"""Campaigns: drafts, validation against Messenger's rules, the guarded state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.db import rowcount
from pagecast.errors import Hint, InvalidInput, InvalidState, NotFound
from pagecast.message_schema import Content
from pagecast.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Page,
    utcnow,
)
from pagecast.permissions import Actor
from pagecast.schemas import CampaignCreate, CampaignUpdate
from pagecast.services import (
    approval_requests,
    audience,
    audit,
    campaign_events,
    content,
    due_times,
    message_lengths,
    pages,
    reconcile,
    series_exclusion,
    templates,
    variants,
)

__all__ = [
    "EDITABLE",
    "check",
    "check_schedule",
    "counts",
    "create",
    "delete",
    "duplicate",
    "effective_content",
    "effective_messages",
    "expired",
    "get",
    "get_with_page_rate",
    "keeps_its_message_count",
    "list_page",
    "pace",
    "send_rate",
    "stored_messages",
    "update",
]

_RATE_WINDOW_S = 60  # the send rate is counted over the last minute
EDITABLE = (
    CampaignStatus.DRAFT,
    CampaignStatus.AWAITING_APPROVAL,  # issue 22: an edit withdraws the request
    CampaignStatus.SCHEDULED,
    CampaignStatus.PAUSED,
)
DELETABLE = (
    CampaignStatus.DRAFT,
    CampaignStatus.SCHEDULED,
    CampaignStatus.COMPLETED,
    CampaignStatus.CANCELLED,
)
# Once deliveries exist (the audience snapshot), these no longer change what is sent.
_FIXED_AFTER_START = (
    "page_id",
    "audience",
    "messaging_type",
    "tag",
    "variants",
    "experiment",
    "local_send_at",  # due times are written by the snapshot (services/due_times.py)
    "send_window",
)
COUNT_KEYS = ("total", *(status.value for status in DeliveryStatus))


def require_status(campaign: Campaign, allowed: tuple[CampaignStatus, ...], action: str) -> None:
    if campaign.status not in allowed:
        raise InvalidState(
            f"Campaign {campaign.id} is {campaign.status.value}; {action} is only allowed when it "
            f"is {', '.join(s.value for s in allowed)}.",
            field="status",
        )


def check_schedule(scheduled_at: datetime | None, now: datetime) -> None:
    """Refuse a `scheduled_at` that has already come: it could never be scheduled (issue 19;
    `sending.schedule` refused it only when Schedule was pressed)."""
    if scheduled_at is not None and scheduled_at <= now:
        raise InvalidInput(
            f"scheduled_at: {scheduled_at.isoformat()} "
            f"({scheduled_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC) is in the past (it is now "
            f"{now.astimezone(UTC):%Y-%m-%d %H:%M} UTC); choose a later time, or leave it empty "
            "to start the campaign by hand.",
            field="scheduled_at",
        )


def expired(campaign: Campaign, now: datetime) -> bool:
    """Whether the campaign's `expires_at` has come: nothing more of it may be sent."""
    return campaign.expires_at is not None and campaign.expires_at <= now


async def get(session: AsyncSession, campaign_id: int, *, lock: bool = False) -> Campaign:
    """The campaign; `lock`: read fresh and locked (FOR UPDATE on PostgreSQL) until the
    transaction ends, so a change decided on its status cannot cross another one (an edit
    and an approval's start, two approvals)."""
    campaign = await session.get(
        Campaign, campaign_id, populate_existing=lock, with_for_update=lock or None
    )
    if campaign is None:
        raise NotFound(
            f"Campaign {campaign_id} does not exist. List campaigns with {{hint}}.",
            hint=Hint(api="GET /api/campaigns", cli="`pagecast campaigns list`"),
        )
    return campaign


async def list_page(
    session: AsyncSession,
    *,
    status: CampaignStatus | None = None,
    page_id: int | None = None,
    search: str | None = None,
    archived: bool = False,
    limit: int = 50,
    after_id: int | None = None,
) -> list[Campaign]:
    """The newest campaigns first; `archived` lists the archived ones instead of the rest
    (services/campaign_archive.py). Counts come from each row's counters, never a count."""
    query = select(Campaign).order_by(Campaign.id.desc()).limit(limit)
    query = query.where(
        Campaign.archived_at.is_not(None) if archived else Campaign.archived_at.is_(None)
    )
    if status is not None:
        query = query.where(Campaign.status == status)
    if page_id is not None:
        query = query.where(Campaign.page_id == page_id)
    if search:
        query = query.where(Campaign.name.ilike(f"%{search}%"))
    if after_id is not None:
        query = query.where(Campaign.id < after_id)
    return list(await session.scalars(query))


async def effective_content(session: AsyncSession, campaign: Campaign) -> Content:
    """The campaign's own content (the first message of a sequence), or its template's,
    checked by the rules that Save applies (`content.parse`: a template or content edited
    elsewhere is refused in words)."""
    if campaign.template_id is not None:
        return content.parse((await templates.get(session, campaign.template_id)).content)
    return content.parse(campaign.content)


async def effective_messages(session: AsyncSession, campaign: Campaign) -> list[Content]:
    """What each person gets, in order: the sequence's messages, or the one message."""
    if campaign.messages:
        return [
            content.parse(m, message_lengths.message_field(i, len(campaign.messages)))
            for i, m in enumerate(campaign.messages)
        ]
    return [await effective_content(session, campaign)]


def stored_messages(campaign: Campaign) -> list[dict[str, Any]]:
    """The campaign's own messages as stored (empty when a template gives its message)."""
    if campaign.messages:
        return list(campaign.messages)
    return [campaign.content] if campaign.content is not None else []


async def check(session: AsyncSession, data: CampaignCreate) -> None:
    """Save's checks that need the database; the composer's preview runs them as you type."""
    await _validate(session, data)


async def _validate(session: AsyncSession, data: CampaignCreate, *, started: bool = False) -> None:
    """Checks that need the database: the Page, the template, rendered length, the contacts
    (not for a `started` campaign: it keeps the audience it started with, whatever became of
    its segment or chosen people since)."""
    page = await pages.get(session, data.page_id)
    messages = data.all_messages
    if data.template_id is not None:
        template = await templates.get(session, data.template_id)
        messages = [content.parse(template.content)]
    await message_lengths.check_messages_length(session, messages, page.id)
    due_times.check_window_open(*due_times.stored(page.quiet_hours, data.send_window))
    if data.variants:  # each variant's content by the same rules, named by its field
        await message_lengths.check_messages_length(
            session,
            [v.content for v in data.variants],
            page.id,
            [f"variants[{i}].content" for i in range(len(data.variants))],
        )
    if data.send_rate is not None and data.send_rate > page.send_rate:
        raise InvalidInput(
            f"send_rate {data.send_rate:g}/s is above Page {page.name}'s rate of {page.send_rate:g}/s; "
            "lower it, or raise the Page's send_rate first.",
            field="send_rate",
        )
    if not started:
        await audience.check(
            session, page.id, data.audience.model_dump(mode="json", exclude_none=True)
        )


def _columns(data: CampaignCreate) -> dict[str, Any]:
    # A sequence keeps every message in `messages` and its first in `content` (what readers
    # of one message see); a single message is `content` alone.
    messages = [m.stored() for m in data.all_messages]
    return {
        "name": data.name,
        "description": data.description,
        "page_id": data.page_id,
        "content": messages[0] if messages else None,
        "messages": messages if len(messages) > 1 else None,
        "template_id": data.template_id,
        "messaging_type": data.messaging_type,
        "tag": data.tag,
        "audience": data.audience.model_dump(mode="json", exclude_none=True),
        "scheduled_at": data.scheduled_at,
        "priority": data.priority,
        "send_rate": data.send_rate,
        "expires_at": data.expires_at,
        "local_send_at": data.local_send_at,
        "send_window": data.send_window,
    } | variants.columns(data.variants, data.experiment)


async def create(
    session: AsyncSession,
    actor: Actor,
    data: CampaignCreate,
    *,
    now: datetime | None = None,
    series_run: tuple[int, datetime] | None = None,
) -> Campaign:
    """A new draft; a `scheduled_at` already past (at `now`) is refused. `series_run`: the
    series and run time it is a run of (services/series_runs.py)."""
    check_schedule(data.scheduled_at, now or utcnow())
    due_times.check_local_send_at(data.local_send_at, now or utcnow(), data.scheduled_at)
    await _validate(session, data)
    campaign = Campaign(**_columns(data), status=CampaignStatus.DRAFT, created_by_id=actor.user_id)
    if series_run is not None:
        campaign.series_id, campaign.run_at = series_run
    variants.prepare(campaign)
    session.add(campaign)
    await session.flush()
    await audit.record(
        session,
        actor,
        "campaign.created",
        object_type="campaign",
        object_id=campaign.id,
        details={"name": campaign.name},
    )
    await campaign_events.created(session, campaign)
    return campaign


def _current(campaign: Campaign) -> dict[str, Any]:
    return {
        "name": campaign.name,
        "description": campaign.description,
        "page_id": campaign.page_id,
        "content": campaign.content,
        "messages": campaign.messages,
        "template_id": campaign.template_id,
        "messaging_type": campaign.messaging_type,
        "tag": campaign.tag,
        "audience": audience.editable(campaign.audience),
        "scheduled_at": campaign.scheduled_at,
        "priority": campaign.priority,
        "send_rate": campaign.send_rate,
        "expires_at": campaign.expires_at,
        "variants": campaign.variants,
        "experiment": campaign.experiment,
        "local_send_at": campaign.local_send_at,
        "send_window": campaign.send_window,
    }


async def update(
    session: AsyncSession,
    actor: Actor,
    campaign_id: int,
    data: CampaignUpdate,
    *,
    now: datetime | None = None,
) -> Campaign:
    """Change a draft, scheduled or paused campaign; the result is validated as a whole.

    A new `scheduled_at` of a draft or scheduled campaign must be after `now`; the one it
    has is kept as it is (a paused campaign's schedule has passed: it started then).
    """
    # Locked: an edit waits for an approval's start (or the scheduler's) under way, then
    # finds the campaign started, instead of making a sending campaign a draft (issue 22).
    campaign = await get(session, campaign_id, lock=True)
    require_status(campaign, EDITABLE, "editing")
    changes = data.model_dump(exclude_unset=True)
    if campaign.status is CampaignStatus.PAUSED:
        fixed = sorted(set(changes) & set(_FIXED_AFTER_START))
        if fixed:
            raise InvalidState(
                f"Campaign {campaign.id} has started; {', '.join(fixed)} cannot change any more. "
                "Duplicate it ({hint}) to send differently.",
                field=fixed[0],
                hint=Hint(
                    api=f"POST /api/campaigns/{campaign.id}/duplicate",
                    cli=f"`pagecast campaigns duplicate {campaign.id}`",
                ),
            )
    merged = _current(campaign) | changes
    # The message is given one way: what a PATCH gives replaces the others (content replaces
    # a sequence by one message, messages a template, template_id both).
    ways = ("content", "messages", "template_id", "variants")
    given = [n for n in ways if changes.get(n) is not None]
    if given and keeps_its_message_count(campaign):
        variants.keep_started(campaign, given[0])
    if len(given) == 1:
        for name in ways:
            merged[name] = changes.get(name)
        if given != ["variants"] and "experiment" not in changes:
            merged["experiment"] = None  # one message: no experiment left to run
    elif not given and (merged["messages"] is not None or merged["variants"] is not None):
        merged["content"] = None  # a stored sequence or A/B test: `content` is its first
    validated = CampaignCreate.model_validate(merged)  # ValidationError names the field
    if keeps_its_message_count(campaign):
        _same_length(campaign, validated)
    if campaign.status is not CampaignStatus.PAUSED and validated.scheduled_at != (
        campaign.scheduled_at
    ):
        check_schedule(validated.scheduled_at, now or utcnow())
    if campaign.status is not CampaignStatus.PAUSED and {"local_send_at", "scheduled_at"} & set(
        changes
    ):
        due_times.check_local_send_at(
            validated.local_send_at, now or utcnow(), validated.scheduled_at
        )
    await _validate(session, validated, started=campaign.started_at is not None)
    before = _current(campaign)
    for name, value in _columns(validated).items():
        if name != "audience" or campaign.started_at is None:  # a started one keeps its copy
            setattr(campaign, name, value)
    if campaign.started_at is None:
        variants.prepare(campaign)
    if "scheduled_at" in changes:
        campaign.missed = False
    await session.flush()
    await audit.record(
        session,
        actor,
        "campaign.updated",
        object_type="campaign",
        object_id=campaign.id,
        details={
            "name": campaign.name,
            "changed": sorted(changes),
            "changes": audit.changes(before, _current(campaign), named=_NAMED_IN_AUDIT),
        },
    )
    # Issue 22: any edit after approval (or while awaiting it) withdraws it.
    await approval_requests.withdraw_on_edit(session, actor, campaign, now or utcnow())
    if campaign.status is CampaignStatus.SCHEDULED and campaign.scheduled_at is None:
        campaign.status = CampaignStatus.DRAFT  # unscheduled
        await session.flush()
    return campaign


# Fields whose change the audit log names without showing (a message, an audience: too large
# to read in a row); the others show their value before and after.
_NAMED_IN_AUDIT = ("content", "messages", "audience", "variants", "experiment", "send_window")


def keeps_its_message_count(campaign: Campaign) -> bool:
    """Whether the campaign's messages can be edited but not added or removed: it started
    (a paused campaign is the one started state that can be edited)."""
    return campaign.status is CampaignStatus.PAUSED


def _same_length(campaign: Campaign, validated: CampaignCreate) -> None:
    """A started campaign keeps its number of messages: its deliveries count the parts each
    person has had (`Delivery.parts_sent`), and the last part closes a delivery."""
    before = len(campaign.messages) if campaign.messages else 1
    after = len(validated.all_messages) or 1
    if before != after:
        raise InvalidState(
            f"Campaign {campaign.id} has started with {before} message(s) per person; the "
            "messages can be edited but not added or removed. Duplicate it "
            "({hint}) to send a different sequence.",
            field="messages",
            hint=Hint(
                api=f"POST /api/campaigns/{campaign.id}/duplicate",
                cli=f"`pagecast campaigns duplicate {campaign.id}`",
            ),
        )


async def delete(session: AsyncSession, actor: Actor, campaign_id: int) -> None:
    """Delete the campaign and its deliveries (they have no foreign key to cascade them).

    Deliveries before the campaign row, the order workers and receipts lock them in. A
    snapshot slice of a cancelled campaign may still be inserting: it holds the campaign row
    `FOR KEY SHARE` (snapshots.insert_slice), so deleting the row waits for it to commit, and
    the second delete takes what it wrote; a later slice finds no campaign.
    """
    campaign = await get(session, campaign_id)
    require_status(campaign, DELETABLE, "deleting")
    await series_exclusion.require_deletable(session, campaign)  # issue 20
    await _delete_deliveries(session, campaign_id)
    await session.delete(campaign)
    await session.flush()
    await _delete_deliveries(session, campaign_id)
    await audit.record(
        session,
        actor,
        "campaign.deleted",
        object_type="campaign",
        object_id=campaign_id,
        details={"name": campaign.name},
    )
    await session.flush()


async def duplicate(
    session: AsyncSession, actor: Actor, campaign_id: int, *, now: datetime | None = None
) -> Campaign:
    """A new draft with the campaign's settings; a schedule already past is left out (it
    could never be scheduled, and Save would refuse it: `check_schedule`)."""
    source = await get(session, campaign_id)
    copy = Campaign(**_current(source), status=CampaignStatus.DRAFT, created_by_id=actor.user_id)
    copy.name = f"{source.name} (copy)"[:200]
    variants.prepare(copy, new_seed_=True)
    if copy.scheduled_at is not None and copy.scheduled_at <= (now or utcnow()):
        copy.scheduled_at = None
    session.add(copy)
    await session.flush()
    await audit.record(
        session,
        actor,
        "campaign.duplicated",
        object_type="campaign",
        object_id=copy.id,
        details={"from": source.id},
    )
    await campaign_events.created(session, copy, copied_from=source.id)
    return copy


async def get_with_page_rate(session: AsyncSession, campaign_id: int) -> tuple[Campaign, float]:
    """The campaign and its Page's send rate, in one query (what a progress read needs)."""
    row = (
        await session.execute(
            select(Campaign, Page.send_rate)
            .join(Page, Page.id == Campaign.page_id)
            .where(Campaign.id == campaign_id)
        )
    ).one_or_none()
    if row is None:
        await get(session, campaign_id)  # raises NotFound with the usual message
    assert row is not None
    return row[0], float(row[1])


async def send_rate(session: AsyncSession, campaign_id: int) -> float:
    """Messages sent per second over the last minute (counts that minute's deliveries)."""
    window = timedelta(seconds=_RATE_WINDOW_S)
    count = await session.scalar(
        select(func.count()).where(  # an index range scan
            Delivery.campaign_id == campaign_id, Delivery.sent_at >= utcnow() - window
        )
    )
    return (count or 0) / _RATE_WINDOW_S


async def pace(
    session: AsyncSession, campaign: Campaign, grace_seconds: float, *, rate: float | None = None
) -> tuple[float, datetime | None]:
    """The send rate over the last minute (`rate` when the caller has a recent one) and,
    while some deliveries are `unknown`, when their reconciliation is due
    (services/reconcile.py)."""
    if rate is None:
        rate = await send_rate(session, campaign.id)
    until = (
        await reconcile.reconciling_until(session, campaign.id, timedelta(seconds=grace_seconds))
        if campaign.n_unknown
        else None
    )
    return rate, until


def counts(campaign: Campaign) -> dict[str, int]:
    """Deliveries by status, every key present, read from the campaign's counters (O(1))."""
    return {key: getattr(campaign, f"n_{key}") for key in COUNT_KEYS}


def reached(campaign: Campaign) -> int:
    """How many people the campaign's message was sent to: its deliveries `sent`, `delivered`
    or `read` (each counted once, under its latest status)."""
    return campaign.n_sent + campaign.n_delivered + campaign.n_read


async def _delete_deliveries(session: AsyncSession, campaign_id: int) -> int:
    """Delete the campaign's deliveries (nothing cascades from `campaigns`: models.Delivery);
    returns how many. Its counters go with the campaign row."""
    table = Delivery.__table__
    result = await session.execute(sql_delete(table).where(table.c.campaign_id == campaign_id))
    return rowcount(result)
