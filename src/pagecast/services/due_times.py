"""When a delivery is due: each person's local time, a Page's quiet hours, a campaign's send
window (issue 20). The one rule, for one zone at a time; services/due_plan.py applies it to a
snapshot in SQL (one due time per zone among the audience, not per person).

The rule (docs/sending.md, "Due times"):

1. The start: the campaign's `local_send_at` (a wall-clock time) in the person's zone, or
   the snapshot's time for an ordinary send. A local time already past in the person's zone
   is due at once (as ManyChat does): the campaign was started late for them, and a message
   a day late is rarely what was meant. A wall time the clocks skip (summer time) is read
   with the offset before the change, so it falls just after the skipped hour.
2. Quiet hours (the Page's, in the person's zone): a time inside them moves to their end.
3. Send window (the campaign's days and hours, in the person's zone): a time outside it
   moves to the window's next opening. 2 and 3 are applied until neither moves the time.
4. A campaign that expires before that time: due at its expiry (the chunk then ends it
   `expired`, as any delivery not sent by then).

A due time not after the snapshot's time is NULL: due at once (the plain send's path).
The person's zone: their IANA `timezone`, else their profile's `utc_offset_minutes`, else
the Page's `timezone`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

from pagecast import timezones
from pagecast.errors import InvalidInput, InvalidState, PagecastError

__all__ = [
    "DAYS",
    "Hours",
    "Rules",
    "Window",
    "check_at_start",
    "check_experiment",
    "check_local_send_at",
    "check_window_open",
    "due_at",
    "local_send_at_passed",
    "offset_zone",
    "parse_clock",
    "parse_hours",
    "parse_local_time",
    "parse_window",
    "stored",
    "zone_of",
]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
# Enough rounds for quiet hours and a window that push each other on (each moves the time
# forward to an opening or an end; two of each a day at most).
_ROUNDS = 32


def _refuse(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", field=field)


def parse_clock(value: Any, field: str) -> time:
    """A time of day "HH:MM" (24-hour).

    Raises:
        InvalidInput: naming `field`, what was wrong and what to send.
    """
    found = _CLOCK.match(value.strip()) if isinstance(value, str) else None
    if found is None:
        raise _refuse(field, f'{value!r} is not a time of day; send "HH:MM", e.g. "21:00"')
    return time(int(found[1]), int(found[2]))


@dataclass(frozen=True)
class Hours:
    """A span of the day, start inclusive, end exclusive; it may run over midnight."""

    start: time
    end: time

    def holds(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def stored(self) -> dict[str, str]:
        return {"start": f"{self.start:%H:%M}", "end": f"{self.end:%H:%M}"}


@dataclass(frozen=True)
class Window:
    """The days and hours a campaign may reach each person (start before end, same day)."""

    days: frozenset[int]  # 0 = Monday
    hours: Hours

    def stored(self) -> dict[str, Any]:
        return {"days": [DAYS[d] for d in sorted(self.days)], **self.hours.stored()}


def parse_hours(value: Any, field: str) -> Hours:
    """Quiet hours `{"start": "21:00", "end": "08:00"}` (over midnight allowed).

    Raises:
        InvalidInput: naming the field.
    """
    if not isinstance(value, dict) or set(value) != {"start", "end"}:
        raise _refuse(
            field,
            'send {"start": "HH:MM", "end": "HH:MM"}, e.g. '
            '{"start": "21:00", "end": "08:00"}, or null for none',
        )
    hours = Hours(
        parse_clock(value["start"], f"{field}.start"), parse_clock(value["end"], f"{field}.end")
    )
    if hours.start == hours.end:
        raise _refuse(field, "start and end are the same time; make them differ, or send null")
    return hours


def parse_window(value: Any, field: str) -> Window:
    """A send window `{"days": ["mon", …], "start": "09:00", "end": "18:00"}`.

    Raises:
        InvalidInput: naming the field.
    """
    if not isinstance(value, dict) or set(value) != {"days", "start", "end"}:
        raise _refuse(
            field,
            'send {"days": ["mon", …], "start": "HH:MM", "end": "HH:MM"}, e.g. '
            '{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "18:00"}',
        )
    days = value["days"]
    if not isinstance(days, list) or not days:
        raise _refuse(f"{field}.days", 'name at least one day, e.g. ["mon", "tue"]')
    picked: set[int] = set()
    for day in days:
        name = day.strip().casefold()[:3] if isinstance(day, str) else None
        if name not in DAYS:
            raise _refuse(f"{field}.days", f"{day!r} is not a day; use {', '.join(DAYS)}")
        picked.add(DAYS.index(name))
    hours = Hours(
        parse_clock(value["start"], f"{field}.start"), parse_clock(value["end"], f"{field}.end")
    )
    if hours.start >= hours.end:
        raise _refuse(
            f"{field}.end",
            f"{hours.end:%H:%M} is not after start {hours.start:%H:%M}; a send "
            "window runs within one day (quiet hours are the way to keep nights free)",
        )
    return Window(frozenset(picked), hours)


def parse_local_time(value: Any, field: str) -> datetime:
    """A wall-clock time without an offset, "2026-12-07T10:00".

    Raises:
        InvalidInput: naming the field.
    """
    wall: datetime | None = None
    if isinstance(value, datetime):
        wall = value
    elif isinstance(value, str):
        try:
            wall = datetime.fromisoformat(value.strip())
        except ValueError:
            wall = None
    if wall is None:
        raise _refuse(
            field,
            f'{value!r} is not a date and time; send "YYYY-MM-DDTHH:MM", e.g. '
            '"2026-12-07T10:00" (each person\'s own wall clock, no offset)',
        )
    if wall.tzinfo is not None:
        raise _refuse(
            field,
            f"{value!r} has an offset; send the wall-clock time without one (each "
            'person gets it at that time in their own zone), e.g. "2026-12-07T10:00"',
        )
    if wall > datetime.now(UTC).replace(tzinfo=None) + _FURTHEST:
        raise _refuse(
            field,
            f"{wall:%Y-%m-%d %H:%M} is more than two years ahead; choose a time within "
            "two years (or leave local_send_at out and schedule the campaign later)",
        )
    return wall.replace(second=0, microsecond=0)


# The last zone to reach a wall-clock time is UTC-12 (Etc/GMT+12).
_LATEST_OFFSET = timedelta(hours=12)
# A local send time further ahead is refused (a typo; and year 9999 overflows a datetime).
_FURTHEST = timedelta(days=731)


def local_send_at_passed(wall: datetime | None, at: datetime) -> bool:
    """Whether the wall-clock time has passed in every zone by `at`."""
    return wall is not None and wall.replace(tzinfo=UTC) + _LATEST_OFFSET <= at


def check_local_send_at(
    wall: datetime | None, now: datetime, scheduled_at: datetime | None = None
) -> None:
    """Refuse a local send time already past in every zone (a typo, not a plan), by now or
    by the campaign's `scheduled_at` (when it starts).

    Raises:
        InvalidInput: naming `local_send_at`.
    """
    if wall is None:
        return
    if scheduled_at is not None and scheduled_at > now and local_send_at_passed(wall, scheduled_at):
        raise _refuse(
            "local_send_at",
            f"{wall:%Y-%m-%d %H:%M} will have passed in every time zone by scheduled_at "
            f"({scheduled_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC), so everyone would get it "
            "at once; choose a later local_send_at or an earlier scheduled_at",
        )
    if local_send_at_passed(wall, now):
        raise _refuse(
            "local_send_at",
            f"{wall:%Y-%m-%d %H:%M} has passed in every time zone (it is now "
            f"{now.astimezone(UTC):%Y-%m-%d %H:%M} UTC); choose a later time",
        )


def check_at_start(
    wall: datetime | None, quiet: Hours | None, window: Window | None, now: datetime
) -> None:
    """What a start checks again (a draft may be started long after it was saved, and the
    Page's quiet hours may have changed): a local send time past in every zone would send
    to everyone at once; quiet hours over the whole send window would reach nobody.

    Raises:
        InvalidState: naming `local_send_at` or `send_window`.
    """
    if wall is not None and local_send_at_passed(wall, now):
        raise InvalidState(
            f"local_send_at: {wall:%Y-%m-%d %H:%M} has passed in every time zone (it is now "
            f"{now.astimezone(UTC):%Y-%m-%d %H:%M} UTC), so everyone would get it at once; "
            "set a later local_send_at, or clear it to send to everyone now",
            field="local_send_at",
        )
    check_window_open(quiet, window, error=InvalidState)


def check_window_open(
    quiet: Hours | None, window: Window | None, *, error: type[PagecastError] = InvalidInput
) -> None:
    """Refuse a send window wholly inside the Page's quiet hours (no time would ever do).

    Raises:
        InvalidInput (or `error`): naming `send_window`.
    """
    if quiet is None or window is None:
        return
    minute = datetime.combine(date.min, window.hours.start)
    end = datetime.combine(date.min, window.hours.end)
    while minute < end:
        if not quiet.holds(minute.time()):
            return
        minute += timedelta(minutes=1)
    raise error(
        f"send_window: {window.hours.start:%H:%M}-{window.hours.end:%H:%M} lies wholly inside "
        f"the Page's quiet hours ({quiet.start:%H:%M}-{quiet.end:%H:%M}), so nobody could "
        "ever be sent to; widen the send window or change the Page's quiet_hours",
        field="send_window",
    )


def stored(quiet: Any, window: Any) -> tuple[Hours | None, Window | None]:
    """A Page's stored quiet hours and a campaign's stored send window, read (checked when
    they were saved)."""
    return (
        parse_hours(quiet, "quiet_hours") if quiet else None,
        parse_window(window, "send_window") if window else None,
    )


def check_experiment(experiment: Any, local_send_at: Any, send_window: Any) -> None:
    """Refuse an A/B experiment with a local send time or a send window: its decision is
    counted from the start, while much of its test cohort would be due hours later.

    Raises:
        InvalidInput: naming `experiment`.
    """
    with_ = [n for n, v in (("local_send_at", local_send_at), ("send_window", send_window)) if v]
    if experiment is not None and with_:
        raise _refuse(
            "experiment",
            f"an experiment cannot run with {' or '.join(with_)}: it picks its winner a set "
            "time after the start, before much of its test group would be due in their own "
            f"time; remove the experiment (send the variants as a split) or {' and '.join(with_)}",
        )


def offset_zone(minutes: int) -> tzinfo:
    return timezone(timedelta(minutes=minutes))


def zone_of(name: str | None, offset_minutes: int | None, page_zone: str) -> tzinfo:
    """A person's effective zone: their IANA name, else their profile's offset, else the Page's."""
    known = timezones.canonical(name) if name else None
    if known is not None:
        return timezones.zone(known)
    if offset_minutes is not None:
        return offset_zone(offset_minutes)
    return timezones.zone(timezones.canonical(page_zone) or timezones.DEFAULT)


@dataclass(frozen=True)
class Rules:
    """What decides a campaign's due times, but the zone: read once per snapshot."""

    now: datetime
    local_send_at: datetime | None = None
    quiet: Hours | None = None
    window: Window | None = None
    expires_at: datetime | None = None

    @property
    def waits(self) -> bool:
        """Whether any person may be due later than the snapshot (else no zone is read)."""
        return self.local_send_at is not None or self.quiet is not None or self.window is not None


def _instant(wall: datetime, zone: tzinfo, fold: int = 0) -> datetime:
    return wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def _at_or_after(wall: datetime, zone: tzinfo, at: datetime) -> datetime:
    """The wall time as an instant, its second reading (the repeated hour when the clocks go
    back) when the first is already before `at`."""
    first = _instant(wall, zone)
    return first if first > at else _instant(wall, zone, fold=1)


def _after_quiet(at: datetime, quiet: Hours, zone: tzinfo) -> datetime:
    local = at.astimezone(zone)
    if not quiet.holds(local.time().replace(tzinfo=None)):
        return at
    day: date = local.date()
    if quiet.start >= quiet.end and local.time() >= quiet.start:
        day += timedelta(days=1)  # the evening part: quiet until tomorrow's end
    return max(at, _at_or_after(datetime.combine(day, quiet.end), zone, at))


def _in_window(at: datetime, window: Window, zone: tzinfo) -> datetime:
    local = at.astimezone(zone)
    wall = local.replace(tzinfo=None)
    if local.weekday() in window.days and window.hours.holds(wall.time()):
        return at
    for ahead in range(8):
        day = local.date() + timedelta(days=ahead)
        if day.weekday() not in window.days:
            continue
        wall_opening = datetime.combine(day, window.hours.start)
        opening = _instant(wall_opening, zone)
        if opening < at:
            opening = _instant(wall_opening, zone, fold=1)
        if opening >= at:
            return opening
    return at  # unreachable: a window has a day, and each comes within 8 days


def due_at(rules: Rules, zone: tzinfo) -> datetime | None:
    """When a person in `zone` is due, or None: at once."""
    at = rules.now
    if rules.local_send_at is not None:
        at = max(at, _instant(rules.local_send_at, zone))
    for _ in range(_ROUNDS):
        moved = at
        if rules.quiet is not None:
            moved = _after_quiet(moved, rules.quiet, zone)
        if rules.window is not None:
            moved = _in_window(moved, rules.window, zone)
        if moved == at:
            break
        at = moved
    else:  # checked at save and start (check_window_open): a rule changed under the campaign
        check_window_open(rules.quiet, rules.window)
        raise _refuse("send_window", "no time in the send window is outside the Page's quiet hours")
    if rules.expires_at is not None:
        at = min(at, rules.expires_at)
    return at if at > rules.now else None
