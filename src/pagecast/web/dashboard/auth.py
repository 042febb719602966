"""Log in, log out, and the first-run setup page that creates the first admin."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from pagecast.errors import Forbidden, PagecastError, TooManyRequests, Unauthorized
from pagecast.models import Role
from pagecast.permissions import Actor
from pagecast.schemas import Login, UserCreate
from pagecast.services import users
from pagecast.web import signin
from pagecast.web.dashboard import setup_token
from pagecast.web.dashboard.base import (
    DashboardRoute,
    ViewerDep,
    check_origin,
    page,
    redirect,
    same_site_path,
)
from pagecast.web.deps import ContextDep

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


def _safe_next(target: str | None) -> str:
    # Only paths on this site: never redirect to another origin after login.
    return same_site_path(target, "/campaigns")


def _signed_in(request: Request, ctx: ContextDep, cookie: str, target: str) -> Response:
    response = redirect(target)
    signin.set_cookie(response, request, ctx, cookie)
    return response


@router.get("/")
async def home() -> Response:
    return redirect("/campaigns")


@router.get("/login")
async def login_form(request: Request, ctx: ContextDep, next: str | None = None) -> Response:
    async with ctx.db.transaction() as session:
        first_run = await users.count(session) == 0
    return page(request, "login.html", None, next=_safe_next(next), first_run=first_run)


@router.post("/login")
async def login(request: Request, ctx: ContextDep) -> Response:
    check_origin(request)
    form = await request.form()
    target = _safe_next(str(form.get("next", "")))
    email = str(form.get("email", "")).strip().lower()
    try:
        # The API's limits on lengths: no argon2 check of a megabyte-long password.
        login = Login(email=email, password=str(form.get("password", "")))
        _, cookie = await signin.sign_in(request, ctx, login.email, login.password)
    except ValidationError:
        return page(
            request,
            "login.html",
            None,
            status_code=422,
            next=target,
            email=email[:254],
            error="The email (254 characters at most) or the password (1,000 at most) is too long.",
        )
    except (TooManyRequests, Unauthorized) as exc:
        response = page(
            request,
            "login.html",
            None,
            status_code=exc.status_code,
            next=target,
            email=email,
            error=exc.message,
        )
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    return _signed_in(request, ctx, cookie, target)


@router.post("/logout")
async def logout(viewer: ViewerDep, ctx: ContextDep) -> Response:
    await signin.sign_out(ctx, viewer.actor, viewer.session_id)
    response = redirect("/login")
    signin.clear_cookie(response)
    return response


async def _setup_allowed(ctx: ContextDep, token: str) -> None:
    async with ctx.db.transaction() as session:
        if await users.count(session) > 0:
            raise Forbidden("Pagecast is already set up; log in instead.")
    if not setup_token.check(ctx.settings.data_dir, token):
        raise Forbidden(
            "This setup link is not valid (it is used once). Restart `pagecast serve` to print "
            "a new one, or run `pagecast users create --role admin`."
        )


@router.get("/setup/{token}")
async def setup_form(token: str, request: Request, ctx: ContextDep) -> Response:
    await _setup_allowed(ctx, token)
    return page(request, "setup.html", None, token=token, errors={})


@router.post("/setup/{token}")
async def setup(token: str, request: Request, ctx: ContextDep) -> Response:
    check_origin(request)
    await _setup_allowed(ctx, token)
    form = await request.form()
    email = str(form.get("email", ""))
    password = str(form.get("password", ""))
    errors: dict[str, str] = {}
    if password != str(form.get("password2", "")):
        errors["password2"] = "The two passwords differ."
    try:
        data = UserCreate(email=email, password=password, role=Role.ADMIN)
    except ValidationError as exc:
        for error in exc.errors():
            errors[str(error["loc"][0])] = str(error["msg"]).removeprefix("Value error, ")
    if errors:
        return page(
            request, "setup.html", None, status_code=422, token=token, errors=errors, email=email
        )
    try:
        async with ctx.db.transaction() as session:
            user = await users.create(session, Actor.system(), data)
    except PagecastError as exc:
        errors[exc.field or "email"] = exc.message
        return page(
            request, "setup.html", None, status_code=422, token=token, errors=errors, email=email
        )
    setup_token.consume(ctx.settings.data_dir)
    _, cookie = await signin.start_session(request, ctx, user.id, via="setup link")
    return _signed_in(request, ctx, cookie, "/campaigns")
