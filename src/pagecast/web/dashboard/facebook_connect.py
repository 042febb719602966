"""Connect with Facebook: the button's redirect to the Login dialog, the callback, the page
to pick Pages and the result with the permissions granted and missing
(services/facebook_connect.py does the work; docs/dashboard.md, "Connecting a Page")."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from pagecast.errors import PagecastError
from pagecast.models import utcnow
from pagecast.permissions import Permission
from pagecast.schemas import Id
from pagecast.services import facebook_connect
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page, redirect
from pagecast.web.dashboard.pages import page_list_with_error
from pagecast.web.deps import ContextDep

__all__ = ["router"]

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
CALLBACK_PATH = facebook_connect.CALLBACK_PATH


def _redirect_uri(request: Request, public_url: str | None) -> str:
    # Facebook compares it character for character at the exchange: it is kept on the run.
    return (public_url or str(request.base_url)).rstrip("/") + CALLBACK_PATH


@router.get("/pages/connect/facebook")
async def start(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """The "Connect with Facebook" button: a state bound to this sign-in, then the dialog."""
    viewer.actor.require(Permission.PAGES_WRITE)
    try:
        facebook = ctx.facebook_login()
        redirect_uri = _redirect_uri(request, ctx.settings.public_url)
        async with ctx.db.transaction() as session:
            state = await facebook_connect.start(
                session,
                session_id=viewer.session_id,
                user_id=viewer.user.id,
                redirect_uri=redirect_uri,
            )
    except PagecastError as exc:
        return await page_list_with_error(request, viewer, ctx, exc)
    return RedirectResponse(facebook.dialog_url(redirect_uri, state), status_code=303)


@router.get(CALLBACK_PATH)
async def callback(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """Where Facebook sends the person back: `code` and `state`, or `error`."""
    viewer.actor.require(Permission.PAGES_WRITE)
    query = request.query_params
    try:
        facebook = ctx.facebook_login()
        # The state is spent in its own transaction, whatever Facebook answers next.
        async with ctx.db.transaction() as session:
            login = await facebook_connect.claim(
                session, session_id=viewer.session_id, state=query.get("state")
            )
            login_id, redirect_uri = login.id, login.redirect_uri
        if query.get("error"):
            raise facebook_connect.cancelled(query.get("error_reason") or query.get("error"))
        listing = await facebook_connect.sign_in_code(facebook, query.get("code"), redirect_uri)
        async with ctx.db.transaction() as session:
            await facebook_connect.keep(session, ctx.vault, login_id, listing)
    except PagecastError as exc:
        return await page_list_with_error(request, viewer, ctx, exc)
    return redirect(f"/pages/connect/facebook/{login_id}")


async def _listed(
    ctx: Any, viewer: Any, login_id: int
) -> tuple[facebook_connect.Grants, list[facebook_connect.ListedPage]]:
    """The run's permissions and the Pages Facebook lists for its token now (no transaction
    is open while Facebook answers)."""
    facebook = ctx.facebook_login()
    try:
        async with ctx.db.reading() as session:
            token, grants = await facebook_connect.opened(
                session, ctx.vault, login_id=login_id, session_id=viewer.session_id
            )
    except facebook_connect.Expired:
        # An abandoned run keeps no user token at rest (the worker's sweep erases the rest).
        async with ctx.db.transaction() as session:
            await facebook_connect.forget_expired(session, utcnow())
        raise
    return grants, await facebook.pages(token)


async def _choices(ctx: Any, grants: Any, listed: Any) -> dict[str, Any]:
    async with ctx.db.reading() as session:
        return await facebook_connect.choices(session, grants, listed)


@router.get("/pages/connect/facebook/{login_id}")
async def choose(login_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """The person's Pages, to tick, with what was granted and what is missing."""
    viewer.actor.require(Permission.PAGES_WRITE)
    try:
        grants, listed = await _listed(ctx, viewer, login_id)
        found = await _choices(ctx, grants, listed)
    except PagecastError as exc:
        return await page_list_with_error(request, viewer, ctx, exc)
    return _render(request, viewer, login_id=login_id, choices=found)


@router.post("/pages/connect/facebook/{login_id}")
async def connect(login_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """Connect the ticked Pages; show each Page's result and the permissions."""
    viewer.actor.require(Permission.PAGES_WRITE)
    form = await request.form()
    page_ids = [str(v) for v in form.getlist("page_id")]
    try:
        grants, listed = await _listed(ctx, viewer, login_id)
        async with ctx.db.transaction() as session:
            stored = await facebook_connect.finish(
                session,
                viewer.actor,
                ctx.vault,
                login_id=login_id,
                session_id=viewer.session_id,
                listed=listed,
                page_ids=page_ids,
                default_send_rate=ctx.settings.default_page_send_rate,
            )
        # After the commit: Facebook is never called while the one SQLite writer is held.
        report = await facebook_connect.subscribe(ctx.facebook_login(), stored)
    except PagecastError as exc:
        if exc.field == "page_ids":  # nothing ticked, or a Page not theirs: pick again
            return _render(
                request,
                viewer,
                login_id=login_id,
                choices=await _choices(ctx, grants, listed),
                error=exc.message,
                status_code=exc.status_code,
            )
        return await page_list_with_error(request, viewer, ctx, exc)
    return _render(request, viewer, login_id=login_id, report=report)


def _render(request: Request, viewer: Any, *, status_code: int = 200, **context: Any) -> Response:
    return page(request, "facebook_connect.html", viewer, status_code=status_code, **context)
