"""Facebook Pages: connect with a Page token, edit, disconnect."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response

from pagecast import uploads
from pagecast.message_schema import AttachmentUpload
from pagecast.permissions import Actor, Permission
from pagecast.schemas import FacebookConnect, Id, PageCreate, PageUpdate
from pagecast.services import facebook_connect, pages
from pagecast.web import openapi, render
from pagecast.web.deps import ContextDep, require
from pagecast.web.openapi import API_ERRORS, documented, errors

router = APIRouter(prefix="/api", tags=["pages"], responses=errors(*API_ERRORS))
Reader = Annotated[Actor, require(Permission.PAGES_READ)]
Writer = Annotated[Actor, require(Permission.PAGES_WRITE)]
Composer = Annotated[Actor, require(Permission.CAMPAIGNS_WRITE)]


@router.get("/pages", **documented(openapi.PageList))
async def list_pages(actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return {"items": [render.page(p) for p in await pages.list_all(session)]}


@router.post("/pages", **documented(openapi.PageOut, 409, 502, status=201))
async def connect_page(body: PageCreate, actor: Writer, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        page = await pages.connect(
            session,
            actor,
            ctx.vault,
            body,
            verify=ctx.verify_token,
            default_send_rate=ctx.settings.default_page_send_rate,
        )
        return render.page(page)


@router.post("/pages/connect-facebook", **documented(openapi.FacebookConnectOut, 502, 503))
async def connect_with_facebook(
    body: FacebookConnect, actor: Writer, ctx: ContextDep
) -> dict[str, Any]:
    """Connect Pages with a Facebook user access token (what "Connect with Facebook" does
    after the dialog): trade it for a long-lived one, list the person's Pages, store each
    chosen Page's token (page_ids omitted: the Pages not connected yet; a connected Page's
    token is replaced only when its id is given), subscribe the app to its webhooks after
    the commit, and say which permissions were granted and what each missing one stops.

    Needs PAGECAST_APP_ID and PAGECAST_APP_SECRET (503 naming them otherwise).
    """
    facebook = ctx.facebook_login()
    listing = await facebook_connect.sign_in(facebook, body.user_access_token)
    async with ctx.db.transaction() as session:
        stored = await facebook_connect.connect_pages(
            session,
            actor,
            ctx.vault,
            listing,
            page_ids=body.page_ids,
            default_send_rate=ctx.settings.default_page_send_rate,
        )
    return await facebook_connect.subscribe(facebook, stored)


@router.get("/pages/{page_id}", **documented(openapi.PageOut))
async def get_page(page_id: Id, actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.page(await pages.get(session, page_id))


@router.patch("/pages/{page_id}", **documented(openapi.PageOut, 409, 502))
async def update_page(
    page_id: Id, body: PageUpdate, actor: Writer, ctx: ContextDep
) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.page(
            await pages.update(session, actor, ctx.vault, page_id, body, verify=ctx.verify_token)
        )


@router.delete("/pages/{page_id}", **documented(openapi.PageOut, 409, empty=204))
async def delete_page(
    page_id: Id, actor: Writer, ctx: ContextDep, response: Response
) -> dict[str, Any] | None:
    async with ctx.db.transaction() as session:
        page = await pages.delete(session, actor, page_id)
    if page is None:
        response.status_code = 204
        return None
    return render.page(page)


@router.post("/pages/{page_id}/attachments", **documented(openapi.AttachmentOut, 502))
async def upload_attachment(
    page_id: Id, body: AttachmentUpload, actor: Composer, ctx: ContextDep
) -> dict[str, Any]:
    """Upload media once through the Attachment Upload API; the same Page and URL again
    answers the kept `attachment_id` without a new upload."""
    attachment_id, uploaded = await uploads.upload_attachment(
        ctx, actor, page_id, body.type, body.url
    )
    return {"attachment_id": attachment_id, "uploaded": uploaded}
