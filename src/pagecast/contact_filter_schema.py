"""`ContactFilter`: who a contacts list, a bulk action, an export (and a segment) is about.

Only the shape and its checks live here; the SQL it means is `services/contact_filter.py`.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PlainValidator,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from pagecast.input_types import Input, Line, TimeZoneName

__all__ = ["MAX_FILTER_TAGS", "ContactBulk", "ContactFilter", "TagName", "Window"]

Window = Literal["inside", "outside", "unknown"]
TagName = Annotated[Line, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
MAX_FILTER_TAGS = 50
_Tags = Annotated[list[TagName], Field(max_length=MAX_FILTER_TAGS)]


_YEARS = (1900, 9998)  # what a last inbound time may be compared with


def _day_or_time(value: Any) -> date | datetime:
    parsed: date | datetime | None = value if isinstance(value, date) else None
    if isinstance(value, str) and len(value) <= 40:
        text = value.strip()
        with contextlib.suppress(ValueError):
            parsed = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    if parsed is None:
        raise ValueError("is not a date (2026-03-01) or an ISO 8601 time (2026-03-01T09:00:00Z)")
    try:  # in UTC, as the database compares it (inbound_to adds a day to a date)
        year = _start(parsed).astimezone(UTC).year
    except OverflowError:
        year = 0
    if not _YEARS[0] <= year <= _YEARS[1]:
        raise ValueError(f"is out of range; give a date between {_YEARS[0]} and {_YEARS[1]}")
    return parsed


# A day (all of it, in UTC) or a moment; one type, so an error names the field alone.
DayOrTime = Annotated[
    date | datetime,
    PlainValidator(_day_or_time),
    WithJsonSchema({"type": "string", "description": "A date (2026-03-01) or an ISO 8601 time."}),
]


def _start(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(), UTC)


class ContactFilter(Input):
    """Every field narrows the list; a field left out (None or empty) does not filter."""

    tags_any: _Tags = Field([], description="Has at least one of these tags.")
    tags_all: _Tags = Field([], description="Has every one of these tags.")
    tags_none: _Tags = Field([], description="Has none of these tags.")
    window: Window | None = Field(
        None,
        description="The 24-hour messaging window now: inside, outside, or unknown (the "
        "person never wrote to the Page).",
    )
    # Strict: JSON's true and false only (a 0 or "yes" is refused, as the schema says).
    opted_out: StrictBool | None = None
    unreachable: StrictBool | None = None
    is_tester: StrictBool | None = None
    inbound_from: DayOrTime | None = Field(
        None, description="Last wrote to the Page at or after this (a date is its 00:00 UTC)."
    )
    inbound_to: DayOrTime | None = Field(
        None, description="Last wrote to the Page at or before this (a date: that whole day, UTC)."
    )
    q: Annotated[Line, StringConstraints(strip_whitespace=True, max_length=200)] | None = Field(
        None, description="Digits only: the exact PSID; else part of the first or last name."
    )
    timezone: TimeZoneName | None = Field(None, description="The contact's IANA time zone.")

    @model_validator(mode="after")
    def _dates_in_order(self) -> ContactFilter:
        after, before = self.inbound_after, self.inbound_before
        if after is not None and before is not None and before <= after:
            raise ValueError(
                "inbound_to: is before inbound_from; give the earlier date in inbound_from"
            )
        return self

    @property
    def inbound_after(self) -> datetime | None:
        """The inclusive lower bound of the last inbound message, aware UTC."""
        return None if self.inbound_from is None else _start(self.inbound_from)

    @property
    def inbound_before(self) -> datetime | None:
        """The exclusive upper bound of the last inbound message, aware UTC."""
        value = self.inbound_to
        if value is None:
            return None
        if isinstance(value, datetime):
            return _start(value) + timedelta(microseconds=1)
        return _start(value) + timedelta(days=1)

    def is_empty(self) -> bool:
        """No field filters: every contact of the Page matches."""
        return self == ContactFilter()


class ContactBulk(Input):
    """`POST /api/pages/{id}/contacts/bulk`: one action on chosen contacts or on every
    contact matching a filter."""

    action: Literal["tag", "untag", "opt_out"]
    tag: TagName | None = Field(None, description="The tag to add or remove (tag, untag).")
    ids: (
        Annotated[list[Annotated[int, Field(ge=1, le=2**31 - 1)]], Field(max_length=10_000)] | None
    ) = Field(None, description="The contacts chosen (their ids), at most 10,000.")
    filter: ContactFilter | None = Field(
        None, description="Every contact matching this filter (an empty one: all the Page's)."
    )

    @model_validator(mode="after")
    def _one_target(self) -> ContactBulk:
        if (self.ids is None) == (self.filter is None):
            raise ValueError(
                "ids: give either ids (the contacts chosen) or filter (every contact "
                "matching it), one of the two"
            )
        if self.ids is not None and not self.ids:
            raise ValueError("ids: is empty; choose at least one contact")
        if self.action in ("tag", "untag") and not self.tag:
            raise ValueError(f"tag: {self.action} needs the name of the tag")
        return self
