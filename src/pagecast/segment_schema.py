"""Bodies of the segments API: a name and a `ContactFilter` (issue 21)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from pagecast.contact_filter_schema import ContactFilter
from pagecast.input_types import Input, Line
from pagecast.schemas import Patch

__all__ = ["SegmentCreate", "SegmentUpdate"]

SegmentName = Annotated[
    Line, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]


class SegmentCreate(Input):
    name: SegmentName = Field(description="Unique among the Page's segments.")
    filter: ContactFilter = Field(
        default_factory=ContactFilter,
        description="Who is in the segment (the contacts list's filter); read when a campaign "
        "targeting the segment starts.",
    )


class SegmentUpdate(Patch):
    not_null = ("name", "filter")

    name: SegmentName | None = None
    filter: ContactFilter | None = None
