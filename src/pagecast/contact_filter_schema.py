"""`ContactFilter`: who a contacts list, a bulk action, an export (and a segment) is about.

Only the shape and its checks live here; the SQL it means is `services/contact_filter.py`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from pagecast.input_types import Input, Line, TimeZoneName

__all__ = ["MAX_FILTER_TAGS", "ContactFilter", "TagName", "Window"]

Window = Literal["inside", "outside", "unknown"]
TagName = Annotated[Line, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
MAX_FILTER_TAGS = 50
_Tags = Annotated[list[TagName], Field(max_length=MAX_FILTER_TAGS)]


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
    opted_out: bool | None = None
    unreachable: bool | None = None
    is_tester: bool | None = None
    inbound_from: date | datetime | None = Field(
        None, description="Last wrote to the Page at or after this (a date is its 00:00 UTC)."
    )
    inbound_to: date | datetime | None = Field(
        None, description="Last wrote to the Page at or before this (a date: that whole day, UTC)."
    )
    q: Annotated[Line, StringConstraints(strip_whitespace=True, max_length=200)] | None = Field(
        None, description="Part of the first or last name, or the exact PSID."
    )
    timezone: TimeZoneName | None = Field(None, description="The contact's IANA time zone.")

    @model_validator(mode="after")
    def _dates_in_order(self) -> ContactFilter:
        after, before = self.inbound_after, self.inbound_before
        if after is not None and before is not None and before <= after:
            raise ValueError(
                "inbound_to is before inbound_from; give the earlier date in inbound_from"
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
