"""Step 8 of the Send pipeline (docs/simulator.md): body validation, each failure a code 100 error.

`validate_send` returns a `SendSpec` with the parsed parts the later steps need; it never
looks at the recipient's state (that is steps 9–11).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pagecast.simulator.bodies import FilePart
from pagecast.simulator.errors import GraphError, bad_param
from pagecast.simulator.state import Knobs, Page

__all__ = ["RETIRED_TAGS", "SendSpec", "rate_class", "validate_send"]

RECIPIENT_KEYS = (
    "id",
    "user_ref",
    "comment_id",
    "post_id",
    "notification_messages_token",
    "phone_number",
    "one_time_notif_token",
)
MESSAGING_TYPES = frozenset({"RESPONSE", "UPDATE", "MESSAGE_TAG"})
RETIRED_TAGS = frozenset({"ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"})
ALLOWED_TAGS = frozenset({"HUMAN_AGENT", "CUSTOMER_FEEDBACK", "NON_PROMOTIONAL_SUBSCRIPTION"})
SENDER_ACTIONS = frozenset({"typing_on", "typing_off", "mark_seen", "react", "unreact"})
NOTIFICATION_TYPES = frozenset({"REGULAR", "SILENT_PUSH", "NO_PUSH"})
ATTACHMENT_TYPES = frozenset({"image", "video", "audio", "file", "template"})
QUICK_REPLY_TYPES = frozenset({"text", "user_phone_number", "user_email"})
BUTTON_TYPES = frozenset(
    {"web_url", "postback", "phone_number", "account_link", "account_unlink", "game_play"}
)


@dataclass(slots=True)
class SendSpec:
    recipient_kind: str
    recipient: str
    message: dict[str, Any] | None
    sender_action: str | None
    messaging_type: str | None
    tag: str | None
    template_type: str | None = None
    media: dict[str, Any] | None = None  # {"type", "url"|"attachment_id"|"size", "is_reusable"}
    upload: FilePart | None = None  # a multipart `filedata` part sent with the message


def rate_class(params: dict[str, Any], knobs: Knobs) -> str:
    """The per-second class of a send: `av` for audio/video, image/file by knob, else text."""
    message = params.get("message")
    if isinstance(message, dict):
        attachment = message.get("attachment")
        if isinstance(attachment, dict):
            kind = attachment.get("type")
            if kind in ("audio", "video"):
                return "av"
            if kind in ("image", "file"):
                return knobs.image_file_class
    return "text"


def _length(text: str, knobs: Knobs) -> int:
    if knobs.count_utf16:
        return len(text.encode("utf-16-le")) // 2
    return len(text)


def validate_send(params: dict[str, Any], knobs: Knobs, page: Page, now: float) -> SendSpec:
    kind, recipient = _recipient(params.get("recipient"))
    message = params.get("message")
    action = params.get("sender_action")
    if message is not None and action is not None:
        raise bad_param("Only one of message or sender_action can be specified")
    if message is None and action is None:
        raise bad_param("Must send either message or sender_action")
    if action is not None:
        if action not in SENDER_ACTIONS:
            raise bad_param(
                "Param sender_action must be one of {TYPING_ON, TYPING_OFF, "
                "MARK_SEEN, REACT, UNREACT}"
            )
        return SendSpec(kind, recipient, None, action, None, None)
    messaging_type = params.get("messaging_type")
    allowed = MESSAGING_TYPES | ({"UTILITY"} if knobs.allow_utility else set())
    if messaging_type is None:
        raise bad_param("The parameter messaging_type is required")
    if messaging_type not in allowed:
        raise bad_param("Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}")
    tag = params.get("tag")
    if messaging_type == "MESSAGE_TAG":
        if tag is None:
            raise bad_param("Param tag is required when messaging_type is MESSAGE_TAG")
        retired = tag in RETIRED_TAGS and now >= knobs.retired_tags_from
        if retired or (tag not in ALLOWED_TAGS and tag not in RETIRED_TAGS):
            raise bad_param("Invalid parameter")
    elif tag is not None and not isinstance(tag, str):
        raise bad_param("Invalid parameter")
    spec = SendSpec(kind, recipient, None, None, messaging_type, tag)
    upload = params.get("filedata")
    if isinstance(upload, FilePart):
        spec.upload = upload
    _message(message, spec, knobs)
    notification = params.get("notification_type")
    if notification is not None and notification not in NOTIFICATION_TYPES:
        raise bad_param("Param notification_type must be one of {REGULAR, SILENT_PUSH, NO_PUSH}")
    persona = params.get("persona_id")
    if persona is not None and str(persona) not in page.personas:
        raise bad_param(f"Invalid persona_id {persona}")
    return spec


def _recipient(value: Any) -> tuple[str, str]:
    if value is None:
        raise bad_param("The parameter recipient is required")
    if not isinstance(value, dict):
        raise bad_param("Param recipient must be a JSON object")
    keys = [k for k in RECIPIENT_KEYS if k in value]
    if len(keys) != 1:
        raise bad_param(
            "Param recipient must have exactly one of id, user_ref, comment_id, "
            "post_id or notification_messages_token"
        )
    raw = value[keys[0]]
    if isinstance(raw, bool) or not isinstance(raw, str | int) or str(raw) == "":
        raise bad_param(f"Param recipient[{keys[0]}] must be a non-empty string")
    return keys[0], str(raw)


def _message(message: Any, spec: SendSpec, knobs: Knobs) -> None:
    if not isinstance(message, dict):
        raise bad_param("Param message must be a JSON object")
    text = message.get("text")
    attachment = message.get("attachment")
    has_text = text is not None and text != ""
    if not has_text and attachment is None:
        raise GraphError(
            100, "Message cannot be empty, must provide valid attachment or text", subcode=2018034
        )
    if has_text and attachment is not None:
        raise bad_param("Only one of text or attachment can be specified in message")
    if has_text:
        if not isinstance(text, str):
            raise bad_param("Param message[text] must be a UTF-8 encoded string")
        if _length(text, knobs) > 2000:
            raise bad_param("Length of param message[text] must be less than or equal to 2000")
    else:
        _attachment(attachment, spec, knobs)
    quick_replies = message.get("quick_replies")
    if quick_replies is not None:
        message = dict(message)
        message["quick_replies"] = _quick_replies(quick_replies, knobs)
    metadata = message.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, str):
            raise bad_param("Param message[metadata] must be a string")
        if len(metadata) >= 1000:
            raise bad_param("Length of param message[metadata] must be less than 1000")
    spec.message = message


def _quick_replies(value: Any, knobs: Knobs) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise bad_param("Param message[quick_replies] must be an array")
    if len(value) > 13:
        raise bad_param("Param message[quick_replies] must have at most 13 elements")
    cleaned = []
    for i, item in enumerate(value):
        where = f"message[quick_replies][{i}]"
        if not isinstance(item, dict) or item.get("content_type") not in QUICK_REPLY_TYPES:
            raise bad_param(
                f"Param {where}[content_type] must be one of "
                "{text, user_phone_number, user_email}"
            )
        if item["content_type"] == "text":
            title, payload = item.get("title"), item.get("payload")
            if not isinstance(title, str) or not title:
                raise bad_param(f"Param {where}[title] is required")
            if not isinstance(payload, str | int) or payload == "":
                raise bad_param(f"Param {where}[payload] is required")
            if len(str(payload)) > 1000:
                raise bad_param(
                    f"Length of param {where}[payload] must be less than or equal to 1000"
                )
            if len(title) > 20:
                if knobs.reject_long_titles:
                    raise bad_param(
                        f"Length of param {where}[title] must be less than or equal to 20"
                    )
                item = {**item, "title": title[:20]}
        cleaned.append(item)
    return cleaned


def _attachment(attachment: Any, spec: SendSpec, knobs: Knobs) -> None:
    if not isinstance(attachment, dict) or attachment.get("type") not in ATTACHMENT_TYPES:
        raise bad_param(
            "Param message[attachment][type] must be one of {image, video, audio, file, template}"
        )
    payload = attachment.get("payload")
    if not isinstance(payload, dict):
        raise bad_param("Param message[attachment][payload] must be a JSON object")
    kind = attachment["type"]
    if kind == "template":
        spec.template_type = str(payload.get("template_type"))
        _template(payload, knobs)
        return
    has_url, has_id = "url" in payload, "attachment_id" in payload
    if has_url + has_id + (spec.upload is not None) != 1:
        raise bad_param(
            "Param message[attachment][payload] must have exactly one of url or "
            "attachment_id, or the file must be sent as filedata"
        )
    if has_url and (not isinstance(payload["url"], str) or not payload["url"]):
        raise bad_param("Param message[attachment][payload][url] must be a URL")
    spec.media = {
        "type": kind,
        "url": payload.get("url"),
        "attachment_id": str(payload["attachment_id"]) if has_id else None,
        "size": spec.upload.size if spec.upload is not None else None,
        "is_reusable": payload.get("is_reusable") is True,
    }


def _template(payload: dict[str, Any], knobs: Knobs) -> None:
    template_type = payload.get("template_type")
    where = "message[attachment][payload]"
    if template_type == "button":
        text = payload.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= 640:
            raise bad_param(f"Param {where}[text] must be 1 to 640 characters")
        _buttons(payload.get("buttons"), f"{where}[buttons]", minimum=1)
    elif template_type == "generic":
        elements = payload.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
            raise bad_param(f"Param {where}[elements] must have 1 to 10 elements")
        for i, element in enumerate(elements):
            at = f"{where}[elements][{i}]"
            if not isinstance(element, dict):
                raise bad_param(f"Param {at} must be a JSON object")
            title = element.get("title")
            if not isinstance(title, str) or not title:
                raise bad_param(f"Param {at}[title] is required")
            if len(title) > 80:
                raise bad_param(f"Length of param {at}[title] must be less than or equal to 80")
            subtitle = element.get("subtitle")
            if subtitle is not None and (not isinstance(subtitle, str) or len(subtitle) > 80):
                raise bad_param(f"Length of param {at}[subtitle] must be less than or equal to 80")
            if element.get("buttons") is not None:
                _buttons(element["buttons"], f"{at}[buttons]", minimum=0)
            if not any(
                element.get(k) for k in ("subtitle", "image_url", "default_action", "buttons")
            ):
                raise bad_param(
                    f"Param {at}: At least one property must be set in addition to title"
                )


def _buttons(buttons: Any, where: str, *, minimum: int) -> None:
    if not isinstance(buttons, list) or not minimum <= len(buttons) <= 3:
        raise bad_param(f"Param {where} must have {minimum} to 3 buttons")
    for i, button in enumerate(buttons):
        at = f"{where}[{i}]"
        if not isinstance(button, dict) or button.get("type") not in BUTTON_TYPES:
            raise bad_param(f"Param {at}[type] must be a valid button type")
        kind = button["type"]
        title = button.get("title")
        if kind not in ("account_link", "account_unlink") and (
            not isinstance(title, str) or not title or len(title) > 20
        ):
            raise bad_param(f"Param {at}[title] is required and at most 20 characters")
        if kind == "web_url" and not isinstance(button.get("url"), str):
            raise bad_param(f"Param {at}[url] is required")
        if kind in ("postback", "phone_number"):
            payload = button.get("payload")
            if not isinstance(payload, str) or not payload or len(payload) > 1000:
                raise bad_param(f"Param {at}[payload] is required")
