"""The message fields of the composer and the template form: the form as a `Content` body,
and a stored content as form values. One message: a text (with up to 3 buttons), one
image/video/audio/file (by URL or by `attachment_id`), or up to 10 cards."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.datastructures import FormData

from pagecast.message_schema import (
    BUTTON_TEXT_LIMIT,
    BUTTON_TITLE_LIMIT,
    CARD_LIMIT,
    CARD_TEXT_LIMIT,
    TEXT_LIMIT,
)

__all__ = [
    "CARD_FIELDS",
    "KINDS",
    "MEDIA_TYPES",
    "content_from",
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


def content_from(form: FormData) -> dict[str, Any]:
    """The message fields as a content body (what `content` takes in the API); the fields of
    the kinds not chosen are ignored. Text keeps its spaces and is never cut."""

    def get(name: str) -> str:
        return str(form.get(name, "")).strip()

    kind = get("message_kind") or "text"
    body: dict[str, Any] = {}
    if kind == "media":
        attachment = {"type": get("attachment_type") or "image"}
        if get("attachment_id"):
            attachment["attachment_id"] = get("attachment_id")
        if get("attachment_url") or not get("attachment_id"):
            attachment["url"] = get("attachment_url")
        body["attachment"] = attachment
    elif kind == "cards":
        body["cards"] = [c for i in range(CARD_LIMIT) if (c := _card(get, i)) is not None]
    else:
        text = str(form.get("text", ""))
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


def values_of(body: Mapping[str, Any] | None) -> dict[str, Any]:
    """A stored content as the form's values."""
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
    return values
