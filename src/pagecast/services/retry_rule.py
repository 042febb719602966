"""Which failed deliveries "Retry failed" sends again: the one rule behind the count on the
campaign page's button, the `retryable_failed` of the progress body and what
`POST /api/campaigns/{id}/retry-failed` moves back to pending (issue 21).

A retry can cure a failure that came from Facebook's side or from not knowing: a temporary
error whose retries ran out (`retry`), a throttled or stopped Page (`throttle`,
`stop_page`), an answer never seen (`ambiguous`). It cannot cure a person who blocked the
Page or cannot be reached (`recipient_unreachable`, or a contact marked unreachable since,
by any campaign), nor a message Facebook refused as malformed (`bad_request`): sending the
same message to them again fails the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.errors import InvalidInput
from pagecast.models import Contact, Delivery, DeliveryStatus

__all__ = ["CURABLE_KINDS", "condition", "count"]

# The error kinds (graph.ErrorKind values, as stored on deliveries) a retry can cure.
CURABLE_KINDS = ("retry", "throttle", "stop_page", "ambiguous")


def condition(
    campaign_id: int,
    *,
    kinds: Sequence[str] | None = None,
    codes: Sequence[int] | None = None,
) -> Any:
    """The SQL condition on `deliveries` for the campaign's failures a retry can cure,
    optionally narrowed to some error kinds (each must be curable) or Graph codes."""
    chosen = list(CURABLE_KINDS)
    if kinds:
        refused = sorted(set(kinds) - set(CURABLE_KINDS))
        if refused:
            raise InvalidInput(
                f"kind: {', '.join(refused)} cannot be cured by a retry (the person blocked "
                f"the Page, cannot be reached, or the message was refused); use one or more "
                f"of {', '.join(CURABLE_KINDS)}, or leave kind out.",
                field="kind",
            )
        chosen = list(kinds)
    unreachable = exists().where(
        Contact.id == Delivery.contact_id, Contact.unreachable_at.is_not(None)
    )
    conditions = [
        Delivery.campaign_id == campaign_id,
        Delivery.status == DeliveryStatus.FAILED,
        Delivery.error_kind.in_(chosen),
        ~unreachable,
    ]
    if codes:
        conditions.append(Delivery.error_code.in_(list(codes)))
    return and_(*conditions)


async def count(session: AsyncSession, campaign_id: int) -> int:
    """How many of the campaign's failed deliveries "Retry failed" would send again."""
    return int(
        await session.scalar(
            select(func.count()).select_from(Delivery).where(condition(campaign_id))
        )
        or 0
    )
