"""Series (issue 20): recurring campaigns. Create, read, change, pause, resume, end, delete.

A series holds a schedule in a time zone, a mode and the fields of each run's campaign; the
worker makes each run a campaign of its own at its time (services/series_runs.py). Acting on
a series needs what acting on a campaign needs: reading needs campaigns:read; creating,
changing or resuming one, which arms sends that start by themselves (as scheduling a
campaign does), needs campaigns:write and campaigns:send; pausing and ending need
campaigns:send; deleting needs campaigns:write and campaigns:send (it cancels the runs not
started yet).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.errors import Hint, InvalidInput, InvalidState, NotFound, field_path, in_words
from pagecast.models import Campaign, CampaignStatus, Series, SeriesStatus, utcnow
from pagecast.permissions import Actor, Permission
from pagecast.schemas import CampaignCreate
from pagecast.series_schema import SeriesCreate, SeriesUpdate, campaign_payload
from pagecast.services import audit, campaigns, pages, sending, series_schedule

__all__ = [
    "create",
    "delete",
    "end",
    "get",
    "list_all",
    "pause",
    "resume",
    "run_campaign_data",
    "runs",
    "upcoming",
    "update",
]


async def get(session: AsyncSession, series_id: int) -> Series:
    series = await session.get(Series, series_id)
    if series is None:
        raise NotFound(
            f"Series {series_id} does not exist. List them with {{hint}}.",
            hint=Hint(api="GET /api/series", cli="`pagecast series list`"),
        )
    return series


async def list_all(
    session: AsyncSession,
    *,
    status: SeriesStatus | None = None,
    page_id: int | None = None,
    limit: int = 50,
    after_id: int | None = None,
) -> list[Series]:
    query = select(Series).order_by(Series.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Series.status == status)
    if page_id is not None:
        query = query.where(Series.page_id == page_id)
    if after_id is not None:
        query = query.where(Series.id < after_id)
    return list(await session.scalars(query))


async def runs(session: AsyncSession, series_id: int, *, limit: int = 50) -> list[Campaign]:
    """The series' runs, the latest first: each a campaign with its counts."""
    return list(
        await session.scalars(
            select(Campaign)
            .where(Campaign.series_id == series_id)
            .order_by(Campaign.run_at.desc(), Campaign.id.desc())
            .limit(limit)
        )
    )


async def run_counts(session: AsyncSession, series_ids: list[int]) -> dict[int, int]:
    """How many runs each series has had (one query)."""
    rows = await session.execute(
        select(Campaign.series_id, func.count())
        .where(Campaign.series_id.in_(series_ids))
        .group_by(Campaign.series_id)
    )
    return {int(series_id or 0): int(count) for series_id, count in rows}


def upcoming(row: Series, count: int = 5) -> list[datetime]:
    """The next `count` run times (the stored next one, then the schedule's) while active."""
    if row.status is not SeriesStatus.ACTIVE or row.next_run_at is None:
        return []
    later = series_schedule.next_runs(row.schedule, row.timezone, row.next_run_at, count - 1)
    return [row.next_run_at, *later]


def run_campaign_data(series: Series, name: str) -> CampaignCreate:
    """The create body of a run's campaign: the series' stored campaign fields with the
    run's name and the series' Page."""
    return CampaignCreate.model_validate(
        dict(series.campaign) | {"name": name[:200], "page_id": series.page_id}
    )


async def _check(session: AsyncSession, data: SeriesCreate) -> str:
    """The checks a campaign's Save makes (Page, template, lengths, contacts, rate), on the
    runs' campaign fields; returns the zone (the Page's when the body names none)."""
    page = await pages.get(session, data.page_id)
    await campaigns.check(session, CampaignCreate.model_validate(_as_campaign(data)))
    return data.timezone or page.timezone


def _as_campaign(data: SeriesCreate) -> dict[str, Any]:
    return campaign_payload(data) | {"name": data.name, "page_id": data.page_id}


def _require_arm(actor: Actor) -> None:
    actor.require(Permission.CAMPAIGNS_WRITE)
    actor.require(Permission.CAMPAIGNS_SEND)


async def create(
    session: AsyncSession, actor: Actor, data: SeriesCreate, *, now: datetime | None = None
) -> Series:
    """A new active series; its first run is the schedule's first time after `now`."""
    _require_arm(actor)
    now = now or utcnow()
    zone = await _check(session, data)
    schedule = data.schedule.model_dump(mode="json")
    series = Series(
        name=data.name,
        page_id=data.page_id,
        schedule=schedule,
        timezone=zone,
        mode=data.mode,
        status=SeriesStatus.ACTIVE,
        campaign=campaign_payload(data),
        next_run_at=series_schedule.next_run(schedule, zone, now),
        created_by_id=actor.user_id,
    )
    session.add(series)
    await session.flush()
    await audit.record(
        session,
        actor,
        "series.created",
        object_type="series",
        object_id=series.id,
        details={"name": series.name, "schedule": schedule, "timezone": zone},
    )
    return series


def current_body(series: Series) -> dict[str, Any]:
    """The series as a create body (what a PATCH is merged into)."""
    return dict(series.campaign) | {
        "name": series.name,
        "page_id": series.page_id,
        "schedule": series.schedule,
        "timezone": series.timezone,
        "mode": series.mode.value,
    }


async def update(
    session: AsyncSession,
    actor: Actor,
    series_id: int,
    data: SeriesUpdate,
    *,
    now: datetime | None = None,
) -> Series:
    """Change a series that has not ended; the result is checked as a whole. A new schedule
    or zone moves the next run (from `now`)."""
    _require_arm(actor)
    now = now or utcnow()
    series = await get(session, series_id)
    _require_not_ended(series, "changing")
    changes = data.model_dump(exclude_unset=True)
    merged = current_body(series) | changes
    given = [n for n in ("content", "messages", "template_id") if changes.get(n) is not None]
    if len(given) == 1:  # the message is given one way: what the PATCH gives replaces the others
        for name in ("content", "messages", "template_id"):
            merged[name] = changes.get(name)
    try:
        validated = SeriesCreate.model_validate(merged)
    except ValidationError as exc:
        raise _first_error(exc) from None
    zone = await _check(session, validated)
    before = _audited(series)
    schedule = validated.schedule.model_dump(mode="json")
    moved = schedule != series.schedule or zone != series.timezone
    series.name, series.schedule, series.timezone = validated.name, schedule, zone
    series.mode, series.campaign = validated.mode, campaign_payload(validated)
    if moved and series.status is SeriesStatus.ACTIVE:
        series.next_run_at = series_schedule.next_run(schedule, zone, now)
    await session.flush()
    await audit.record(
        session,
        actor,
        "series.updated",
        object_type="series",
        object_id=series.id,
        details={
            "changed": sorted(changes),
            "changes": audit.changes(before, _audited(series), named=("campaign",)),
        },
    )
    return series


def _audited(series: Series) -> dict[str, Any]:
    """What the audit log compares of a series before and after a change (its campaign,
    the message and audience, is only named)."""
    return {
        "name": series.name,
        "schedule": series.schedule,
        "timezone": series.timezone,
        "mode": series.mode,
        "campaign": series.campaign,
    }


def _first_error(exc: ValidationError) -> InvalidInput:
    first = exc.errors()[0]
    field = field_path(p for p in first["loc"] if not str(p).startswith("function-"))
    return InvalidInput(f"{field}: {in_words(first)}", field=field or None)


def _require_not_ended(series: Series, action: str) -> None:
    if series.status is SeriesStatus.ENDED:
        raise InvalidState(
            f"Series {series.id} has ended; {action} is only allowed while it is active or "
            "paused. Create a new series to send again.",
            field="status",
        )


async def pause(session: AsyncSession, actor: Actor, series_id: int) -> Series:
    """No run starts while paused (a run already sending goes on: pause its campaign)."""
    actor.require(Permission.CAMPAIGNS_SEND)
    series = await get(session, series_id)
    if series.status is SeriesStatus.PAUSED:
        return series
    _require_not_ended(series, "pausing")
    series.status, series.status_reason = SeriesStatus.PAUSED, f"Paused by {actor.name}"
    await session.flush()
    await audit.record(session, actor, "series.paused", object_type="series", object_id=series.id)
    return series


async def resume(
    session: AsyncSession, actor: Actor, series_id: int, *, now: datetime | None = None
) -> Series:
    """Active again from the schedule's next time after `now`: the runs that passed while
    it was paused are not sent late."""
    _require_arm(actor)
    now = now or utcnow()
    series = await get(session, series_id)
    if series.status is SeriesStatus.ACTIVE:
        return series
    _require_not_ended(series, "resuming")
    series.status, series.status_reason = SeriesStatus.ACTIVE, None
    series.next_run_at = series_schedule.next_run(series.schedule, series.timezone, now)
    await session.flush()
    await audit.record(session, actor, "series.resumed", object_type="series", object_id=series.id)
    return series


async def end(
    session: AsyncSession, actor: Actor, series_id: int, *, now: datetime | None = None
) -> Series:
    """No more runs, for good (its runs stay, each a campaign)."""
    actor.require(Permission.CAMPAIGNS_SEND)
    series = await get(session, series_id)
    if series.status is SeriesStatus.ENDED:
        return series
    series.status, series.status_reason = SeriesStatus.ENDED, f"Ended by {actor.name}"
    series.next_run_at, series.ended_at = None, now or utcnow()
    await session.flush()
    await audit.record(session, actor, "series.ended", object_type="series", object_id=series.id)
    return series


async def delete(session: AsyncSession, actor: Actor, series_id: int) -> None:
    """Delete a series (needs what creating one needs): its runs not started yet (scheduled
    or missed) are cancelled; the others stay as campaigns of their own (the foreign key
    clears their `series_id`)."""
    _require_arm(actor)
    series = await get(session, series_id)
    unstarted = await session.scalars(
        select(Campaign.id).where(
            Campaign.series_id == series_id, Campaign.status == CampaignStatus.SCHEDULED
        )
    )
    for campaign_id in list(unstarted):
        await sending.cancel(session, actor, campaign_id)
    await session.delete(series)
    await session.flush()
    await audit.record(
        session,
        actor,
        "series.deleted",
        object_type="series",
        object_id=series_id,
        details={"name": series.name},
    )
