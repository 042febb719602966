"""The smaller Graph endpoints: `/me`, object reads, personas, the Attachment Upload API and
`subscribed_apps` (docs/simulator.md, "Endpoints"). What user tokens see (`/me/accounts`,
`/me/permissions`, `/debug_token`) is Facebook Login's, in `oauth`.
"""

from __future__ import annotations

from typing import Any

from pagecast.simulator import conversations, limits, send
from pagecast.simulator.bodies import FilePart
from pagecast.simulator.context import CallContext, GraphRequest
from pagecast.simulator.errors import GraphError, bad_param, unsupported
from pagecast.simulator.faults import decide
from pagecast.simulator.state import ALL_FIELDS, Page, SimState

__all__ = [
    "delete_object",
    "get_object",
    "me",
    "personas",
    "requested_fields",
    "subscribed_apps",
    "upload_attachment",
]

_MEDIA_TYPES = frozenset({"image", "video", "audio", "file"})


def requested_fields(req: GraphRequest, default: tuple[str, ...]) -> list[str]:
    raw = req.param("fields")
    if not raw:
        return list(default)
    return [f.strip() for f in str(raw).split(",") if f.strip()]


def _pick(values: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    return {f: values[f] for f in fields if f in values}


def me(state: SimState, req: GraphRequest, ctx: CallContext) -> dict[str, Any]:
    token = ctx.token
    assert token is not None
    if token.kind == "PAGE" and ctx.page is not None:
        values = {"id": ctx.page.page_id, "name": ctx.page.name}
    elif token.kind == "APP":
        values = {"id": state.app.app_id, "name": state.app.name}
    else:
        values = {"id": token.user_id, "name": "Simulated User"}
    return _pick(values, requested_fields(req, ("id", "name")))


def get_object(state: SimState, req: GraphRequest, ctx: CallContext) -> dict[str, Any]:
    object_id = req.segments[0]
    page = ctx.page
    if object_id in state.pages and _may_read(ctx, object_id):
        target = state.pages[object_id]
        ctx.page = target
        limits.charge_read(state, req, target, ctx, "profile")
        return _pick(
            {"id": target.page_id, "name": target.name}, requested_fields(req, ("id", "name"))
        )
    if page is None:
        raise unsupported("GET", object_id)
    if state.personas.get(object_id) == page.page_id:
        return {"id": object_id, **page.personas[object_id]}
    thread = state.threads_by_id.get(object_id)
    if thread is not None and thread.page_id == page.page_id:
        limits.charge_read(state, req, page, ctx, "conversations")
        return conversations.render_thread(
            state, page, thread, req, requested_fields(req, ("id", "updated_time"))
        )
    return conversations.profile(state, page, req, ctx, object_id)


def _may_read(ctx: CallContext, page_id: str) -> bool:
    token = ctx.token
    assert token is not None
    return token.page_id == page_id or page_id in token.page_ids


def delete_object(state: SimState, req: GraphRequest, ctx: CallContext) -> dict[str, Any]:
    object_id, page = req.segments[0], ctx.page
    if page is None or state.personas.get(object_id) != page.page_id:
        raise unsupported("DELETE", object_id)
    del state.personas[object_id]
    del page.personas[object_id]
    return {"success": True}


def _scripted(state: SimState, req: GraphRequest, ctx: CallContext, page: Page) -> None:
    """Step 13 for uploads, personas and `subscribed_apps`: scripted faults only (the seeded
    probabilities stay on Send calls and Pages-API reads). A GET cannot commit-then-drop."""
    if state.scripts:
        after = req.method != "GET"
        if decide(
            state, path=req.path, psid=None, page_id=page.page_id, allow_after=after, chance=False
        ):
            ctx.drop = "after"


def personas(state: SimState, req: GraphRequest, ctx: CallContext) -> dict[str, Any]:
    page = send.resolve_page(state, req, ctx, req.segments[0])
    if req.method == "GET":
        _scripted(state, req, ctx, page)
        return {"data": [{"id": pid, **p} for pid, p in page.personas.items()]}
    limits.charge(state, page, ctx, "messenger", "text", state.clock.now())
    name = req.param("name")
    if not isinstance(name, str) or not name or len(name) > 50:
        raise bad_param("Param name must be 1 to 50 characters")
    _scripted(state, req, ctx, page)
    persona_id = state.new_id(16)
    page.personas[persona_id] = {
        "name": name,
        "profile_picture_url": req.param("profile_picture_url"),
    }
    state.personas[persona_id] = page.page_id
    return {"id": persona_id}


def upload_attachment(state: SimState, req: GraphRequest, ctx: CallContext) -> dict[str, Any]:
    page = send.resolve_page(state, req, ctx, req.segments[0])
    now = state.clock.now()
    message = req.param("message")
    attachment = message.get("attachment") if isinstance(message, dict) else None
    kind = attachment.get("type") if isinstance(attachment, dict) else None
    limits.charge(
        state, page, ctx, "messenger", "av" if kind in ("audio", "video") else "text", now
    )
    if kind not in _MEDIA_TYPES:
        raise bad_param(
            "Param message[attachment][type] must be one of {image, video, audio, file}"
        )
    payload = attachment.get("payload") if isinstance(attachment, dict) else None
    url = payload.get("url") if isinstance(payload, dict) else None
    upload = req.param("filedata")
    if isinstance(upload, FilePart):  # multipart upload of the file itself
        if url is not None:
            raise bad_param("Param message[attachment][payload] must not have a url with filedata")
        if upload.size == 0:
            raise bad_param("The uploaded file is empty", subcode=2018047)
        if upload.size > send.size_limit(kind):
            raise bad_param("Attachment size exceeds allowable limit", subcode=2018109)
        saved = {"type": kind, "created_at": now, "filename": upload.filename}
        saved["size"] = upload.size
    else:
        if not isinstance(url, str) or not url:
            raise bad_param("Param message[attachment][payload][url] is required", subcode=2018047)
        if any(bad in url for bad in state.knobs.attachment_fail_urls):
            raise bad_param("Failed to fetch the file from the url", subcode=2018008)
        saved = {"type": kind, "created_at": now, "url": url}
    _scripted(state, req, ctx, page)
    attachment_id = state.new_id(16)
    page.attachments[attachment_id] = saved
    return {"attachment_id": attachment_id}


def subscribed_apps(state: SimState, req: GraphRequest, ctx: CallContext) -> dict[str, Any]:
    page = send.resolve_page(state, req, ctx, req.segments[0])
    token = ctx.token
    assert token is not None
    if "pages_manage_metadata" not in token.scopes:
        raise GraphError(
            200, "(#200) Requires pages_manage_metadata permission to manage the object"
        )
    limits.charge(state, page, ctx, "pages", "pages", state.clock.now())
    app = state.app
    if req.method != "POST":
        _scripted(state, req, ctx, page)
    if req.method == "GET":
        return {
            "data": [
                {
                    "category": "Business",
                    "link": "https://pagecast.invalid/",
                    "name": app.name,
                    "id": app_id,
                    "subscribed_fields": list(fields),
                }
                for app_id, fields in page.subscribed.items()
            ]
        }
    if req.method == "DELETE":
        page.subscribed.pop(app.app_id, None)
        return {"success": True}
    raw = req.param("subscribed_fields")
    if raw is None:
        raise bad_param("The parameter subscribed_fields is required")
    wanted = raw if isinstance(raw, list) else str(raw).split(",")
    wanted = [str(f).strip() for f in wanted if str(f).strip()]
    unknown = [f for f in wanted if f not in ALL_FIELDS]
    if unknown or not wanted:
        raise bad_param(f"Param subscribed_fields[0] must be one of {{{', '.join(ALL_FIELDS)}}}")
    _scripted(state, req, ctx, page)
    page.subscribed[app.app_id] = wanted
    app.webhook_enabled = True
    return {"success": True}
