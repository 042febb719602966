"""Who may call what: every API route × {anonymous, viewer, manager, admin, revoked token}."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from factories import create_user, session_cookie
from pagecast.db import Database
from pagecast.models import Role
from pagecast.web import deps

# For each route: the status when the caller may use it (with a made-up id and an empty body:
# 404 for an unknown object, 422 for a missing body), and the roles that may.
ALL, WRITERS, ADMINS = {"viewer", "manager", "admin"}, {"manager", "admin"}, {"admin"}
MATRIX: dict[tuple[str, str], tuple[int, set[str]]] = {
    ("POST", "/api/auth/logout"): (204, ALL),
    ("GET", "/api/me"): (200, ALL),
    ("PATCH", "/api/me"): (200, ALL),
    ("GET", "/api/tokens"): (200, ALL),
    ("POST", "/api/tokens"): (201, ALL),
    ("DELETE", "/api/tokens/{token_id}"): (404, ALL),
    ("GET", "/api/sessions"): (200, ALL),
    ("DELETE", "/api/sessions/{session_id}"): (404, ALL),
    ("GET", "/api/users/{user_id}/sessions"): (404, ADMINS),
    ("DELETE", "/api/users/{user_id}/sessions"): (404, ADMINS),
    ("GET", "/api/users"): (200, ADMINS),
    ("POST", "/api/users"): (422, ADMINS),
    ("GET", "/api/users/{user_id}"): (404, ADMINS),
    ("PATCH", "/api/users/{user_id}"): (404, ADMINS),
    ("DELETE", "/api/users/{user_id}"): (404, ADMINS),
    ("GET", "/api/audit"): (200, ADMINS),
    ("GET", "/api/pages"): (200, ALL),
    ("POST", "/api/pages"): (422, ADMINS),
    ("POST", "/api/pages/connect-facebook"): (422, ADMINS),
    ("GET", "/api/pages/{page_id}"): (404, ALL),
    ("PATCH", "/api/pages/{page_id}"): (404, ADMINS),
    ("DELETE", "/api/pages/{page_id}"): (404, ADMINS),
    ("POST", "/api/pages/{page_id}/attachments"): (422, WRITERS),
    ("POST", "/api/pages/{page_id}/sync"): (404, WRITERS),
    ("GET", "/api/pages/{page_id}/sync"): (404, ALL),
    ("GET", "/api/pages/{page_id}/webhook"): (404, ALL),
    ("GET", "/api/pages/{page_id}/contacts"): (404, ALL),
    ("GET", "/api/pages/{page_id}/tags"): (404, ALL),
    ("POST", "/api/pages/{page_id}/contacts/bulk"): (422, WRITERS),
    ("POST", "/api/pages/{page_id}/contacts"): (422, WRITERS),
    ("POST", "/api/pages/{page_id}/contacts/import"): (404, WRITERS),
    ("GET", "/api/contacts/imports"): (200, ALL),
    ("GET", "/api/contacts/imports/{import_id}"): (404, ALL),
    ("GET", "/api/contacts/{contact_id}"): (404, ALL),
    ("PATCH", "/api/contacts/{contact_id}"): (404, WRITERS),
    ("DELETE", "/api/contacts/{contact_id}"): (404, WRITERS),
    ("GET", "/api/templates"): (200, ALL),
    ("POST", "/api/templates"): (422, WRITERS),
    ("GET", "/api/templates/{template_id}"): (404, ALL),
    ("PATCH", "/api/templates/{template_id}"): (404, WRITERS),
    ("DELETE", "/api/templates/{template_id}"): (404, WRITERS),
    ("GET", "/api/campaigns"): (200, ALL),
    ("POST", "/api/campaigns"): (422, WRITERS),
    ("GET", "/api/campaigns/{campaign_id}"): (404, ALL),
    ("PATCH", "/api/campaigns/{campaign_id}"): (404, WRITERS),
    ("DELETE", "/api/campaigns/{campaign_id}"): (404, WRITERS),
    ("POST", "/api/campaigns/{campaign_id}/duplicate"): (404, WRITERS),
    ("GET", "/api/campaigns/{campaign_id}/audience"): (404, ALL),
    ("GET", "/api/campaigns/{campaign_id}/review"): (404, ALL),
    ("POST", "/api/campaigns/{campaign_id}/test"): (422, WRITERS),
    ("GET", "/api/campaigns/{campaign_id}/audit"): (404, ALL),
    ("GET", "/api/campaigns/{campaign_id}/deliveries"): (404, ALL),
    ("GET", "/api/campaigns/{campaign_id}/events"): (404, ALL),
    ("GET", "/api/campaigns/{campaign_id}/report"): (404, ALL),
    ("POST", "/api/campaigns/{campaign_id}/archive"): (404, WRITERS),
    ("POST", "/api/campaigns/{campaign_id}/unarchive"): (404, WRITERS),
    ("GET", "/api/pages/{page_id}/overview"): (404, ALL),
    ("GET", "/api/pages/{page_id}/segments"): (404, ALL),
    ("POST", "/api/pages/{page_id}/segments"): (422, WRITERS),
    ("GET", "/api/segments/{segment_id}"): (404, ALL),
    ("PATCH", "/api/segments/{segment_id}"): (404, WRITERS),
    ("DELETE", "/api/segments/{segment_id}"): (404, WRITERS),
    ("GET", "/api/series"): (200, ALL),
    ("POST", "/api/series"): (422, WRITERS),
    ("GET", "/api/series/{series_id}"): (404, ALL),
    ("PATCH", "/api/series/{series_id}"): (404, WRITERS),
    ("DELETE", "/api/series/{series_id}"): (404, WRITERS),
    ("POST", "/api/series/{series_id}/pause"): (404, WRITERS),
    ("POST", "/api/series/{series_id}/resume"): (404, WRITERS),
    ("POST", "/api/series/{series_id}/end"): (404, WRITERS),
    ("GET", "/api/admin/health"): (200, ADMINS),
    ("GET", "/api/admin/queue"): (200, ADMINS),
    ("POST", "/api/admin/queue/{action}"): (404, ADMINS),
    ("GET", "/api/admin/queue/jobs"): (200, ADMINS),
    ("POST", "/api/admin/queue/jobs/{queue}/{job_id}/retry"): (422, ADMINS),
    ("DELETE", "/api/admin/queue/jobs/{queue}/{job_id}"): (422, ADMINS),
    ("GET", "/metrics"): (200, ADMINS),
    ("GET", "/api/webhooks"): (200, ADMINS),
    ("POST", "/api/webhooks"): (422, ADMINS),
    ("GET", "/api/webhooks/{webhook_id}"): (404, ADMINS),
    ("PATCH", "/api/webhooks/{webhook_id}"): (404, ADMINS),
    ("DELETE", "/api/webhooks/{webhook_id}"): (404, ADMINS),
    ("POST", "/api/webhooks/{webhook_id}/rotate-secret"): (404, ADMINS),
    ("GET", "/api/webhooks/{webhook_id}/deliveries"): (404, ADMINS),
    ("POST", "/api/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): (404, ADMINS),
    ("POST", "/api/webhooks/{webhook_id}/ping"): (404, ADMINS),
    ("POST", "/api/campaigns/{campaign_id}/start"): (404, WRITERS),
    ("POST", "/api/campaigns/{campaign_id}/pause"): (404, WRITERS),
    ("POST", "/api/campaigns/{campaign_id}/schedule"): (404, WRITERS),
    ("POST", "/api/campaigns/{campaign_id}/resume"): (404, WRITERS),
    ("POST", "/api/campaigns/{campaign_id}/cancel"): (404, WRITERS),
    ("POST", "/api/campaigns/{campaign_id}/retry-failed"): (404, WRITERS),
    ("POST", "/api/campaigns/{campaign_id}/winner"): (422, WRITERS),
    # Issue 22: campaigns:approve (managers and admins unless withdrawn).
    ("POST", "/api/campaigns/{campaign_id}/approve"): (404, WRITERS),
    ("POST", "/api/campaigns/{campaign_id}/reject"): (422, WRITERS),
}
PUBLIC = {
    ("GET", "/healthz"): 200,
    ("GET", "/readyz"): 200,
    ("POST", "/api/auth/login"): 422,
    # Meta calls these: the verify token and the body's signature authenticate them.
    ("GET", "/webhooks/messenger"): 403,
    ("POST", "/webhooks/messenger"): 403,
}
CALLERS = ("anonymous", "revoked", "viewer", "manager", "admin")


def _concrete(path: str) -> str:
    parts = [("987654" if p.startswith("{") else p) for p in path.split("/")]
    return "/".join(parts)


def test_matrix_covers_every_route(app: Any) -> None:
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert routes == set(MATRIX) | set(PUBLIC)


@pytest.fixture
async def callers(app: Any, db: Database) -> dict[str, httpx.AsyncClient]:
    clients: dict[str, httpx.AsyncClient] = {}
    for role in (Role.VIEWER, Role.MANAGER, Role.ADMIN):
        _, raw = await create_user(db, role)
        clients[role.value] = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://t",
            headers={"Authorization": f"Bearer {raw}"},
        )
    revoked_user, raw = await create_user(db, Role.ADMIN, email="revoked@example.com")
    admin = clients["admin"]
    listed = (await admin.get("/api/tokens")).json()["items"]
    token_id = next(t["id"] for t in listed if t["user_id"] == revoked_user.id)
    assert (await admin.delete(f"/api/tokens/{token_id}")).status_code == 200
    clients["revoked"] = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"Authorization": f"Bearer {raw}"},
    )
    clients["anonymous"] = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    )
    yield clients
    for c in clients.values():
        await c.aclose()


async def test_every_route_answers_each_caller_with_the_exact_status(
    callers: dict[str, httpx.AsyncClient],
) -> None:
    seen: list[str] = []
    for (method, path), (allowed_status, roles) in MATRIX.items():
        for caller in CALLERS:
            kwargs: dict[str, Any] = {}
            if method in ("POST", "PATCH") and not path.endswith(
                (
                    "/logout",
                    "/duplicate",
                    "/start",
                    "/schedule",
                    "/pause",
                    "/resume",
                    "/cancel",
                    "/retry-failed",
                )
            ):
                kwargs["json"] = {} if path != "/api/tokens" else {"name": "matrix"}
            if path.endswith("/import"):
                kwargs = {"content": b"", "headers": {"content-type": "text/csv"}}
            response = await callers[caller].request(method, _concrete(path), **kwargs)
            if caller in ("anonymous", "revoked"):
                expected = 401
            elif caller in roles:
                expected = allowed_status
            else:
                expected = 403
            if response.status_code != expected:
                seen.append(
                    f"{caller} {method} {path}: {response.status_code} (expected {expected}) {response.text[:120]}"
                )
    assert seen == []


async def test_public_routes_need_no_credentials(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).json() == {"ok": True, "database": True, "redis": True}
    assert (await client.post("/api/auth/login", json={})).status_code == 422


async def test_revoked_token_is_refused_with_a_reason(
    api: Any, client: httpx.AsyncClient, db: Database
) -> None:
    admin = await api(Role.ADMIN)
    created = (await admin.post("/api/tokens", json={"name": "ci"})).json()
    raw = created["token"]
    assert (
        await client.get("/api/me", headers={"Authorization": f"Bearer {raw}"})
    ).status_code == 200
    assert (await admin.delete(f"/api/tokens/{created['id']}")).status_code == 200
    response = await client.get("/api/me", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


async def test_a_tokens_role_and_deactivation_apply_at_its_next_request(api: Any) -> None:
    admin = await api(Role.ADMIN)
    member = await api(Role.MANAGER, email="member@example.com")
    me = (await member.get("/api/me")).json()
    assert me["role"] == "manager"
    assert (await admin.patch(f"/api/users/{me['id']}", json={"role": "viewer"})).status_code == 200
    refused = await member.post("/api/campaigns", json={})
    assert refused.status_code == 403 and "viewer" in refused.json()["error"]["message"]
    off = await admin.patch(f"/api/users/{me['id']}", json={"is_active": False})
    assert off.status_code == 200, off.text
    response = await member.get("/api/me")
    assert response.status_code == 401
    assert "deactivated" in response.json()["error"]["message"]


async def test_token_is_shown_once_and_stored_hashed(api: Any, db: Database) -> None:
    admin = await api(Role.ADMIN)
    created = (await admin.post("/api/tokens", json={"name": "once"})).json()
    assert created["token"].startswith("pct_")
    listed = (await admin.get("/api/tokens")).json()["items"]
    assert all("token" not in item for item in listed)
    from sqlalchemy import text

    async with db.transaction() as session:
        stored = list(await session.scalars(text("SELECT token_hash FROM api_tokens")))
    assert created["token"] not in stored and len(stored[0]) == 64


async def test_viewer_cannot_start_a_campaign(api: Any) -> None:
    viewer = await api(Role.VIEWER)
    response = await viewer.post("/api/campaigns/1/start")
    assert response.status_code == 403
    assert "campaigns:send" in response.json()["error"]["message"]


async def test_manager_without_send_permission_can_edit_but_not_start(api: Any) -> None:
    editor = await api(Role.MANAGER, can_send=False)
    me = (await editor.get("/api/me")).json()
    assert "campaigns:write" in me["permissions"] and "campaigns:send" not in me["permissions"]
    assert (await editor.post("/api/campaigns/1/start")).status_code == 403
    assert (
        await editor.post("/api/campaigns", json={})
    ).status_code == 422  # allowed to try editing


async def test_the_approve_permission_is_managers_and_admins_unless_withdrawn(api: Any) -> None:
    """Issue 22: campaigns:approve; a manager without it still sends, a viewer never has it."""
    for role, has in ((Role.VIEWER, False), (Role.MANAGER, True), (Role.ADMIN, True)):
        me = (await (await api(role)).get("/api/me")).json()
        assert ("campaigns:approve" in me["permissions"]) is has, me
    sender = await api(Role.MANAGER, can_approve=False)
    me = (await sender.get("/api/me")).json()
    assert "campaigns:send" in me["permissions"] and "campaigns:approve" not in me["permissions"]
    refused = await sender.post("/api/campaigns/1/approve", json={})
    assert refused.status_code == 403 and "campaigns:approve" in refused.json()["error"]["message"]
    assert (await sender.post("/api/campaigns/1/start")).status_code == 404  # may send


async def test_login_sets_a_session_and_unsafe_requests_need_the_csrf_header(
    client: httpx.AsyncClient, db: Database
) -> None:
    await create_user(db, Role.MANAGER, email="m@example.com", password="correct horse")
    bad = await client.post(
        "/api/auth/login", json={"email": "m@example.com", "password": "wrong password"}
    )
    assert bad.status_code == 401
    good = await client.post(
        "/api/auth/login", json={"email": "M@example.com", "password": "correct horse"}
    )
    assert good.status_code == 200
    cookie = good.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert (await client.get("/api/me")).json()["email"] == "m@example.com"
    assert (await client.post("/api/tokens", json={"name": "x"})).status_code == 403
    csrf = good.json()["csrf_token"]
    assert (
        await client.post("/api/tokens", json={"name": "x"}, headers={"x-csrf-token": csrf})
    ).status_code == 201


async def test_passwords_are_stored_with_argon2(db: Database) -> None:
    user, _ = await create_user(db, Role.VIEWER, email="v@example.com", password="s3cret-pass")
    assert user.password_hash is not None and user.password_hash.startswith("$argon2")
    assert "s3cret-pass" not in user.password_hash


# --- HTML dashboard routes (pagecast.web.dashboard) ------------------------------------------
# They are not in the OpenAPI schema, so they get their own lists, checked against
# `dashboard.routes()`. Callers use the session cookie (as a browser does) and every POST
# carries the CSRF token; the status is for a made-up id and an empty form. Anonymous callers
# and forged cookies are sent to /login (GET: 303) or refused (POST: 401).
DASHBOARD: dict[tuple[str, str], tuple[int, set[str]]] = {
    ("GET", "/"): (303, ALL),
    ("POST", "/logout"): (303, ALL),
    ("GET", "/campaigns"): (200, ALL),
    ("GET", "/campaigns/new"): (200, WRITERS),
    ("POST", "/campaigns/new"): (422, WRITERS),
    ("POST", "/campaigns/preview"): (200, ALL),
    ("GET", "/campaigns/{campaign_id}"): (404, ALL),
    ("GET", "/campaigns/{campaign_id}/panel"): (404, ALL),
    ("GET", "/campaigns/{campaign_id}/reports"): (404, ALL),
    ("GET", "/pages/{page_id}/overview"): (404, ALL),
    ("GET", "/campaigns/{campaign_id}/deliveries"): (404, ALL),
    ("GET", "/campaigns/{campaign_id}/deliveries.csv"): (404, ALL),
    ("GET", "/campaigns/{campaign_id}/edit"): (404, WRITERS),
    ("POST", "/campaigns/{campaign_id}/edit"): (404, WRITERS),
    ("POST", "/campaigns/{campaign_id}/test"): (404, WRITERS),
    ("POST", "/campaigns/{campaign_id}/{action}"): (404, WRITERS),
    ("GET", "/series"): (200, ALL),
    ("GET", "/series/new"): (200, WRITERS),
    ("POST", "/series/new"): (422, WRITERS),
    ("GET", "/series/{series_id}"): (404, ALL),
    ("POST", "/series/{series_id}/{action}"): (404, WRITERS),
    ("GET", "/templates"): (200, ALL),
    ("GET", "/templates/new"): (200, WRITERS),
    ("POST", "/templates/new"): (422, WRITERS),
    ("GET", "/templates/{template_id}/edit"): (404, WRITERS),
    ("POST", "/templates/{template_id}/edit"): (404, WRITERS),
    ("POST", "/templates/{template_id}/delete"): (404, WRITERS),
    ("POST", "/templates/from-composer"): (422, WRITERS),
    ("GET", "/contacts"): (200, ALL),
    ("GET", "/contacts.csv"): (422, ALL),
    ("POST", "/contacts/bulk"): (422, WRITERS),
    ("POST", "/contacts/import"): (422, WRITERS),
    ("GET", "/contacts/imports/{import_id}"): (404, ALL),
    ("POST", "/contacts/tags"): (422, WRITERS),
    ("POST", "/contacts/{contact_id}/tester"): (422, WRITERS),
    ("POST", "/contacts/sync"): (422, WRITERS),
    ("GET", "/contacts/sync/{page_id}"): (404, ALL),
    ("POST", "/contacts/campaign"): (422, WRITERS),
    ("GET", "/segments"): (200, ALL),
    ("POST", "/segments"): (422, WRITERS),
    ("POST", "/segments/{segment_id}/delete"): (404, WRITERS),
    ("GET", "/pages"): (200, ALL),
    ("POST", "/pages"): (422, ADMINS),
    ("POST", "/pages/{page_id}"): (404, ADMINS),
    # Without PAGECAST_APP_ID and PAGECAST_APP_SECRET (as here), Connect with Facebook is 503.
    ("GET", "/pages/connect/facebook"): (503, ADMINS),
    ("GET", "/pages/connect/facebook/callback"): (503, ADMINS),
    ("GET", "/pages/connect/facebook/{login_id}"): (503, ADMINS),
    ("POST", "/pages/connect/facebook/{login_id}"): (503, ADMINS),
    ("GET", "/outbound-webhooks"): (200, ADMINS),
    ("POST", "/outbound-webhooks"): (422, ADMINS),
    ("GET", "/outbound-webhooks/{webhook_id}"): (404, ADMINS),
    ("POST", "/outbound-webhooks/{webhook_id}"): (404, ADMINS),
    ("POST", "/outbound-webhooks/{webhook_id}/{action}"): (404, ADMINS),
    ("POST", "/outbound-webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): (404, ADMINS),
    ("GET", "/queue"): (200, ADMINS),
    ("GET", "/audit"): (200, ADMINS),
    ("GET", "/audit.csv"): (200, ADMINS),
    ("POST", "/queue/{action}"): (404, ADMINS),
    ("POST", "/queue/jobs/{queue}/{job_id:path}/{action}"): (404, ADMINS),
    ("GET", "/users"): (200, ALL),
    ("POST", "/me/timezone"): (422, ALL),
    ("POST", "/users"): (422, ADMINS),
    ("POST", "/users/{user_id}"): (404, ADMINS),
    ("POST", "/tokens"): (200, ALL),
    ("POST", "/tokens/{token_id}/revoke"): (404, ALL),
    ("POST", "/sessions/{session_id}/end"): (404, ALL),
    ("POST", "/users/{user_id}/sessions/end"): (404, ADMINS),
}
DASHBOARD_PUBLIC = {
    ("GET", "/login"): 200,
    ("POST", "/login"): 401,
    # The one-time setup link: refused once a user exists (as here) or with a wrong token.
    ("GET", "/setup/{token}"): 403,
    ("POST", "/setup/{token}"): 403,
}


def test_dashboard_matrix_covers_every_dashboard_route() -> None:
    from pagecast.web import dashboard

    assert dashboard.routes() == set(DASHBOARD) | set(DASHBOARD_PUBLIC)


async def test_every_dashboard_route_answers_each_caller_with_the_exact_status(
    app: Any, db: Database
) -> None:
    from pagecast.web.deps import SESSION_COOKIE

    vault = app.state.context.vault
    sessions: dict[str, tuple[dict[str, str], str]] = {
        "anonymous": ({}, ""),
        "forged": ({SESSION_COOKIE: "1.9999999999.x.forged"}, "x"),
    }
    for role in (Role.VIEWER, Role.MANAGER, Role.ADMIN):
        user, _ = await create_user(db, role)
        cookie = await session_cookie(db, user)
        sessions[role.value] = ({SESSION_COOKIE: cookie}, vault.csrf_token(cookie))
    seen: list[str] = []
    # Logout last: it really ends the session.
    for (method, path), (allowed_status, roles) in sorted(
        DASHBOARD.items(), key=lambda item: item[0] == ("POST", "/logout")
    ):
        for caller, (cookies, csrf) in sessions.items():
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t", cookies=cookies
            ) as client:
                if method == "POST" and caller == "admin":
                    no_csrf = await client.request(method, _concrete(path), data={})
                    if no_csrf.status_code != 403:
                        seen.append(f"admin {method} {path} without CSRF: {no_csrf.status_code}")
                data = {"csrf_token": csrf} if method == "POST" else None
                response = await client.request(method, _concrete(path), data=data)
            if caller in ("anonymous", "forged"):
                expected = 303 if method == "GET" else 401
            else:
                expected = allowed_status if caller in roles else 403
            if response.status_code != expected:
                seen.append(
                    f"{caller} {method} {path}: {response.status_code} (expected {expected})"
                )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        for (method, path), status in DASHBOARD_PUBLIC.items():
            response = await client.request(
                method, _concrete(path), data={} if method == "POST" else None
            )
            if response.status_code != status:
                seen.append(
                    f"anonymous {method} {path}: {response.status_code} (expected {status})"
                )
    assert seen == []


async def test_api_login_is_rate_limited_after_five_failures(
    client: httpx.AsyncClient, db: Database
) -> None:
    await create_user(db, Role.VIEWER, email="v@example.com", password="right password")
    for _ in range(5):
        wrong = {"email": "v@example.com", "password": "wrong password"}
        assert (await client.post("/api/auth/login", json=wrong)).status_code == 401
    right = {"email": "v@example.com", "password": "right password"}
    refused = await client.post("/api/auth/login", json=right)
    assert refused.status_code == 429
    assert "Too many login attempts" in refused.json()["error"]["message"]
    assert 0 < int(refused.headers["retry-after"]) <= 300


async def test_a_token_records_its_last_use_at_most_once_a_minute(
    api: Any, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from sqlalchemy import select

    from pagecast.models import ApiToken
    from pagecast.services import tokens

    admin = await api(Role.ADMIN)
    created = (await admin.post("/api/tokens", json={"name": "poller"})).json()
    client = admin
    headers = {"Authorization": f"Bearer {created['token']}"}

    async def last_used() -> Any:
        async with db.transaction() as session:
            return await session.scalar(
                select(ApiToken.last_used_at).where(ApiToken.id == created["id"])
            )

    assert await last_used() is None
    assert (await client.get("/api/me", headers=headers)).status_code == 200
    first = await last_used()
    assert first is not None
    for _ in range(3):  # a poller: no write per request
        assert (await client.get("/api/me", headers=headers)).status_code == 200
    assert await last_used() == first
    monkeypatch.setattr(tokens, "LAST_USED_STEP", timedelta(0))
    monkeypatch.setattr(deps, "TOKEN_CACHE_S", 0.0)  # look the token up again
    assert (await client.get("/api/me", headers=headers)).status_code == 200
    assert await last_used() > first


async def test_a_token_revoked_by_another_process_is_refused_within_the_cache_time(
    api: Any, client: httpx.AsyncClient, db: Database
) -> None:
    from sqlalchemy import update

    from pagecast.models import ApiToken, utcnow

    admin = await api(Role.ADMIN)
    created = (await admin.post("/api/tokens", json={"name": "leaked"})).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert (await client.get("/api/me", headers=headers)).status_code == 200
    # What `pagecast tokens revoke` or a second web process does: only the database changes.
    async with db.transaction() as session:
        await session.execute(
            update(ApiToken).where(ApiToken.id == created["id"]).values(revoked_at=utcnow())
        )
    revoked = time.monotonic()
    while (await client.get("/api/me", headers=headers)).status_code == 200:
        assert time.monotonic() - revoked < deps.TOKEN_CACHE_S + 0.5, "the token still works"
        await asyncio.sleep(0.05)
    response = await client.get("/api/me", headers=headers)
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]
