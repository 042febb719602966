"""The API bodies of a series (issue 20): its schedule, zone and mode, and the fields of each
run's campaign, which are a campaign's own (`schemas.CampaignFields`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, model_validator

from pagecast.errors import InvalidInput
from pagecast.input_types import Input, Line
from pagecast.models import SeriesMode
from pagecast.schemas import CampaignFields, Id, Name, Patch, TimeZoneName
from pagecast.services.series_schedule import DAYS, check_cron

__all__ = [
    "CronSchedule",
    "DailySchedule",
    "Schedule",
    "SeriesCreate",
    "SeriesUpdate",
    "WeeklySchedule",
    "campaign_payload",
]


def _clock_time(value: str) -> str:
    parts = value.strip().split(":")
    if (
        len(parts) == 2
        and all(p.isascii() and p.isdigit() and 1 <= len(p) <= 2 for p in parts)
        and int(parts[0]) < 24
        and int(parts[1]) < 60
    ):
        return f"{int(parts[0]):02d}:{int(parts[1]):02d}"
    raise ValueError(
        f"{value!r} is not a time of day; write HH:MM on a 24-hour clock, e.g. 09:00 or 18:30"
    )


# A day as its three letters or its full English name ("mon", "Monday"), any case.
_DAY_NAMES = dict(
    zip(
        ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"),
        DAYS,
        strict=True,
    )
) | {day: day for day in DAYS}


def _day(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in _DAY_NAMES:
        return _DAY_NAMES[value.strip().lower()]
    raise ValueError(
        f"{value!r} is not a day of the week; write mon, tue, wed, thu, fri, sat or sun (or the full name: monday …)"
    )


ClockTime = Annotated[Line, StringConstraints(max_length=10), AfterValidator(_clock_time)]
Day = Annotated[str, BeforeValidator(_day)]


class DailySchedule(Input):
    kind: Literal["daily"]
    time: ClockTime = Field(description="HH:MM, 24-hour, in the series' time zone.")


class WeeklySchedule(Input):
    kind: Literal["weekly"]
    days: Annotated[list[Day], Field(min_length=1, max_length=7)] = Field(
        description="Days of the week: mon, tue, wed, thu, fri, sat, sun."
    )
    time: ClockTime = Field(description="HH:MM, 24-hour, in the series' time zone.")


class CronSchedule(Input):
    kind: Literal["cron"]
    cron: Annotated[
        Line,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
        AfterValidator(check_cron),
    ] = Field(description='5 fields (minute hour day-of-month month day-of-week): "0 9 * * 1-5".')


Schedule = Annotated[DailySchedule | WeeklySchedule | CronSchedule, Field(discriminator="kind")]

# What a series sets itself, not its runs' campaign fields.
_OWN = ("name", "page_id", "schedule", "timezone", "mode")


class SeriesCreate(CampaignFields):
    """A series: a campaign's fields (content, messages or template_id, audience, …) for each
    run, with the schedule, its zone (the Page's when left out) and the mode."""

    name: Name
    page_id: Id
    schedule: Schedule
    timezone: TimeZoneName | None = None
    mode: SeriesMode = SeriesMode.NEVER_TWICE

    @model_validator(mode="after")
    def _no_single_time(self) -> SeriesCreate:
        for name in ("scheduled_at", "expires_at"):
            if getattr(self, name) is not None:
                raise InvalidInput(
                    f"{name}: a series runs on its schedule and each run is sent when it "
                    "starts; remove this field (pause or end the series to stop it)",
                    field=name,
                )
        return self


def campaign_payload(data: SeriesCreate) -> dict[str, Any]:
    """The fields each run's campaign is created from, as JSON (the series' `campaign`)."""
    return data.model_dump(
        mode="json", exclude={*_OWN, "scheduled_at", "expires_at"}, exclude_none=True
    )


class SeriesUpdate(Patch):
    """PATCH: the fields given replace the series' own; the result is checked as a whole."""

    not_null = ("name", "schedule", "mode", "audience", "messaging_type", "priority", "timezone")

    name: Name | None = None
    schedule: dict[str, Any] | None = None
    timezone: TimeZoneName | None = None
    mode: SeriesMode | None = None
    description: Line | None = None
    content: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    template_id: Id | None = None
    messaging_type: str | None = None
    tag: Line | None = None
    audience: dict[str, Any] | None = None
    priority: str | None = None
    send_rate: float | None = None
