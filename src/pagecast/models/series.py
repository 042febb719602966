"""Series (issue 20): recurring campaigns. Each run of a series is a campaign of its own
(`campaigns.series_id`, `campaigns.run_at`), created and started by the worker at its time."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pagecast.models.base import Base, stored_enum, utcnow

__all__ = ["Series", "SeriesMode", "SeriesStatus"]


class SeriesStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


class SeriesMode(enum.StrEnum):
    # "Never the same person twice in this series" (evergreen onboarding): a run leaves out
    # whoever had a delivery in an earlier run (services/series_runs.py).
    NEVER_TWICE = "never_twice"
    # Every run messages its whole audience again.
    ONCE_PER_RUN = "once_per_run"


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="RESTRICT"), index=True)
    # {"kind": "daily", "time": "09:00"}, {"kind": "weekly", "days": ["mon"], "time": "09:00"}
    # or {"kind": "cron", "cron": "0 9 * * 1-5"}, read in `timezone` (services/series_schedule.py).
    schedule: Mapped[dict[str, Any]]
    timezone: Mapped[str] = mapped_column(String(64))
    mode: Mapped[SeriesMode] = mapped_column(stored_enum(SeriesMode))
    status: Mapped[SeriesStatus] = mapped_column(
        stored_enum(SeriesStatus), default=SeriesStatus.ACTIVE, index=True
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    # What each run's campaign is made of: the fields of a campaign's create body (content,
    # messages or template_id, audience, messaging_type, tag, priority, send_rate, …) as
    # given, so a field a campaign gains is carried to the runs as it is.
    campaign: Mapped[dict[str, Any]]
    # The next run's time (UTC); NULL once the series ended.
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    ended_at: Mapped[datetime | None]
