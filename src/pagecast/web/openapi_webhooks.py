"""What the outbound webhooks API answers (issue 22), for the OpenAPI document (`_Out`: no
undocumented key)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from pagecast.web.openapi import _Out

__all__ = [
    "DeliveryLog",
    "DeliveryOut",
    "EndpointCreatedOut",
    "EndpointList",
    "EndpointOut",
]


class EndpointOut(_Out):
    """An outbound webhook endpoint (docs/api.md, "Outbound webhooks"); never its secret."""

    id: int
    url: str
    description: str
    events: list[str]
    enabled: bool
    disabled_at: datetime | None
    disabled_by: str | None = Field(
        description='Who turned it off: an admin, or "system" when it failed for 3 days.'
    )
    disabled_reason: str | None
    failing_since: datetime | None = Field(
        description="The first failed attempt since the last success; null while healthy."
    )
    created_by: str
    created_at: datetime | None
    updated_at: datetime | None


class EndpointCreatedOut(EndpointOut):
    """The endpoint with its signing secret, shown this once."""

    secret: str = Field(description="The signing secret (whsec_...); never shown again.")
    note: str


class EndpointList(_Out):
    items: list[EndpointOut]


class EventRef(_Out):
    id: str = Field(description="The event's public id (the body's `id`).")
    type: str
    created_at: datetime | None
    campaign_id: int | None


class DeliveryOut(_Out):
    """One event owed to the endpoint, as its latest attempt left it."""

    id: int
    event: EventRef
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_response_ms: int | None
    last_error: str | None
    excerpt: str | None = Field(description="The first 500 characters of the last answer.")
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None


class DeliveryLog(_Out):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for older deliveries.")
