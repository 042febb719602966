"""How the dashboard shows and reads times: in the signed-in user's zone, UTC on hover.

`when` is the one Jinja filter every template shows a time with (`{{ row.sent_at|when }}`):
`<time datetime="<UTC ISO>" title="<UTC>">` around the time in the viewer's zone. Form
fields of type `datetime-local` carry no zone: `field_value` writes a stored time into one,
`read_field` reads one back, both in the viewer's zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from pagecast import timezones

__all__ = ["field_value", "read_field", "text", "viewer_zone", "when"]

_FIELD = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> shows and sends


def viewer_zone(viewer: Any) -> str:
    """The zone of the signed-in user (`Viewer`), UTC on pages seen signed out."""
    return str(viewer.user.timezone) if viewer is not None else timezones.DEFAULT


def _instant(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def text(value: datetime, zone: str, *, seconds: bool = True) -> str:
    """The time as read on a clock in `zone`, with its offset: "2026-12-01 09:00:00 UTC+08:00"."""
    local = timezones.to_local(value, zone)
    shown = local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{shown} {timezones.offset_text(zone, value)}"


@pass_context
def when(
    context: Context, value: datetime | str | None, style: str = "full", zone: str | None = None
) -> Markup | str:
    """A stored time (aware datetime, or the ISO text the services give) in the viewer's zone
    (or in `zone`, e.g. a Page's).

    `style="plain"`: the text alone, for places that take no markup (an SVG `<title>`).
    """
    if value is None or value == "":
        return "—"
    moment = _instant(value)
    shown = text(moment, zone or viewer_zone(context.get("viewer")))
    if style == "plain":
        return shown
    utc = moment.astimezone(UTC)
    iso = utc.isoformat().replace("+00:00", "Z")
    return Markup('<time datetime="{}" title="{} UTC">{}</time>').format(
        iso, f"{utc:%Y-%m-%d %H:%M:%S}", escape(shown)
    )


def field_value(value: datetime | None, zone: str) -> str:
    """A stored time as a `datetime-local` field's value in `zone` ("" for none)."""
    return timezones.to_local(value, zone).strftime(_FIELD) if value is not None else ""


def read_field(value: str, zone: str) -> str | None:
    """A `datetime-local` field's text as ISO 8601 with the offset of `zone` at that time.

    Anything that is not such a field's text is passed on unchanged, so that the API's
    validation names the field; a time the zone's clocks skip is a ValueError (see
    `timezones.from_local`).
    """
    if not value:
        return None
    try:
        wall = datetime.strptime(value, _FIELD)
    except ValueError:
        return value
    return timezones.from_local(wall, zone).astimezone(timezones.zone(zone)).isoformat()
