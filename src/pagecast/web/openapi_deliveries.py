"""What `GET /api/campaigns/{id}/deliveries` answers, for the OpenAPI document (issue 20).

Beside `web/openapi.py` (the other resources) so that module stays one screen per concept;
the same rules hold: `render.delivery` builds the body, this model only describes it, and
the schemathesis test fails when the two differ.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from pagecast.models import DeliveryStatus
from pagecast.web.openapi import _Out, errors

__all__ = ["DeliveryList", "DeliveryOut", "listed"]


class DeliveryOut(_Out):
    id: int = Field(description="The delivery's id; the list is in ascending order of it.")
    contact_id: int
    psid: str | None = Field(description="The person's page-scoped id (null: contact deleted).")
    first_name: str | None
    last_name: str | None
    status: DeliveryStatus
    reason: str | None = Field(
        description="Why it is skipped, failed, unknown, expired or cancelled (a code)."
    )
    reason_words: str | None = Field(description="The reason as the dashboard says it.")
    variant: str | None = Field(description="The A/B variant's key (null: one content).")
    due_at: datetime | None = Field(description="Not sent before (local time, quiet hours).")
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    clicked_at: datetime | None
    replied_at: datetime | None
    attempts: int
    error_code: int | None = Field(description="The Graph API error code of the last attempt.")
    error_subcode: int | None
    error_kind: str | None = Field(
        description="How Pagecast classed the error: retry, throttle, stop_page, "
        "recipient_unreachable, outside_window, bad_request, ambiguous."
    )
    error_message: str | None
    fbtrace_id: str | None


class DeliveryList(_Out):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the rows after these; null on the last page."
    )


def listed(*statuses: int) -> dict[str, Any]:
    """Route keyword arguments of the listing: JSON (the model) or, with `Accept: text/csv`,
    the same rows as CSV."""
    success: dict[str, Any] = {
        "description": "The deliveries; with `Accept: text/csv`, all of them as a CSV file.",
        "model": DeliveryList,
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
    return {
        "status_code": 200,
        "response_model": None,
        "responses": {200: success, **errors(*statuses)},
    }
