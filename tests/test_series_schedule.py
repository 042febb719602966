"""Issue 20: when a series runs (services/series_schedule.py), across changes of summer
time in a zone: daily, weekly and cron schedules keep their wall-clock time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from pagecast.errors import InvalidInput
from pagecast.series_schema import SeriesCreate
from pagecast.services.series_schedule import cron_of, describe, next_run, next_runs

NY = "America/New_York"  # summer time from 2026-03-08 02:00 to 2026-11-01 02:00
BERLIN = "Europe/Berlin"  # from 2026-03-29 02:00 to 2026-10-25 03:00


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_daily_keeps_its_local_time_when_summer_time_starts() -> None:
    runs = next_runs({"kind": "daily", "time": "09:00"}, BERLIN, utc(2026, 3, 27, 12), 3)
    # 09:00 CET is 08:00 UTC; from Sunday 29 March 09:00 CEST is 07:00 UTC.
    assert runs == [utc(2026, 3, 28, 8), utc(2026, 3, 29, 7), utc(2026, 3, 30, 7)]


def test_a_daily_time_the_clocks_skip_runs_at_the_end_of_the_gap() -> None:
    runs = next_runs({"kind": "daily", "time": "02:30"}, NY, utc(2026, 3, 6, 12), 3)
    # 02:30 does not exist on 8 March in New York: that run is at 03:00 EDT (07:00 UTC).
    assert runs == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)]


def test_a_daily_time_shown_twice_runs_once_at_its_first_occurrence() -> None:
    runs = next_runs({"kind": "daily", "time": "01:30"}, NY, utc(2026, 10, 31, 12), 2)
    # 01:30 happens twice on 1 November: the first (EDT, 05:30 UTC), once.
    assert runs == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_from_inside_the_hour_shown_twice_the_next_run_is_after_it() -> None:
    # 25 October in Berlin: 02:00-03:00 happens twice (CEST, then CET). 01:10 UTC is 02:10
    # CET, the second time round; the 02:30 of that day (first occurrence, 00:30 UTC) has
    # passed, so the next run is the 26th at 02:30 CET (01:30 UTC).
    daily = {"kind": "daily", "time": "02:30"}
    assert next_run(daily, BERLIN, utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 26, 1, 30)
    assert next_run(daily, BERLIN, utc(2026, 10, 25, 0, 10)) == utc(2026, 10, 25, 0, 30)
    for after in (utc(2026, 10, 25, 0, 40), utc(2026, 10, 25, 1), utc(2026, 10, 25, 1, 50)):
        assert next_run(daily, BERLIN, after) > after
        assert next_run({"kind": "cron", "cron": "*/20 * * * *"}, BERLIN, after) > after


def test_weekly_runs_on_its_days_only_across_the_change() -> None:
    schedule = {"kind": "weekly", "days": ["fri", "mon"], "time": "09:00"}
    runs = next_runs(schedule, BERLIN, utc(2026, 3, 25, 12), 3)  # a Wednesday
    assert runs == [utc(2026, 3, 27, 8), utc(2026, 3, 30, 7), utc(2026, 4, 3, 7)]
    assert [r.astimezone(UTC).weekday() for r in runs] == [4, 0, 4]
    assert cron_of(schedule) == "0 9 * * 1,5"
    assert describe(schedule, BERLIN) == "Every Monday, Friday at 09:00 (Europe/Berlin)"


def test_cron_in_a_zone_across_the_autumn_change() -> None:
    schedule = {"kind": "cron", "cron": "0 9 * * 1-5"}
    runs = next_runs(schedule, NY, utc(2026, 10, 30, 12), 2)  # Friday 30 October, 08:00 EDT
    # Friday 09:00 EDT (13:00 UTC), then Monday 2 November 09:00 EST (14:00 UTC).
    assert runs == [utc(2026, 10, 30, 13), utc(2026, 11, 2, 14)]


def test_the_next_run_is_strictly_after_the_time_given() -> None:
    at = utc(2026, 3, 30, 7)  # a run time itself
    assert next_run({"kind": "daily", "time": "09:00"}, BERLIN, at) == utc(2026, 3, 31, 7)


def _body(**schedule_and_more: object) -> dict[str, object]:
    return {
        "name": "Onboarding",
        "page_id": 1,
        "content": {"text": "Welcome"},
        **schedule_and_more,
    }


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (_body(schedule={"kind": "cron", "cron": "0 9 * *"}), "schedule", "has 4 fields"),
        (_body(schedule={"kind": "cron", "cron": "61 * * * *"}), "schedule", "Bad minute"),
        (_body(schedule={"kind": "daily", "time": "25:00"}), "schedule", "HH:MM"),
        (_body(schedule={"kind": "daily", "time": "9am"}), "schedule", "HH:MM"),
        (
            _body(schedule={"kind": "weekly", "days": ["mon", "funday"], "time": "09:00"}),
            "schedule",
            "not a day of the week",
        ),
        (_body(schedule={"kind": "weekly", "days": [], "time": "09:00"}), "schedule", ""),
        (_body(schedule={"kind": "hourly"}), "schedule", ""),
        (
            _body(schedule={"kind": "weekly", "days": ["month"], "time": "09:00"}),
            "schedule",
            "not a day of the week",
        ),
        (
            _body(schedule={"kind": "weekly", "days": ["sunny"], "time": "09:00"}),
            "schedule",
            "not a day of the week",
        ),
        (
            _body(schedule={"kind": "daily", "time": "09:00"}, timezone="Mars/Olympus"),
            "timezone",
            "not a time zone",
        ),
        (
            _body(
                schedule={"kind": "daily", "time": "09:00"},
                scheduled_at="2026-12-01T09:00:00Z",
            ),
            "scheduled_at",
            "runs on its schedule",
        ),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(
    body: dict[str, object], field: str, words: str
) -> None:
    # A rule of the whole body raises InvalidInput itself (it names its field).
    with pytest.raises((ValidationError, InvalidInput)) as caught:
        SeriesCreate.model_validate(body)
    if isinstance(caught.value, InvalidInput):
        assert caught.value.field == field and words in caught.value.message
        return
    error = caught.value.errors()[0]
    assert str(error["loc"][0]) == field, error
    assert words in str(error["msg"]), error


def test_days_are_their_three_letters_or_full_names_in_any_case() -> None:
    body = _body(schedule={"kind": "weekly", "days": ["Monday", "THU", "sunday"], "time": "09:00"})
    assert SeriesCreate.model_validate(body).schedule.days == ["mon", "thu", "sun"]  # type: ignore[union-attr]
