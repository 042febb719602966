"""The message fields of the composer and the template form: the form as a `Content` body,
and a stored content as form values. One message: a text (with up to 3 buttons), one
image/video/audio/file (by URL or by `attachment_id`), or up to 10 cards.

The composer edits a sequence of up to `MAX_MESSAGES` (issue 19): message 1's fields have
no prefix (as on the template form), message k's the prefix `mk_` (`prefix(k)`), and
`message_count` says how many there are."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pagecast.message_schema import (
    BUTTON_TEXT_LIMIT,
    BUTTON_TITLE_LIMIT,
    CARD_LIMIT,
    CARD_TEXT_LIMIT,
    TEXT_LIMIT,
)
from pagecast.schemas import MAX_MESSAGES

__all__ = [
    "CARD_FIELDS",
    "KINDS",
    "MEDIA_TYPES",
    "content_from",
    "count_of",
    "messages_from",
    "prefix",
    "resequence",
    "sequence_values",
    "split",
    "template_context",
    "values_of",
]

KINDS = (("text", "Text"), ("media", "Image, video, audio or file"), ("cards", "Cards"))
MEDIA_TYPES = ("image", "video", "audio", "file")
CARD_FIELDS = ("title", "subtitle", "image_url", "url")


def template_context() -> dict[str, Any]:
    """What `_message_fields.html` shows: the kinds, media types and Messenger's limits
    (`message_schema`'s, so the form says the numbers Save checks)."""
    return {
        "kinds": KINDS,
        "media_types": MEDIA_TYPES,
        "card_limit": CARD_LIMIT,
        "limits": {
            "text": TEXT_LIMIT,
            "button_text": BUTTON_TEXT_LIMIT,
            "title": BUTTON_TITLE_LIMIT,
            "card_text": CARD_TEXT_LIMIT,
        },
    }


def _names() -> tuple[str, ...]:
    """Every field name of one message, without its prefix."""
    buttons = [f"button{j}_{part}" for j in range(3) for part in ("title", "target")]
    cards = [f"card{i}_{name}" for i in range(CARD_LIMIT) for name in (*CARD_FIELDS, *buttons)]
    return (
        "message_kind",
        "text",
        "attachment_type",
        "attachment_url",
        "attachment_id",
        "upload_once",
        "quick_replies",
        *buttons,
        *cards,
    )


NAMES = _names()


def prefix(position: int) -> str:
    """The prefix of message `position`'s fields (1-based): none for the first."""
    return "" if position == 1 else f"m{position}_"


def split(value: str) -> list[str]:
    """A list typed in one field, by commas or lines ("a, b" or one per line)."""
    return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]


def _button(title: str, target: str) -> dict[str, str]:
    if target.startswith(("http://", "https://")):
        return {"type": "web_url", "title": title, "url": target}
    return {"type": "postback", "title": title, "payload": target or title}


def _buttons(get: Callable[[str], str], prefix: str) -> list[dict[str, str]]:
    found = []
    for i in range(3):
        title, target = get(f"{prefix}button{i}_title"), get(f"{prefix}button{i}_target")
        if title or target:
            found.append(_button(title, target))
    return found


def _card(get: Callable[[str], str], i: int) -> dict[str, Any] | None:
    at = f"card{i}_"
    given = {name: get(at + name) for name in CARD_FIELDS}
    buttons = _buttons(get, at)
    if not any(given.values()) and not buttons:
        return None
    card: dict[str, Any] = {"title": given["title"]}
    if given["subtitle"]:
        card["subtitle"] = given["subtitle"]
    if given["image_url"]:
        card["image_url"] = given["image_url"]
    if given["url"]:
        card["default_action"] = {"type": "web_url", "url": given["url"]}
    if buttons:
        card["buttons"] = buttons
    return card


def content_from(form: Mapping[str, Any], at: str = "") -> dict[str, Any]:
    """The message fields (those named with prefix `at`) as a content body (what `content`
    takes in the API); the fields of the kinds not chosen are ignored. Text keeps its spaces
    and is never cut."""

    def get(name: str) -> str:
        return str(form.get(at + name, "")).strip()

    kind = get("message_kind") or "text"
    body: dict[str, Any] = {}
    if kind == "media":
        attachment = {"type": get("attachment_type") or "image"}
        # A URL typed replaces the id of a file uploaded once (shown read-only on the form).
        if get("attachment_url") or not get("attachment_id"):
            attachment["url"] = get("attachment_url")
        else:
            attachment["attachment_id"] = get("attachment_id")
        body["attachment"] = attachment
    elif kind == "cards":
        body["cards"] = [c for i in range(CARD_LIMIT) if (c := _card(get, i)) is not None]
    else:
        text = str(form.get(at + "text", ""))
        if text.strip():
            body["text"] = text.strip()
        if buttons := _buttons(get, ""):
            body["buttons"] = buttons
    replies = [{"title": t, "payload": t.upper()[:1000]} for t in split(get("quick_replies"))]
    if replies:
        body["quick_replies"] = replies
    return body


def _button_values(values: dict[str, Any], prefix: str, buttons: list[Mapping[str, Any]]) -> None:
    for i, button in enumerate(buttons):
        values[f"{prefix}button{i}_title"] = button.get("title", "")
        values[f"{prefix}button{i}_target"] = button.get("url") or button.get("payload", "")


def values_of(body: Mapping[str, Any] | None, named: str = "") -> dict[str, Any]:
    """A stored content as the form's values (named with prefix `named`)."""
    body = body or {}
    media = body.get("attachment") or {}
    kind = "media" if media else "cards" if body.get("cards") else "text"
    values: dict[str, Any] = {
        "message_kind": kind,
        "text": body.get("text", ""),
        "attachment_type": media.get("type", "image"),
        "attachment_url": media.get("url", ""),
        "attachment_id": media.get("attachment_id", ""),
        "quick_replies": ", ".join(q.get("title", "") for q in body.get("quick_replies", [])),
    }
    _button_values(values, "", body.get("buttons", []))
    for i, card in enumerate(body.get("cards", [])):
        at = f"card{i}_"
        values[at + "title"] = card.get("title", "")
        values[at + "subtitle"] = card.get("subtitle", "")
        values[at + "image_url"] = card.get("image_url", "")
        values[at + "url"] = (card.get("default_action") or {}).get("url", "")
        _button_values(values, at, card.get("buttons", []))
    return {named + name: value for name, value in values.items()}


def count_of(form: Mapping[str, Any]) -> int:
    """How many messages the form has (`message_count`, 1 to `MAX_MESSAGES`)."""
    try:
        count = int(str(form.get("message_count", "1")).strip() or 1)
    except ValueError:
        count = 1
    return min(max(count, 1), MAX_MESSAGES)


def messages_from(form: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each message of the form as a content body, in order."""
    return [content_from(form, prefix(k)) for k in range(1, count_of(form) + 1)]


def sequence_values(bodies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A stored sequence (or one message) as the composer's values."""
    values: dict[str, Any] = {"message_count": max(len(bodies), 1)}
    for k, body in enumerate(bodies or [{}], start=1):
        values |= values_of(body, prefix(k))
    return values


def resequence(form: Mapping[str, Any]) -> dict[str, Any] | None:
    """The composer's "Add a message" / "Remove" (`sequence` = `add` or `remove-K`): the
    form's values with one more empty message, or without message K (the later ones move
    up); None when the form was not sent by one of them."""
    action = str(form.get("sequence", ""))
    if not action:
        return None
    values = {name: value for name, value in form.items() if name != "sequence"}
    count = count_of(form)
    if action == "add":
        values["message_count"] = min(count + 1, MAX_MESSAGES)
        return values
    removed = action.removeprefix("remove-")
    if not removed.isdigit() or not 1 < int(removed) <= count:
        return values
    for k in range(int(removed), count):
        for name in NAMES:
            values.pop(prefix(k) + name, None)
            if prefix(k + 1) + name in values:
                values[prefix(k) + name] = values.pop(prefix(k + 1) + name)
    for name in NAMES:
        values.pop(prefix(count) + name, None)
    values["message_count"] = count - 1
    return values
