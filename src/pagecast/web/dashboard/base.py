"""What every dashboard view shares: templates, the signed-in user, CSRF, errors as HTML,
and whether sending works (the banner of every page: web/sending_check.py).

The dashboard uses the API's session cookie and CSRF token (`Vault.csrf_token`), so a
browser signed in here can also call `/api/...` (the SSE progress stream does). Forms send
the token as the `csrf_token` field; HTMX sends it as the `X-CSRF-Token` header (set once
on `<body hx-headers>`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import BackgroundTasks, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from pagecast import __version__
from pagecast.errors import Forbidden, NotFound, PagecastError, Unauthorized
from pagecast.graph.errors import code_text
from pagecast.models import User
from pagecast.permissions import Actor, Permission
from pagecast.services import audit_list, users, webhook_endpoints
from pagecast.web.dashboard import approvals, times
from pagecast.web.deps import CSRF_HEADER, SESSION_COOKIE, ContextDep, session_user
from pagecast.web.sending_check import sending_check

__all__ = [
    "DashboardRoute",
    "LoginRequired",
    "Viewer",
    "ViewerDep",
    "check_origin",
    "page",
    "redirect",
    "require_csrf",
    "same_site_path",
    "templates",
]

_HERE = Path(__file__).resolve().parent.parent
templates = Jinja2Templates(directory=str(_HERE / "templates"))
assert templates.env.autoescape, "templates must escape output"
templates.env.globals["version"] = __version__
templates.env.globals["code_text"] = code_text  # "613/2018338", as everywhere else
templates.env.filters["when"] = times.when  # every time shown: the viewer's zone, UTC on hover
templates.env.filters["audit_change"] = audit_list.change_text  # an entry's change, one line
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class LoginRequired(Exception):
    """No valid session: the dashboard answers with a redirect to the login page."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in person as the dashboard sees them."""

    actor: Actor
    user: User
    csrf: str
    session_id: int

    def can(self, permission: str) -> bool:
        return self.actor.can(Permission(permission))


async def current_viewer(request: Request, ctx: ContextDep, background: BackgroundTasks) -> Viewer:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is None:
        raise LoginRequired
    try:
        user, session_id = await session_user(ctx, cookie, background)
    except Unauthorized:
        raise LoginRequired from None
    csrf = ctx.vault.csrf_token(cookie)
    if request.method in _UNSAFE:
        await require_csrf(request, csrf)
    # For the banner of every page (`page`); cached, so no Redis round trip per view.
    request.state.sending_problem = await sending_check(request).problem()
    actor = users.actor_for(user)
    if actor.can(Permission.ADMIN) and not request.headers.get("hx-request"):
        # Issue 22: endpoints the failure rule turned off, for the admins' banner (whole
        # pages only: HTMX fragments, such as a campaign panel's refresh, have no banner).
        async with ctx.db.reading() as session:
            request.state.webhooks_off = await webhook_endpoints.disabled_by_rule(session)
    # Issue 22: the nav badge of campaigns awaiting this viewer's approval.
    request.state.approvals_waiting = await approvals.waiting_for(ctx, actor)
    return Viewer(actor=actor, user=user, csrf=csrf, session_id=session_id)


async def require_csrf(request: Request, expected: str) -> None:
    """The token from the `X-CSRF-Token` header (HTMX) or the `csrf_token` form field."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()  # Starlette caches it: handlers can read it again
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if sent != expected:
        raise Forbidden("The form's security token is missing or stale; reload the page and retry.")


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def check_origin(request: Request) -> None:
    """Forms posted without a session yet (login, setup): refuse another site's `Origin`."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise Forbidden("This form was sent from another site; open Pagecast directly.")


def page(
    request: Request,
    name: str,
    viewer: Viewer | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render `templates/dashboard/<name>` with what every page needs."""
    return templates.TemplateResponse(
        request,
        f"dashboard/{name}",
        {
            "viewer": viewer,
            "demo": getattr(request.app.state, "demo", False),
            "sending_problem": getattr(request.state, "sending_problem", None),
            "webhooks_off": getattr(request.state, "webhooks_off", None),
            "approvals_waiting": getattr(request.state, "approvals_waiting", 0),
            **context,
        },
        status_code=status_code,
    )


def same_site_path(target: str | None, fallback: str) -> str:
    """`target` when it is a path on this site, else `fallback` (a "next" or "back" link
    from a form or a query must never send the browser to another origin).

    Browsers read `//host` and `/\\host` as another origin, and drop tabs and newlines
    from a URL before they read it, so a path with a backslash or a control character
    is refused outright."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)
    ):
        return target
    return fallback


def redirect(url: str) -> RedirectResponse:
    """After a form POST: 303 so the browser follows with a GET."""
    return RedirectResponse(url, status_code=303)


def _error_page(request: Request, exc: PagecastError) -> Response:
    if request.headers.get("hx-request"):
        # HTMX swaps only 2xx answers by default; the fragment is shown by dashboard.js.
        return HTMLResponse(
            templates.get_template("dashboard/_error.html").render(message=exc.message),
            status_code=exc.status_code,
        )
    return page(request, "error.html", None, status_code=exc.status_code, error=exc)


class DashboardRoute(APIRoute):
    """Dashboard routes render expected failures as HTML and send strangers to the login."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                if request.method in _UNSAFE or request.headers.get("hx-request"):
                    return HTMLResponse("Log in first.", status_code=401)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return redirect(f"/login?next={quote(target)}")
            except PagecastError as exc:
                return _error_page(request, exc)
            except RequestValidationError:
                # A path or query value of the wrong type (/campaigns/abc): no such page.
                return _error_page(request, NotFound("There is no such page; check the link."))

        return route
