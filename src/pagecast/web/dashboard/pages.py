"""Pages: connect with a Page access token, status with its explanation, reconnect, send rate,
and webhook setup instructions with the time of the last event received."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from pagecast.errors import PagecastError
from pagecast.permissions import Permission
from pagecast.schemas import PageCreate, PageUpdate
from pagecast.services import pages, reports
from pagecast.web.dashboard import explain
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page, redirect
from pagecast.web.deps import ContextDep

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


def _form_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {str(first['msg']).removeprefix('Value error, ')}"
    assert isinstance(exc, PagecastError)
    return exc.message


async def _list(
    request: Request, viewer: Any, ctx: Any, *, error: str | None = None, status_code: int = 200
) -> Response:
    async with ctx.db.transaction() as session:
        rows = await pages.list_all(session)
        seen = {p.id: await reports.last_webhook_at(session, p.fb_page_id) for p in rows}
    # Another part of Pagecast may offer per-Page webhook state; link to it when present.
    has_webhook_api = "/api/pages/{page_id}/webhook" in request.app.openapi()["paths"]
    return page(
        request,
        "pages.html",
        viewer,
        status_code=status_code,
        rows=[(p, explain.page_status(p.status.value), seen[p.id]) for p in rows],
        error=error,
        callback_url=str(request.base_url).rstrip("/") + "/webhooks/messenger",
        verify_token_set=ctx.settings.webhook_verify_token is not None,
        app_secret_set=ctx.settings.app_secret is not None,
        has_webhook_api=has_webhook_api,
    )


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
    page_id: int, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """Reconnect (a new token) and/or change the send rate."""
    viewer.actor.require(Permission.PAGES_WRITE)
    form = await request.form()
    changes = {
        "access_token": str(form.get("access_token", "")).strip() or None,
        "send_rate": str(form.get("send_rate", "")).strip() or None,
    }
    try:
        data = PageUpdate.model_validate({k: v for k, v in changes.items() if v is not None})
        async with ctx.db.transaction() as session:
            await pages.update(
                session, viewer.actor, ctx.vault, page_id, data, verify=ctx.verify_token
            )
    except (ValidationError, PagecastError) as exc:
        if isinstance(exc, PagecastError) and exc.status_code in (403, 404):
            raise
        return await _list(request, viewer, ctx, error=_form_error(exc), status_code=422)
    return redirect("/pages")
