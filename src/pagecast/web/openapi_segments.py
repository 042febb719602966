"""What the segments API answers (issue 21), for the OpenAPI document (`_Out`: no
undocumented key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from pagecast.web.openapi import _Out

__all__ = ["SegmentList", "SegmentOut"]


class SegmentOut(_Out):
    """A segment: a contact filter of a Page saved under a name (docs/api.md, "Segments")."""

    id: int
    page_id: int
    name: str
    filter: dict[str, Any] = Field(
        description="The contacts list's filter (tags_any, tags_all, tags_none, window, "
        "opted_out, unreachable, is_tester, inbound_from, inbound_to, q, timezone); fields "
        "left out do not filter."
    )
    count: int = Field(description="Contacts of the Page in the segment now (eligible or not).")
    created_by: str
    created_at: datetime
    updated_at: datetime


class SegmentList(_Out):
    items: list[SegmentOut]
