"""The `snapshot` job: insert the rest of a large audience's deliveries, one slice per
transaction, while the campaign already sends (services/snapshots.py)."""

from __future__ import annotations

from typing import Any

from pagecast.jobs import SnapshotJob
from pagecast.services import sending, snapshots
from pagecast.worker.state import Env

__all__ = ["snapshot"]


async def snapshot(env: Env, job: Any, token: str, payload: SnapshotJob) -> str:
    """Insert the rest of a large audience, one slice per transaction (snapshots.insert_slice);
    a restarted job goes on from the last slice written."""
    campaign_id, upto = payload.campaign_id, payload.upto
    async with env.db.transaction() as session:
        after = await snapshots.resume_point(session, campaign_id)
    while after < upto:
        async with env.db.transaction() as session:
            after = await snapshots.insert_slice(session, campaign_id, after=after, upto=upto)
    async with env.db.transaction() as session:
        await snapshots.finish(session, campaign_id)
        await sending.finish_if_done(session, campaign_id)
    await env.queue.snapshot_finished(campaign_id)
    return f"snapshot of campaign {campaign_id} complete"
