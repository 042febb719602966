"""The due-time rule (services/due_times.py) by tables of cases: local send times, quiet
hours, send windows and expiry, in zones with and without summer time."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo

import pytest

from pagecast import timezones
from pagecast.errors import InvalidInput
from pagecast.services import due_times
from pagecast.services.due_times import Rules

NOW = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)  # a Monday
TEN = datetime(2026, 12, 7, 10, 0)  # a wall-clock time


def zone(name: str) -> tzinfo:
    return timezones.zone(name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Asia/Manila", datetime(2026, 12, 7, 2, 0, tzinfo=UTC)),
        ("Europe/Berlin", datetime(2026, 12, 7, 9, 0, tzinfo=UTC)),
        ("America/New_York", datetime(2026, 12, 7, 15, 0, tzinfo=UTC)),
        ("Asia/Kolkata", datetime(2026, 12, 7, 4, 30, tzinfo=UTC)),
        # Already past in Kiritimati (UTC+14: 10:00 there was 20:00 UTC yesterday): at once.
        ("Pacific/Kiritimati", None),
    ],
)
def test_local_send_time_in_each_zone(name: str, expected: datetime | None) -> None:
    assert due_times.due_at(Rules(now=NOW, local_send_at=TEN), zone(name)) == expected


def test_an_offset_zone_and_the_page_zone_stand_in_for_a_missing_name() -> None:
    rules = Rules(now=NOW, local_send_at=TEN)
    by_offset = due_times.zone_of(None, 480, "Europe/Berlin")
    assert due_times.due_at(rules, by_offset) == datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    by_page = due_times.zone_of(None, None, "Europe/Berlin")
    assert due_times.due_at(rules, by_page) == datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    named = due_times.zone_of("Asia/Manila", -300, "Europe/Berlin")
    assert due_times.due_at(rules, named) == datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


def test_a_skipped_wall_time_falls_just_after_the_skipped_hour() -> None:
    # Berlin skips 02:00-03:00 on 2027-03-28: 02:30 is read with winter's offset (03:30 local).
    rules = Rules(now=NOW, local_send_at=datetime(2027, 3, 28, 2, 30))
    assert due_times.due_at(rules, zone("Europe/Berlin")) == datetime(
        2027, 3, 28, 1, 30, tzinfo=UTC
    )


QUIET = due_times.Hours(time(21, 0), time(8, 0))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 12, 7, 22, 0, tzinfo=UTC), datetime(2026, 12, 8, 8, 0, tzinfo=UTC)),
        (datetime(2026, 12, 7, 3, 0, tzinfo=UTC), datetime(2026, 12, 7, 8, 0, tzinfo=UTC)),
        (datetime(2026, 12, 7, 21, 0, tzinfo=UTC), datetime(2026, 12, 8, 8, 0, tzinfo=UTC)),
        (datetime(2026, 12, 7, 8, 0, tzinfo=UTC), None),  # the end is not quiet
        (datetime(2026, 12, 7, 12, 0, tzinfo=UTC), None),
    ],
)
def test_quiet_hours_over_midnight_wait_for_their_end(
    now: datetime, expected: datetime | None
) -> None:
    assert due_times.due_at(Rules(now=now, quiet=QUIET), zone("UTC")) == expected


def test_quiet_hours_are_the_recipients_own() -> None:
    # 22:00 UTC is 07:00 in Tokyo (quiet until 08:00 there) and 14:00 in Los Angeles.
    now = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
    rules = Rules(now=now, quiet=QUIET)
    assert due_times.due_at(rules, zone("Asia/Tokyo")) == datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
    assert due_times.due_at(rules, zone("America/Los_Angeles")) is None


WEEKDAYS = due_times.parse_window(
    {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "18:00"}, "w"
)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Monday 00:00 → Monday 09:00; Friday 18:00 → Monday 09:00; Saturday → Monday.
        (NOW, datetime(2026, 12, 7, 9, 0, tzinfo=UTC)),
        (datetime(2026, 12, 11, 18, 0, tzinfo=UTC), datetime(2026, 12, 14, 9, 0, tzinfo=UTC)),
        (datetime(2026, 12, 12, 12, 0, tzinfo=UTC), datetime(2026, 12, 14, 9, 0, tzinfo=UTC)),
        (datetime(2026, 12, 9, 12, 0, tzinfo=UTC), None),
    ],
)
def test_a_send_window_waits_for_its_next_opening(now: datetime, expected: datetime | None) -> None:
    assert due_times.due_at(Rules(now=now, window=WEEKDAYS), zone("UTC")) == expected


def test_quiet_hours_and_a_window_push_each_other_on() -> None:
    early = due_times.parse_window({"days": ["mon"], "start": "07:00", "end": "12:00"}, "w")
    # The window opens at 07:00, still quiet until 08:00: due at 08:00.
    rules = Rules(now=NOW, quiet=QUIET, window=early)
    assert due_times.due_at(rules, zone("UTC")) == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def test_a_campaign_expiring_first_is_due_at_its_expiry() -> None:
    expires = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    rules = Rules(now=NOW, local_send_at=TEN, expires_at=expires)
    assert due_times.due_at(rules, zone("Europe/Berlin")) == expires


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"start": "21:00", "end": "8"}, "quiet_hours.end"),
        ({"start": "24:00", "end": "08:00"}, "quiet_hours.start"),
        ({"start": "21:00", "end": "21:00"}, "quiet_hours"),
        ("21-08", "quiet_hours"),
        ({"start": "21:00", "end": "08:00", "days": []}, "quiet_hours"),
    ],
)
def test_bad_quiet_hours_name_their_field(value: object, field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        due_times.parse_hours(value, "quiet_hours")
    assert raised.value.field == field and str(raised.value).startswith(f"{field}: ")


def test_a_local_time_past_everywhere_is_refused_but_one_past_somewhere_is_not() -> None:
    due_times.check_local_send_at(TEN, NOW + timedelta(hours=21))  # still ahead in UTC-12
    with pytest.raises(InvalidInput) as raised:
        due_times.check_local_send_at(TEN, NOW + timedelta(hours=22, minutes=1))
    assert raised.value.field == "local_send_at"


# Berlin's clocks go back on 2026-10-25 at 03:00 CEST (01:00 UTC): 02:00-03:00 comes twice.
FALL = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "quiet", "expected"),
    [
        # 02:10 in the second reading (01:10 UTC): quiet until 02:30 of the second reading,
        # not of the first (00:30 UTC, already past: it would send inside the quiet hours).
        (
            datetime(2026, 10, 25, 1, 10, tzinfo=UTC),
            due_times.Hours(time(22, 0), time(2, 30)),
            datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        ),
        # 02:10 in the first reading (00:10 UTC): the first 02:30 ends them.
        (
            datetime(2026, 10, 25, 0, 10, tzinfo=UTC),
            due_times.Hours(time(22, 0), time(2, 30)),
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        ),
        # Quiet over the whole repeated hour: its end (03:00 CET) once the hour has passed twice.
        (
            datetime(2026, 10, 25, 1, 20, tzinfo=UTC),
            due_times.Hours(time(1, 0), time(3, 0)),
            datetime(2026, 10, 25, 2, 0, tzinfo=UTC),
        ),
    ],
)
def test_quiet_hours_in_the_repeated_hour_end_after_it(
    now: datetime, quiet: due_times.Hours, expected: datetime
) -> None:
    berlin = zone("Europe/Berlin")
    due = due_times.due_at(Rules(now=now, quiet=quiet), berlin)
    assert due == expected
    assert not quiet.holds(due.astimezone(berlin).time().replace(tzinfo=None))


@pytest.mark.parametrize(
    ("now", "start", "expected"),
    [
        # Opening at 02:30 while the repeated hour's first reading has passed it: the second.
        (
            datetime(2026, 10, 25, 1, 10, tzinfo=UTC),
            time(2, 30),
            datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        ),
        # An opening in the spring-forward gap (Berlin skips 02:00-03:00 on 2027-03-28): just
        # after it, 03:30 CEST, inside the window.
        (
            datetime(2027, 3, 28, 0, 0, tzinfo=UTC),
            time(2, 30),
            datetime(2027, 3, 28, 1, 30, tzinfo=UTC),
        ),
    ],
)
def test_a_window_opening_in_a_changed_hour_is_inside_the_window(
    now: datetime, start: time, expected: datetime
) -> None:
    berlin = zone("Europe/Berlin")
    window = due_times.Window(frozenset(range(7)), due_times.Hours(start, time(5, 0)))
    due = due_times.due_at(Rules(now=now, window=window), berlin)
    assert due == expected
    assert window.hours.holds(due.astimezone(berlin).time().replace(tzinfo=None))


def test_quiet_hours_over_the_whole_window_are_refused_not_looped() -> None:
    quiet = due_times.Hours(time(21, 0), time(8, 0))
    window = due_times.Window(frozenset({0}), due_times.Hours(time(22, 0), time(23, 0)))
    with pytest.raises(InvalidInput) as refused:
        due_times.due_at(Rules(now=NOW, quiet=quiet, window=window), zone("UTC"))
    assert refused.value.field == "send_window" and "quiet hours" in refused.value.message
    # One free minute is enough.
    due_times.check_window_open(
        quiet, due_times.Window(frozenset({0}), due_times.Hours(time(7, 59), time(9, 0)))
    )
