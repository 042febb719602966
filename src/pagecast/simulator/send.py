"""The Send API pipeline (steps 4–14 of docs/simulator.md, "Send pipeline"), in the order that
decides which error wins.

Steps 1–3 (token present, valid, appsecret_proof) run in `routes.authenticate` for every
Graph call; `send` takes over from the object check.
"""

from __future__ import annotations

from typing import Any

from pagecast.simulator import limits
from pagecast.simulator.context import CallContext, GraphRequest
from pagecast.simulator.errors import GraphError, bad_param, unsupported
from pagecast.simulator.faults import decide
from pagecast.simulator.state import OutboxEntry, Page, SimState, Thread, ThreadMessage, User
from pagecast.simulator.validation import SendSpec, rate_class, validate_send

__all__ = ["ATTACHMENT_TTL", "WINDOW", "resolve_page", "send", "size_limit"]

WINDOW = 86400.0
TAG_WINDOW = 7 * 86400.0
ATTACHMENT_TTL = 90 * 86400.0
_SIZE_LIMITS = {"image": 8 * 1024 * 1024}
_DEFAULT_SIZE_LIMIT = 25 * 1024 * 1024


def size_limit(media_type: str) -> int:
    """Largest file Messenger takes for a media type: 8 MB images, 25 MB otherwise."""
    return _SIZE_LIMITS.get(media_type, _DEFAULT_SIZE_LIMIT)


def resolve_page(state: SimState, req: GraphRequest, ctx: CallContext, object_id: str) -> Page:
    """Step 4: the path's Page must be the token's Page (`me` means the token's Page)."""
    token = ctx.token
    assert token is not None
    if token.kind != "PAGE":
        if object_id != "me" and object_id in token.page_ids and object_id in state.pages:
            page = state.pages[object_id]
            ctx.page = page
            return page
        raise GraphError(200, "(#200) Requires pages_messaging permission to manage the object")
    page_id = token.page_id if object_id == "me" else object_id
    if page_id != token.page_id or page_id not in state.pages:
        raise unsupported(req.method, object_id)
    page = state.pages[page_id]
    ctx.page = page
    return page


def send(state: SimState, req: GraphRequest, ctx: CallContext) -> dict[str, Any]:
    page = resolve_page(state, req, ctx, req.segments[0])
    token = ctx.token
    assert token is not None
    if token.kind != "PAGE":
        raise GraphError(200, "(#200) Requires pages_messaging permission to manage the object")
    if "pages_messaging" not in token.scopes or "MESSAGING" not in token.tasks:
        raise GraphError(200, "(#200) Requires pages_messaging permission to manage the object")
    _check_restriction(page)
    params = req.params
    recipient = params.get("recipient")
    if isinstance(recipient, dict) and "id" in recipient:
        ctx.psid = str(recipient["id"])
    now = state.clock.now()
    limits.charge(state, page, ctx, "messenger", rate_class(params, state.knobs), now)
    spec = validate_send(params, state.knobs, page, now)
    user = page.users.get(spec.recipient) if spec.recipient_kind == "id" else None
    if not state.app.live and not (user is not None and user.role_on_app):
        raise GraphError(
            200,
            "(#200) Cannot message users who are not admins, developers or "
            "testers of the app until pages_messaging permission is reviewed and "
            "the app is live.",
            subcode=2018028,
        )
    if spec.recipient_kind == "id":
        user = _resolve_user(state, user, spec.recipient)
        if spec.sender_action is None:
            _check_window(state, page, user, spec, now)
    _check_media(state, page, spec, now)
    drop = decide(state, path=req.path, psid=ctx.psid, page_id=page.page_id)
    return _commit(state, page, user, spec, ctx, drop, now)


def _check_restriction(page: Page) -> None:
    if page.restriction == "368":
        raise GraphError(
            368,
            "(#368) The action attempted has been deemed abusive or is otherwise disallowed",
            subcode=1390008,
        )
    if page.restriction == "1893063":
        raise GraphError(
            10, "(#10) You are temporarily restricted from sending messages", subcode=1893063
        )
    if page.restriction == "2022":
        raise GraphError(2022, "(#2022) This Page is temporarily blocked from sending messages")


def _resolve_user(state: SimState, user: User | None, psid: str) -> User:
    if user is None:
        raise GraphError(100, "(#100) No matching user found", subcode=2018001)
    if user.status == "blocked":
        raise GraphError(551, "(#551) This person isn't available right now.", subcode=1545041)
    if user.status == "unavailable":
        if state.knobs.unavailable_code == "200/1545041":
            raise GraphError(200, "This person isn't available right now.", subcode=1545041)
        raise GraphError(10, "(#10) This person isn't available right now.", subcode=2018108)
    if user.thread_owner_app_id and user.thread_owner_app_id != state.app.app_id:
        raise GraphError(2018300, "(#2018300) Another app controls this thread")
    return user


def _outside_window() -> GraphError:
    return GraphError(
        10,
        "(#10) This message is sent outside of allowed window. Learn more "
        "about the new policy here: "
        "https://developers.facebook.com/docs/messenger-platform/policy-overview",
        subcode=2018278,
    )


def _check_window(state: SimState, page: Page, user: User, spec: SendSpec, now: float) -> None:
    last = user.last_user_action
    since = None if last is None else now - last
    if spec.messaging_type != "MESSAGE_TAG":
        in_window = since is not None and since < WINDOW
        if not in_window and not (user.ctm_window_until and now < user.ctm_window_until):
            raise _outside_window()
        return
    tag = spec.tag
    if tag == "HUMAN_AGENT":
        if not state.app.human_agent:
            raise GraphError(10, "(#10) Application does not have permission for this action")
        if since is None or since >= TAG_WINDOW:
            raise _outside_window()
    elif tag == "CUSTOMER_FEEDBACK":
        if spec.template_type != "customer_feedback":
            raise bad_param("The CUSTOMER_FEEDBACK tag requires the customer_feedback template")
        if since is None or since >= TAG_WINDOW:
            raise _outside_window()
    elif tag == "NON_PROMOTIONAL_SUBSCRIPTION" and not page.news:
        raise GraphError(
            10,
            "(#10) This message is sent outside of allowed window. You need "
            "page_messaging_subscriptions permission to be able to do it.",
            subcode=2018065,
        )


def _check_media(state: SimState, page: Page, spec: SendSpec, now: float) -> None:
    media = spec.media
    if media is None:
        return
    if media["attachment_id"] is not None:
        saved = page.attachments.get(media["attachment_id"])
        if saved is None or now - saved["created_at"] > ATTACHMENT_TTL:
            raise bad_param("Invalid attachment id or the attachment has expired", subcode=2018074)
        return
    url = media["url"]
    knobs = state.knobs
    if url is None:  # the file itself came as multipart `filedata`
        if media["size"] > _SIZE_LIMITS.get(media["type"], _DEFAULT_SIZE_LIMIT):
            raise bad_param("Attachment size exceeds allowable limit", subcode=2018109)
        return
    if any(bad in url for bad in knobs.attachment_fail_urls):
        raise bad_param("Failed to fetch the file from the url", subcode=2018008)
    if media["type"] == "video" and any(slow in url for slow in knobs.attachment_slow_urls):
        raise bad_param("Video upload timed out", subcode=2018294)
    size = knobs.attachment_sizes.get(url)
    if size is not None and size > _SIZE_LIMITS.get(media["type"], _DEFAULT_SIZE_LIMIT):
        raise bad_param("Attachment size exceeds allowable limit", subcode=2018109)


def _commit(
    state: SimState,
    page: Page,
    user: User | None,
    spec: SendSpec,
    ctx: CallContext,
    drop: str | None,
    now: float,
) -> dict[str, Any]:
    knobs = state.knobs
    page.limiter.note_send(
        now,
        knobs.inbox_degrade_per_second,
        knobs.inbox_degrade_window,
        knobs.inbox_degrade_cooldown,
    )
    if spec.sender_action is not None:
        if drop == "after":
            ctx.drop = "after"
        return {"recipient_id": spec.recipient}
    message = spec.message or {}
    mid = state.new_mid()
    entry = OutboxEntry(
        mid=mid,
        page_id=page.page_id,
        psid=spec.recipient,
        message=message,
        metadata=message.get("metadata"),
        messaging_type=spec.messaging_type,
        tag=spec.tag,
        created=now,
        dropped_after_commit=drop == "after",
    )
    state.outbox.append(entry)
    state.outbox_by_mid[mid] = entry
    state.accepted += 1
    ctx.entry = entry
    if drop == "after":
        ctx.drop = "after"
    result: dict[str, Any] = {"recipient_id": spec.recipient, "message_id": mid}
    if spec.recipient_kind in ("user_ref", "phone_number"):
        del result["recipient_id"]
    media = spec.media
    if media is not None and media["is_reusable"]:
        attachment_id = state.new_id(16)
        page.attachments[attachment_id] = {"type": media["type"], "created_at": now}
        if media["size"] is not None:
            page.attachments[attachment_id]["size"] = media["size"]
        result["attachment_id"] = attachment_id
    if user is not None:
        thread = state.thread_for(page, user.psid)
        attachment = message.get("attachment")
        thread.messages.append(
            ThreadMessage(
                mid=mid,
                from_id=page.page_id,
                to_id=user.psid,
                created=now,
                text=message.get("text"),
                attachments=[attachment] if attachment else None,
                app_id=state.app.app_id,
                metadata=entry.metadata,
            )
        )
        thread.updated = now
        if knobs.reorder_concurrent_ms > 0:
            _reorder_concurrent(state, thread, knobs.reorder_concurrent_ms)
        emitter = state.emitter
        if emitter is not None:
            emitter.page_sent(page, thread, entry)
    return result


def _reorder_concurrent(state: SimState, thread: Thread, window_ms: float) -> None:
    """Step 15 (docs/simulator.md, "Display ordering"): a Page send accepted less than
    `window_ms` after the previous Page send to the same person swaps display order and
    `created_time` with it (each message swaps at most once, so four concurrent sends A B C D
    display as B A D C). The outbox keeps acceptance order; delivery and read watermarks
    follow the swapped times."""
    messages = thread.messages
    if len(messages) < 2:
        return
    new, previous = messages[-1], messages[-2]
    if previous.from_id != thread.page_id or previous.reordered:
        return
    if (new.created - previous.created) * 1000.0 >= window_ms:
        return
    messages[-2], messages[-1] = new, previous
    new.created, previous.created = previous.created, new.created
    new.reordered = previous.reordered = True
    first, second = state.outbox_by_mid.get(previous.mid), state.outbox_by_mid.get(new.mid)
    if first is not None and second is not None:
        first.created, second.created = second.created, first.created
