"""The JSON of a series and its runs (issue 20), for the API, the CLI and the dashboard."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pagecast.models import Campaign, Series
from pagecast.services import campaigns, series_schedule
from pagecast.services import series as series_service
from pagecast.web.render import _time

__all__ = ["UPCOMING", "run", "series", "upcoming"]

UPCOMING = 5  # how many of the next run times are shown


def upcoming(row: Series) -> list[datetime]:
    """The next run times while active (services/series.py `upcoming`)."""
    return series_service.upcoming(row, UPCOMING)


def run(row: Campaign) -> dict[str, Any]:
    """One run: its campaign (id, status, missed, counts) and its time."""
    return {
        "campaign_id": row.id,
        "run_at": _time(row.run_at),
        "name": row.name,
        "status": row.status.value,
        "status_reason": row.status_reason,
        "missed": row.missed,
        "counts": campaigns.counts(row),
        "started_at": _time(row.started_at),
        "completed_at": _time(row.completed_at),
    }


def series(row: Series, runs: list[Campaign] | None = None) -> dict[str, Any]:
    body = {
        "id": row.id,
        "name": row.name,
        "page_id": row.page_id,
        "schedule": row.schedule,
        "schedule_text": series_schedule.describe(row.schedule, row.timezone),
        "timezone": row.timezone,
        "mode": row.mode.value,
        "status": row.status.value,
        "status_reason": row.status_reason,
        "campaign": row.campaign,
        "next_run_at": _time(row.next_run_at),
        "upcoming": [_time(t) for t in upcoming(row)],
        "created_by_id": row.created_by_id,
        "created_at": _time(row.created_at),
        "updated_at": _time(row.updated_at),
        "ended_at": _time(row.ended_at),
    }
    if runs is not None:
        body["runs"] = [run(r) for r in runs]
    return body
