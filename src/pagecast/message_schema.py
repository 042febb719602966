"""The shape of one Messenger message (`Content`: a text with buttons or quick replies, one
attachment, or cards) and Messenger's limits on it (docs/graph-api.md, "Message limits
Pagecast checks"). The limits that depend on personalisation are `services.content`'s."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from pagecast.input_types import HttpsUrl, HttpUrl, Input, Line, Text

__all__ = [
    "BUTTON_TEXT_LIMIT",
    "BUTTON_TITLE_LIMIT",
    "CARD_LIMIT",
    "CARD_TEXT_LIMIT",
    "TEXT_LIMIT",
    "Attachment",
    "AttachmentUpload",
    "Button",
    "Card",
    "Content",
    "DefaultAction",
    "QuickReply",
]

TEXT_LIMIT = 2000
BUTTON_TEXT_LIMIT = 640
CARD_TEXT_LIMIT = 80  # a card's title and subtitle
CARD_LIMIT = 10  # cards in one carousel
BUTTON_TITLE_LIMIT = 20  # a button's or a quick reply's title


def _no_placeholder(value: str) -> str:
    if "{{" in value:
        raise ValueError(
            "holds a placeholder: Messenger sends button and quick reply titles as written, "
            "without personalising them; write the title without {{ }}"
        )
    return value


# A button's or a quick reply's title: short, and sent as written.
Title = Annotated[
    Line,
    StringConstraints(min_length=1, max_length=BUTTON_TITLE_LIMIT),
    AfterValidator(_no_placeholder),
]


class Button(Input):
    type: Literal["web_url", "postback"]
    title: Title
    url: HttpUrl | None = None
    payload: Annotated[Text, StringConstraints(min_length=1, max_length=1000)] | None = None

    @model_validator(mode="after")
    def _target(self) -> Button:
        if self.type == "web_url" and not self.url:
            raise ValueError("a web_url button needs a url")
        if self.type == "postback" and not self.payload:
            raise ValueError("a postback button needs a payload")
        return self


class QuickReply(Input):
    content_type: Literal["text", "user_email", "user_phone_number"] = "text"
    title: Title | None = None
    payload: Annotated[Text, StringConstraints(min_length=1, max_length=1000)] | None = None
    image_url: HttpsUrl | None = None

    @model_validator(mode="after")
    def _text_needs_title(self) -> QuickReply:
        if self.content_type == "text" and not (self.title and self.payload):
            raise ValueError("a text quick reply needs a title and a payload")
        return self


class Attachment(Input):
    """Media by URL (Messenger fetches it) or by an `attachment_id` from the Attachment
    Upload API (`POST /api/pages/{id}/attachments`)."""

    type: Literal["image", "file", "video", "audio"]
    url: HttpsUrl | None = None
    attachment_id: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,32}$")] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Attachment:
        if (self.url is None) == (self.attachment_id is None):
            raise ValueError("give either url or attachment_id (one of them)")
        return self


class AttachmentUpload(Input):
    """`POST /api/pages/{id}/attachments`: media to upload once and send by id."""

    type: Literal["image", "file", "video", "audio"]
    url: HttpsUrl


class DefaultAction(Input):
    """What tapping a card opens."""

    type: Literal["web_url"] = "web_url"
    url: HttpsUrl


class Card(Input):
    """One element of a generic template. `title` and `subtitle` may hold placeholders;
    their 80-character limit is checked once personalised (`services.content`)."""

    title: Annotated[Line, StringConstraints(min_length=1)]
    subtitle: Line | None = None
    image_url: HttpsUrl | None = None
    default_action: DefaultAction | None = None
    buttons: Annotated[list[Button], Field(max_length=3)] = []

    @model_validator(mode="after")
    def _more_than_a_title(self) -> Card:
        # Facebook: "At least one property must be set in addition to title".
        if not (self.subtitle or self.image_url or self.default_action or self.buttons):
            raise ValueError(
                "a card needs more than a title (Facebook refuses it): add a subtitle, an "
                "image_url, a default_action or a button"
            )
        return self


class Content(Input):
    """ONE message: a text (with buttons or quick replies), one attachment, or a generic
    template (`cards`, 1 to 10: a carousel when more than one). Quick replies go with any."""

    text: (
        Annotated[
            Text,
            StringConstraints(min_length=1),
            Field(
                description="At most 2,000 characters once personalised (640 with buttons); "
                "placeholders {{first_name}}, {{last_name}}, {{full_name}}, each with an optional "
                "|fallback."
            ),
        ]
        | None
    ) = None
    attachment: Attachment | None = None
    cards: (
        Annotated[
            list[Card],
            Field(
                min_length=1,
                max_length=CARD_LIMIT,
                description="A generic template: 1 to 10 cards (a carousel when more than one).",
            ),
        ]
        | None
    ) = None
    buttons: Annotated[
        list[Button], Field(max_length=3, description="Under the text: a button template.")
    ] = []
    quick_replies: Annotated[list[QuickReply], Field(max_length=13)] = []

    @model_validator(mode="after")
    def _shape(self) -> Content:
        given = [n for n in ("text", "attachment", "cards") if getattr(self, n) is not None]
        if not given:
            raise ValueError("give a text, an attachment or cards")
        if len(given) > 1:
            raise ValueError(
                f"one message holds one of text, attachment or cards, not {' and '.join(given)}; "
                "Messenger sends them as separate messages (put a link button under the text, "
                "or a picture on a card)"
            )
        if self.buttons and self.text is None:
            raise ValueError("buttons go under a text (a card has its own buttons); add a text")
        return self

    def stored(self) -> dict[str, Any]:
        """The JSON kept in the database: only what was given."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=True)

    @property
    def text_limit(self) -> int:
        # With buttons the message is a button template, whose text Meta caps at 640.
        return BUTTON_TEXT_LIMIT if self.buttons else TEXT_LIMIT
