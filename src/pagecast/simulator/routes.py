"""One Graph call from parsed request to `Outcome`: auth (steps 1–3 of
docs/simulator.md, "Send pipeline"), routing, call log. Facebook Login's dialog and token
endpoint (`oauth.login_route`) take no access token and skip the auth steps.

`handle` is shared by the HTTP layer and by batch operations, so both go through exactly the
same pipeline and both count toward every limit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

from pagecast.simulator import conversations, limits, oauth, reads, send
from pagecast.simulator.context import CallContext, GraphRequest, Outcome
from pagecast.simulator.errors import (
    GraphError,
    RawFault,
    access_token_required,
    appsecret_invalid,
    appsecret_required,
    cannot_parse_token,
    invalid_token,
    unsupported,
)
from pagecast.simulator.ratelimit import usage_header_value
from pagecast.simulator.state import CallRecord, SimState, Token

__all__ = ["Handler", "authenticate", "error_outcome", "handle"]

Handler = Callable[[SimState, GraphRequest, CallContext], Any]

_HTML_5XX = (
    b'<!DOCTYPE html><html lang="en"><head><title>Error</title></head><body>'
    b"<h1>Sorry, something went wrong.</h1><p>We're working on getting this fixed as soon as "
    b"we can.</p></body></html>"
)


def authenticate(state: SimState, req: GraphRequest, ctx: CallContext) -> Token:
    raw = req.param("access_token")
    if raw is None and req.authorization:
        scheme, _, value = req.authorization.partition(" ")
        if scheme.lower() in ("bearer", "oauth"):
            raw = value.strip()
    if raw is None or raw == "":
        raise access_token_required()
    raw = str(raw)
    token = state.tokens.get(raw)
    if token is None:
        token = _app_token(state, raw)
    if token is None:
        raise cannot_parse_token()
    page = state.pages.get(token.page_id) if token.page_id else None
    ctx.token, ctx.page = token, page
    if not token.valid:
        raise invalid_token(token.invalid_subcode or 467, app_id=state.app.app_id)
    now = state.clock.now()
    if token.expires_at and token.expires_at < now:
        raise invalid_token(463, app_id=state.app.app_id, expired_at=token.expires_at, now=now)
    proof = req.param("appsecret_proof")
    if proof is None:
        if state.app.require_appsecret_proof:
            raise appsecret_required()
    else:
        secret = state.secret_for(page)
        if secret is not None:
            expected = hmac.new(secret.encode(), raw.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(str(proof), expected):
                raise appsecret_invalid()
    return token


def _app_token(state: SimState, raw: str) -> Token | None:
    secret = state.app.app_secret
    if secret and raw == f"{state.app.app_id}|{secret}":
        return Token(token=raw, kind="APP", page_id=None, scopes=(), tasks=())
    return None


def _route(req: GraphRequest) -> Handler:
    seg, method = req.segments, req.method
    if len(seg) == 1:
        if seg[0] == "me" and method == "GET":
            return reads.me
        if seg[0] == "debug_token" and method == "GET":
            return oauth.debug_token
        if method == "GET":
            return reads.get_object
        if method == "DELETE":
            return reads.delete_object
        raise unsupported(method, seg[0])
    if len(seg) == 2:
        edge = seg[1]
        if edge == "messages" and method == "POST":
            return send.send
        if edge == "accounts" and seg[0] == "me" and method == "GET":
            return oauth.accounts
        if edge == "permissions" and seg[0] == "me" and method == "GET":
            return oauth.permissions
        if edge == "message_attachments" and method == "POST":
            return reads.upload_attachment
        if edge == "personas" and method in ("GET", "POST"):
            return reads.personas
        if edge == "conversations" and method == "GET":
            return conversations.list_conversations
        if edge == "subscribed_apps" and method in ("GET", "POST", "DELETE"):
            return reads.subscribed_apps
        raise unsupported(method, seg[0])
    raise GraphError(2500, "Unknown path components: /" + "/".join(seg[1:]))


def error_outcome(state: SimState, err: GraphError) -> Outcome:
    knobs = state.knobs
    status = err.http_status(
        permission_status=knobs.permission_status,
        throttle_status=knobs.throttle_status,
        code_1200_status=knobs.code_1200_status,
    )
    outcome = Outcome(
        status,
        err.envelope(state.trace_id(), user_text=knobs.user_error_text),
        code=err.code,
        subcode=err.subcode,
    )
    www = err.www_authenticate()
    if www is not None:
        outcome.headers.append(("www-authenticate", www))
    return outcome


def _fault_outcome(fault: RawFault) -> Outcome:
    if fault.kind == "timeout_before":
        return Outcome(0, None, drop="before")
    if fault.status == 429:
        return Outcome(429, None, raw=b"", content_type="text/plain")
    return Outcome(fault.status, None, raw=_HTML_5XX, content_type="text/html; charset=utf-8")


def handle(state: SimState, req: GraphRequest) -> Outcome:
    """Run one Graph call and record it; never raises for Graph-level failures."""
    ctx = CallContext()
    try:
        login = oauth.login_route(req)  # the dialog and the token endpoint take no token
        if login is not None:
            outcome = login(state, req)
        else:
            token = authenticate(state, req, ctx)
            if token.kind in limits.APP_TOKEN_KINDS:
                limits.charge_app(state, ctx, state.clock.now())
            body = _route(req)(state, req, ctx)
            outcome = Outcome(200, body, drop=ctx.drop)
    except GraphError as err:
        outcome = error_outcome(state, err)
    except RawFault as fault:
        outcome = _fault_outcome(fault)
    now = state.clock.now()
    usage = limits.usage(state, ctx, now)
    if usage is not None and ctx.page is not None:
        outcome.headers.append(
            ("x-business-use-case-usage", usage_header_value(ctx.page.page_id, usage))
        )
        if state.knobs.emit_page_usage:
            legacy = {k: usage[k] for k in ("call_count", "total_cputime", "total_time")}
            outcome.headers.append(("x-page-usage", json.dumps(legacy, separators=(",", ":"))))
    app_usage = limits.app_usage(state, ctx, now)
    if app_usage is not None:
        outcome.headers.append(("x-app-usage", json.dumps(app_usage, separators=(",", ":"))))
        if usage is None:
            usage = {"type": "app", **app_usage}
    outcome.headers.extend(ctx.headers)
    _record(state, req, ctx, outcome, usage, now)
    return outcome


def _record(
    state: SimState,
    req: GraphRequest,
    ctx: CallContext,
    outcome: Outcome,
    usage: dict[str, Any] | None,
    now: float,
) -> None:
    page = ctx.page
    page_id = page.page_id if page is not None else None
    if page is not None:
        page.limiter.note_call(now)
    status = outcome.status
    if outcome.drop is not None:
        key: str | None = f"timeout_{outcome.drop}"
    elif outcome.code is not None:
        key = str(outcome.code)
    elif status >= 400:
        key = f"http_{status}"
    else:
        key = None
    state.call_count += 1
    if key is not None:
        state.errors_by_code[key] = state.errors_by_code.get(key, 0) + 1
    state.calls.append(
        CallRecord(
            now,
            req.method,
            req.path,
            page_id,
            ctx.psid,
            status,
            outcome.code,
            outcome.subcode,
            usage,
            outcome.drop,
            req.in_batch,
        )
    )
