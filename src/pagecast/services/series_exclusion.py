""" "Never the same person twice in this series" (issue 20): the condition a run's snapshot
adds to its INSERT … SELECT (services/deliveries.py `snapshot_insert`).

A contact is left out of a run of a `never_twice` series when a delivery of an earlier run
of the same series may have reached them: any status but `skipped`, `cancelled` and
`expired`, which are certain never to have been sent (a failed one may have been: an
ambiguous outcome is `failed`). Such a contact gets no delivery row at all in the run: a
daily evergreen series over a large Page would otherwise write the whole Page again as
skipped rows every day. Someone skipped in an earlier run (outside the 24-hour window, for
example) is messaged by the first run that can reach them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, select

from pagecast.models import Campaign, Contact, Delivery, DeliveryStatus, Series, SeriesMode

__all__ = ["NEVER_SENT", "snapshot_conditions"]

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
