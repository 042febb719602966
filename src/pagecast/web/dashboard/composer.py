"""The campaign composer: the form, its live audience count and message preview, and saving
drafts through `services.campaigns` (the validation the API applies, shown next to each field)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import FormData

from pagecast import timezones
from pagecast.errors import InvalidInput, PagecastError
from pagecast.models import Campaign, CampaignStatus, MessagingType, Priority
from pagecast.permissions import Permission
from pagecast.schemas import (
    ALLOWED_TAGS,
    RETIRED_TAGS,
    Audience,
    CampaignCreate,
    CampaignUpdate,
    Content,
    Id,
    parse_id,
)
from pagecast.services import audience, campaigns, content, pages
from pagecast.web.dashboard import times
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page, redirect
from pagecast.web.deps import ContextDep

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
_AUDIENCE: TypeAdapter[Any] = TypeAdapter(Audience)
CHIPS = ("{{first_name|there}}", "{{last_name}}", "{{full_name|friend}}")


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]


def _reader(form: FormData) -> Callable[[str], str]:
    """`get(name)`: the form field's text, stripped, "" when the field is absent."""
    return lambda name: str(form.get(name, "")).strip()


def _content(form: FormData) -> dict[str, Any]:
    get = _reader(form)
    body: dict[str, Any] = {}
    if get("attachment_url"):
        body["attachment"] = {
            "type": get("attachment_type") or "image",
            "url": get("attachment_url"),
        }
    if get("text"):
        body["text"] = get("text")
    buttons = []
    for i in range(3):
        title, target = get(f"button{i}_title"), get(f"button{i}_target")
        if title or target:
            if target.startswith(("http://", "https://")):
                buttons.append({"type": "web_url", "title": title, "url": target})
            else:
                buttons.append({"type": "postback", "title": title, "payload": target or title})
    if buttons:
        body["buttons"] = buttons
    replies = [{"title": t, "payload": t.upper()[:1000]} for t in _split(get("quick_replies"))]
    if replies:
        body["quick_replies"] = replies
    return body


def _times(get: Callable[[str], str], zone: str) -> dict[str, str | None]:
    """The form's times, typed in `zone` (the composer says which), as ISO 8601 with offsets.

    Raises:
        InvalidInput: a time the zone's clocks skip, naming its field.
    """
    read: dict[str, str | None] = {}
    for name in ("scheduled_at", "expires_at"):
        try:
            read[name] = times.read_field(get(name), zone)
        except ValueError as exc:
            raise InvalidInput(f"{name}: {exc}", field=name) from exc
    return read


def fields_from(form: FormData, zone: str = timezones.DEFAULT) -> dict[str, Any]:
    """The form as the API's campaign body (what `POST /api/campaigns` takes), its times
    read in `zone`."""
    get = _reader(form)
    kind = get("audience_type") or "all"
    if kind == "tags":
        target: dict[str, Any] = {
            "type": "tags",
            "include": _split(get("include")),
            "exclude": _split(get("exclude")),
        }
    elif kind == "contacts":
        # An id that is not one is passed on as text, so the audience's validation names it.
        target = {"type": "contacts", "ids": [parse_id(i) or i for i in _split(get("ids"))]}
    else:
        target = {"type": "all"}
    data: dict[str, Any] = {
        "name": get("name"),
        "page_id": parse_id(get("page_id")) or 0,  # 0: no Page chosen (or not an id)
        "content": _content(form),
        "messaging_type": get("messaging_type") or "UPDATE",
        "tag": get("tag") or None,
        "audience": target,
        "priority": get("priority") or "normal",
        **_times(get, zone),
        "send_rate": get("send_rate") or None,
    }
    return data


def _errors(exc: Exception) -> dict[str, str]:
    if isinstance(exc, ValidationError):
        found: dict[str, str] = {}
        for error in exc.errors():
            parts = [str(p) for p in error["loc"] if p not in ("all", "tags", "contacts")]
            found.setdefault(
                parts[0] if parts else "form",
                f"{'.'.join(parts[1:]) + ': ' if len(parts) > 1 else ''}"
                + str(error["msg"]).removeprefix("Value error, "),
            )
        return found
    assert isinstance(exc, PagecastError)
    field = (exc.field or "form").split(".")[0]
    return {field: exc.message}


async def _form_page(
    request: Request,
    viewer: Any,
    ctx: Any,
    *,
    values: dict[str, Any],
    errors: dict[str, str],
    campaign: Campaign | None = None,
    status_code: int = 200,
) -> Response:
    async with ctx.db.transaction() as session:
        page_rows = await pages.list_all(session)
    zone = times.viewer_zone(viewer)
    return page(
        request,
        "composer.html",
        viewer,
        status_code=status_code,
        v=values,
        errors=errors,
        campaign=campaign,
        pages=page_rows,
        chips=CHIPS,
        allowed_tags=ALLOWED_TAGS,
        retired_tags=RETIRED_TAGS,
        priorities=[p.value for p in Priority],
        messaging_types=[m.value for m in MessagingType],
        zone=zone,
        zone_label=timezones.label(zone),
    )


def _values_of(campaign: Campaign, zone: str) -> dict[str, Any]:
    """A saved campaign as form values, its times in `zone`."""
    body = campaign.content or {}
    target = campaign.audience
    values: dict[str, Any] = {
        "name": campaign.name,
        "page_id": campaign.page_id,
        "text": body.get("text", ""),
        "attachment_type": (body.get("attachment") or {}).get("type", "image"),
        "attachment_url": (body.get("attachment") or {}).get("url", ""),
        "quick_replies": ", ".join(q.get("title", "") for q in body.get("quick_replies", [])),
        "audience_type": target["type"],
        "include": ", ".join(target.get("include", [])),
        "exclude": ", ".join(target.get("exclude", [])),
        "ids": ", ".join(str(i) for i in target.get("ids", [])),
        "messaging_type": campaign.messaging_type.value,
        "tag": campaign.tag or "",
        "priority": campaign.priority.value,
        "send_rate": campaign.send_rate or "",
        "scheduled_at": times.field_value(campaign.scheduled_at, zone),
        "expires_at": times.field_value(campaign.expires_at, zone),
    }
    for i, button in enumerate(body.get("buttons", [])):
        values[f"button{i}_title"] = button.get("title", "")
        values[f"button{i}_target"] = button.get("url") or button.get("payload", "")
    return values


@router.get("/campaigns/new")
async def new_campaign(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.CAMPAIGNS_WRITE)
    return await _form_page(request, viewer, ctx, values={"audience_type": "all"}, errors={})


@router.post("/campaigns/new")
async def create_campaign(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.CAMPAIGNS_WRITE)
    form = await request.form()
    try:
        data = CampaignCreate.model_validate(fields_from(form, times.viewer_zone(viewer)))
        async with ctx.db.transaction() as session:
            campaign = await campaigns.create(session, viewer.actor, data)
    except (ValidationError, InvalidInput, PagecastError) as exc:
        if isinstance(exc, PagecastError) and exc.status_code in (401, 403, 404):
            raise
        return await _form_page(
            request, viewer, ctx, values=dict(form), errors=_errors(exc), status_code=422
        )
    return redirect(f"/campaigns/{campaign.id}")


@router.get("/campaigns/{campaign_id}/edit")
async def edit_campaign(
    campaign_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    viewer.actor.require(Permission.CAMPAIGNS_WRITE)
    async with ctx.db.transaction() as session:
        campaign = await campaigns.get(session, campaign_id)
    campaigns.require_status(campaign, campaigns.EDITABLE, "editing")
    return await _form_page(
        request,
        viewer,
        ctx,
        values=_values_of(campaign, times.viewer_zone(viewer)),
        errors={},
        campaign=campaign,
    )


@router.post("/campaigns/{campaign_id}/edit")
async def update_campaign(
    campaign_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    viewer.actor.require(Permission.CAMPAIGNS_WRITE)
    form = await request.form()
    async with ctx.db.transaction() as session:
        campaign = await campaigns.get(session, campaign_id)
    try:
        fields = fields_from(form, times.viewer_zone(viewer))
        if campaign.status is not CampaignStatus.DRAFT:
            # Fixed once the audience snapshot exists (docs/architecture.md).
            for name in ("page_id", "audience", "messaging_type", "tag"):
                fields.pop(name)
        if campaign.messages and fields.get("content") is not None:
            # The form edits a sequence's first message; the others stay (issue 19).
            fields["messages"] = [fields.pop("content"), *campaign.messages[1:]]
        async with ctx.db.transaction() as session:
            campaign = await campaigns.update(
                session, viewer.actor, campaign_id, CampaignUpdate.model_validate(fields)
            )
    except (ValidationError, PagecastError) as exc:
        if isinstance(exc, PagecastError) and exc.status_code in (401, 403, 404):
            raise
        return await _form_page(
            request,
            viewer,
            ctx,
            values=dict(form),
            errors=_errors(exc),
            campaign=campaign,
            status_code=422,
        )
    return redirect(f"/campaigns/{campaign.id}")


@router.post("/campaigns/preview")
async def preview(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """HTMX: the eligible count, exclusions by reason and the message for a real contact."""
    viewer.actor.require(Permission.CAMPAIGNS_READ)
    fields = fields_from(await request.form())
    result: Any = None
    message: dict[str, Any] | None = None
    problem = None
    warnings: list[audience.TagWarning] = []
    known: list[str] = []
    try:
        target = _AUDIENCE.validate_python(fields["audience"])  # ids within the column
        draft = Campaign(
            page_id=fields["page_id"],
            audience=target.model_dump(mode="json"),
            messaging_type=MessagingType(fields["messaging_type"]),
        )
        async with ctx.db.transaction() as session:
            await pages.get(session, draft.page_id)
            result = await audience.preview(session, draft)
            # The Page's tags: what Save would warn about, and the tag inputs' suggestions.
            warnings = await audience.tag_warnings(session, draft.page_id, draft.audience)
            known = await audience.known_tags(session, draft.page_id)
        if result.sample is not None and fields["content"]:
            sample = {"first_name": result.sample.first_name, "last_name": result.sample.last_name}
            message = content.to_message(Content.model_validate(fields["content"]), sample)
    except (ValidationError, PagecastError, ValueError) as exc:
        problem = next(iter(_errors(exc).values())) if not isinstance(exc, ValueError) else str(exc)
    if fields["page_id"] == 0:
        problem = "Choose a Page to see who the campaign reaches."
    return page(
        request,
        "_preview.html",
        viewer,
        result=result,
        message=message,
        problem=problem,
        warnings=warnings,
        known_tags=known,
        when=datetime.now(UTC),
    )
