"""The audience snapshot of a large campaign, in slices (docs/performance.md, P4).

A large audience on PostgreSQL is snapshotted in slices: the first SNAPSHOT_FIRST contacts
inside the start transaction (`first_slice`, called by `sending.start_sliced`), so the start
answers and the first chunk is sent at once, the rest by a `snapshot` job, SNAPSHOT_SLICE
contact ids per transaction (`insert_slice`, then `finish`). Until the last slice the
campaign's `n_pending` also counts the contacts not inserted yet, so the campaign cannot
complete before its snapshot does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.message_schema import Content
from pagecast.models import Campaign, CampaignStatus, Contact, Delivery, DeliveryStatus
from pagecast.services import (
    audience,
    content,
    deliveries,
    message_lengths,
    series_exclusion,
    snapshot_insert,
)

__all__ = [
    "SNAPSHOT_FIRST",
    "SNAPSHOT_SLICE",
    "Rest",
    "finish",
    "first_slice",
    "insert_slice",
    "resume_point",
]

SNAPSHOT_FIRST = 2_000
SNAPSHOT_SLICE = 100_000


@dataclass(frozen=True)
class Rest:
    """The part of an audience snapshotted after the start answered: contact ids in
    (`after`, `upto`], `upto` being the highest id of the audience at the start."""

    campaign_id: int
    after: int
    upto: int


async def _insert(
    session: AsyncSession, campaign: Campaign, now: datetime, after: int, upto: int
) -> None:
    """The snapshot's INSERT … SELECT for contact ids in (after, upto], with due times and
    the Page's frequency cap (the same statement as an unsliced snapshot)."""
    await snapshot_insert.snapshot_with_due_times(
        session, campaign, now, Contact.id > after, Contact.id <= upto
    )


async def _skipped_between(session: AsyncSession, campaign_id: int, after: int, upto: int) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(
                Delivery.campaign_id == campaign_id,
                Delivery.contact_id > after,
                Delivery.contact_id <= upto,
                Delivery.status == DeliveryStatus.SKIPPED,
            )
        )
        or 0
    )


async def first_slice(
    session: AsyncSession, campaign: Campaign, now: datetime, check: Sequence[Content]
) -> tuple[dict[str, int], Rest | None]:
    """The first slice, in the start's transaction; `check` are the messages to check
    against the longest names (read in the same scan as the count when the audience is the
    whole Page). Returns the start's counts and the `Rest`, None when it all fit."""
    # Issue 20: a run of a series counts without whoever an earlier run reached, one
    # snapshot of the series at a time.
    await series_exclusion.lock_series(session, campaign.series_id)
    matching = [
        *audience.matches(campaign.page_id, campaign.audience),
        *series_exclusion.snapshot_conditions(campaign),
    ]
    whole_page = bool(check) and campaign.audience["type"] == "all"
    names = message_lengths.name_length_columns() if whole_page else ()
    total, upto, *longest = (
        await session.execute(select(func.count(), func.max(Contact.id), *names).where(*matching))
    ).one()
    if check:
        names_ = (
            message_lengths.names_of(*longest)
            if whole_page
            else await message_lengths.longest_names(session, campaign.page_id)
        )
        for index, message in enumerate(check):
            content.check_length(
                message, names_, field=message_lengths.message_field(index, len(check))
            )
    if total <= SNAPSHOT_FIRST:
        return await snapshot_insert.snapshot(session, campaign, now), None
    first_upto = await session.scalar(
        select(Contact.id).where(*matching).order_by(Contact.id).offset(SNAPSHOT_FIRST - 1).limit(1)
    )
    assert first_upto is not None
    await _insert(session, campaign, now, 0, first_upto)
    skipped = await _skipped_between(session, campaign.id, 0, first_upto)
    # Every contact not inserted yet counts as pending until its slice is written.
    await session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id)
        .values(n_total=total, n_pending=total - skipped, n_skipped=skipped)
    )
    counts = {"total": total, "pending": total - skipped, "skipped": skipped, "sliced": 1}
    return counts, Rest(campaign.id, first_upto, upto)


async def resume_point(session: AsyncSession, campaign_id: int) -> int:
    """The highest contact id already snapshotted (a restarted snapshot job goes on from it)."""
    return int(
        await session.scalar(
            select(func.max(Delivery.contact_id)).where(Delivery.campaign_id == campaign_id)
        )
        or 0
    )


async def insert_slice(session: AsyncSession, campaign_id: int, *, after: int, upto: int) -> int:
    """Insert the deliveries of contact ids in (after, after + SNAPSHOT_SLICE], at most `upto`.

    Contacts the start could not send to are `skipped` with the reason, as in the start.
    Returns the id to go on after; `upto` or more means the audience is complete. A
    cancelled or deleted campaign gets no more rows (returns `upto`).
    """
    # Issue 20: the series first (one snapshot of its runs at a time), in the order a run's
    # start and a series' delete take them: the series, then the campaign.
    await series_exclusion.lock_series(
        session, await session.scalar(select(Campaign.series_id).where(Campaign.id == campaign_id))
    )
    # One lock on the campaign row for the slice, in place of the per-row check of a foreign
    # key: deleting the campaign waits for the slice's commit (campaigns.delete).
    campaign = await session.scalar(
        select(Campaign)
        .where(Campaign.id == campaign_id)
        .with_for_update(read=True, key_share=True)
        .execution_options(populate_existing=True)
    )
    if (
        campaign is None
        or campaign.status is CampaignStatus.CANCELLED
        or campaign.started_at is None
    ):
        return upto
    last = min(after + SNAPSHOT_SLICE, upto)
    await _insert(session, campaign, campaign.started_at, after, last)
    skipped = await _skipped_between(session, campaign_id, after, last)
    await deliveries.shift(
        session, campaign_id, {DeliveryStatus.PENDING: -skipped, DeliveryStatus.SKIPPED: skipped}
    )
    return last


async def finish(session: AsyncSession, campaign_id: int) -> int:
    """End a sliced snapshot: the counters stop counting contacts that were never inserted
    (deleted since the start, or a cancel). Returns how many that was (0 when the campaign
    itself was deleted). The caller then completes the campaign if nothing is left
    (`sending.finish_if_done`, in the same transaction)."""
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        return 0
    written = int(
        await session.scalar(select(func.count()).where(Delivery.campaign_id == campaign_id)) or 0
    )
    missing = campaign.n_total - written
    if missing:
        await session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(n_total=written, n_pending=Campaign.n_pending - missing)
        )
    return missing
