"""A Page's audience sync (start, progress) and its webhook setup help."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request

from pagecast.errors import NotFound
from pagecast.permissions import Actor, Permission
from pagecast.schemas import Id
from pagecast.services import page_syncs, webhook_setup
from pagecast.web import openapi
from pagecast.web.deps import ContextDep, require
from pagecast.web.openapi import API_ERRORS, documented, errors

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["pages"], responses=errors(*API_ERRORS))
Reader = Annotated[Actor, require(Permission.PAGES_READ)]
# A sync creates and updates contacts.
Syncer = Annotated[Actor, require(Permission.CONTACTS_WRITE)]


@router.post("/pages/{page_id}/sync", **documented(openapi.SyncOut, 409, 502, status=202))
async def start_sync(page_id: Id, actor: Syncer, ctx: ContextDep) -> dict[str, Any]:
    """Start syncing the Page's audience from its conversations, in the background.

    409 while another sync of the Page runs; follow it with GET.
    """
    return page_syncs.report(await ctx.syncs.start(actor, page_id))


@router.get("/pages/{page_id}/sync", **documented(openapi.SyncOut))
async def get_sync(page_id: Id, actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    """The Page's latest sync: state, counters, timings and error."""
    async with ctx.db.transaction() as session:
        sync = await page_syncs.latest(session, page_id)
    if sync is None:
        raise NotFound(
            f"Page {page_id} has not been synced yet; start a sync with "
            f"POST /api/pages/{page_id}/sync.",
            field="page_id",
        )
    return page_syncs.report(sync)


@router.get("/pages/{page_id}/webhook", **documented(openapi.WebhookHelpOut))
async def webhook_help(
    page_id: Id, actor: Reader, ctx: ContextDep, request: Request
) -> dict[str, Any]:
    """What to enter in the Facebook app's webhook setup, and whether events arrive.

    The verify token is shown to admins only.
    """
    settings = ctx.settings
    token = settings.webhook_verify_token
    async with ctx.db.transaction() as session:
        help_ = await webhook_setup.describe(
            session,
            page_id,
            public_url=settings.public_url,
            fallback_base_url=str(request.base_url),
            verify_token=token.get_secret_value() if token else None,
            show_verify_token=actor.can(Permission.ADMIN),
            global_app_secret_set=settings.app_secret is not None,
        )
    last = help_["events"]["last_received_at"]
    help_["events"]["last_received_at"] = last.isoformat().replace("+00:00", "Z") if last else None
    return help_
