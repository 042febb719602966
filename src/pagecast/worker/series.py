"""Series runs in the worker (issue 20): each sweep makes the due runs of active series
campaigns and starts them (services/series_runs.py), then plans the ones that started."""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from pagecast.services import series_runs
from pagecast.worker.state import Env

__all__ = ["made_elsewhere", "run_due_series"]

logger = logging.getLogger(__name__)

# How each database names a broken `campaigns (series_id, run_at)`: PostgreSQL by the
# constraint's name (models/base.py's naming convention), SQLite by its columns.
_ONE_CAMPAIGN_PER_RUN = ("uq_campaigns_series_id", "campaigns.series_id, campaigns.run_at")


def made_elsewhere(exc: IntegrityError) -> bool:
    """Whether `exc` is the unique (series_id, run_at) of a run another worker made."""
    return any(name in str(exc.orig) for name in _ONE_CAMPAIGN_PER_RUN)


async def run_due_series(env: Env) -> list[int]:
    """Make the due runs at the worker's clock; returns the ids of the campaigns started."""
    now = env.clock.now()
    async with env.db.reading() as session:
        due = await series_runs.due(session, now)
    started = []
    for series_id in due:
        try:
            async with env.db.transaction() as session:
                run = await series_runs.make_run(
                    session,
                    series_id,
                    now=now,
                    max_lateness_s=env.config.max_schedule_lateness,
                )
        except IntegrityError as exc:
            if not made_elsewhere(exc):
                logger.warning("series %d: making its run failed", series_id, exc_info=True)
                continue
            # Another worker made this run between our read and our insert: it is theirs.
            logger.info("series %d: its run was made by another worker", series_id)
            continue
        except Exception:
            # One series' failure must not keep the others' runs (or the rest of the
            # sweep) from happening; the next sweep tries it again.
            logger.warning("series %d: making its run failed", series_id, exc_info=True)
            continue
        if run is None or run.campaign is None:
            continue
        if run.started:
            await env.queue.enqueue_plan(run.campaign.id, priority=run.campaign.priority.value)
            started.append(run.campaign.id)
            logger.info(
                "series %d: run %s started as campaign %d", series_id, run.run_at, run.campaign.id
            )
        else:
            logger.warning(
                "series %d: run %s not sent (campaign %d): %s",
                series_id,
                run.run_at,
                run.campaign.id,
                run.campaign.status_reason,
            )
    return started
