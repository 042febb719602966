"""Conversations API with cursor paging and the User Profile API (docs/simulator.md,
"Conversations and profiles").

Threads are listed newest `updated_time` first; a cursor is the base64 of
`updated_time|thread_id`, so paging is stable while no thread moves (and, as on the real
Graph, a thread updated mid-paging may show up twice or not at all).
"""

from __future__ import annotations

import base64
import bisect
import re
from typing import Any
from urllib.parse import urlencode

from pagecast.simulator import limits
from pagecast.simulator.clock import format_graph_time
from pagecast.simulator.context import CallContext, GraphRequest
from pagecast.simulator.errors import GraphError, bad_param, unsupported
from pagecast.simulator.send import resolve_page
from pagecast.simulator.state import Page, SimState, Thread, ThreadMessage

__all__ = ["list_conversations", "paging_url", "parse_fields", "profile", "render_thread"]

_FIELD = re.compile(r"^(?P<name>[a-z_]+)(?:\.limit\((?P<limit>\d+)\))?(?:\{(?P<sub>.*)\})?$")
_DETAILED_MESSAGES = 20
_PROFILE_FIELDS = ("first_name", "last_name", "profile_pic", "id")
_RESTRICTED_PROFILE_FIELDS = frozenset({"locale", "timezone", "gender"})


def parse_fields(raw: str) -> list[tuple[str, int | None, str | None]]:
    """Split `a,b.limit(5){x,y}` at top-level commas into (name, limit, subfields)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in raw:
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        depth += (char == "{") - (char == "}")
        current.append(char)
    parts.append("".join(current))
    parsed = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        match = _FIELD.match(part)
        if match is None:
            raise bad_param(f'Syntax error in fields near "{part}"')
        limit = match.group("limit")
        parsed.append((match.group("name"), int(limit) if limit else None, match.group("sub")))
    return parsed


def _cursor(thread: Thread) -> str:
    return base64.urlsafe_b64encode(f"{thread.updated!r}|{thread.id}".encode()).decode()


def _decode_cursor(raw: str) -> tuple[float, str]:
    try:
        updated, _, thread_id = base64.urlsafe_b64decode(raw.encode()).decode().partition("|")
        return -float(updated), thread_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_param("Invalid cursor") from exc


def list_conversations(state: SimState, req: GraphRequest, ctx: CallContext) -> dict[str, Any]:
    page = resolve_page(state, req, ctx, req.segments[0])
    token = ctx.token
    assert token is not None
    needed = ("pages_read_engagement", "pages_manage_metadata", "pages_messaging")
    if any(scope not in token.scopes for scope in needed):
        raise GraphError(
            200,
            "(#200) The user does not have sufficient administrative "
            "permission for this action on this page.",
        )
    limits.charge_read(state, req, page, ctx, "conversations")
    user_id = req.param("user_id")
    if user_id is None and page.limiter.inbox_degraded_until > state.clock.now():
        # A Page sending above 40/s degrades its Inbox; only the listing fails
        raise GraphError(2, "An unexpected error has occurred. Please retry your request later.")
    platform = str(req.param("platform") or "messenger").lower()
    if platform == "instagram":
        return {"data": []}
    if platform != "messenger":
        raise bad_param("Param platform must be one of {MESSENGER, INSTAGRAM}")
    try:
        limit = int(req.param("limit") or 25)
    except ValueError as exc:
        raise bad_param("Param limit must be an integer") from exc
    limit = max(1, min(limit, state.knobs.max_conversation_limit))
    threads = [t for t in page.threads.values() if t.messages]
    if user_id is not None:
        threads = [t for t in threads if t.psid == str(user_id)]
    if not state.app.live:
        threads = [
            t for t in threads if (u := page.users.get(t.psid)) is not None and u.role_on_app
        ]
    threads.sort(key=lambda t: (-t.updated, t.id))
    keys = [(-t.updated, t.id) for t in threads]
    after, before = req.param("after"), req.param("before")
    if after:
        start = bisect.bisect_right(keys, _decode_cursor(str(after)))
        chosen = threads[start : start + limit]
    elif before:
        end = bisect.bisect_left(keys, _decode_cursor(str(before)))
        start = max(0, end - limit)
        chosen = threads[start:end]
    else:
        start = 0
        chosen = threads[:limit]
    fields = parse_fields(str(req.param("fields") or "id,updated_time"))
    data = [_thread_values(state, page, t, fields) for t in chosen]
    result: dict[str, Any] = {"data": data}
    if chosen:
        paging: dict[str, Any] = {
            "cursors": {"before": _cursor(chosen[0]), "after": _cursor(chosen[-1])}
        }
        if start + len(chosen) < len(threads):
            paging["next"] = paging_url(req, "after", paging["cursors"]["after"])
        if start > 0:
            paging["previous"] = paging_url(req, "before", paging["cursors"]["before"])
        result["paging"] = paging
    return result


def paging_url(req: GraphRequest, key: str, cursor: str) -> str:
    """The absolute `paging.next` / `previous` URL: the same call with `key`=`cursor`."""
    query = {k: v for k, v in req.query.items() if k not in ("after", "before")}
    for name in ("access_token", "fields", "limit", "platform", "user_id", "appsecret_proof"):
        if name not in query and name in req.params:
            query[name] = str(req.params[name])
    query[key] = cursor
    return f"{req.base_url}/{req.version}/{'/'.join(req.segments)}?{urlencode(query)}"


def render_thread(
    state: SimState, page: Page, thread: Thread, req: GraphRequest, names: list[str]
) -> dict[str, Any]:
    return _thread_values(state, page, thread, parse_fields(",".join(names)))


def _person(state: SimState, page: Page, psid: str) -> dict[str, str]:
    if psid == page.page_id:
        return {"name": page.name, "email": f"{psid}@facebook.com", "id": psid}
    user = page.users.get(psid)
    name = f"{user.first_name} {user.last_name}".strip() if user else ""
    return {"name": name, "email": f"{psid}@facebook.com", "id": psid}


def _thread_values(
    state: SimState, page: Page, thread: Thread, fields: list[tuple[str, int | None, str | None]]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, limit, sub in fields:
        if name == "id":
            values["id"] = thread.id
        elif name == "updated_time":
            values["updated_time"] = format_graph_time(thread.updated)
        elif name == "participants":
            values["participants"] = {
                "data": [_person(state, page, thread.psid), _person(state, page, page.page_id)]
            }
        elif name == "message_count":
            values["message_count"] = len(thread.messages)
        elif name == "unread_count":
            values["unread_count"] = thread.unread
        elif name == "messages":
            values["messages"] = _messages(state, page, thread, limit or 25, sub)
    values.setdefault("id", thread.id)
    return values


def _messages(
    state: SimState, page: Page, thread: Thread, limit: int, sub: str | None
) -> dict[str, Any]:
    wanted = [f.strip() for f in (sub or "id").split(",") if f.strip()]
    newest = thread.messages[::-1][:limit]
    data = []
    for i, message in enumerate(newest):
        if i >= _DETAILED_MESSAGES:
            data.append({"id": message.mid})
            continue
        data.append(_message_values(state, page, message, wanted))
    return {"data": data}


def _message_values(
    state: SimState, page: Page, message: ThreadMessage, wanted: list[str]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in wanted:
        if name == "message":
            values["message"] = message.text or ""
        elif name == "from":
            values["from"] = _person(state, page, message.from_id)
        elif name == "to":
            values["to"] = {"data": [_person(state, page, message.to_id)]}
        elif name == "created_time":
            values["created_time"] = format_graph_time(message.created)
        elif name == "attachments" and message.attachments:
            values["attachments"] = {"data": message.attachments}
    values["id"] = message.mid
    return values


def profile(
    state: SimState, page: Page, req: GraphRequest, ctx: CallContext, psid: str
) -> dict[str, Any]:
    user = page.users.get(psid)
    if user is None:
        raise unsupported("GET", psid)
    ctx.psid = psid
    limits.charge_read(state, req, page, ctx, "profile")
    raw = req.param("fields")
    fields = [f.strip() for f in str(raw).split(",") if f.strip()] if raw else list(_PROFILE_FIELDS)
    if not user.profile_available:
        raise GraphError(2018218, "(#2018218) No profile available for this user")
    if _RESTRICTED_PROFILE_FIELDS & set(fields):
        raise GraphError(2018247, "(#2018247) Insufficient permission to access user profile")
    expiry = int(state.clock.now()) + 3 * 86400
    values = {
        "id": psid,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "name": f"{user.first_name} {user.last_name}".strip(),
        "profile_pic": "https://platform-lookaside.fbsbx.com/platform/profilepic/"
        f"?psid={psid}&width=1024&ext={expiry}&hash=Ab{psid[-6:]}",
    }
    unknown = [f for f in fields if f not in values]
    if unknown:
        raise bad_param(f"Tried accessing nonexisting field ({unknown[0]}) on node type (User)")
    return {f: values[f] for f in fields}
