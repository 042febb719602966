"""JSON shapes of API answers. Secrets (tokens, hashes, app secrets) never appear here."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from pagecast.contact_filter_schema import ContactFilter
from pagecast.csv_export import csv_chunks
from pagecast.db import Database
from pagecast.errors import InvalidInput
from pagecast.models import (
    ApiToken,
    AuditLog,
    Campaign,
    Contact,
    LoginSession,
    Page,
    Segment,
    Template,
    User,
    utcnow,
)
from pagecast.schemas import ID_MAX, parse_id
from pagecast.services import campaigns, contact_list, delivery_list, pacing
from pagecast.services.audience import Preview, TagWarning
from pagecast.services.delivery_list import Filters, Item
from pagecast.services.review import Review

__all__ = [
    "DELIVERY_FIELDS",
    "campaign",
    "contact",
    "contacts_csv",
    "cursor",
    "deliveries_csv",
    "delivery",
    "login_session",
    "page",
    "parse_cursor",
    "segment",
    "template",
    "token",
    "user",
    "utc_text",
    "warning",
]


def _time(value: datetime | None) -> str | None:
    # Always UTC: a row just written still holds the offset it was sent with (+08:00).
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else None


def utc_text(value: datetime | None) -> str | None:
    """A time as the API writes it (ISO 8601 in UTC, `Z`), None as None."""
    return _time(value)


def cursor(last_id: int | None) -> str | None:
    return (
        base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode() if last_id is not None else None
    )


def parse_cursor(value: str | None, maximum: int = ID_MAX) -> int | None:
    """The id a `cursor` carries (ids up to `maximum`: BIGINT_MAX for deliveries)."""
    if value is None:
        return None
    try:
        kind, _, number = base64.urlsafe_b64decode(value.encode()).decode().partition(":")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        kind, number = "", ""
    last_id = parse_id(number, maximum) if kind == "id" else None
    if last_id is None:
        raise InvalidInput(
            "cursor is not one this API returned; use next_cursor as given.", field="cursor"
        )
    return last_id


# A listed delivery's keys, in order: the API's item and the CSV's columns (issue 20).
DELIVERY_FIELDS = (
    "id",
    "contact_id",
    "psid",
    "first_name",
    "last_name",
    "status",
    "reason",
    "reason_words",
    "variant",
    "due_at",
    "sent_at",
    "delivered_at",
    "read_at",
    "clicked_at",
    "replied_at",
    "attempts",
    "error_code",
    "error_subcode",
    "error_kind",
    "error_message",
    "fbtrace_id",
)


def delivery(item: Item) -> dict[str, Any]:
    """A delivery of `services.delivery_list` (times in UTC, as everywhere in the API)."""
    values = {name: getattr(item, name) for name in DELIVERY_FIELDS}
    values["status"] = item.status.value
    for name in ("due_at", "sent_at", "delivered_at", "read_at", "clicked_at", "replied_at"):
        values[name] = _time(values[name])
    return values


async def deliveries_csv(db: Database, campaign_id: int, filters: Filters) -> AsyncIterator[str]:
    """The CSV of the API, the dashboard and the CLI: a header of `DELIVERY_FIELDS`, then
    each matching delivery as `delivery` shows it, a batch at a time (constant memory)."""

    async def batches() -> AsyncIterator[list[list[Any]]]:
        async for batch in delivery_list.batches(db, campaign_id, filters):
            yield [list(delivery(item).values()) for item in batch]

    async for text in csv_chunks(DELIVERY_FIELDS, batches()):
        yield text


async def contacts_csv(
    db: Database, page_id: int, f: ContactFilter, now: datetime
) -> AsyncIterator[str]:
    """The contacts CSV of the API, the dashboard and the CLI: `contact_list.EXPORT_COLUMNS`
    (the importer's), a batch at a time (constant memory)."""
    async for text in csv_chunks(
        contact_list.EXPORT_COLUMNS, contact_list.batches(db, page_id, f, now=now)
    ):
        yield text


def user(row: User) -> dict[str, Any]:
    return {
        "id": row.id,
        "email": row.email,
        "role": row.role.value,
        "can_send": row.can_send,
        "can_approve": row.can_approve,
        "is_active": row.is_active,
        "timezone": row.timezone,
        "created_at": _time(row.created_at),
        "last_login_at": _time(row.last_login_at),
    }


def token(row: ApiToken) -> dict[str, Any]:
    return {
        "id": row.id,
        "user_id": row.user_id,
        "name": row.name,
        "prefix": row.prefix,
        "created_at": _time(row.created_at),
        "last_used_at": _time(row.last_used_at),
        "revoked_at": _time(row.revoked_at),
    }


def login_session(row: LoginSession, current: int | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "user_id": row.user_id,
        "current": row.id == current,
        "created_at": _time(row.created_at),
        "last_seen_at": _time(row.last_seen_at),
        "expires_at": _time(row.expires_at),
        "user_agent": row.user_agent,
        "address": row.address,
        "revoked_at": _time(row.revoked_at),
    }


def page(row: Page) -> dict[str, Any]:
    return {
        "id": row.id,
        "fb_page_id": row.fb_page_id,
        "name": row.name,
        "status": row.status.value,
        "status_reason": row.status_reason,
        "policy": page_policy(row),
        "send_rate": row.send_rate,
        "has_app_secret": row.app_secret_encrypted is not None,
        "opt_out_keywords": row.opt_out_keywords,
        "timezone": row.timezone,
        "frequency_cap": row.frequency_cap,
        "approval_threshold": row.approval_threshold,
        "quiet_hours": row.quiet_hours,
        "created_at": _time(row.created_at),
        "updated_at": _time(row.updated_at),
    }


def page_policy(row: Page) -> dict[str, Any]:
    """Facebook's messaging policy enforcement of the Page (services/policy.py)."""
    return {
        "blocked": row.policy_block is not None,
        "block_reason": row.policy_block,
        "changed_at": _time(row.policy_at),
        "warning": row.policy_warning,
        "warning_at": _time(row.policy_warning_at),
    }


def contact(row: Contact) -> dict[str, Any]:
    now = utcnow()
    window = "unknown"
    if row.last_inbound_at is not None:
        window = "inside" if (now - row.last_inbound_at).total_seconds() < 86_400 else "outside"
    return {
        "id": row.id,
        "page_id": row.page_id,
        "psid": row.psid,
        "first_name": row.first_name,
        "last_name": row.last_name,
        "locale": row.locale,
        "timezone": row.timezone,
        "utc_offset_minutes": row.utc_offset_minutes,
        "profile_pic_url": row.profile_pic_url,
        "tags": [t.name for t in row.tags],
        "last_inbound_at": _time(row.last_inbound_at),
        "window": window,
        "opted_out_at": _time(row.opted_out_at),
        "unreachable_at": _time(row.unreachable_at),
        "is_tester": row.is_tester,
        "created_at": _time(row.created_at),
        "updated_at": _time(row.updated_at),
    }


def segment(row: Segment, count: int) -> dict[str, Any]:
    """A segment with how many contacts it matches now (API, CLI `--json`, dashboard)."""
    return {
        "id": row.id,
        "page_id": row.page_id,
        "name": row.name,
        "filter": dict(row.filter),
        "count": count,
        "created_by": row.created_by,
        "created_at": _time(row.created_at),
        "updated_at": _time(row.updated_at),
    }


def template(row: Template) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "content": row.content,
        "created_at": _time(row.created_at),
        "updated_at": _time(row.updated_at),
    }


def campaign(row: Campaign, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "page_id": row.page_id,
        "content": row.content,
        "messages": campaigns.stored_messages(row),
        "template_id": row.template_id,
        "variants": row.variants,
        "experiment": row.experiment,
        "messaging_type": row.messaging_type.value,
        "tag": row.tag,
        "audience": row.audience,
        "scheduled_at": _time(row.scheduled_at),
        "priority": row.priority.value,
        "send_rate": row.send_rate,
        "expires_at": _time(row.expires_at),
        "local_send_at": f"{row.local_send_at:%Y-%m-%dT%H:%M}" if row.local_send_at else None,
        "send_window": row.send_window,
        "status": row.status.value,
        "status_reason": row.status_reason,
        "missed": row.missed,
        "counts": counts,
        "created_by_id": row.created_by_id,
        "created_at": _time(row.created_at),
        "updated_at": _time(row.updated_at),
        "started_at": _time(row.started_at),
        "completed_at": _time(row.completed_at),
        "archived_at": _time(row.archived_at),  # issue 21: out of the default list
        "series_id": row.series_id,  # issue 20: a run of a series
        "run_at": _time(row.run_at),
        "approval": approval(row),  # issue 22
    }


def approval(row: Campaign) -> dict[str, Any] | None:
    """A campaign's approval request and decision (issue 22), or None if never asked."""
    if row.approval_state is None:
        return None
    return {
        "state": row.approval_state,
        "ask": row.approval_ask,
        "scheduled_at": _time(row.scheduled_at) if row.approval_ask == "schedule" else None,
        "people": row.approval_people,
        "requested_by": row.approval_requested_by,
        "requested_by_id": row.approval_requested_by_id,
        "requested_at": _time(row.approval_requested_at),
        "decided_by": row.approval_decided_by,
        "decided_by_id": row.approval_decided_by_id,
        "decided_at": _time(row.approval_decided_at),
        "comment": row.approval_comment,
    }


def waiting(
    count: int, next_at: datetime | None, last_at: datetime | None
) -> dict[str, Any] | None:
    """The deliveries waiting for their due time (services/due_plan.py), or None."""
    if not count:
        return None
    return {"count": count, "next_at": _time(next_at), "last_at": _time(last_at)}


def progress(
    row: Campaign, rate: float, page_rate: float, *, reconciling_until: datetime | None = None
) -> dict[str, Any]:
    """Send rate over the last minute, the time left at that rate (or the configured one),
    and the deliveries whose outcome is being reconciled (services/reconcile.py)."""
    left = row.n_pending + row.n_sending
    pace = rate or pacing.rate_within(page_rate, row.send_rate)
    return {
        "rate_per_second": round(rate, 2),
        "eta_seconds": round(left / pace) if left and pace else 0,
        "reconciling": None
        if not row.n_unknown
        else {
            "count": row.n_unknown,
            "until": _time(reconciling_until),
            "why": f"{row.n_unknown} messages may or may not have reached Facebook (a timeout "
            "or a stopped worker); Pagecast waits for their echoes before it completes the "
            "campaign. Unconfirmed ones are then sent again once if the Page's echoes prove "
            "they never arrived, or else fail with reason 'ambiguous'.",
        },
    }


def preview(result: Preview, message: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "total": result.total,
        "eligible": result.eligible,
        "excluded": result.excluded,
        "sample": None
        if result.sample is None
        else {
            "contact": contact(result.sample),
            "message": message,
        },
    }


def review(found: Review) -> dict[str, Any]:
    campaign, page = found.campaign, found.page
    return {
        "campaign_id": campaign.id,
        "status": campaign.status.value,
        "page": {"id": page.id, "name": page.name, "status": page.status.value},
        "audience": campaign.audience,
        "audience_rules": found.rules,
        "total": found.preview.total,
        "eligible": found.preview.eligible,
        "excluded": found.preview.excluded,
        "excluded_words": found.excluded_words,
        "rate": found.rate,
        "expected_seconds": found.expected_seconds,
        "expected_duration": found.duration,
        "sample": None
        if found.preview.sample is None
        else {
            "contact": contact(found.preview.sample),
            "message": found.messages[0] if found.messages else None,
            "messages": found.messages,
        },
    }


def audit(row: AuditLog) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": _time(row.at),
        "actor": row.actor,
        "actor_id": row.actor_id,
        "action": row.action,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "details": row.details,
    }


def warning(row: TagWarning) -> dict[str, Any]:
    """A warning of a saved campaign: saved as asked, but likely not what was meant."""
    return {
        "code": "unknown_tags",
        "field": row.field,
        "message": row.message,
        "tags": row.unknown,
        "known_tags": row.known,
    }
