"""What the API answers about a campaign's two-person approval (issue 22), for the OpenAPI
document: `CampaignOut.approval` (web/render.py `approval`). Its own base model, as
web/openapi.py's `_Out` (no undocumented key), since web/openapi.py imports this module."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from pagecast.services.approval_requests import ASKS, STATES

__all__ = ["ApprovalOut"]


class ApprovalOut(BaseModel):
    """A campaign's approval request and its decision; the history of every request and
    decision is the campaign's audit trail (GET /api/campaigns/{id}/audit)."""

    model_config = ConfigDict(extra="forbid")

    state: str = Field(
        description="pending (awaiting a decision), approved, rejected, or withdrawn (by an "
        "edit or a cancel).",
        json_schema_extra={"enum": list(STATES)},
    )
    ask: str = Field(
        description="What the author asked for: start now, or schedule at scheduled_at.",
        json_schema_extra={"enum": list(ASKS)},
    )
    scheduled_at: datetime | None = Field(description="The time a schedule ask is for.")
    people: int | None = Field(description="People eligible when it was asked.")
    requested_by: str | None = Field(
        description="Who asked (the author, who may never approve or reject it)."
    )
    requested_by_id: int | None = Field(description="The author's user id; null for the CLI.")
    requested_at: datetime | None = Field(description="When it was asked.")
    decided_by: str | None = Field(description="Who approved or rejected it.")
    decided_by_id: int | None = Field(description="The decider's user id; null for the CLI.")
    decided_at: datetime | None = Field(description="When it was approved or rejected.")
    comment: str | None = Field(description="The decision's comment (a rejection's reason).")
