"""Content-dependent engagement: how people answer a message, by what it says
(docs/simulator.md, "Engagement").

`POST /__sim/knobs {"engagement": [{"match": "Sale", "p_read": 0.9, "p_click": 0.4,
"p_reply": 0.1}]}`: for each accepted message whose text, or one of its cards' titles,
contains a rule's `match` (the first matching rule wins), the rule's `p_read` replaces the
global one, and the person may later click (the message's first postback button, sent as
Facebook's `messaging_postbacks` event; without one, the first quick reply, sent as a
message with `quick_reply`) and reply (a text message, `reply_text`). Clicks and replies
come `click_delay` / `reply_delay` sim seconds after the send, drawn from the seeded
`engagement` stream, and act as the person: they refresh the messaging window and land in
the thread, as `POST /__sim/postback` and `POST /__sim/inbound` do. Only a message that
was delivered (the `p_delivered` draw) can be clicked or replied to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pagecast.simulator.state import OutboxEntry, Page, SimState

__all__ = ["RULE_KEYS", "click_of", "parse_rules", "plan", "rule_for", "texts_of"]

RULE_KEYS = ("match", "p_read", "p_click", "p_reply", "reply_text")
_PROBABILITIES = ("p_read", "p_click", "p_reply")
DEFAULT_REPLY = "Thanks!"


def parse_rules(value: Any) -> tuple[dict[str, Any], ...]:
    """The `engagement` knob checked: a list of rules, each with a non-empty `match` and
    optional probabilities between 0 and 1; ValueError naming what is wrong otherwise."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise ValueError(
            'engagement must be a list of rules such as {"match": "Sale", "p_click": 0.4}'
        )
    rules: list[dict[str, Any]] = []
    for i, rule in enumerate(value):
        where = f"engagement[{i}]"
        if not isinstance(rule, dict):
            raise ValueError(f"{where} must be an object with match, p_read, p_click, p_reply")
        unknown = sorted(set(rule) - set(RULE_KEYS))
        if unknown:
            raise ValueError(f"{where} has unknown keys {unknown}; known: {', '.join(RULE_KEYS)}")
        match = rule.get("match")
        if not isinstance(match, str) or not match:
            raise ValueError(f"{where}.match must be a non-empty string (a part of the text)")
        checked: dict[str, Any] = {"match": match}
        for key in _PROBABILITIES:
            if rule.get(key) is None:
                continue
            p = rule[key]
            if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
                raise ValueError(f"{where}.{key} must be a probability between 0 and 1")
            checked[key] = float(p)
        reply = rule.get("reply_text")
        if reply is not None:
            if not isinstance(reply, str) or not reply:
                raise ValueError(f"{where}.reply_text must be a non-empty string")
            checked["reply_text"] = reply
        rules.append(checked)
    return tuple(rules)


def _payload(message: dict[str, Any]) -> dict[str, Any]:
    attachment = message.get("attachment")
    payload = attachment.get("payload") if isinstance(attachment, dict) else None
    return payload if isinstance(payload, dict) else {}


def _elements(message: dict[str, Any]) -> list[dict[str, Any]]:
    elements = _payload(message).get("elements")
    return [e for e in elements if isinstance(e, dict)] if isinstance(elements, list) else []


def texts_of(message: dict[str, Any]) -> list[str]:
    """What a rule's `match` is looked for in: the text (a button template's too) and the
    cards' titles."""
    found = [message.get("text"), _payload(message).get("text")]
    found += [e.get("title") for e in _elements(message)]
    return [t for t in found if isinstance(t, str)]


def rule_for(rules: tuple[dict[str, Any], ...], message: dict[str, Any]) -> dict[str, Any] | None:
    """The first rule whose `match` is in the message's text or a card's title."""
    if not rules:
        return None
    texts = texts_of(message)
    return next((r for r in rules if any(r["match"] in t for t in texts)), None)


def click_of(message: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """What clicking the message sends: ("postback", the postback's value) for its first
    postback button, else ("quick_reply", the message's value) for its first quick reply;
    None when it has neither."""
    buttons = list(_payload(message).get("buttons") or [])
    for element in _elements(message):
        buttons += list(element.get("buttons") or [])
    for button in buttons:
        if isinstance(button, dict) and button.get("type") == "postback":
            return "postback", {
                "title": str(button.get("title", "")),
                "payload": str(button.get("payload", "")),
            }
    for quick in message.get("quick_replies") or []:
        if isinstance(quick, dict) and quick.get("payload") is not None:
            return "quick_reply", {
                "text": str(quick.get("title", "")),
                "quick_reply": {"payload": str(quick["payload"])},
            }
    return None


def plan(
    state: SimState, page: Page, entry: OutboxEntry, rule: dict[str, Any], *, delivered: bool
) -> None:
    """Schedule the person's click and reply to an accepted message, by the rule's chances;
    none for a message that was not `delivered` (the person never saw it).

    Every message a rule matches draws the same four numbers (click?, its delay, reply?,
    its delay) from the `engagement` stream, delivered or not, so one seed gives the same
    answers."""
    emitter = state.emitter
    knobs = state.knobs
    rng = state.rng("engagement")
    message = entry.message or {}
    clicks, click_delay = rng.random() < rule.get("p_click", 0.0), rng.uniform(*knobs.click_delay)
    replies, reply_delay = rng.random() < rule.get("p_reply", 0.0), rng.uniform(*knobs.reply_delay)
    if emitter is None or entry.psid is None or not delivered:
        return
    click = click_of(message) if clicks else None
    if click is not None:
        kind, value = click
        field = "messaging_postbacks" if kind == "postback" else "messages"
        emitter.schedule(
            page, field, ("act", _act(state, page, entry.psid, kind, value)), click_delay
        )
    if replies:
        value = {"text": rule.get("reply_text", DEFAULT_REPLY)}
        emitter.schedule(
            page, "messages", ("act", _act(state, page, entry.psid, "reply", value)), reply_delay
        )


def _act(
    state: SimState, page: Page, psid: str, kind: str, value: dict[str, Any]
) -> Callable[[], None]:
    """The person's action, done when it falls due: it refreshes the window, lands in the
    thread with a new mid and goes to the webhook as Facebook sends it."""

    def act() -> None:
        from pagecast.simulator.people import person_acts

        user = page.users.get(psid)
        if user is None or user.status != "active":
            return
        text = value.get("text") if kind != "postback" else None
        mid = person_acts(state, page, user, text)
        if kind == "postback":
            state.emitter.user_event(
                page, psid, "postback", {"mid": mid, **value}, "messaging_postbacks"
            )
        else:
            state.emitter.user_event(page, psid, "message", {"mid": mid, **value}, "messages")

    return act
