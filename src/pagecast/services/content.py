"""Message content: its rules (one set for preview, Save and Start), personalisation
(`{{first_name|there}}`) and the Send API `message` object.

`parse` reads a content body into `Content` and says what is wrong in words, naming the
field path (`content.cards[2].buttons[0].title`); `check_length` checks what depends on the
contacts (placeholders and the personalised length of every text Messenger limits).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from pagecast.errors import InvalidInput, field_path, in_words
from pagecast.message_schema import CARD_TEXT_LIMIT, Content

__all__ = [
    "VARIABLES",
    "check_length",
    "describe",
    "parse",
    "render",
    "texts",
    "to_message",
    "variables_in",
]

VARIABLES = ("first_name", "last_name", "full_name")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*(?:\|([^}]*))?\}\}")
_UNION_MEMBERS = ("all", "tags", "contacts", "filter", "segment")


def describe(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[tuple[str, str]]:
    """Each error of `exc` as (field path, what is wrong in words): never pydantic's own
    summary with its links."""
    found = []
    for error in exc.errors():
        loc = list((*prefix, *error["loc"]))
        # pydantic names the union member after `audience`; the field is `audience.…`.
        if len(loc) > 1 and loc[0] == "audience" and loc[1] in _UNION_MEMBERS:
            del loc[1]
        path = field_path(loc)
        found.append((path, f"{path}: {in_words(error)}" if path else in_words(error)))
    return found


def parse(raw: Any, field: str = "content") -> Content:
    """`raw` as `Content`, or InvalidInput naming the first wrong field in words."""
    if isinstance(raw, Content):
        return raw
    try:
        return Content.model_validate(raw)
    except ValidationError as exc:
        path, message = describe(exc, (field,))[0]
        raise InvalidInput(message, field=path) from None


def texts(content: Content, field: str = "content") -> Iterator[tuple[str, str, int]]:
    """The personalisable texts: (field path, text, Messenger's limit); `field` names the
    message (`messages[1]` for a sequence's second)."""
    if content.text is not None:
        yield f"{field}.text", content.text, content.text_limit
    for i, card in enumerate(content.cards or []):
        yield f"{field}.cards[{i}].title", card.title, CARD_TEXT_LIMIT
        if card.subtitle is not None:
            yield f"{field}.cards[{i}].subtitle", card.subtitle, CARD_TEXT_LIMIT


def variables_in(text: str, *, field: str = "content.text") -> list[tuple[str, str]]:
    """The (variable, fallback) pairs in `text`; unknown variables raise InvalidInput."""
    found = [(m.group(1), (m.group(2) or "").strip()) for m in _PLACEHOLDER.finditer(text)]
    unknown = sorted({name for name, _ in found if name not in VARIABLES})
    if unknown:
        raise InvalidInput(
            f"Unknown personalisation {', '.join('{{' + u + '}}' for u in unknown)} in {field}; "
            f"use {', '.join('{{' + v + '}}' for v in VARIABLES)}, with an optional fallback "
            "such as {{first_name|there}}.",
            field=field,
        )
    return found


def _values(contact: Mapping[str, str | None]) -> dict[str, str]:
    first = (contact.get("first_name") or "").strip()
    last = (contact.get("last_name") or "").strip()
    return {"first_name": first, "last_name": last, "full_name": f"{first} {last}".strip()}


def render(text: str, contact: Mapping[str, str | None]) -> str:
    """Fill the placeholders of `text` for one contact; an empty value takes the fallback."""
    values = _values(contact)

    def fill(match: re.Match[str]) -> str:
        return values.get(match.group(1)) or (match.group(2) or "").strip()

    return _PLACEHOLDER.sub(fill, text)


def check_length(content: Content, longest: Mapping[str, int], *, field: str = "content") -> None:
    """Refuse unknown placeholders, and text that could exceed Messenger's limit once rendered.

    Each placeholder counts as the longer of its fallback and `longest[variable]`, the
    longest value that variable takes among the Page's contacts (`{}`: fallbacks only).
    `field` names the message (`messages[1]` for a sequence's second).
    """
    for path, text, limit in texts(content, field):
        worst = _PLACEHOLDER.sub("", text)
        found = variables_in(text, field=path)
        if found and not (worst + "".join(fallback for _, fallback in found)).strip():
            # A contact without a name would get an empty message (or card title), which
            # Messenger refuses.
            name = found[0][0]
            raise InvalidInput(
                f"{path} is empty for a contact without a {name.replace('_', ' ')}; add a "
                f"fallback: {{{{{name}|there}}}}, or write some text around it.",
                field=path,
            )
        length = len(worst) + sum(max(len(fallback), longest.get(n, 0)) for n, fallback in found)
        if length > limit:
            kind = {f"{field}.text": "a text with buttons" if content.buttons else "a text"}.get(
                path, "a card's title or subtitle"
            )
            raise InvalidInput(
                f"{path} can be {length:,} characters once personalised; Messenger allows at "
                f"most {limit:,} for {kind}. Shorten it by {length - limit:,}.",
                field=path,
            )


def _media(content: Content) -> dict[str, Any]:
    assert content.attachment is not None
    if content.attachment.attachment_id is not None:
        payload: dict[str, Any] = {"attachment_id": content.attachment.attachment_id}
    else:
        payload = {"url": content.attachment.url, "is_reusable": True}
    return {"attachment": {"type": content.attachment.type, "payload": payload}}


def _cards(content: Content, contact: Mapping[str, str | None]) -> dict[str, Any]:
    elements = []
    for card in content.cards or []:
        element: dict[str, Any] = {"title": render(card.title, contact)}
        if card.subtitle:
            element["subtitle"] = render(card.subtitle, contact)
        if card.image_url:
            element["image_url"] = card.image_url
        if card.default_action is not None:
            element["default_action"] = card.default_action.model_dump(exclude_none=True)
        if card.buttons:
            element["buttons"] = [b.model_dump(exclude_none=True) for b in card.buttons]
        elements.append(element)
    payload = {"template_type": "generic", "elements": elements}
    return {"attachment": {"type": "template", "payload": payload}}


def to_message(content: Content, contact: Mapping[str, str | None]) -> dict[str, Any]:
    """The Send API `message` object for one contact (docs/graph-api.md, "A Send API request")."""
    message: dict[str, Any]
    if content.attachment is not None:
        message = _media(content)
    elif content.cards:
        message = _cards(content, contact)
    elif content.buttons:
        message = {
            "attachment": {
                "type": "template",
                "payload": {
                    "template_type": "button",
                    "text": render(content.text or "", contact),
                    "buttons": [b.model_dump(exclude_none=True) for b in content.buttons],
                },
            }
        }
    else:
        message = {"text": render(content.text or "", contact)}
    if content.quick_replies:
        message["quick_replies"] = [q.model_dump(exclude_none=True) for q in content.quick_replies]
    return message
