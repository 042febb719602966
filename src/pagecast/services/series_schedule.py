"""When a series runs: daily at HH:MM, weekly on chosen days at HH:MM, or a cron expression,
in an IANA time zone (docs/architecture.md, "Issue 20: recurring series").

Every kind is read as a 5-field cron expression and computed by `cronsim` (one rule for
daily, weekly and cron alike), on the zone's wall clock: 09:00 stays 09:00 across a change
of summer time. A wall time the clocks skip (02:30 when summer time starts at 02:00) runs at
the first minute after the gap (03:00); one they show twice runs at its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cronsim import CronSim, CronSimError

from pagecast import timezones

__all__ = ["DAYS", "check_cron", "cron_of", "describe", "next_run", "next_runs"]

# Day names as the API and the forms take them, in cron's numbering (Sunday 0).
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAY_WORDS = {
    "sun": "Sunday",
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
}


def _at(time: str) -> tuple[int, int]:
    hours, minutes = time.split(":")
    return int(hours), int(minutes)


def cron_of(schedule: dict[str, Any]) -> str:
    """The schedule (checked: schemas' `Schedule`) as a 5-field cron expression."""
    kind = schedule["kind"]
    if kind == "cron":
        return str(schedule["cron"])
    hours, minutes = _at(schedule["time"])
    days = "*"
    if kind == "weekly":
        days = ",".join(str(DAYS.index(d)) for d in sorted(set(schedule["days"]), key=DAYS.index))
    return f"{minutes} {hours} * * {days}"


def check_cron(expression: str) -> str:
    """`expression` when it is a 5-field cron expression that runs at some time; else a
    ValueError saying what is wrong and what to write."""
    example = 'e.g. "0 9 * * 1-5" (09:00 on weekdays) or "30 18 1 * *" (18:30 on the 1st)'
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} has {len(fields)} fields; a cron expression has 5 (minute, hour, "
            f"day of month, month, day of week), {example}"
        )
    try:
        next(CronSim(expression, datetime(2026, 1, 1, tzinfo=UTC)))
    except (CronSimError, ValueError, StopIteration) as exc:
        raise ValueError(
            f"{expression!r} is not a cron expression cron can run ({exc}); write 5 fields: "
            f"minute, hour, day of month, month, day of week, {example}"
        ) from None
    return expression


def next_run(schedule: dict[str, Any], zone: str, after: datetime) -> datetime:
    """The first run strictly after `after`, in UTC.

    CronSim steps on the local wall clock: started inside the hour shown twice (the end of
    summer time) it can give that hour's first occurrence, which is before `after` in UTC;
    every such time is skipped."""
    local = after.astimezone(timezones.zone(zone))
    for at in CronSim(cron_of(schedule), local):
        if at.astimezone(UTC) > after:
            return at.astimezone(UTC)
    raise ValueError(f"the schedule {cron_of(schedule)!r} never runs after {after.isoformat()}")


def next_runs(schedule: dict[str, Any], zone: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` runs after `after`, in UTC (what the dashboard and CLI show)."""
    runs: list[datetime] = []
    at = after
    for _ in range(count):
        at = next_run(schedule, zone, at)
        runs.append(at)
    return runs


def describe(schedule: dict[str, Any], zone: str) -> str:
    """The schedule in words: "Daily at 09:00 (Europe/Berlin)"."""
    kind = schedule["kind"]
    if kind == "daily":
        words = f"Daily at {schedule['time']}"
    elif kind == "weekly":
        days = sorted(set(schedule["days"]), key=lambda d: (DAYS.index(d) + 6) % 7)
        words = f"Every {', '.join(_DAY_WORDS[d] for d in days)} at {schedule['time']}"
    else:
        words = f"Cron {schedule['cron']}"
    return f"{words} ({zone})"
