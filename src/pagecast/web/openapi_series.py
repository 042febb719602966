"""What the series API answers (issue 20), for the OpenAPI document: the models of
`web/series_render.py`'s bodies, as web/openapi.py describes the others (its `_Out`: no
undocumented key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from pagecast.models import CampaignStatus
from pagecast.web.openapi import _Out

__all__ = ["SeriesDetailOut", "SeriesList", "SeriesOut", "SeriesRunOut"]


class SeriesRunOut(_Out):
    """One run of a series: its campaign (`campaign_id`; GET /api/campaigns/{id})."""

    campaign_id: int
    run_at: datetime | None
    name: str
    status: CampaignStatus
    status_reason: str | None
    missed: bool
    counts: dict[str, int]
    started_at: datetime | None
    completed_at: datetime | None


class SeriesOut(_Out):
    """A recurring series (issue 20; docs/api.md, "Series")."""

    id: int
    name: str
    page_id: int
    schedule: dict[str, Any] = Field(
        description='{"kind": "daily", "time": "09:00"}, {"kind": "weekly", "days": ["mon"], '
        '"time": "09:00"} or {"kind": "cron", "cron": "0 9 * * 1-5"}.'
    )
    schedule_text: str
    timezone: str
    mode: Literal["never_twice", "once_per_run"]
    status: Literal["active", "paused", "ended"]
    status_reason: str | None
    campaign: dict[str, Any] = Field(description="The fields each run's campaign is made of.")
    next_run_at: datetime | None
    upcoming: list[datetime]
    created_by_id: int | None
    created_at: datetime | None
    updated_at: datetime | None
    ended_at: datetime | None


class SeriesDetailOut(SeriesOut):
    runs: list[SeriesRunOut] = Field(description="The latest runs first (at most 50).")


class SeriesList(_Out):
    items: list[SeriesOut]
    next_cursor: str | None
