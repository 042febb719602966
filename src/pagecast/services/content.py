"""Message content: personalisation (`{{first_name|there}}`) and the Send API `message` object."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pagecast.errors import InvalidInput
from pagecast.schemas import Content

__all__ = ["VARIABLES", "check_length", "render", "to_message", "variables_in"]

VARIABLES = ("first_name", "last_name", "full_name")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*(?:\|([^}]*))?\}\}")


def variables_in(text: str, *, field: str = "content.text") -> list[tuple[str, str]]:
    """The (variable, fallback) pairs in `text`; unknown variables raise InvalidInput."""
    found = [(m.group(1), (m.group(2) or "").strip()) for m in _PLACEHOLDER.finditer(text)]
    unknown = sorted({name for name, _ in found if name not in VARIABLES})
    if unknown:
        raise InvalidInput(
            f"Unknown personalisation {', '.join('{{' + u + '}}' for u in unknown)}; "
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
    """Refuse text that could exceed Messenger's limit once rendered.

    Each placeholder counts as the longer of its fallback and `longest[variable]`, the
    longest value that variable takes among the Page's contacts. `field` names the message
    (`messages.1` for a sequence's second).
    """
    if content.text is None:
        return
    worst = _PLACEHOLDER.sub("", content.text)
    length = len(worst) + sum(
        max(len(fallback), longest.get(name, 0))
        for name, fallback in variables_in(content.text, field=f"{field}.text")
    )
    if length > content.text_limit:
        kind = "a text with buttons" if content.buttons else "a text"
        raise InvalidInput(
            f"{field}.text can be {length:,} characters once personalised; Messenger allows at "
            f"most {content.text_limit:,} for {kind}. Shorten it by {length - content.text_limit:,}.",
            field=f"{field}.text",
        )


def to_message(content: Content, contact: Mapping[str, str | None]) -> dict[str, Any]:
    """The Send API `message` object for one contact (docs/graph-api.md, "A Send API request")."""
    message: dict[str, Any]
    if content.attachment is not None:
        message = {
            "attachment": {
                "type": content.attachment.type,
                "payload": {"url": content.attachment.url, "is_reusable": True},
            }
        }
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
