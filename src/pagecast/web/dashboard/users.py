"""Users (admins), login sessions and API tokens (everyone manages their own; admins see
and end everyone's)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from pagecast import timezones
from pagecast.errors import PagecastError
from pagecast.models import Role, User
from pagecast.permissions import Permission
from pagecast.schemas import Id, MeUpdate, TokenCreate, UserCreate, UserUpdate
from pagecast.services import sessions, tokens, users
from pagecast.web import signin
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page, redirect
from pagecast.web.deps import ContextDep

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}".replace(
            "Value error, ", ""
        )
    assert isinstance(exc, PagecastError)
    return exc.message


async def _render(
    request: Request,
    viewer: Any,
    ctx: Any,
    *,
    error: str | None = None,
    errors: dict[str, str] | None = None,
    zone_value: str | None = None,
    new_token: str | None = None,
    status_code: int = 200,
) -> Response:
    async with ctx.db.transaction() as session:
        admin = viewer.can(Permission.USERS_MANAGE)
        people = await users.list_all(session) if admin else []
        token_rows = await tokens.list_for(session, viewer.actor)
        live = await sessions.list_active(session, None if admin else viewer.user.id)
    return page(
        request,
        "users.html",
        viewer,
        status_code=status_code,
        people=people,
        tokens=token_rows,
        own_sessions=[r for r in live if r.user_id == viewer.user.id],
        other_sessions=[r for r in live if r.user_id != viewer.user.id],
        roles=[r.value for r in Role],
        error=error,
        errors=errors or {},
        zone_label=timezones.label(viewer.user.timezone),
        zone_value=viewer.user.timezone if zone_value is None else zone_value,
        zone_names=timezones.names(),
        new_token=new_token,
    )


@router.get("/users")
async def user_list(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    return await _render(request, viewer, ctx)


@router.post("/me/timezone")
async def set_timezone(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """Your own time zone (everyone): the zone every page shows times in."""
    form = await request.form()
    typed = str(form.get("timezone", ""))
    try:
        data = MeUpdate.model_validate({"timezone": typed})
        assert data.timezone is not None
        async with ctx.db.transaction() as session:
            await users.set_timezone(session, viewer.actor, viewer.user.id, data.timezone)
    except ValidationError as exc:
        return await _render(
            request,
            viewer,
            ctx,
            errors={"timezone": _message(exc)},
            zone_value=typed,
            status_code=422,
        )
    return redirect("/users#timezone")


@router.post("/users")
async def create_user(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.USERS_MANAGE)
    form = await request.form()
    try:
        data = UserCreate(
            email=str(form.get("email", "")),
            role=Role(str(form.get("role", "viewer"))),
            password=str(form.get("password", "")) or None,
            can_send=form.get("can_send") == "on",
            can_approve=form.get("can_approve") == "on",
        )
        async with ctx.db.transaction() as session:
            await users.create(session, viewer.actor, data)
    except (ValidationError, PagecastError, ValueError) as exc:
        if isinstance(exc, PagecastError) and exc.status_code == 403:
            raise
        message = _message(exc) if type(exc) is not ValueError else str(exc)
        return await _render(request, viewer, ctx, error=message, status_code=422)
    return redirect("/users")


@router.post("/users/{user_id}")
async def update_user(
    user_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """Change the role, the send or approve permission, or (de)activate."""
    viewer.actor.require(Permission.USERS_MANAGE)
    form = await request.form()
    try:
        fields: dict[str, Any] = {
            "can_send": form.get("can_send") == "on",
            "can_approve": form.get("can_approve") == "on",  # issue 22
            "is_active": form.get("is_active") == "on",
        }
        if form.get("role"):  # left out when not given: null is refused
            fields["role"] = Role(str(form.get("role")))
        data = UserUpdate(**fields)
        async with ctx.db.transaction() as session:
            await users.update(session, viewer.actor, user_id, data)
    except (ValidationError, PagecastError) as exc:
        if isinstance(exc, PagecastError) and exc.status_code in (403, 404):
            raise
        return await _render(request, viewer, ctx, error=_message(exc), status_code=422)
    return redirect("/users")


@router.post("/tokens")
async def create_token(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    form = await request.form()
    try:
        data = TokenCreate(name=str(form.get("name", "")) or "dashboard")
        async with ctx.db.transaction() as session:
            user = await session.get(User, viewer.actor.user_id)
            assert user is not None
            _, raw = await tokens.create(session, viewer.actor, user, data.name)
    except ValidationError as exc:
        return await _render(request, viewer, ctx, error=_message(exc), status_code=422)
    return await _render(request, viewer, ctx, new_token=raw)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(
    token_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    async with ctx.db.transaction() as session:
        await tokens.revoke(session, viewer.actor, token_id)
    return redirect("/users")


@router.post("/sessions/{session_id}/end")
async def end_session(session_id: Id, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """Sign one session out (yours, or anyone's for an admin); your own current one logs
    you out."""
    async with ctx.db.transaction() as session:
        await sessions.end(session, viewer.actor, session_id)
    if session_id == viewer.session_id:
        response = redirect("/login")
        signin.clear_cookie(response)
        return response
    return redirect("/users")


@router.post("/users/{user_id}/sessions/end")
async def end_user_sessions(user_id: Id, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """Sign a user out everywhere (admins)."""
    viewer.actor.require(Permission.USERS_MANAGE)
    async with ctx.db.transaction() as session:
        await users.get(session, user_id)
        await sessions.end_all(session, viewer.actor, user_id, reason="signed out by an admin")
    return redirect("/login" if user_id == viewer.user.id else "/users")
