"""Pydantic models of the API: what comes in (strict, unknown fields refused) and what goes out.

Messenger's limits (docs/graph-api.md, "Message limits Pagecast checks") are checked here, so
a campaign that saves is a campaign Facebook will accept.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from pagecast import timezones
from pagecast.errors import InvalidInput
from pagecast.models import MessagingType, Priority, Role

__all__ = [
    "ALLOWED_TAGS",
    "BIGINT_MAX",
    "ID_MAX",
    "RETIRED_TAGS",
    "Attachment",
    "AttachmentUpload",
    "Audience",
    "Button",
    "CampaignCreate",
    "CampaignUpdate",
    "Card",
    "ContactCreate",
    "ContactUpdate",
    "Content",
    "DefaultAction",
    "Id",
    "Int32",
    "Line",
    "MeUpdate",
    "PageCreate",
    "PageUpdate",
    "QuickReply",
    "SendTestBody",
    "TemplateCreate",
    "TemplateUpdate",
    "Text",
    "TimeZoneName",
    "TokenCreate",
    "UserCreate",
    "UserUpdate",
    "parse_id",
]

TEXT_LIMIT = 2000
BUTTON_TEXT_LIMIT = 640
CARD_TEXT_LIMIT = 80  # a card's title and subtitle
CARD_LIMIT = 10  # cards in one carousel
ALLOWED_TAGS = ("HUMAN_AGENT", "CUSTOMER_FEEDBACK")
RETIRED_TAGS = ("ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE")
MAX_SEND_RATE = 300.0  # Meta's per-Page ceiling for text sends (docs/graph-api.md, "Rate limits")


# Issue 17: one rule for every number that reaches the database (path, query, body, cursor,
# dashboard form). Ids are INTEGER columns on PostgreSQL (32-bit; deliveries are BIGINT):
# a larger number raised DataError (asyncpg) or OverflowError (SQLite, past 64 bits) as a 500.
ID_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=ID_MAX, description="An id: 1 to 2^31-1.")]
Int32 = Annotated[int, Field(ge=-ID_MAX - 1, le=ID_MAX)]


def parse_id(text: str | None, maximum: int = ID_MAX) -> int | None:
    """`text` as an id (ASCII digits, 1 to `maximum`), else None.

    Not `str.isdigit()` alone: it accepts "²", which `int()` refuses, and "٣", read as 3.
    """
    if text is None or not (0 < len(text) <= 19) or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if 1 <= value <= maximum else None


# NUL is refused by PostgreSQL text (asyncpg raised a 500), lone surrogates cannot be encoded
# as UTF-8 (neither database stores them), and Messenger shows other C0 controls as nothing.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_CONTROL_IN_LINE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def _refuse(pattern: re.Pattern[str], value: str, what: str) -> str:
    found = pattern.search(value)
    if found is not None:
        raise ValueError(
            f"contains U+{ord(found.group()):04X} at position {found.start()}; {what} may not "
            "hold NUL, control characters or unpaired surrogates; remove it"
        )
    return value


def _text(value: str) -> str:
    return _refuse(_CONTROL_IN_TEXT, value, "a text (line breaks and tabs are fine)")


def _line(value: str) -> str:
    return _refuse(_CONTROL_IN_LINE, value, "a one-line value")


Text = Annotated[str, AfterValidator(_text)]
Line = Annotated[str, AfterValidator(_line)]


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/$.?#][^\s]*$", value, re.IGNORECASE):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _zone_name(value: str) -> str:
    found = timezones.canonical(value)
    if found is None:
        raise ValueError(timezones.unknown_message(value))
    return found


# An IANA zone name, stored as the tz database spells it ("asia/manila" -> "Asia/Manila").
TimeZoneName = Annotated[Line, AfterValidator(_zone_name)]
HttpUrl = Annotated[Line, StringConstraints(max_length=2000), AfterValidator(_http_url)]
Name = Annotated[Line, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")


def _page_token(value: str) -> str:
    # Page tokens go into requests to Facebook: a non-ASCII one failed inside the HTTP client
    # and was reported as "could not reach the Graph API".
    if not _PRINTABLE_ASCII.fullmatch(value):
        raise ValueError(
            "this is not a Page access token (they are printable ASCII without spaces, e.g. "
            "EAAB…); copy it again from the Facebook app's Messenger settings"
        )
    return value


def _app_secret(value: str) -> str:
    if not _PRINTABLE_ASCII.fullmatch(value):
        raise ValueError(
            "this is not an app secret (32 hexadecimal characters in the Facebook app's "
            "Settings > Basic); copy it again"
        )
    return value


class Input(BaseModel):
    """Base of every request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def _not_nullable(schema: dict[str, Any], model: type[BaseModel]) -> None:
    # The document says what the validator does: no `null` for these fields.
    for name in getattr(model, "not_null", ()):
        field = schema.get("properties", {}).get(name, {})
        options = [o for o in field.pop("anyOf", []) if o.get("type") != "null"]
        if len(options) == 1:
            field.update(options[0])
        elif options:
            field["anyOf"] = options
        field.pop("default", None)


class Patch(Input):
    """Base of a PATCH body: a field left out is unchanged; `null` is refused for the fields
    in `not_null` (their columns hold a value), naming the field."""

    model_config = ConfigDict(json_schema_extra=_not_nullable)
    not_null: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _refuse_null(self) -> Patch:
        for name in self.not_null:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise InvalidInput(
                    f"{name}: cannot be null; leave the field out to keep its value", field=name
                )
        return self


class Button(Input):
    type: Literal["web_url", "postback"]
    title: Annotated[Line, StringConstraints(min_length=1, max_length=20)]
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
    title: Annotated[Line, StringConstraints(min_length=1, max_length=20)] | None = None
    payload: Annotated[Text, StringConstraints(min_length=1, max_length=1000)] | None = None
    image_url: HttpUrl | None = None

    @model_validator(mode="after")
    def _text_needs_title(self) -> QuickReply:
        if self.content_type == "text" and not (self.title and self.payload):
            raise ValueError("a text quick reply needs a title and a payload")
        return self


class Attachment(Input):
    """Media by URL (Messenger fetches it) or by an `attachment_id` from the Attachment
    Upload API (`POST /api/pages/{id}/attachments`)."""

    type: Literal["image", "file", "video", "audio"]
    url: HttpUrl | None = None
    attachment_id: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,32}$")] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Attachment:
        if (self.url is None) == (self.attachment_id is None):
            raise ValueError("give either url or attachment_id (one of them)")
        return self


class AttachmentUpload(Input):
    """`POST /api/pages/{id}/attachments`: media to upload once and send by id."""

    type: Literal["image", "file", "video", "audio"]
    url: HttpUrl


class DefaultAction(Input):
    """What tapping a card opens."""

    type: Literal["web_url"] = "web_url"
    url: HttpUrl


class Card(Input):
    """One element of a generic template. `title` and `subtitle` may hold placeholders;
    their 80-character limit is checked once personalised (`services.content`)."""

    title: Annotated[Line, StringConstraints(min_length=1)]
    subtitle: Line | None = None
    image_url: HttpUrl | None = None
    default_action: DefaultAction | None = None
    buttons: Annotated[list[Button], Field(max_length=3)] = []


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


class AudienceAll(Input):
    type: Literal["all"]


class AudienceTags(Input):
    type: Literal["tags"]
    include: list[Annotated[Line, StringConstraints(min_length=1, max_length=100)]] = []
    exclude: list[Annotated[Line, StringConstraints(min_length=1, max_length=100)]] = []

    @model_validator(mode="after")
    def _something(self) -> AudienceTags:
        if not self.include and not self.exclude:
            raise ValueError("a tags audience needs tags in include or exclude")
        return self


class AudienceContacts(Input):
    type: Literal["contacts"]
    ids: Annotated[list[Id], Field(min_length=1, max_length=100_000)]


Audience = Annotated[AudienceAll | AudienceTags | AudienceContacts, Field(discriminator="type")]

Tag = Annotated[Line, StringConstraints(strip_whitespace=True, to_upper=True)]


def check_policy(messaging_type: MessagingType, tag: str | None) -> None:
    """Messaging type and tag (docs/graph-api.md, "Messaging windows and message tags");
    raises InvalidInput with what to do."""
    allowed = " or ".join(ALLOWED_TAGS)
    if messaging_type is MessagingType.MESSAGE_TAG:
        if tag is None:
            raise InvalidInput(
                f"tag: messaging_type MESSAGE_TAG needs a tag: {allowed}", field="tag"
            )
        if tag in RETIRED_TAGS:
            raise InvalidInput(
                f"tag: {tag} was retired by Meta on 2026-04-27 and every send with it fails; "
                f"use {allowed}, or send as UPDATE inside the 24-hour window",
                field="tag",
            )
        if tag not in ALLOWED_TAGS:
            raise InvalidInput(
                f"tag: {tag} is not a Messenger message tag; use {allowed}", field="tag"
            )
    elif tag is not None:
        raise InvalidInput("tag: a tag is only sent with messaging_type MESSAGE_TAG", field="tag")


# A campaign's sequence: each person gets these messages in order (issue 19).
MAX_MESSAGES = 3


class CampaignFields(Input):
    description: Annotated[Text, StringConstraints(max_length=5000)] | None = None
    content: Content | None = None
    messages: (
        Annotated[
            list[Content],
            Field(
                min_length=1,
                description=f"A sequence of up to {MAX_MESSAGES} messages that each person gets "
                "in order (e.g. an image, then a text with buttons), instead of `content`.",
            ),
        ]
        | None
    ) = None
    template_id: Id | None = None
    messaging_type: MessagingType = MessagingType.UPDATE
    tag: Tag | None = None
    audience: Audience = AudienceAll(type="all")
    scheduled_at: datetime | None = None
    priority: Priority = Priority.NORMAL
    send_rate: Annotated[float, Field(gt=0, le=MAX_SEND_RATE)] | None = None
    expires_at: datetime | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CampaignFields:
        # InvalidInput (not ValueError) passes through pydantic with the field it names.
        given = [n for n in ("content", "messages", "template_id") if getattr(self, n) is not None]
        if len(given) != 1:
            named = " and ".join(given) if given else "content"
            raise InvalidInput(
                f"{named}: give either content or template_id (one message), or messages (a "
                f"sequence of up to {MAX_MESSAGES} messages sent in order), only one of them",
                field=given[0] if given else "content",
            )
        if self.messages is not None and len(self.messages) > MAX_MESSAGES:
            raise InvalidInput(
                f"messages: a campaign sends at most {MAX_MESSAGES} messages to each person; "
                f"you gave {len(self.messages)}. Remove {len(self.messages) - MAX_MESSAGES}, "
                "or make another campaign for the rest.",
                field="messages",
            )
        check_policy(self.messaging_type, self.tag)
        for name in ("scheduled_at", "expires_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                # Refused, not read in some zone: the API's times are ISO 8601 with an
                # offset (docs/api.md, "Times and time zones").
                raise InvalidInput(
                    f"{name}: needs a timezone offset (ISO 8601), e.g. "
                    "2026-12-01T09:00:00+08:00 or 2026-12-01T01:00:00Z; a time without one is "
                    "refused rather than guessed",
                    field=name,
                )
        if self.scheduled_at and self.expires_at and self.expires_at <= self.scheduled_at:
            raise InvalidInput("expires_at: must be after scheduled_at", field="expires_at")
        return self

    @property
    def all_messages(self) -> list[Content]:
        """The messages each person gets, in order (none here when a template gives it)."""
        if self.messages is not None:
            return self.messages
        return [self.content] if self.content is not None else []


class CampaignCreate(CampaignFields):
    name: Name
    page_id: Id


class CampaignUpdate(Patch):
    """PATCH: only the fields given change; the result is validated as a whole."""

    not_null = ("name", "page_id", "messaging_type", "audience", "priority")

    name: Name | None = None
    page_id: Id | None = None
    description: Text | None = None
    content: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    template_id: Id | None = None
    messaging_type: MessagingType | None = None
    tag: Line | None = None
    audience: dict[str, Any] | None = None
    scheduled_at: datetime | None = None
    priority: Priority | None = None
    send_rate: float | None = None
    expires_at: datetime | None = None


AccessToken = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=1000),
    AfterValidator(_page_token),
]
AppSecret = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_app_secret),
]


class PageCreate(Input):
    access_token: AccessToken
    app_secret: AppSecret | None = None
    send_rate: Annotated[float, Field(gt=0, le=MAX_SEND_RATE)] | None = None
    timezone: TimeZoneName = timezones.DEFAULT


def _user_token(value: str) -> str:
    if not _PRINTABLE_ASCII.fullmatch(value):
        raise ValueError(
            "this is not a user access token (they are printable ASCII without spaces, e.g. "
            "EAAB…); copy it again from the Graph API Explorer or your Facebook Login"
        )
    return value


FbPageId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,30}$"),
    Field(description="A Facebook Page id (digits), as /me/accounts lists it."),
]


class FacebookConnect(Input):
    """`POST /api/pages/connect-facebook`: connect Pages with a Facebook user token."""

    user_access_token: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=1000),
        AfterValidator(_user_token),
    ]
    page_ids: Annotated[list[FbPageId], Field(min_length=1, max_length=100)] | None = Field(
        None,
        description="The Pages to connect (a connected one gets its token replaced); omitted "
        "or null: every Page listed that is not connected yet.",
    )


class PageUpdate(Patch):
    not_null = ("name", "send_rate", "opt_out_keywords", "timezone")

    name: Name | None = None
    send_rate: Annotated[float, Field(gt=0, le=MAX_SEND_RATE)] | None = None
    timezone: TimeZoneName | None = None
    access_token: AccessToken | None = None
    app_secret: AppSecret | None = None
    opt_out_keywords: (
        list[Annotated[Line, StringConstraints(min_length=1, max_length=50)]] | None
    ) = None


ContactName = Annotated[Line, StringConstraints(strip_whitespace=True, max_length=255)]


class ContactFields(Input):
    first_name: ContactName | None = None
    last_name: ContactName | None = None
    locale: Annotated[Line, StringConstraints(max_length=32)] | None = None
    timezone: Annotated[float, Field(ge=-24, le=24)] | None = None
    profile_pic_url: HttpUrl | None = None
    tags: (
        list[
            Annotated[Line, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
        ]
        | None
    ) = None
    last_inbound_at: datetime | None = None
    opted_out: bool | None = None
    unreachable: bool | None = None
    is_tester: bool | None = None


class ContactCreate(ContactFields):
    psid: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,64}$")]


class ContactUpdate(ContactFields, Patch):
    not_null = ("opted_out", "unreachable", "is_tester")


# A test goes to a few people the campaign's author knows, not to an audience.
TESTERS_PER_SEND = 50


class SendTestBody(Input):
    """`POST /api/campaigns/{id}/test`: the contacts (testers of the campaign's Page) to send to."""

    contact_ids: Annotated[list[Id], Field(min_length=1, max_length=TESTERS_PER_SEND)]


class TemplateCreate(Input):
    name: Name
    content: Content


class TemplateUpdate(Patch):
    not_null = ("name", "content")

    name: Name | None = None
    content: Content | None = None


class UserCreate(Input):
    email: Annotated[
        Line,
        StringConstraints(
            strip_whitespace=True,
            to_lower=True,
            max_length=254,
            pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        ),
    ]
    role: Role
    password: Annotated[Line, StringConstraints(min_length=8, max_length=1000)] | None = None
    can_send: bool = True


class UserUpdate(Patch):
    not_null = ("role", "password", "can_send", "is_active")

    role: Role | None = None
    password: Annotated[Line, StringConstraints(min_length=8, max_length=1000)] | None = None
    can_send: bool | None = None
    is_active: bool | None = None


class MeUpdate(Patch):
    """PATCH /api/me: what every user may change about themselves."""

    not_null = ("timezone",)

    timezone: TimeZoneName | None = None


class TokenCreate(Input):
    name: Annotated[
        Line, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
    ] = "api"


class Login(Input):
    email: Annotated[Line, StringConstraints(strip_whitespace=True, to_lower=True, max_length=254)]
    password: Annotated[Line, StringConstraints(max_length=1000)]
