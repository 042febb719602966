"""Facebook's messaging policy enforcement of a Page (the `messaging_policy_enforcement` webhook).

- `block`: the Page becomes `restricted` with Facebook's reason, and its sending campaigns
  pause with it (`sending.stop_page`, audited as `page.stopped` and, per campaign, as
  `campaign.paused` by the system).
- `unblock`: a restricted Page is active again, and the campaigns its stop paused resume
  (`sending.resume`, audited as `campaign.resumed` by the system); the caller plans them.
  Campaigns a person paused stay paused. A Page waiting for a new token stays so.
- `warning`: kept on the Page and shown; sending goes on. A later unblock clears it.

Events are at-least-once and unordered: each carries Facebook's time, and a block or unblock
no newer than the newest one applied (a warning: than the newest warning) changes nothing.
Takes a session and never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Campaign, CampaignStatus, Page, PageStatus
from pagecast.permissions import Actor
from pagecast.services import audit, sending

__all__ = ["ACTIONS", "BLOCK", "UNBLOCK", "WARNING", "Applied", "apply", "block_reason"]

BLOCK, UNBLOCK, WARNING = "block", "unblock", "warning"
ACTIONS = (BLOCK, UNBLOCK, WARNING)
_NO_REASON = "Facebook gave no reason."
# The Page's and its paused campaigns' status_reason while a block is in force.
_BLOCKED = "Facebook blocked this Page from sending (messaging policy): {reason}"


@dataclass(frozen=True)
class Applied:
    """What one policy event did: `note` says why it changed nothing; `resumed` lists the
    (campaign id, priority) of campaigns an unblock resumed, to plan again after the commit."""

    note: str | None = None
    resumed: tuple[tuple[int, str], ...] = ()


def block_reason(reason: str) -> str:
    """The status reason a block gives the Page and the campaigns it pauses."""
    return _BLOCKED.format(reason=reason)


async def apply(session: AsyncSession, page_id: int, enforcement: Any, at: datetime) -> Applied:
    """Apply one `policy_enforcement` object of the Page, made by Facebook at `at`."""
    if not isinstance(enforcement, dict) or not any(
        enforcement.get("action") == known for known in ACTIONS
    ):
        action = enforcement.get("action") if isinstance(enforcement, dict) else None
        return Applied(note=f"policy enforcement action {action!r} is not one of {ACTIONS}")
    action = enforcement["action"]
    # Text a person reads, stored as is (NUL removed: PostgreSQL refuses it in text).
    reason = str(enforcement.get("reason") or "").replace("\x00", "").strip() or _NO_REASON
    # Locked: two runners applying a block and an unblock of one Page take turns, so the
    # newer one always ends in force.
    page = await session.scalar(
        select(Page)
        .where(Page.id == page_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert page is not None
    if action == WARNING:
        if page.policy_warning_at is not None and page.policy_warning_at >= at:
            return Applied(note=f"a newer warning than this one of {at.isoformat()} is shown")
        page.policy_warning, page.policy_warning_at = reason, at
        await session.flush()
        await audit.record(
            session,
            Actor.system(),
            "page.policy_warning",
            object_type="page",
            object_id=page.id,
            details={"reason": reason, "at": at.isoformat()},
        )
        return Applied()
    if page.policy_at is not None and page.policy_at >= at:
        return Applied(
            note=f"{action} of {at.isoformat()} is older than the policy event applied "
            f"({page.policy_at.isoformat()}); nothing changed"
        )
    page.policy_at = at
    if action == BLOCK:
        return await _block(session, page, reason)
    return await _unblock(session, page, at)


async def _block(session: AsyncSession, page: Page, reason: str) -> Applied:
    page.policy_block = reason
    shown = block_reason(reason)
    if page.status not in (PageStatus.ACTIVE, PageStatus.RESTRICTED):
        # Waiting for a new token (or disconnected): that stays what the Page shows, and
        # nothing of it sends; the block is kept and still holds after the new token.
        await session.flush()
        await audit.record(
            session,
            Actor.system(),
            "page.policy_blocked",
            object_type="page",
            object_id=page.id,
            details={"reason": reason, "status": page.status.value},
        )
        return Applied()
    await sending.stop_page(session, page.id, PageStatus.RESTRICTED, shown)
    # Campaigns an earlier stop paused (a restriction error before this webhook) show the
    # block's reason too.
    await session.execute(
        update(Campaign)
        .where(
            Campaign.page_id == page.id,
            Campaign.status == CampaignStatus.PAUSED,
            Campaign.paused_by_page.is_(True),
        )
        .values(status_reason=shown)
        .execution_options(synchronize_session=False)
    )
    return Applied()


async def _unblock(session: AsyncSession, page: Page, at: datetime) -> Applied:
    page.policy_block = None
    if page.policy_warning_at is not None and page.policy_warning_at < at:
        page.policy_warning = page.policy_warning_at = None
    restricted = page.status is PageStatus.RESTRICTED
    if restricted:
        page.status, page.status_reason = PageStatus.ACTIVE, None
    await session.flush()
    await audit.record(
        session,
        Actor.system(),
        "page.policy_unblocked",
        object_type="page",
        object_id=page.id,
        details={"status": page.status.value},
    )
    if not restricted:
        return Applied()
    held = list(
        await session.execute(
            select(Campaign.id, Campaign.priority)
            .where(
                Campaign.page_id == page.id,
                Campaign.status == CampaignStatus.PAUSED,
                Campaign.paused_by_page.is_(True),
            )
            .order_by(Campaign.id)
        )
    )
    for campaign_id, _ in held:
        await sending.resume(session, Actor.system(), campaign_id)
    return Applied(resumed=tuple((campaign_id, priority.value) for campaign_id, priority in held))
