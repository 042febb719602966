"""The `/__sim/` control plane: a contract that tests, benchmarks and the demo mode rely on.

Each call takes and returns JSON. Mistakes answer 400 (404 for unknown calls) with
`{"error": "<what was wrong and what to send instead>"}`. `docs/simulator.md` lists them all.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pagecast.simulator import oauth, people
from pagecast.simulator.clock import format_graph_time
from pagecast.simulator.faults import FAULT_KEYS, add_script
from pagecast.simulator.people import ControlError, page_of
from pagecast.simulator.state import ALL_FIELDS, Page, Token
from pagecast.simulator.webhooks import check_loopback

if TYPE_CHECKING:
    from pagecast.simulator.app import SimulatorApp

__all__ = ["ControlError", "dispatch", "parse_latency"]

Result = tuple[int, Any]
Handler = Callable[["SimulatorApp", dict[str, str], Any], Awaitable[Result]]


def parse_latency(value: str) -> tuple[float, float]:
    """`"0"`, `"120"` or `"50-150"` (milliseconds) as a (low, high) pair."""
    low, sep, high = str(value).strip().partition("-")
    try:
        pair = (float(low), float(high) if sep else float(low))
    except ValueError as exc:
        raise ValueError(
            f"Latency {value!r} is not a number of ms or a range like 50-150."
        ) from exc
    if pair[0] < 0 or pair[1] < pair[0]:
        raise ValueError(f"Latency {value!r} must be non-negative with low <= high.")
    return pair


async def dispatch(
    app: SimulatorApp, method: str, path: str, query: dict[str, str], body: bytes
) -> Result:
    handler = _ROUTES.get((method, path.rstrip("/")))
    if handler is None:
        known = ", ".join(f"{m} {p}" for m, p in _ROUTES)
        return 404, {"error": f"Unknown control call {method} {path}. Known: {known}."}
    try:
        payload = json.loads(body) if body.strip() else {}
    except ValueError:
        return 400, {"error": "The body must be JSON."}
    try:
        return await handler(app, query, payload)
    except ControlError as exc:
        return exc.status, {"error": exc.message}
    except (KeyError, ValueError, TypeError) as exc:
        return 400, {"error": f"{type(exc).__name__}: {exc}"}


def _obj(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ControlError("The body must be a JSON object.")
    return payload


async def _pages(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    body = _obj(payload)
    state = app.state
    page_id, token = str(body["page_id"]), body.get("access_token")
    if not token:
        raise ControlError('A Page needs "access_token" (the Page token to accept).')
    page = state.pages.get(page_id)
    if page is None:
        page = state.pages[page_id] = Page(page_id=page_id, name=str(body.get("name", page_id)))
    page.name = str(body.get("name", page.name))
    page.engaged_users = int(body.get("engaged_users", page.engaged_users))
    page.app_secret = body.get("app_secret", page.app_secret)
    page.news = bool(body.get("news", page.news))
    if body.get("subscribe", True):
        page.subscribed[state.app.app_id] = list(body.get("subscribed_fields", ALL_FIELDS))
    state.tokens[str(token)] = Token(token=str(token), kind="PAGE", page_id=page_id)
    if body.get("user_token"):
        state.tokens[str(body["user_token"])] = Token(
            token=str(body["user_token"]), kind="USER", page_id=None, page_ids=(page_id,)
        )
    return 200, {"page_id": page_id, "name": page.name, "access_token": token}


async def _tokens(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    body = _obj(payload)
    kind = str(body.get("kind", "PAGE")).upper()
    if kind not in ("PAGE", "USER", "SYSTEM_USER"):
        raise ControlError('"kind" must be PAGE, USER or SYSTEM_USER.')
    token = Token(
        token=str(body["access_token"]),
        kind=kind,
        page_id=str(body["page_id"]) if kind == "PAGE" else None,
        page_ids=tuple(str(p) for p in body.get("page_ids", ())),
        expires_at=float(body.get("expires_at", 0)),
    )
    if "scopes" in body:
        token.scopes = tuple(body["scopes"])
    if "tasks" in body:
        token.tasks = tuple(body["tasks"])
    if kind == "PAGE":
        page_of(app, token.page_id)
    app.state.tokens[token.token] = token
    return 200, {"access_token": token.token, "kind": kind}


async def _revoke(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    body = _obj(payload)
    token = app.state.tokens.get(str(body["access_token"]))
    if token is None:
        raise ControlError("Unknown access_token; nothing to revoke.", 404)
    subcode = int(body.get("subcode", 460))
    if subcode not in (458, 459, 460, 463, 464, 467, 492):
        raise ControlError('"subcode" must be one of 458, 459, 460, 463, 464, 467, 492.')
    token.valid, token.invalid_subcode = False, subcode
    return 200, {"access_token": token.token, "valid": False, "subcode": subcode}


async def _script(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    if isinstance(payload, dict) and payload.get("clear"):
        app.state.scripts.clear()
        return 200, {"scripts": 0}
    add_script(app.state, _obj(payload))
    return 200, {"scripts": len(app.state.scripts)}


async def _faults(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    body = _obj(payload)
    for key, value in body.items():
        if key not in FAULT_KEYS:
            raise ControlError(f"Unknown fault {key!r}; use {', '.join(FAULT_KEYS)}.")
        if not 0.0 <= float(value) <= 1.0:
            raise ControlError(f"{key} must be a probability between 0 and 1.")
    faults = app.state.faults
    faults.update({k: float(v) for k, v in body.items()})
    if sum(faults.values()) > 1.0:
        raise ControlError("The fault probabilities add up to more than 1.")
    return 200, dict(faults)


async def _limits(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    body = _obj(payload)
    state = app.state
    if "app_throttle_seconds" in body:
        state.app_throttled_until = state.clock.now() + float(body["app_throttle_seconds"])
    if "page_id" not in body:
        return 200, {"app_throttled_until": state.app_throttled_until}
    page = page_of(app, body["page_id"])
    limiter = page.limiter
    for key, cls in (
        ("per_second_text", "text"),
        ("per_second_av", "av"),
        ("per_second_conversations", "conversations"),
    ):
        if key in body:
            limiter.per_second[cls] = int(body[key])
    if "engaged_users" in body:
        page.engaged_users = int(body["engaged_users"])
    now = state.clock.now()
    if "inbox_degraded" in body:
        cooldown = state.knobs.inbox_degrade_cooldown
        limiter.inbox_degraded_until = now + cooldown if body["inbox_degraded"] else 0.0
    return 200, {
        "page_id": page.page_id,
        "engaged_users": page.engaged_users,
        "inbox_degraded": limiter.inbox_degraded_until > now,
        "inbox_degraded_until": limiter.inbox_degraded_until or None,
        **{f"per_second_{k}": v for k, v in limiter.per_second.items()},
    }


async def _advance(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    seconds = float(_obj(payload)["seconds"])
    if seconds < 0:
        raise ControlError('The clock only moves forward; "seconds" must be >= 0.')
    app.state.clock.advance(seconds)
    return await _clock(app, query, payload)


async def _clock(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    now = app.state.clock.now()
    return 200, {"now": now, "time": format_graph_time(now)}


async def _outbox(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    page_id, psid = query.get("page_id"), query.get("psid")
    messages = [
        {
            "mid": e.mid,
            "page_id": e.page_id,
            "psid": e.psid,
            "message": e.message,
            "metadata": e.metadata,
            "messaging_type": e.messaging_type,
            "tag": e.tag,
            "created_time": format_graph_time(e.created),
            "timestamp_ms": int(e.created * 1000),
            "dropped_after_commit": e.dropped_after_commit,
        }
        for e in app.state.outbox
        if (page_id is None or e.page_id == page_id) and (psid is None or e.psid == psid)
    ]
    return 200, {"messages": messages}


async def _calls(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    page_id = query.get("page_id")
    limit = int(query.get("limit", 0))
    records = [r for r in app.state.calls if page_id is None or r.page_id == page_id]
    if limit:
        records = records[-limit:]
    return 200, {
        "calls": [
            {
                "time": r.time,
                "method": r.method,
                "path": r.path,
                "page_id": r.page_id,
                "psid": r.psid,
                "status": r.status,
                "code": r.code,
                "subcode": r.subcode,
                "usage": r.usage,
                "dropped": r.drop,
                "in_batch": r.in_batch,
            }
            for r in records
        ]
    }


async def _stats(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    state = app.state
    return 200, {
        "calls": state.call_count,
        "accepted": state.accepted,
        "errors_by_code": dict(state.errors_by_code),
        "max_calls_per_second": {pid: p.limiter.max_per_second for pid, p in state.pages.items()},
    }


async def _reset(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    app.emitter.clear()
    app.emitter.paused = False
    app.emitter.posted = 0
    app.emitter.log.clear()
    app.state.reset()
    app.latency_ms = app.start_latency_ms  # a `/__sim/latency` change is forgotten too
    return 200, {"reset": True}


async def _seed(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    seed = int(_obj(payload)["seed"])
    app.state.reseed(seed)
    return 200, {"seed": seed}


async def _restrict(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    body = _obj(payload)
    page = page_of(app, body["page_id"])
    restriction = body.get("restriction")
    if restriction is not None and str(restriction) not in ("368", "1893063", "2022"):
        raise ControlError('"restriction" must be "368", "1893063", "2022" or null.')
    page.restriction = None if restriction is None else str(restriction)
    action = body.get("policy")
    if action is not None:
        if action not in ("block", "unblock", "warning"):
            raise ControlError('"policy" must be block, unblock or warning.')
        reason = str(body.get("reason", "The bot violated our Platform Policies."))
        app.emitter.policy(page, action, reason)
    return 200, {"page_id": page.page_id, "restriction": page.restriction}


# What a block does to the Page's sends: 10/1893063 "temporarily restricted from sending".
_BLOCK_RESTRICTION = "1893063"


async def _policy(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    """Facebook enforces its messaging policy on a Page: a signed
    `messaging_policy_enforcement` webhook, and (unless `restrict` is false) a block
    restricts the Page's sends with 10/1893063 until an unblock lifts it."""
    body = _obj(payload)
    page = page_of(app, body.get("page_id"))
    action = body.get("action")
    if action not in ("block", "unblock", "warning"):
        raise ControlError('"action" must be "block", "unblock" or "warning".')
    reason = body.get("reason", "The bot violated our Platform Policies.")
    if not isinstance(reason, str):
        raise ControlError('"reason" must be a string.')
    timestamp = body.get("timestamp")
    if timestamp is not None and (
        isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp <= 0
    ):
        raise ControlError('"timestamp" must be a positive epoch time in milliseconds, or null.')
    restrict = body.get("restrict", True)
    if not isinstance(restrict, bool):
        raise ControlError('"restrict" must be true or false.')
    if restrict and action == "block":
        page.restriction = _BLOCK_RESTRICTION
    elif restrict and action == "unblock":
        page.restriction = None
    stamp = app.emitter.policy(page, action, reason, timestamp)
    return 200, {
        "page_id": page.page_id,
        "action": action,
        "timestamp": stamp,
        "restriction": page.restriction,
        "emitted": app.emitter.subscribed(page, "messaging_policy_enforcement"),
    }


async def _app_settings(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    body = _obj(payload)
    settings = app.state.app
    for key in ("live", "require_appsecret_proof", "human_agent"):
        if key in body:
            setattr(settings, key, bool(body[key]))
    if "app_secret" in body:
        settings.app_secret = body["app_secret"]
    return 200, {
        "app_id": settings.app_id,
        "live": settings.live,
        "require_appsecret_proof": settings.require_appsecret_proof,
        "human_agent": settings.human_agent,
    }


async def _knobs(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    if isinstance(payload, dict) and payload:
        app.state.knobs.update(payload)
    return 200, app.state.knobs.as_dict()


async def _latency(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    app.latency_ms = parse_latency(str(_obj(payload)["ms"]))
    return 200, {"latency_ms": list(app.latency_ms)}


async def _webhook(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    settings = app.state.app
    if isinstance(payload, dict) and payload:
        if "url" in payload:
            settings.webhook_url = (
                None if payload["url"] is None else check_loopback(str(payload["url"]))
            )
        for key, attr in (("app_secret", "app_secret"), ("verify_token", "verify_token")):
            if key in payload:
                setattr(settings, attr, payload[key])
        if "enabled" in payload:
            settings.webhook_enabled = bool(payload["enabled"])
        if "paused" in payload:
            app.emitter.paused = bool(payload["paused"])
            app.emitter.wake()
    emitter = app.emitter
    return 200, {
        "url": settings.webhook_url,
        "enabled": settings.webhook_enabled,
        "paused": emitter.paused,
        "pending": emitter.pending(),
        "posted": emitter.posted,
        "failing_since": emitter.failing_since,
        "log": list(emitter.log)[-int(query.get("log", 50)) :],
    }


async def _flush(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    app.emitter.paused = False
    await app.emitter.flush(float(query.get("timeout", 10)))
    return 200, {"pending": app.emitter.pending(), "posted": app.emitter.posted}


async def _verify(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    return 200, await app.emitter.verify()


async def _replay(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    seconds = _obj(payload).get("seconds")
    if seconds is not None and float(seconds) < 0:
        raise ControlError('"seconds" must be >= 0, or null to replay every kept event.')
    replayed = app.emitter.replay(None if seconds is None else float(seconds))
    return 200, {"replayed": replayed, "pending": app.emitter.pending()}


_ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/__sim/pages"): _pages,
    ("POST", "/__sim/pages/restrict"): _restrict,
    ("POST", "/__sim/pages/policy"): _policy,
    ("POST", "/__sim/users"): people.create_users,
    ("POST", "/__sim/users/status"): people.set_status,
    ("POST", "/__sim/inbound"): people.inbound,
    ("POST", "/__sim/postback"): people.postback,
    ("POST", "/__sim/reaction"): people.reaction,
    ("POST", "/__sim/referral"): people.referral,
    ("POST", "/__sim/tokens"): _tokens,
    ("POST", "/__sim/tokens/revoke"): _revoke,
    ("POST", "/__sim/script"): _script,
    ("POST", "/__sim/faults"): _faults,
    ("POST", "/__sim/limits"): _limits,
    ("POST", "/__sim/clock/advance"): _advance,
    ("GET", "/__sim/clock"): _clock,
    ("GET", "/__sim/outbox"): _outbox,
    ("GET", "/__sim/calls"): _calls,
    ("GET", "/__sim/stats"): _stats,
    ("POST", "/__sim/reset"): _reset,
    ("POST", "/__sim/seed"): _seed,
    ("POST", "/__sim/app"): _app_settings,
    ("GET", "/__sim/knobs"): _knobs,
    ("POST", "/__sim/knobs"): _knobs,
    ("POST", "/__sim/latency"): _latency,
    ("GET", "/__sim/webhook"): _webhook,
    ("POST", "/__sim/webhook"): _webhook,
    ("POST", "/__sim/webhook/flush"): _flush,
    ("POST", "/__sim/webhook/verify"): _verify,
    ("POST", "/__sim/webhook/replay"): _replay,
    ("POST", "/__sim/optin"): people.optin,
    ("POST", "/__sim/oauth"): oauth.set_consent,
    ("GET", "/__sim/app"): _app_settings,
}
