"""Pages: connect with a Page access token, status with its explanation, reconnect, send rate,
time zone, and webhook setup instructions with the time of the last event received."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from pagecast import timezones
from pagecast.errors import PagecastError
from pagecast.facebook_login import missing_settings
from pagecast.graph import LOGIN_SCOPES
from pagecast.permissions import Permission
from pagecast.schemas import Id, PageCreate, PageUpdate
from pagecast.services import pages, webhook_setup
from pagecast.web.dashboard import explain, quiet_hours_form
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page, redirect
from pagecast.web.deps import ContextDep

__all__ = ["page_list_with_error", "router"]

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


def _form_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {str(first['msg']).removeprefix('Value error, ')}"
    assert isinstance(exc, PagecastError)
    return exc.message


def _frequency_cap(form: Any) -> dict[str, str | None] | None:
    """The Page settings' two cap fields (issue 20): both empty turn the cap off; otherwise
    PageUpdate checks them (an empty one is refused, naming it)."""
    messages = str(form.get("cap_messages", "")).strip()
    days = str(form.get("cap_days", "")).strip()
    if not messages and not days:
        return None
    return {"messages": messages or None, "days": days or None}


async def _list(
    request: Request, viewer: Any, ctx: Any, *, error: str | None = None, status_code: int = 200
) -> Response:
    settings = ctx.settings
    token = settings.webhook_verify_token
    async with ctx.db.transaction() as session:
        rows = await pages.list_all(session)
        # The same webhook help as GET /api/pages/{id}/webhook (the verify token: admins only).
        webhooks = {
            p.id: await webhook_setup.describe(
                session,
                p.id,
                public_url=settings.public_url,
                fallback_base_url=str(request.base_url),
                verify_token=token.get_secret_value() if token else None,
                show_verify_token=viewer.can(Permission.ADMIN),
                global_app_secret_set=settings.app_secret is not None,
            )
            for p in rows
        }
    return page(
        request,
        "pages.html",
        viewer,
        status_code=status_code,
        rows=[(p, explain.page_status(p.status.value), webhooks[p.id]) for p in rows],
        error=error,
        fields=webhook_setup.SUBSCRIBE_FIELDS,
        zone_names=timezones.names(),
        login_permissions=LOGIN_SCOPES,
        login_problem=missing_settings(
            settings.app_id, settings.app_secret.get_secret_value() if settings.app_secret else None
        ),
    )


async def page_list_with_error(
    request: Request, viewer: Any, ctx: Any, exc: PagecastError
) -> Response:
    """The Pages page with `exc` said at the top (with its status), beside the buttons to try
    again; a refusal of the role stays the error page."""
    if exc.status_code == 403:
        raise exc
    return await _list(request, viewer, ctx, error=exc.message, status_code=exc.status_code)


@router.get("/pages")
async def page_list(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.PAGES_READ)
    return await _list(request, viewer, ctx)


@router.post("/pages")
async def connect_page(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.PAGES_WRITE)
    form = await request.form()
    body = {
        "access_token": str(form.get("access_token", "")).strip(),
        "app_secret": str(form.get("app_secret", "")).strip() or None,
        "send_rate": str(form.get("send_rate", "")).strip() or None,
    }
    try:
        data = PageCreate.model_validate({k: v for k, v in body.items() if v is not None})
        async with ctx.db.transaction() as session:
            await pages.connect(
                session,
                viewer.actor,
                ctx.vault,
                data,
                verify=ctx.verify_token,
                default_send_rate=ctx.settings.default_page_send_rate,
            )
    except (ValidationError, PagecastError) as exc:
        if isinstance(exc, PagecastError) and exc.status_code == 403:
            raise
        return await _list(request, viewer, ctx, error=_form_error(exc), status_code=422)
    return redirect("/pages")


@router.post("/pages/{page_id}")
async def update_page(
    page_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """Reconnect (a new token) and/or change the send rate or the time zone; or set the
    Page's quiet hours (their own form)."""
    viewer.actor.require(Permission.PAGES_WRITE)
    form = await request.form()
    changes = {
        "access_token": str(form.get("access_token", "")).strip() or None,
        "send_rate": str(form.get("send_rate", "")).strip() or None,
        # Sent as typed ("" too): an empty or unknown zone is refused, naming the field.
        "timezone": form.get("timezone"),
    }
    body: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
    if "cap_messages" in form or "cap_days" in form:
        body["frequency_cap"] = _frequency_cap(form)
    if "approval_threshold" in form:  # issue 22: empty turns approval off
        body["approval_threshold"] = str(form.get("approval_threshold", "")).strip() or None
    try:
        data = PageUpdate.model_validate(body | quiet_hours_form.changes(form))
        async with ctx.db.transaction() as session:
            await pages.update(
                session, viewer.actor, ctx.vault, page_id, data, verify=ctx.verify_token
            )
    except (ValidationError, PagecastError) as exc:
        if isinstance(exc, PagecastError) and exc.status_code in (403, 404):
            raise
        return await _list(request, viewer, ctx, error=_form_error(exc), status_code=422)
    return redirect("/pages")
