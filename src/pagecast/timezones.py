"""Time zones: IANA names checked against the tz database, and times shown or read in a zone.

Every stored time is UTC (models.base.UTCDateTime). A zone (a user's, a Page's) only changes
how a time is shown in the dashboard and how a wall-clock time typed into a form is read
(docs/architecture.md, "Issue 19: time zones"). The names come from the `tzdata` package, so
the list is the same on every machine whatever the system has installed.
"""

from __future__ import annotations

import difflib
import functools
import zoneinfo
from datetime import UTC, datetime, timedelta
from importlib import resources

__all__ = [
    "DEFAULT",
    "NAME_MAX",
    "canonical",
    "from_local",
    "label",
    "names",
    "offset_text",
    "to_local",
    "unknown_message",
    "zone",
]

DEFAULT = "UTC"  # the zone of every user and Page until they choose one
NAME_MAX = 64  # the longest tz database name is 32 characters; the columns hold 64


@functools.cache
def _by_folded_name() -> dict[str, str]:
    # The `tzdata` package's list, not `zoneinfo.available_timezones()`: that one adds what
    # the host's /usr/share/zoneinfo holds, "localtime" (the server's own zone) among it.
    listed = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    return {name.casefold(): name for name in listed}


@functools.cache
def names() -> tuple[str, ...]:
    """Every zone name of the tz database, sorted (for a form's suggestions)."""
    return tuple(sorted(_by_folded_name().values()))


def canonical(name: str) -> str | None:
    """The tz database's spelling of `name` (case and surrounding spaces do not matter), or
    None when it names no zone."""
    if len(name) > NAME_MAX:
        return None
    return _by_folded_name().get(name.strip().casefold())


_REGIONS: tuple[str, ...] = (
    "Africa/",
    "America/",
    "Antarctica/",
    "Asia/",
    "Atlantic/",
    "Australia/",
    "Europe/",
    "Indian/",
    "Pacific/",
)


@functools.cache
def _by_city() -> dict[str, str]:
    # "Berlin" -> "Europe/Berlin": the last part of a name is the place people know it by.
    # Names in a region come last so that they win over the old aliases ("US/Eastern").
    ordered = sorted((n for n in names() if "/" in n), key=lambda n: (n.startswith(_REGIONS), n))
    return {name.rsplit("/", 1)[-1].casefold(): name for name in ordered}


def unknown_message(name: str) -> str:
    """What to say about a name that is not a zone: what to send instead."""
    typed = name.strip()[:NAME_MAX]
    city = _by_city().get(typed.replace(" ", "_").casefold())
    close = [city] if city else difflib.get_close_matches(typed, names(), n=1, cutoff=0.8)
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    shown = name if len(name) <= NAME_MAX else name[:NAME_MAX] + "…"
    return (
        f"{shown!r} is not a time zone{hint}; send an IANA time zone name such as "
        '"Asia/Manila", "Europe/Berlin", "America/New_York" or "UTC"'
    )


@functools.cache
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone of a name already checked by `canonical` (a stored one)."""
    return zoneinfo.ZoneInfo(name)


def to_local(value: datetime, name: str) -> datetime:
    """An aware time as the wall-clock time of zone `name`."""
    return value.astimezone(zone(name))


def offset_text(name: str, at: datetime | None = None) -> str:
    """The zone's offset from UTC at `at` (now by default), e.g. "UTC+08:00" or "UTC"."""
    offset = (at or datetime.now(UTC)).astimezone(zone(name)).utcoffset() or timedelta(0)
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def label(name: str, at: datetime | None = None) -> str:
    """The zone as the dashboard names it: "Asia/Manila (UTC+08:00)", or "UTC"."""
    offset = offset_text(name, at)
    return name if name == offset else f"{name} ({offset})"


def from_local(wall: datetime, name: str) -> datetime:
    """The UTC instant of the wall-clock time `wall` (naive) in zone `name`.

    A time the clocks skip (the hour lost when summer time starts) names no instant: that is
    a ValueError saying so. A time that happens twice (the hour repeated when summer time
    ends) is read as its first occurrence, as the zone's clocks first show it.

    Raises:
        ValueError: `wall` does not exist in the zone.
    """
    local = wall.replace(tzinfo=zone(name), fold=0)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone(name)).replace(tzinfo=None) != wall:
        raise ValueError(
            f"{wall:%Y-%m-%d %H:%M} does not exist in {name} (the clocks skip it when "
            "summer time starts); choose another time"
        )
    return instant
