"""Step 7 of every metered Graph call: per-second class, then the 24 h budget
(docs/simulator.md, "Rate limits and usage headers").

`charge` admits a call or raises 613 / 80006 / 80001 (or 4 while the app is throttled);
`usage` gives the usage object for the `x-business-use-case-usage` header afterwards.
Calls made with a USER or app token are also counted against the app (`charge_app`), which
gives the `x-app-usage` header (`app_usage`).
"""

from __future__ import annotations

from pagecast.simulator.context import CallContext, GraphRequest
from pagecast.simulator.errors import GraphError
from pagecast.simulator.faults import decide
from pagecast.simulator.state import Page, SimState

__all__ = ["app_usage", "capacity", "charge", "charge_app", "charge_read", "usage"]

_BUDGET_ERRORS = {
    "messenger": (
        80006,
        "(#80006) There have been too many messenger api calls to this Page "
        "account. Wait a bit and try again. For more info, please refer to "
        "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
    ),
    "pages": (
        80001,
        "(#80001) There have been too many calls to this Page account. Wait a "
        "bit and try again. For more info, please refer to "
        "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
    ),
}


def capacity(page: Page, bucket: str) -> int:
    per_user = 200 if bucket == "messenger" else 4800
    return per_user * max(page.engaged_users, 0)


def charge(
    state: SimState, page: Page, ctx: CallContext, bucket: str, cls: str, now: float
) -> None:
    if state.app_throttled_until > now:
        raise GraphError(4, "(#4) Application request limit reached")
    limiter = page.limiter
    ctx.bucket = bucket
    cap = capacity(page, bucket)
    minutes = limiter.throttled_minutes(bucket, cap, now)
    if not limiter.take_second(cls, now):
        if not minutes:
            limiter.bucket(bucket).add(now)
        raise GraphError(613, "(#613) Calls to this api have exceeded the rate limit.")
    if minutes:
        if state.knobs.extend_penalty:
            limiter.penalise(bucket, cap, now, state.knobs.penalty_minutes)
            # The regain time reported for this call includes the penalty it just added,
            # so a client that waits exactly that long is admitted.
            minutes = limiter.throttled_minutes(bucket, cap, now)
        ctx.throttled = minutes
        code, message = _BUDGET_ERRORS[bucket]
        raise GraphError(code, message)
    limiter.bucket(bucket).add(now)


def charge_read(state: SimState, req: GraphRequest, page: Page, ctx: CallContext, cls: str) -> None:
    """Charge a Pages-API read (conversations, profile, page) and apply injected faults."""
    charge(state, page, ctx, "pages", cls, state.clock.now())
    decide(state, path=req.path, psid=ctx.psid, page_id=page.page_id, allow_after=False)


def usage(state: SimState, ctx: CallContext, now: float) -> dict[str, int | str] | None:
    """The usage object after the call, or None when below the header threshold."""
    page, bucket = ctx.page, ctx.bucket
    if page is None or bucket is None:
        return None
    cap = capacity(page, bucket)
    minutes = ctx.throttled or page.limiter.throttled_minutes(bucket, cap, now)
    knobs = state.knobs
    value = page.limiter.usage(
        bucket,
        cap,
        time_fraction=knobs.time_fraction,
        cputime_fraction=knobs.cputime_fraction,
        regain_minutes=minutes,
    )
    top = max(int(value["call_count"]), int(value["total_time"]), int(value["total_cputime"]))
    if minutes or top >= knobs.header_threshold_pct:
        return value
    return None


APP_TOKEN_KINDS = frozenset({"USER", "APP"})


def charge_app(state: SimState, ctx: CallContext, now: float) -> None:
    """A call made with a USER or app token: counted against the app's rolling hour.

    At 100 % of `app_calls_per_hour` (or while the control plane throttles the app) the call
    fails with code 4, as Graph answers once any `x-app-usage` value reaches 100.
    """
    ctx.app_metered = True
    window = state.app_calls
    window.expire(now)
    window.add(now)
    if state.app_throttled_until > now or window.used > state.knobs.app_calls_per_hour:
        raise GraphError(4, "(#4) Application request limit reached")


def app_usage(state: SimState, ctx: CallContext, now: float) -> dict[str, int] | None:
    """`x-app-usage` values after the call, or None below the header threshold."""
    if not ctx.app_metered:
        return None
    knobs = state.knobs
    cap = knobs.app_calls_per_hour
    used = state.app_calls.used
    call_count = round(100.0 * used / cap) if cap > 0 else 100
    throttled = state.app_throttled_until > now or used > cap
    if throttled:
        call_count = max(call_count, 100)
    value = {
        "call_count": call_count,
        "total_time": round(call_count * knobs.time_fraction),
        "total_cputime": round(call_count * knobs.cputime_fraction),
    }
    if throttled or max(value.values()) >= knobs.header_threshold_pct:
        return value
    return None
