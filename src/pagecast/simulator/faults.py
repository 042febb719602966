"""Fault injection: scripted responses per PSID or path, and seeded chance (step 13 of
docs/simulator.md, "Send pipeline").

`decide` returns what the current call must do: `None` (go on), `"after"` (commit, then drop
the connection), or raises the injected `GraphError` / `RawFault`.
"""

from __future__ import annotations

from typing import Any

from pagecast.simulator.errors import GraphError, RawFault
from pagecast.simulator.state import SimState

__all__ = ["FAULT_KEYS", "add_script", "decide", "injected_error"]

FAULT_KEYS = ("p_transient", "p_timeout_before", "p_timeout_after", "p_throttle", "p_5xx")

_MESSAGES = {
    (1, None): "An unknown error has occurred.",
    (2, None): "An unexpected error has occurred. Please retry your request later.",
    (4, None): "(#4) Application request limit reached",
    (10, None): "(#10) Application does not have permission for this action",
    (10, 2018278): "(#10) This message is sent outside of allowed window. Learn more about the "
    "new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview",
    (10, 2018108): "(#10) This person isn't available right now.",
    (10, 1893063): "(#10) You are temporarily restricted from sending messages",
    (100, 2018001): "(#100) No matching user found",
    (190, None): "Invalid OAuth access token - Cannot parse access token",
    (200, 2018028): "(#200) Cannot message users who are not admins, developers or testers of "
    "the app until pages_messaging permission is reviewed and the app is live.",
    (368, None): "(#368) The action attempted has been deemed abusive or is otherwise disallowed",
    (551, None): "(#551) This person isn't available right now.",
    (613, None): "(#613) Calls to this api have exceeded the rate limit.",
    (613, 2018338): "(#613) Warning! This message could be considered bothersome or abusive "
    "by people who receive it. Please decrease your rate or use message tags.",
    (1200, None): "(#1200) Temporary send message failure. Please try again later",
    (80006, None): "(#80006) There have been too many messenger api calls to this Page "
    "account. Wait a bit and try again. For more info, please refer to "
    "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
}


def injected_error(
    code: int, subcode: int | None = None, *, http: int | None = None, message: str | None = None
) -> GraphError:
    text = message or _MESSAGES.get((code, subcode)) or _MESSAGES.get((code, None))
    return GraphError(code, text or f"(#{code}) Simulated error", subcode=subcode, status=http)


def add_script(state: SimState, spec: dict[str, Any]) -> None:
    match = spec.get("match") or {}
    responses = spec.get("responses")
    if not isinstance(match, dict) or not isinstance(responses, list) or not responses:
        raise ValueError(
            'A script needs "match" (an object) and "responses" (a non-empty '
            'list), e.g. {"match":{"psid":"1"},"responses":[{"code":2,'
            '"http":500,"times":2},{"ok":true}]}.'
        )
    queue = []
    for response in responses:
        if not isinstance(response, dict):
            raise ValueError(f"Each response must be an object; got {response!r}.")
        if not ({"code", "ok", "timeout", "http"} & response.keys()):
            raise ValueError(f"A response needs code, http, ok or timeout; got {response!r}.")
        if response.get("timeout") not in (None, "before", "after"):
            raise ValueError('"timeout" must be "before" or "after".')
        queue.append({**response, "times": int(response.get("times", 1))})
    state.scripts.append({"match": {k: str(v) for k, v in match.items()}, "responses": queue})


def _take_script(
    state: SimState, path: str, psid: str | None, page_id: str | None
) -> dict[str, Any] | None:
    for script in state.scripts:
        match = script["match"]
        if "psid" in match and match["psid"] != psid:
            continue
        if "page_id" in match and match["page_id"] != page_id:
            continue
        if "path" in match and match["path"] not in path:
            continue
        response: dict[str, Any] = script["responses"][0]
        response["times"] -= 1
        if response["times"] <= 0:
            script["responses"].pop(0)
            if not script["responses"]:
                state.scripts.remove(script)
        return response
    return None


def decide(
    state: SimState,
    *,
    path: str,
    psid: str | None,
    page_id: str | None,
    allow_after: bool = True,
    chance: bool = True,
) -> str | None:
    """Apply the first matching script, else (when `chance`) the seeded probabilities."""
    if state.scripts:
        response = _take_script(state, path, psid, page_id)
        if response is not None:
            return _apply(response, allow_after)
    if not chance:
        return None
    faults = state.faults
    if not any(faults.values()):
        return None
    draw = state.rng("fault").random()
    edge = 0.0
    for key in FAULT_KEYS:
        edge += faults[key]
        if draw < edge:
            return _apply_class(state, key, allow_after)
    return None


def _apply(response: dict[str, Any], allow_after: bool) -> str | None:
    if response.get("ok"):
        return None
    timeout = response.get("timeout")
    if timeout == "before" or (timeout == "after" and not allow_after):
        raise RawFault("timeout_before")
    if timeout == "after":
        return "after"
    if "code" in response:
        subcode = response.get("subcode")
        raise injected_error(
            int(response["code"]),
            None if subcode is None else int(subcode),
            http=response.get("http"),
            message=response.get("message"),
        )
    raise RawFault("http", status=int(response["http"]))


def _apply_class(state: SimState, key: str, allow_after: bool) -> str | None:
    rng = state.rng("fault")
    if key == "p_transient":
        code = rng.choice((1, 2, 1200))
        raise injected_error(code, 2018024 if code == 1200 else None)
    if key == "p_timeout_before" or (key == "p_timeout_after" and not allow_after):
        raise RawFault("timeout_before")
    if key == "p_timeout_after":
        return "after"
    if key == "p_throttle":
        if rng.random() < 0.5:
            raise injected_error(613)
        raise RawFault("http", status=429)
    raise RawFault("http", status=rng.choice((502, 503, 504)))
