"""Control calls about people: creating them (in bulk), blocking them, and what they do.

What a person does (a message, a postback, a reaction, a referral) opens or refreshes the
messaging window, lands in the thread and is sent to the webhook, as on Messenger.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pagecast.simulator.state import Page, SimState, ThreadMessage, User

if TYPE_CHECKING:
    from pagecast.simulator.app import SimulatorApp

__all__ = [
    "ControlError",
    "create_users",
    "inbound",
    "optin",
    "page_of",
    "person_acts",
    "postback",
    "reaction",
    "referral",
    "set_status",
]

_STATUSES = ("active", "blocked", "unavailable")
Result = tuple[int, Any]


class ControlError(Exception):
    """A control-plane mistake, answered as `{"error": message}` with `status`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def page_of(app: SimulatorApp, page_id: Any) -> Page:
    page = app.state.pages.get(str(page_id))
    if page is None:
        raise ControlError(f"No Page {page_id!r}; create it with POST /__sim/pages first.", 404)
    return page


def _time(value: Any, now: float) -> float | None:
    if value is None:
        return None
    if value == "now":
        return now
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("+0000", "+00:00")).timestamp()
    except ValueError as exc:
        raise ControlError(
            f'last_user_action {value!r} is not "now", an ISO time or null.'
        ) from exc


async def create_users(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    items = payload if isinstance(payload, list) else [payload]
    state = app.state
    now = state.clock.now()
    pages: dict[str, Page] = {}
    created = 0
    for item in items:
        if not isinstance(item, dict):
            raise ControlError("Each user must be a JSON object.")
        page_id = str(item["page_id"])
        page = pages.get(page_id) or page_of(app, page_id)
        pages[page_id] = page
        status = item.get("status", "active")
        if status not in _STATUSES:
            raise ControlError(f"status must be one of {', '.join(_STATUSES)}; got {status!r}.")
        psid = str(item["psid"])
        last = _time(item.get("last_user_action"), now)
        user = User(
            psid=psid,
            page_id=page_id,
            first_name=str(item.get("first_name", "")),
            last_name=str(item.get("last_name", "")),
            status=status,
            last_user_action=last,
            role_on_app=bool(item.get("role_on_app", False)),
            profile_available=bool(item.get("profile_available", True)),
        )
        page.users[psid] = user
        if last is not None:
            thread = state.thread_for(page, psid)
            if thread.messages:  # re-created person: keep the thread, move it if newer
                thread.updated = max(thread.updated, last)
            else:  # the message that opened the thread, so it lists in conversations
                thread.messages.append(
                    ThreadMessage(
                        mid=f"m_seed_{page_id}_{psid}",
                        from_id=psid,
                        to_id=page_id,
                        created=last,
                        text=str(item.get("text", "Hi")),
                    )
                )
                thread.updated = last
        created += 1
    return 200, {"created": created}


async def set_status(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    user = _user(app, payload)
    status = payload.get("status")
    if status not in _STATUSES:
        raise ControlError(f"status must be one of {', '.join(_STATUSES)}.")
    user.status = status
    if "role_on_app" in payload:
        user.role_on_app = bool(payload["role_on_app"])
    if "profile_available" in payload:
        user.profile_available = bool(payload["profile_available"])
    if "thread_owner_app_id" in payload:
        user.thread_owner_app_id = payload["thread_owner_app_id"]
    return 200, {"psid": user.psid, "status": user.status}


def _user(app: SimulatorApp, payload: Any, *, create: bool = False) -> User:
    if not isinstance(payload, dict):
        raise ControlError("The body must be a JSON object.")
    page = page_of(app, payload["page_id"])
    psid = str(payload["psid"])
    user = page.users.get(psid)
    if user is None:
        if not create:
            raise ControlError(f"No person {psid!r} on Page {page.page_id}.", 404)
        user = page.users[psid] = User(psid=psid, page_id=page.page_id)
    return user


def _user_acts(app: SimulatorApp, payload: Any, text: str | None) -> tuple[Page, User, str]:
    """The person acts now: refresh the window, append to the thread, return a new mid."""
    user = _user(app, payload, create=True)
    page = app.state.pages[user.page_id]
    return page, user, person_acts(app.state, page, user, text)


def person_acts(state: SimState, page: Page, user: User, text: str | None) -> str:
    """`user` acts in `page`'s thread now (also a click or reply of engagement.py): refresh
    the window, append to the thread, return the new message's mid."""
    now = state.clock.now()
    user.last_user_action = now
    mid = state.new_mid()
    thread = state.thread_for(page, user.psid)
    thread.messages.append(
        ThreadMessage(mid=mid, from_id=user.psid, to_id=page.page_id, created=now, text=text)
    )
    thread.updated = now
    thread.unread += 1
    return mid


async def inbound(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    text = payload.get("text") if isinstance(payload, dict) else None
    page, user, mid = _user_acts(app, payload, None if text is None else str(text))
    message: dict[str, Any] = {"mid": mid}
    if text is not None:
        message["text"] = str(text)
    if payload.get("quick_reply_payload"):
        message["quick_reply"] = {"payload": str(payload["quick_reply_payload"])}
    if payload.get("attachments"):
        message["attachments"] = payload["attachments"]
    app.emitter.user_event(page, user.psid, "message", message, "messages")
    return 200, {"mid": mid}


async def postback(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    page, user, mid = _user_acts(app, payload, None)
    value = {
        "mid": mid,
        "title": str(payload.get("title", "")),
        "payload": str(payload.get("payload", "")),
    }
    app.emitter.user_event(page, user.psid, "postback", value, "messaging_postbacks")
    return 200, {"mid": mid}


async def reaction(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    page, user, _ = _user_acts(app, payload, None)
    page.threads[user.psid].messages.pop()  # a reaction is not a message in the thread
    value = {
        "reaction": str(payload.get("reaction", "love")),
        "emoji": str(payload.get("emoji", "\u2764\ufe0f")),
        "action": str(payload.get("action", "react")),
        "mid": str(payload.get("mid", "")),
    }
    app.emitter.user_event(page, user.psid, "reaction", value, "message_reactions")
    return 200, {"ok": True}


async def referral(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    page, user, _ = _user_acts(app, payload, None)
    page.threads[user.psid].messages.pop()
    source = str(payload.get("source", "SHORTLINK"))
    if payload.get("ctm") or source == "ADS":
        user.ctm_window_until = app.state.clock.now() + 7 * 86400
    value = {
        "ref": str(payload.get("ref", "")),
        "source": source,
        "type": str(payload.get("type", "OPEN_THREAD")),
    }
    app.emitter.user_event(page, user.psid, "referral", value, "messaging_referrals")
    return 200, {"ok": True, "ctm_window_until": user.ctm_window_until}


async def optin(app: SimulatorApp, query: dict[str, str], payload: Any) -> Result:
    """`messaging_optins`: a checkbox / Send-to-Messenger opt-in (`type` "checkbox", the
    default), or the legacy `notification_messages` opt-in, which hands out a token."""
    if not isinstance(payload, dict):
        raise ControlError("The body must be a JSON object.")
    page = page_of(app, payload["page_id"])
    kind = str(payload.get("type", "checkbox"))
    psid, user_ref = payload.get("psid"), payload.get("user_ref")
    value: dict[str, Any] = {}
    answer: dict[str, Any] = {"ok": True}
    if kind == "checkbox":
        if (psid is None) == (user_ref is None):
            raise ControlError('A checkbox opt-in needs exactly one of "psid" or "user_ref".')
        value["ref"] = str(payload.get("ref", ""))
        if user_ref is not None:
            value["user_ref"] = str(user_ref)
    elif kind == "notification_messages":
        if psid is None:
            raise ControlError('A notification_messages opt-in needs "psid".')
        token = str(app.state.new_id(20))
        value = {
            "type": "notification_messages",
            "payload": str(payload.get("payload", "")),
            "notification_messages_token": token,
            "notification_messages_frequency": str(payload.get("frequency", "DAILY")),
            "token_expiry_timestamp": int((app.state.clock.now() + 365 * 86400) * 1000),
            "user_token_status": "NOT_REFRESHED",
            "notification_messages_timezone": "UTC",
            "title": str(payload.get("title", "Updates")),
        }
        status = payload.get("status")
        if status is not None:
            if status not in ("STOP_NOTIFICATIONS", "RESUME_NOTIFICATIONS"):
                raise ControlError('"status" must be STOP_NOTIFICATIONS or RESUME_NOTIFICATIONS.')
            value["notification_messages_status"] = status
        answer["notification_messages_token"] = token
    else:
        raise ControlError('"type" must be "checkbox" or "notification_messages".')
    if psid is not None:
        user = _user(app, {"page_id": page.page_id, "psid": psid}, create=True)
        user.last_user_action = app.state.clock.now()  # opting in is a user action
        app.emitter.optin(page, {"id": user.psid}, value)
    else:
        app.emitter.optin(page, {"user_ref": str(user_ref)}, value)
    return 200, answer
