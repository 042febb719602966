""" "Never the same person twice in this series" (issue 20): the condition a run's snapshot
adds to its INSERT … SELECT (services/deliveries.py `snapshot_insert`).

A contact is left out of a run of a `never_twice` series when a delivery of an earlier run
of the same series may have reached them: any status but `skipped`, `cancelled` and
`expired`, which are certain never to have been sent (a failed one may have been: an
ambiguous outcome is `failed`). Such a contact gets no delivery row at all in the run: a
daily evergreen series over a large Page would otherwise write the whole Page again as
skipped rows every day. Someone skipped in an earlier run (outside the 24-hour window, for
example) is messaged by the first run that can reach them.

Two runs of one series whose snapshots overlap (a sliced snapshot still inserting when the
next run starts) must not both take the same person: on PostgreSQL's READ COMMITTED each
NOT EXISTS cannot see the other's uncommitted rows. So every snapshot transaction of a run
(`snapshot_insert.snapshot`, `snapshots.first_slice`, `snapshots.insert_slice`) first locks the
series row (`lock_series`): the second waits for the first to commit, and its statements,
each reading what is committed when it runs, then see the first one's rows.

A run's deliveries are also what later runs leave people out by: a run of a `never_twice`
series that may have sent anything cannot be deleted while its series goes on
(`require_deletable`, called by `campaigns.delete`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.errors import Hint, InvalidState
from pagecast.models import (
    Campaign,
    Contact,
    Delivery,
    DeliveryStatus,
    Series,
    SeriesMode,
    SeriesStatus,
)

__all__ = ["NEVER_SENT", "lock_series", "require_deletable", "snapshot_conditions"]

# The statuses of a delivery that certainly sent nothing.
NEVER_SENT = (DeliveryStatus.SKIPPED, DeliveryStatus.CANCELLED, DeliveryStatus.EXPIRED)


def snapshot_conditions(campaign: Campaign) -> tuple[Any, ...]:
    """The snapshot's extra WHERE conditions for `campaign`: none unless it is a run of a
    series, then NOT EXISTS a delivery of an earlier run of its series, when that series is
    `never_twice` (read in the same statement, so a mode changed since is the one used)."""
    if campaign.series_id is None:
        return ()
    earlier = Campaign.__table__.alias("earlier_run")
    sent = Delivery.__table__.alias("earlier_delivery")
    series = Series.__table__
    return (
        ~exists(
            select(sent.c.id)
            .join(earlier, earlier.c.id == sent.c.campaign_id)
            .join(series, series.c.id == earlier.c.series_id)
            .where(
                and_(
                    earlier.c.series_id == campaign.series_id,
                    earlier.c.id != campaign.id,
                    series.c.mode == SeriesMode.NEVER_TWICE.value,
                    sent.c.contact_id == Contact.id,
                    sent.c.status.not_in([s.value for s in NEVER_SENT]),
                )
            )
        ),
    )


async def lock_series(session: AsyncSession, series_id: int | None) -> None:
    """Lock the row of the series a campaign is a run of (nothing for a campaign of no
    series) until the transaction ends: one snapshot of the series' runs at a time. Take it
    before the snapshot's first statement that reads the exclusion. (SQLite has no row locks;
    it runs one writing transaction at a time anyway.)"""
    if series_id is not None:
        await session.execute(select(Series.id).where(Series.id == series_id).with_for_update())


async def require_deletable(session: AsyncSession, campaign: Campaign) -> None:
    """Refuse to delete a run of a `never_twice` series that has not ended when the run
    may have sent something: its deliveries are how the next runs know whom it reached."""
    if campaign.series_id is None:
        return
    series = await session.get(Series, campaign.series_id)
    if (
        series is None
        or series.mode is not SeriesMode.NEVER_TWICE
        or series.status is SeriesStatus.ENDED
    ):
        return
    sent = await session.scalar(
        select(Delivery.id)
        .where(
            Delivery.campaign_id == campaign.id,
            Delivery.status.not_in(NEVER_SENT),
        )
        .limit(1)
    )
    if sent is not None:
        raise InvalidState(
            f"Campaign {campaign.id} is a run of series {series.id} ({series.name!r}), which "
            "never messages the same person twice: its deliveries are how the next runs know "
            "whom it reached, and deleting it would message those people again. Keep the run, "
            "or end the series first ({hint}) and then delete it.",
            field="series_id",
            hint=Hint(
                api=f"POST /api/series/{series.id}/end", cli=f"`pagecast series end {series.id}`"
            ),
        )
