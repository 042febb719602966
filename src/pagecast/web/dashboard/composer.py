"""The campaign composer: the form, its live audience count and message preview, and saving
drafts through `services.campaigns` (the validation the API applies, shown next to each field)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import FormData

from pagecast import timezones, uploads
from pagecast.errors import InvalidInput, PagecastError
from pagecast.models import Campaign, CampaignStatus, Contact, MessagingType, Priority
from pagecast.permissions import Permission
from pagecast.schemas import (
    ALLOWED_TAGS,
    MAX_MESSAGES,
    RETIRED_TAGS,
    Audience,
    CampaignCreate,
    CampaignUpdate,
    Id,
    parse_id,
)
from pagecast.services import (
    audience,
    campaigns,
    content,
    message_lengths,
    pages,
    segments,
    templates,
)
from pagecast.web.dashboard import audience_form, message_form, times, timing_form, variant_form
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page, redirect
from pagecast.web.deps import ContextDep

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
# The errors composer.html shows next to their field; each message's are shown in its fieldset.
FIELD_ERRORS = (
    "name",
    "page_id",
    "audience",
    "messaging_type",
    "tag",
    "scheduled_at",
    "send_rate",
    "expires_at",
    "template_name",
    *timing_form.FIELD_ERRORS,
)
_AUDIENCE: TypeAdapter[Any] = TypeAdapter(Audience)
CHIPS = ("{{first_name|there}}", "{{last_name}}", "{{full_name|friend}}")


def _reader(form: FormData) -> Callable[[str], str]:
    """`get(name)`: the form field's text, stripped, "" when the field is absent."""
    return lambda name: str(form.get(name, "")).strip()


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
    target = audience_form.target_from(get)
    bodies = message_form.messages_from(form)
    data: dict[str, Any] = {
        "name": get("name"),
        "page_id": parse_id(get("page_id")) or 0,  # 0: no Page chosen (or not an id)
        # One message is `content`, as in the API; more are a sequence (issue 19).
        **({"content": bodies[0]} if len(bodies) == 1 else {"messages": bodies}),
        "messaging_type": get("messaging_type") or "UPDATE",
        "tag": get("tag") or None,
        "audience": target,
        "priority": get("priority") or "normal",
        **_times(get, zone),
        "send_rate": get("send_rate") or None,
        **timing_form.fields(form),
    }
    return variant_form.apply(form, data)  # an A/B test: `variants` instead of `content`


def _bodies(fields: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Each message of the form's body with the field that holds it (`content`, or
    `messages[i]` in a sequence)."""
    if fields.get("variants"):  # an A/B test: each variant's message
        return [(f"variants[{i}].content", v["content"]) for i, v in enumerate(fields["variants"])]
    bodies = fields.get("messages") or [fields.get("content") or {}]
    return [(message_lengths.message_field(i, len(bodies)), b) for i, b in enumerate(bodies)]


def form_errors(exc: Exception) -> dict[str, str]:
    """Errors by the form's section (`content`, `audience`, ...), each in words with the
    field path it names (`content.cards[2].title: ...`)."""
    if isinstance(exc, ValidationError):
        found: dict[str, str] = {}
        for path, message in content.describe(exc):
            found.setdefault(_section(path), message)
        return found
    assert isinstance(exc, PagecastError)
    return {_section(exc.field or ""): exc.message}


def general_errors(errors: dict[str, str], count: int) -> list[str]:
    """The errors no field of the form shows (`form`, `messages`, `template_id`, ...): the
    composer lists them in one box at the top, so no refusal is ever silent."""
    shown = {*FIELD_ERRORS, *(message_lengths.message_field(i, count) for i in range(count))}
    return [message for key, message in errors.items() if key not in shown]


def _messaging_type(value: str) -> MessagingType:
    """The form's messaging type, or InvalidInput in words (a posted value not in the list)."""
    try:
        return MessagingType(value)
    except ValueError:
        choices = ", ".join(m.value for m in MessagingType)
        raise InvalidInput(
            f"messaging_type: {value[:40]!r} is not a messaging type; choose one of {choices}",
            field="messaging_type",
        ) from None


def _section(path: str) -> str:
    """The form's section a field path belongs to; each message of a sequence is its own
    (`messages[1].text` → `messages[1]`)."""
    head = path.split(".")[0]
    if head.startswith("messages[") and "]" in head:
        return head[: head.index("]") + 1]
    return head.split("[")[0] or "form"


async def _upload_once(
    ctx: Any, viewer: Any, form: FormData, fields: dict[str, Any], *, draft: bool
) -> None:
    """ "Upload once": replace each attachment's URL by the Page's `attachment_id` (uploaded
    now, or kept from an earlier upload of the same URL), for the messages that ask it. Only
    once the rest of the form is valid (a refused form uploads nothing): the whole campaign
    for a draft, else the fields that may still change. `uploads.upload_attachment` checks
    the type and URL itself."""
    wanted = [
        (field, body)
        for position, (field, body) in enumerate(_bodies(fields), start=1)
        if form.get(message_form.prefix(position) + "upload_once")
        and (body.get("attachment") or {}).get("url")
    ]
    if not wanted or not fields["page_id"]:
        return
    if draft:
        data = CampaignCreate.model_validate(fields)
        async with ctx.db.transaction() as session:
            await campaigns.check(session, data)
    else:
        for field, body in _bodies(fields):
            content.check_length(content.parse(body, field), {}, field=field)
        CampaignUpdate.model_validate(fields)
    for field, body in wanted:
        media = body["attachment"]
        try:
            attachment_id, _ = await uploads.upload_attachment(
                ctx, viewer.actor, fields["page_id"], media["type"], media["url"]
            )
        except PagecastError as exc:
            if exc.status_code in (401, 403, 404):
                raise
            where = f"{field}.attachment.{exc.field if exc.field == 'type' else 'url'}"
            message = exc.message.removeprefix(f"{exc.field}: ")
            raise InvalidInput(f"{where}: {message}", field=where) from exc
        body["attachment"] = {"type": media["type"], "attachment_id": attachment_id}


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
        template_rows = await templates.list_all(session)
        segment_rows = [s for p in page_rows for s in await segments.list_page(session, p.id)]
    zone = times.viewer_zone(viewer)
    count = message_form.count_of(values)
    return page(
        request,
        "composer.html",
        viewer,
        status_code=status_code,
        v=values,
        errors=errors,
        general_errors=general_errors(errors, count),
        campaign=campaign,
        pages=page_rows,
        templates=template_rows,
        segments=segment_rows,
        page_names={p.id: p.name for p in page_rows},
        describe_filter=audience_form.describe,
        **message_form.template_context(),
        message_count=count,
        count_fixed=campaign is not None and campaigns.keeps_its_message_count(campaign),
        max_messages=MAX_MESSAGES,
        prefix=message_form.prefix,
        chips=CHIPS,
        allowed_tags=ALLOWED_TAGS,
        retired_tags=RETIRED_TAGS,
        priorities=[p.value for p in Priority],
        messaging_types=[m.value for m in MessagingType],
        zone=zone,
        zone_label=timezones.label(zone),
        ab_keys=variant_form.KEYS,
        ab_metrics=variant_form.METRICS,
        ab_confidences=variant_form.CONFIDENCES,
        days=timing_form.DAYS,
    )


def _values_of(campaign: Campaign, zone: str) -> dict[str, Any]:
    """A saved campaign as form values, its times in `zone`."""
    target = campaign.audience
    return (
        message_form.sequence_values(campaigns.stored_messages(campaign))
        | {
            "name": campaign.name,
            "page_id": campaign.page_id,
            "template_id": campaign.template_id or "",
            "messaging_type": campaign.messaging_type.value,
            "tag": campaign.tag or "",
            "priority": campaign.priority.value,
            "send_rate": campaign.send_rate or "",
            "scheduled_at": times.field_value(campaign.scheduled_at, zone),
            "expires_at": times.field_value(campaign.expires_at, zone),
        }
        | audience_form.values_of(target)
        | variant_form.values_of(campaign)
        | timing_form.values_of(campaign)
    )


@router.get("/campaigns/new")
async def new_campaign(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.CAMPAIGNS_WRITE)
    # "New campaign to these people" (contacts list, segments): the audience filled in.
    values: dict[str, Any] = {"audience_type": "all"}
    values |= audience_form.values_from_query(request.query_params)
    template_id = parse_id(request.query_params.get("template"))
    if template_id is not None:  # "Use in a campaign": the template's message, to edit
        async with ctx.db.transaction() as session:
            template = await templates.get(session, template_id)
        values |= message_form.values_of(template.content)
    return await _form_page(request, viewer, ctx, values=values, errors={})


@router.post("/campaigns/new")
async def create_campaign(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.CAMPAIGNS_WRITE)
    form = await request.form()
    if (values := message_form.resequence(form)) is not None:  # "Add a message", "Remove"
        return await _form_page(request, viewer, ctx, values=values, errors={})
    try:
        fields = fields_from(form, times.viewer_zone(viewer))
        await _upload_once(ctx, viewer, form, fields, draft=True)
        data = CampaignCreate.model_validate(fields)
        async with ctx.db.transaction() as session:
            campaign = await campaigns.create(session, viewer.actor, data)
    except (ValidationError, InvalidInput, PagecastError) as exc:
        if isinstance(exc, PagecastError) and exc.status_code in (401, 403, 404):
            raise
        return await _form_page(
            request, viewer, ctx, values=dict(form), errors=form_errors(exc), status_code=422
        )
    return redirect(f"/campaigns/{campaign.id}")


@router.get("/campaigns/{campaign_id}/edit")
async def edit_campaign(
    campaign_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    viewer.actor.require(Permission.CAMPAIGNS_WRITE)
    async with ctx.db.transaction() as session:
        campaign = await campaigns.get(session, campaign_id)
        template = None
        if campaign.template_id is not None:  # its message is the template's
            template = await templates.get(session, campaign.template_id)
        chosen = (
            await audience.chosen_psids(session, campaign.page_id, campaign.audience)
            if campaign.audience.get("type") == "contacts"
            else None
        )
    campaigns.require_status(campaign, campaigns.EDITABLE, "editing")
    values = _values_of(campaign, times.viewer_zone(viewer))
    if chosen is not None:  # an audience saved by internal ids is shown by PSID
        values["psids"] = "\n".join(chosen)
    if template is not None:
        values |= message_form.values_of(template.content) | {"uses_template": template.name}
    return await _form_page(request, viewer, ctx, values=values, errors={}, campaign=campaign)


@router.post("/campaigns/{campaign_id}/edit")
async def update_campaign(
    campaign_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    viewer.actor.require(Permission.CAMPAIGNS_WRITE)
    form = await request.form()
    async with ctx.db.transaction() as session:
        campaign = await campaigns.get(session, campaign_id)
    if (values := message_form.resequence(form)) is not None:  # "Add a message", "Remove"
        return await _form_page(request, viewer, ctx, values=values, errors={}, campaign=campaign)
    try:
        fields = fields_from(form, times.viewer_zone(viewer))
        draft = campaign.status is CampaignStatus.DRAFT
        if not draft:
            # Fixed once the audience snapshot exists (docs/architecture.md).
            for name in ("page_id", "audience", "messaging_type", "tag", "variants", "experiment"):
                fields.pop(name, None)
            if campaign.variants:  # an A/B test keeps its variants once scheduled or started
                fields.pop("content", None)
        timing_form.keep_started(fields, campaign)
        page_fixed = {} if draft else {"page_id": campaign.page_id}
        await _upload_once(ctx, viewer, form, fields | page_fixed, draft=draft)
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
            errors=form_errors(exc),
            campaign=campaign,
            status_code=422,
        )
    return redirect(f"/campaigns/{campaign.id}")


@router.post("/campaigns/preview")
async def preview(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """HTMX: the eligible count, exclusions by reason, the message for a real contact, and
    every problem Save would refuse (the same checks: `campaigns.check`), in words."""
    viewer.actor.require(Permission.CAMPAIGNS_READ)
    form = await request.form()
    fields = fields_from(form)
    message_only = bool(form.get("message_only"))  # the template form: no audience
    result: Any = None
    shown: list[tuple[str, dict[str, Any] | None]] = []
    problems: dict[str, str] = {}
    warnings: list[audience.TagWarning] = []
    known: list[str] = []
    if fields["page_id"] == 0:
        problems["page_id"] = "Choose a Page to see the message for one of its contacts."
    else:
        try:
            target = _AUDIENCE.validate_python(fields["audience"])  # ids within the column
            draft = Campaign(
                page_id=fields["page_id"],
                audience=target.model_dump(mode="json", exclude_none=True),
                messaging_type=_messaging_type(fields["messaging_type"]),
            )
            async with ctx.db.transaction() as session:
                await pages.get(session, draft.page_id)
                result = await audience.preview(session, draft)
                # The Page's tags: what Save would warn about, and the tag inputs' suggestions.
                warnings = await audience.tag_warnings(session, draft.page_id, draft.audience)
                known = await audience.known_tags(session, draft.page_id)
        except (ValidationError, PagecastError) as exc:
            problems |= form_errors(exc)
    problems |= await _problems(ctx, fields, message_only=message_only)
    sample = result.sample if result is not None else None
    chosen = parse_id(str(form.get("preview_contact", "")).strip())
    if chosen is not None and fields["page_id"]:  # "Preview for": a contact of the Page
        async with ctx.db.transaction() as session:
            person_row = await session.get(Contact, chosen)
        if person_row is not None and person_row.page_id == fields["page_id"]:
            sample = person_row
        else:
            problems["preview_contact"] = (
                f"preview_contact: {chosen} is not a contact of this Page; "
                "leave it empty to preview for the first eligible one."
            )
    if sample is not None:  # each message as Messenger shows it, or None when it has problems
        person = {"first_name": sample.first_name, "last_name": sample.last_name}
        shown = [
            (
                field,
                None
                if not body or field in problems
                else content.to_message(content.parse(body, field), person),
            )
            for field, body in _bodies(fields)
        ]
    return page(
        request,
        "_preview.html",
        viewer,
        result=None if message_only else result,
        sample=sample,
        message=shown[0][1] if len(shown) == 1 else None,
        sequence_preview=shown if len(shown) > 1 else [],
        problems=problems,
        warnings=[] if message_only else warnings,
        known_tags=known,
        when=datetime.now(UTC),
    )


async def _problems(ctx: Any, fields: dict[str, Any], *, message_only: bool) -> dict[str, str]:
    """What Save would refuse, by section: the message's own rules first (whatever else is
    wrong), then, for a campaign, the rest of Save's checks (`campaigns.check`), among them
    unknown contact ids and the text's length with the Page's longest names."""
    bodies = _bodies(fields)
    if len(bodies) == 1 and not bodies[0][1]:
        return {"content": "Write a message: a text, an attachment or a card."}
    found: dict[str, str] = {}
    for field, body in bodies:
        if not body:
            found[field] = (
                f"{field}: empty; write a text, an attachment or a card, or remove the message."
            )
            continue
        try:
            content.check_length(content.parse(body, field), {}, field=field)
        except PagecastError as exc:
            found |= form_errors(exc)
    if message_only or fields["page_id"] == 0:
        return found
    try:
        data = CampaignCreate.model_validate(fields | {"name": fields["name"] or "preview"})
        async with ctx.db.transaction() as session:
            await campaigns.check(session, data)
    except (ValidationError, PagecastError) as exc:
        if isinstance(exc, PagecastError) and exc.status_code in (401, 403):
            raise
        return form_errors(exc) | found
    return found
