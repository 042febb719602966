"""What the API answers, for the OpenAPI document: the error body and the main resources.

`render.py` builds the bodies; these models only describe them (routes keep
`response_model=None`, so nothing is validated twice on the way out). The schemathesis test
(tests/test_api_fuzz.py) calls every operation and fails when an answer breaks its model,
so the two cannot drift apart unnoticed. `additionalProperties: false` on every model makes
an undocumented key such a failure too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pagecast.models import (
    CampaignStatus,
    ImportState,
    MessagingType,
    PageStatus,
    Priority,
    Role,
    SyncState,
)
from pagecast.web.openapi_approvals import ApprovalOut

__all__ = [
    "API_ERRORS",
    "AuditList",
    "CampaignList",
    "CampaignOut",
    "CampaignProgressOut",
    "CampaignSavedOut",
    "ContactOut",
    "EndedSessionsOut",
    "ErrorOut",
    "FacebookConnectOut",
    "ImportList",
    "ImportOut",
    "LoginSessionList",
    "LoginSessionOut",
    "PageList",
    "PageOut",
    "PreviewOut",
    "ReviewOut",
    "SendTestOut",
    "SyncOut",
    "TemplateList",
    "TemplateOut",
    "TokenList",
    "TokenOut",
    "UserList",
    "UserOut",
    "WebhookHelpOut",
    "documented",
    "errors",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Out):
    field: str | None
    message: str


class ErrorInfo(_Out):
    code: str
    message: str
    field: str | None
    details: list[ErrorDetail] | None = None
    limit: int | None = None  # 413: the route's body limit in bytes
    # 409 `no_eligible_people`: the audience's contacts that cannot be messaged now, by reason
    excluded: dict[str, int] | None = None


class ErrorOut(_Out):
    """Every error the API answers (web/errors.py)."""

    error: ErrorInfo


_MEANING = {
    400: "The body is not valid JSON.",
    401: "No valid API token or session.",
    403: "The caller's role does not allow this, or the CSRF header is missing.",
    404: "No such object (or route).",
    409: "A uniqueness rule or the object's state forbids this.",
    413: "The request body is over the size limit.",
    422: "Invalid input: `error.field` names the field, `error.details` lists every problem.",
    429: "Too many attempts; `Retry-After` says when to try again.",
    502: "Facebook (the Graph API) refused or failed a call Pagecast needed.",
    503: "Redis (the queue) is unreachable, or (Connect with Facebook) PAGECAST_APP_ID or "
    "PAGECAST_APP_SECRET is not set; nothing was changed.",
}
_HEADERS: dict[int, dict[str, Any]] = {
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer"},
        }
    }
}
# Every API route can answer these: authentication, roles, a bad body or parameter, a body
# over the limit, a path id that names nothing.
API_ERRORS = (400, 401, 403, 404, 413, 422)


def errors(*statuses: int, text_route: bool = False) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for error statuses, each with the `{"error": …}` body.

    FastAPI documents a `model` in the route's media type; a route that answers text
    (`text_route`) still answers errors in JSON, so its entries name the schema directly
    (registered by the JSON routes that use the model).
    """
    entries: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"description": _MEANING[status]}
        if text_route:
            entry["content"] = {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}
            }
        else:
            entry["model"] = ErrorOut
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        entries[status] = entry
    return entries


def documented(
    model: type[BaseModel] | None, *statuses: int, status: int = 200, empty: int | None = None
) -> dict[str, Any]:
    """Route keyword arguments: `model` documents the success body (not validated at run
    time), `statuses` the errors beyond API_ERRORS that the route can answer, `empty` a
    second success status without a body."""
    success: dict[str, Any] = {"description": "Success"}
    if model is not None:
        success["model"] = model
    responses: dict[int | str, dict[str, Any]] = {status: success, **errors(*statuses)}
    if empty is not None:
        responses[empty] = {"description": "Success, no body"}
    return {"status_code": status, "response_model": None, "responses": responses}


class UserOut(_Out):
    id: int
    email: str
    role: Role
    can_send: bool
    can_approve: bool = Field(
        description="False when an admin withdrew the approve permission (campaigns:approve) "
        "from this user. Only managers and admins approve: a viewer never does, whatever "
        "this says (GET /api/me lists the permissions a user has)."
    )
    is_active: bool
    timezone: str = Field(
        description="IANA zone the dashboard shows times in and reads the schedule field in "
        "(UTC until chosen; PATCH /api/me). API times are always ISO 8601 with an offset."
    )
    created_at: datetime | None
    last_login_at: datetime | None


class MeOut(UserOut):
    permissions: list[str]


class LoginOut(_Out):
    user: UserOut
    csrf_token: str


class UserList(_Out):
    items: list[UserOut]


class TokenOut(_Out):
    id: int
    user_id: int
    name: str
    prefix: str
    created_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str
    note: str


class TokenList(_Out):
    items: list[TokenOut]


class ImportRowError(_Out):
    row: int
    column: str
    reason: str


class ImportOut(_Out):
    """A contact import (services/import_jobs.report)."""

    id: int
    page_id: int
    state: ImportState
    running: bool
    file_name: str
    file_bytes: int
    bytes_read: int
    progress: float
    rows: int
    imported: int
    created: int
    updated: int
    refused: int
    errors: list[ImportRowError] | None
    errors_listed_at_most: int
    ignored_columns: list[str]
    started_by: str
    started_at: str | None
    finished_at: str | None
    elapsed_seconds: float
    error: str | None


class ImportList(_Out):
    items: list[ImportOut]


class LoginSessionOut(_Out):
    id: int
    user_id: int
    current: bool
    created_at: datetime | None
    last_seen_at: datetime | None
    expires_at: datetime | None
    user_agent: str
    address: str
    revoked_at: datetime | None


class LoginSessionList(_Out):
    items: list[LoginSessionOut]


class EndedSessionsOut(_Out):
    ended: int


class PolicyOut(_Out):
    blocked: bool
    block_reason: str | None
    changed_at: datetime | None
    warning: str | None
    warning_at: datetime | None


class FrequencyCapOut(_Out):
    messages: int
    days: int


class PageOut(_Out):
    id: int
    fb_page_id: str
    name: str
    status: PageStatus
    status_reason: str | None
    policy: PolicyOut
    send_rate: float
    has_app_secret: bool
    opt_out_keywords: list[str] | None
    timezone: str = Field(description="The Page's default IANA zone (UTC until chosen).")
    frequency_cap: FrequencyCapOut | None = Field(
        None,
        description="At most `messages` campaign messages per person in `days` days; "
        "null: no cap (issue 20).",
    )
    approval_threshold: int | None = Field(
        None,
        description="Campaigns to more than this many people need approval (0: all; null: "
        "none; issue 22).",
    )
    quiet_hours: dict[str, str] | None = Field(
        description='{"start": "21:00", "end": "08:00"} in each recipient\'s zone, or null.'
    )
    created_at: datetime | None
    updated_at: datetime | None


class ConnectedPageOut(_Out):
    page_id: int | None = Field(description="The Pagecast Page; null when not connected.")
    fb_page_id: str
    name: str
    result: Literal["connected", "token_replaced", "not_connected"]
    subscribed: bool = Field(description="The app receives the Page's webhook fields.")
    problem: str | None


class PermissionOut(_Out):
    permission: str
    status: Literal["granted", "declined", "not_granted"]
    stops: str | None = Field(description="What its absence stops; null when granted.")


class FacebookConnectOut(_Out):
    pages: list[ConnectedPageOut]
    permissions: list[PermissionOut]
    missing: list[str] = Field(description="The permissions Pagecast asks for and lacks.")


class PageList(_Out):
    items: list[PageOut]


class AttachmentOut(_Out):
    attachment_id: str = Field(description="Send it as content.attachment.attachment_id.")
    uploaded: bool = Field(
        description="false: this Page had uploaded the same URL before; no new upload was made."
    )


class ContactOut(_Out):
    id: int
    page_id: int
    psid: str
    first_name: str | None
    last_name: str | None
    locale: str | None
    timezone: str | None = Field(
        description="The person's IANA zone (null: their profile's offset, else the Page's zone)."
    )
    utc_offset_minutes: int | None = Field(
        description="The UTC offset their Messenger profile gave (minutes), used without a zone."
    )
    profile_pic_url: str | None
    tags: list[str]
    last_inbound_at: datetime | None
    window: Literal["inside", "outside", "unknown"]
    opted_out_at: datetime | None
    unreachable_at: datetime | None
    is_tester: bool
    created_at: datetime | None
    updated_at: datetime | None


class TemplateOut(_Out):
    id: int
    name: str
    content: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None


class TemplateList(_Out):
    items: list[TemplateOut]


class CampaignOut(_Out):
    id: int
    name: str
    description: str | None
    page_id: int
    content: dict[str, Any] | None = Field(
        description="The message, or the first of a sequence (kept for clients of one message)."
    )
    messages: list[dict[str, Any]] = Field(
        description="Every message each person gets, in order: one, or a sequence of 2 or 3 "
        "(issue 19). Empty when a template gives the message (`template_id`)."
    )
    template_id: int | None
    variants: list[dict[str, Any]] | None = Field(
        None,
        description="An A/B test's variants [{key, content, weight}] (issue 20); `content` "
        "is then variant A's. docs/experiments.md.",
    )
    experiment: dict[str, Any] | None = Field(
        None,
        description="The experiment's settings; GET /api/campaigns/{id} adds its status "
        "(testing, deciding, decided, sending_winner, done), winner, reason, results by "
        "variant (rates with 95 % Wilson intervals) and the holdout with the lift.",
    )
    messaging_type: MessagingType
    tag: str | None
    audience: dict[str, Any]
    scheduled_at: datetime | None
    priority: Priority
    send_rate: float | None
    expires_at: datetime | None
    local_send_at: str | None = Field(
        description='Wall-clock time each person gets it at in their zone ("2026-12-07T10:00").'
    )
    send_window: dict[str, Any] | None = Field(
        description='{"days": [...], "start": "09:00", "end": "18:00"} in each person\'s zone.'
    )
    status: CampaignStatus
    status_reason: str | None
    missed: bool
    counts: dict[str, int]
    created_by_id: int | None
    created_at: datetime | None
    updated_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    archived_at: datetime | None = Field(
        None, description="When it was archived (out of the default list); null: listed."
    )
    series_id: int | None = Field(description="The series this campaign is a run of (issue 20).")
    run_at: datetime | None
    approval: ApprovalOut | None = Field(
        None, description="Two-person approval (issue 22); null if it was never asked."
    )


class WarningOut(_Out):
    """Saved as asked, but likely not what was meant (web/render.py `warning`)."""

    code: Literal["unknown_tags"]
    field: str
    message: str
    tags: list[str]
    known_tags: list[str]


class CampaignSavedOut(CampaignOut):
    warnings: list[WarningOut]


class RetriedOut(CampaignOut):
    retried: int


class ReconcilingOut(_Out):
    count: int
    until: datetime | None
    why: str


class EngagementOut(_Out):
    clicked: int = Field(description="Deliveries whose person clicked a button or quick reply.")
    replied: int = Field(description="Deliveries whose person sent a message after it.")


class WaitingOut(_Out):
    count: int = Field(description="Pending deliveries whose due time has not come.")
    next_at: datetime | None = Field(description="When the next of them falls due.")
    last_at: datetime | None = Field(description="When the last of them falls due.")


class CampaignProgressOut(CampaignOut):
    rate_per_second: float
    eta_seconds: int
    reconciling: ReconcilingOut | None
    waiting: WaitingOut | None = Field(
        None,
        description="Deliveries waiting for each person's local time, quiet hours or the send "
        'window (docs/sending.md, "Due times"); null when none wait.',
    )
    engagement: EngagementOut | None = Field(
        None, description="Clicks and replies within 24 hours of each send (issue 20)."
    )
    retryable_failed: int = Field(
        0,
        description="Failed deliveries a retry can cure (temporary errors, retries run out, "
        "no answer seen): what POST /api/campaigns/{id}/retry-failed would send again.",
    )


class ReportOut(_Out):
    """GET /api/campaigns/{id}/report (docs/api.md, "Campaign report")."""

    campaign_id: int
    name: str
    page_id: int
    status: CampaignStatus
    counts: dict[str, int]
    retryable_failed: int
    reasons: list[dict[str, Any]] = Field(description="{status, reason, words, count}")
    errors: list[dict[str, Any]] = Field(
        description="{status, reason, kind, code, subcode, count, meaning, what_to_do, example}"
    )
    rates: dict[str, float | None] = Field(
        description="delivered, read, failed, skipped, reached: fractions 0..1, null when "
        "the denominator is 0"
    )
    timings: dict[str, Any]


class OverviewOut(_Out):
    """GET /api/pages/{id}/overview (docs/api.md, "Page overview")."""

    page_id: int
    name: str
    days: list[dict[str, Any]] = Field(description="{day, sent, failed}, oldest first")
    sent: int
    failed: int
    opt_outs: int
    send_rate: float
    throttle: dict[str, Any] | None
    paused_campaigns: list[dict[str, Any]]
    token: dict[str, Any]


class CampaignList(_Out):
    items: list[CampaignOut]
    next_cursor: str | None


class SampleOut(_Out):
    contact: ContactOut
    message: dict[str, Any] | None


class PreviewOut(_Out):
    total: int
    eligible: int
    excluded: dict[str, int]
    sample: SampleOut | None


class ReviewSampleOut(SampleOut):
    messages: list[dict[str, Any]] = Field(
        description="The Send API `message` of each of the campaign's messages for this "
        "contact, in order (one, or a sequence of up to 3); `message` is the first."
    )


class ReviewPageOut(_Out):
    id: int
    name: str
    status: PageStatus


class ReviewOut(_Out):
    """A campaign's review before sending (the dashboard's draft page shows the same)."""

    campaign_id: int
    status: CampaignStatus
    page: ReviewPageOut
    audience: dict[str, Any]
    audience_rules: str = Field(description="The audience and who of it may be messaged, in words.")
    total: int = Field(description="Contacts the audience matches.")
    eligible: int = Field(description="Of them, those who can be messaged now.")
    excluded: dict[str, int] = Field(description="The rest, by reason (every reason present).")
    excluded_words: list[str] = Field(description='The non-zero reasons in words ("2 opted out").')
    rate: float = Field(description="Messages per second: the campaign's rate within its Page's.")
    expected_seconds: int = Field(
        description="eligible × the campaign's messages (a sequence: each a Send call) / rate, "
        "rounded up."
    )
    expected_duration: str = Field(description='expected_seconds in words ("about 4 minutes").')
    sample: ReviewSampleOut | None


class SendTestResultOut(_Out):
    contact_id: int
    status: Literal["sent", "refused", "failed"]
    message_id: str | None = Field(None, description="Facebook's message id (status sent).")
    reason: str | None = Field(None, description="Why it was not sent (refused or failed).")


class SendTestOut(_Out):
    results: list[SendTestResultOut]


class AuditOut(_Out):
    id: int
    at: datetime | None
    actor: str | None
    actor_id: int | None
    action: str
    object_type: str | None
    object_id: int | None
    details: dict[str, Any] | None


class AuditList(_Out):
    items: list[AuditOut]


class SyncOut(_Out):
    id: int
    page_id: int
    state: SyncState
    running: bool
    started_by: str | None
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    elapsed_seconds: float
    calls: int
    threads_seen: int
    contacts_created: int
    contacts_updated: int
    error: str | None


class WebhookEventsOut(_Out):
    last_received_at: datetime | None
    last_24h: dict[str, int]  # events by kind
    receiving: bool


class WebhookHelpOut(_Out):
    page_id: int
    fb_page_id: str
    callback_url: str
    callback_url_from: Literal["PAGECAST_PUBLIC_URL", "request"]
    verify_token_set: bool
    verify_token: str | None
    app_secret_set: bool
    app_secret_from: Literal["page", "PAGECAST_APP_SECRET"] | None
    fields: list[str]
    events: WebhookEventsOut
    warnings: list[str]


class ReadyOut(_Out):
    ok: bool
    database: bool
    redis: bool
