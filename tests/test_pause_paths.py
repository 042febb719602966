"""Every automatic pause goes through `sending.pause`: the state machine guards it and each
paused campaign gets its own audit entry, for the system, with the reason (issue 18)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select, text

from factories import connected_page
from pagecast.db import Database
from pagecast.models import (
    AuditLog,
    Campaign,
    CampaignStatus,
    DeliveryStatus,
    PageStatus,
    utcnow,
)
from pagecast.permissions import Actor
from pagecast.security import Vault
from pagecast.services import breaker, policy, sending
from pagecast.services.deliveries import Outcome


async def _campaign(db: Database, page_id: int, status: CampaignStatus) -> int:
    async with db.transaction() as session:
        campaign = Campaign(
            name=f"c-{status.value}",
            page_id=page_id,
            content={"text": "hi"},
            audience={"type": "all"},
            status=status,
            started_at=utcnow(),
        )
        session.add(campaign)
        await session.flush()
        return campaign.id


async def _pauses(db: Database) -> dict[int, tuple[str, Any, dict[str, Any] | None]]:
    """The `campaign.paused` entries by campaign: (actor, actor id, details)."""
    async with db.transaction() as session:
        rows = await session.execute(
            select(AuditLog.object_id, AuditLog.actor, AuditLog.actor_id, AuditLog.details).where(
                AuditLog.action == "campaign.paused"
            )
        )
        entries = [(oid, actor, actor_id, details) for oid, actor, actor_id, details in rows]
    assert len({oid for oid, *_ in entries}) == len(entries), "one entry per campaign"
    return {oid: (actor, actor_id, details) for oid, actor, actor_id, details in entries}


async def _campaign_state(db: Database, campaign_id: int) -> tuple[Any, ...]:
    async with db.transaction() as session:
        c = await session.get(Campaign, campaign_id)
        assert c is not None
        return c.status, c.status_reason, c.paused_by_page


async def test_a_page_stop_pauses_each_sending_campaign_audited(db: Database, vault: Vault) -> None:
    page = await connected_page(db, vault)
    other = await connected_page(db, vault, fb_page_id="2002", name="Other")
    first = await _campaign(db, page.id, CampaignStatus.SENDING)
    second = await _campaign(db, page.id, CampaignStatus.SENDING)
    draft = await _campaign(db, page.id, CampaignStatus.DRAFT)
    elsewhere = await _campaign(db, other.id, CampaignStatus.SENDING)
    async with db.transaction() as session:
        ids = await sending.stop_page(
            session, page.id, PageStatus.TOKEN_INVALID, "token revoked (code 190/460)"
        )
    assert ids == [first, second]
    reason = "token revoked (code 190/460)"
    assert await _pauses(db) == {
        first: ("system", None, {"reason": reason}),
        second: ("system", None, {"reason": reason}),
    }
    for campaign_id in (first, second):
        assert await _campaign_state(db, campaign_id) == (CampaignStatus.PAUSED, reason, True)
    assert (await _campaign_state(db, draft))[0] is CampaignStatus.DRAFT
    assert (await _campaign_state(db, elsewhere))[0] is CampaignStatus.SENDING
    async with db.transaction() as session:
        stopped = (
            await session.execute(
                select(AuditLog.actor, AuditLog.details).where(AuditLog.action == "page.stopped")
            )
        ).all()
    assert stopped == [
        (
            "system",
            {"status": "token_invalid", "reason": reason, "paused_campaigns": [first, second]},
        )
    ]


async def test_a_policy_block_pauses_through_the_service_and_its_unblock_resumes(
    db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    campaign_id = await _campaign(db, page.id, CampaignStatus.SENDING)
    async with db.transaction() as session:
        await policy.apply(session, page.id, {"action": "block", "reason": "spam"}, utcnow())
    ((actor, actor_id, details),) = (await _pauses(db)).values()
    assert (actor, actor_id) == ("system", None)
    status, shown, by_page = await _campaign_state(db, campaign_id)
    assert (status, by_page) == (CampaignStatus.PAUSED, True)
    assert details == {"reason": shown} and "spam" in shown
    async with db.transaction() as session:
        await policy.apply(session, page.id, {"action": "unblock"}, utcnow())
    assert (await _campaign_state(db, campaign_id))[0] is CampaignStatus.SENDING


async def test_the_system_pausing_a_page_paused_campaign_again_changes_nothing(
    db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    campaign_id = await _campaign(db, page.id, CampaignStatus.SENDING)
    async with db.transaction() as session:
        await sending.stop_page(session, page.id, PageStatus.RESTRICTED, "restricted")
    async with db.transaction() as session:
        await sending.pause(session, Actor.system(), campaign_id, reason="again")
    assert await _campaign_state(db, campaign_id) == (CampaignStatus.PAUSED, "restricted", True)
    assert len(await _pauses(db)) == 1


async def test_the_breaker_pauses_through_the_service(db: Database, vault: Vault) -> None:
    page = await connected_page(db, vault)
    campaign_id = await _campaign(db, page.id, CampaignStatus.SENDING)
    refused = [
        Outcome(i, DeliveryStatus.FAILED, reason="bad_request", error_kind=breaker.REFUSED)
        for i in range(1, 4)
    ]
    async with db.transaction() as session:
        reason = await breaker.check(
            session, campaign_id, refused, consecutive=3, ratio=0.5, window=100
        )
    assert reason is not None and "3 consecutive" in reason
    assert await _pauses(db) == {campaign_id: ("system", None, {"reason": reason})}
    assert await _campaign_state(db, campaign_id) == (CampaignStatus.PAUSED, reason, False)


async def test_a_spam_warning_pauses_through_the_service(db: Database, vault: Vault) -> None:
    page = await connected_page(db, vault)
    campaign_id = await _campaign(db, page.id, CampaignStatus.SENDING)
    async with db.transaction() as session:
        assert await breaker.stop(session, campaign_id, "looks like spam") == "looks like spam"
    async with db.transaction() as session:
        # A campaign no longer sending is not paused again.
        assert await breaker.stop(session, campaign_id, "again") is None
    assert await _pauses(db) == {campaign_id: ("system", None, {"reason": "looks like spam"})}


async def _someone_waits_for_a_row_lock(db: Database) -> bool:
    async with db.transaction() as session:
        waiting = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_page_stop_leaves_alone_a_campaign_cancelled_while_it_waited(
    db: Database, vault: Vault
) -> None:
    # Row locks decide this race, so it runs where there are row locks (PostgreSQL).
    page = await connected_page(db, vault)
    cancelled = await _campaign(db, page.id, CampaignStatus.SENDING)
    sending_on = await _campaign(db, page.id, CampaignStatus.SENDING)
    locked, release = asyncio.Event(), asyncio.Event()

    async def cancel() -> None:  # a person's cancel, committed while the stop waits for it
        async with db.transaction() as session:
            campaign = await session.get(Campaign, cancelled, with_for_update=True)
            assert campaign is not None
            campaign.status = CampaignStatus.CANCELLED
            await session.flush()
            locked.set()
            await release.wait()

    async def stop() -> list[int]:
        async with db.transaction() as session:
            return await sending.stop_page(session, page.id, PageStatus.RESTRICTED, "blocked")

    canceller = asyncio.create_task(cancel())
    await asyncio.wait_for(locked.wait(), 10)
    stopper = asyncio.create_task(stop())
    deadline = asyncio.get_running_loop().time() + 10
    while not await _someone_waits_for_a_row_lock(db):
        assert asyncio.get_running_loop().time() < deadline, "the stop never waited for the row"
        await asyncio.sleep(0.01)
    release.set()
    await canceller
    assert await asyncio.wait_for(stopper, 10) == [sending_on]
    assert (await _campaign_state(db, cancelled))[0] is CampaignStatus.CANCELLED
    assert await _campaign_state(db, sending_on) == (CampaignStatus.PAUSED, "blocked", True)
    assert set(await _pauses(db)) == {sending_on}
