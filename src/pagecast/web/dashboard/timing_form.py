"""The composer's "Each person's local time" part (issue 20): a wall-clock send time read in
each person's zone and a send window, as the API's `local_send_at` and `send_window`
(services/due_times.py checks them, naming the field)."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData

from pagecast.models import Campaign, CampaignStatus
from pagecast.services.due_times import DAYS

__all__ = ["DAYS", "FIELD_ERRORS", "fields", "keep_started", "values_of"]

FIELD_ERRORS = ("local_send_at", "send_window")


def fields(form: FormData) -> dict[str, Any]:
    """The form's timing fields as the API's (None: not asked for)."""
    local = str(form.get("local_send_at", "")).strip()
    days = [str(d) for d in form.getlist("window_days")]
    start = str(form.get("window_start", "")).strip()
    end = str(form.get("window_end", "")).strip()
    window = {"days": days, "start": start, "end": end} if days or start or end else None
    return {"local_send_at": local or None, "send_window": window}


def values_of(campaign: Campaign) -> dict[str, Any]:
    """A saved campaign's timing as form values."""
    window = campaign.send_window or {}
    return {
        "local_send_at": f"{campaign.local_send_at:%Y-%m-%dT%H:%M}"
        if campaign.local_send_at
        else "",
        "window_days": ",".join(window.get("days", [])),
        "window_start": window.get("start", ""),
        "window_end": window.get("end", ""),
    }


def keep_started(fields: dict[str, Any], campaign: Campaign) -> None:
    """A started campaign's due times are written: its form sends none (disabled fields)."""
    if campaign.status not in (
        CampaignStatus.DRAFT,
        CampaignStatus.AWAITING_APPROVAL,
        CampaignStatus.SCHEDULED,
    ):
        for name in FIELD_ERRORS:
            fields.pop(name, None)
