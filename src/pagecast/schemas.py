"""Pydantic models of the API: what comes in (strict, unknown fields refused) and what goes out.

A message's shape and Messenger's limits on it are `pagecast.message_schema`'s; the field
types every body is built from are `pagecast.input_types`'.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from pagecast import timezones
from pagecast.contact_filter_schema import ContactFilter
from pagecast.errors import InvalidInput
from pagecast.input_types import HttpUrl, Input, Line, Text, TimeZoneName
from pagecast.message_schema import Content
from pagecast.models import MessagingType, Priority, Role
from pagecast.services import due_times
from pagecast.variant_schema import ExperimentIn, VariantIn
from pagecast.variant_schema import check as check_variants

__all__ = [
    "ALLOWED_TAGS",
    "BIGINT_MAX",
    "ID_MAX",
    "RETIRED_TAGS",
    "Audience",
    "CampaignCreate",
    "CampaignUpdate",
    "ContactCreate",
    "ContactUpdate",
    "FacebookConnect",
    "FrequencyCap",
    "Id",
    "Int32",
    "Line",
    "MeUpdate",
    "PageCreate",
    "PageUpdate",
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

MAX_CHOSEN = 100_000

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


class AudienceAll(Input):
    type: Literal["all"]


class AudienceTags(Input):
    type: Literal["tags"]
    include: list[Annotated[Line, StringConstraints(min_length=1, max_length=100)]] = []
    exclude: list[Annotated[Line, StringConstraints(min_length=1, max_length=100)]] = []
    match: Literal["any", "all"] = Field(
        "any", description="Whether a contact needs any one (default) or all of `include`."
    )

    @model_validator(mode="after")
    def _something(self) -> AudienceTags:
        if not self.include and not self.exclude:
            raise ValueError("a tags audience needs tags in include or exclude")
        return self


def _psid(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _psid_digits(value: str) -> str:
    if not value.isascii() or not value.isdigit() or len(value) > 64:
        raise ValueError(
            f"{value[:40]!r} is not a Page-scoped id (PSID: digits only, at most 64); the "
            "contacts list shows each person's PSID"
        )
    return value


Psid = Annotated[
    str,
    BeforeValidator(_psid),
    StringConstraints(strip_whitespace=True),
    AfterValidator(_psid_digits),
]


class AudienceContacts(Input):
    """Chosen people, by PSID. `ids` (internal contact ids) is still read, for clients
    written before PSIDs; give one of the two."""

    type: Literal["contacts"]
    psids: Annotated[list[Psid], Field(min_length=1, max_length=MAX_CHOSEN)] | None = None
    ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_CHOSEN)] | None = None

    @model_validator(mode="after")
    def _one_list(self) -> AudienceContacts:
        if (self.psids is None) == (self.ids is None):
            raise ValueError(
                "give the chosen people's PSIDs in psids (ids, internal contact ids, is the "
                "older form; not both)"
            )
        if self.psids is not None:
            self.psids = list(dict.fromkeys(self.psids))
        return self


class AudienceFilter(Input):
    """The contacts matching a filter (the contacts list's), evaluated when the campaign starts."""

    type: Literal["filter"]
    filter: ContactFilter


class AudienceSegment(Input):
    """A saved segment of the Page, its filter evaluated when the campaign starts."""

    type: Literal["segment"]
    segment_id: Id


Audience = Annotated[
    AudienceAll | AudienceTags | AudienceContacts | AudienceFilter | AudienceSegment,
    Field(discriminator="type"),
]

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


# Issue 20 (services/due_times.py): a wall-clock time each person gets the campaign at in
# their own zone, a campaign's send window and a Page's quiet hours, refused naming the field.
LocalSendAt = Annotated[
    datetime,
    BeforeValidator(lambda v: due_times.parse_local_time(v, "local_send_at")),
    Field(
        description='A wall-clock time without an offset, e.g. "2026-12-07T10:00": each '
        "person gets the campaign at that time in their own zone (docs/sending.md, "
        '"Due times").'
    ),
]
SendWindow = Annotated[
    dict[str, Any],
    BeforeValidator(lambda v: due_times.parse_window(v, "send_window").stored()),
    Field(
        description='{"days": ["mon", …], "start": "09:00", "end": "18:00"} in each '
        "person's zone: deliveries wait for the next opening."
    ),
]
QuietHours = Annotated[
    dict[str, str],
    BeforeValidator(lambda v: due_times.parse_hours(v, "quiet_hours").stored()),
    Field(
        description='{"start": "21:00", "end": "08:00"} in each recipient\'s zone: a delivery '
        "due in them waits for their end; null for none."
    ),
]


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
    # Issue 20: A/B variants instead of `content`, and an optional experiment (variant_schema).
    variants: list[VariantIn] | None = None
    experiment: ExperimentIn | None = None
    messaging_type: MessagingType = MessagingType.UPDATE
    tag: Tag | None = None
    audience: Audience = AudienceAll(type="all")
    scheduled_at: datetime | None = None
    priority: Priority = Priority.NORMAL
    send_rate: Annotated[float, Field(gt=0, le=MAX_SEND_RATE)] | None = None
    expires_at: datetime | None = None
    local_send_at: LocalSendAt | None = None
    send_window: SendWindow | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CampaignFields:
        # InvalidInput (not ValueError) passes through pydantic with the field it names.
        given = [
            n
            for n in ("content", "messages", "template_id", "variants")
            if getattr(self, n) is not None
        ]
        choices = (
            f"content or template_id (one message), messages (a sequence of up to "
            f"{MAX_MESSAGES} messages sent in order), or variants (an A/B test)"
        )
        if not given:
            raise InvalidInput(f"content: no message given; give {choices}", field="content")
        if len(given) > 1:
            raise InvalidInput(f"{' and '.join(given)}: give only one of {choices}", field=given[0])
        if self.messages is not None and len(self.messages) > MAX_MESSAGES:
            raise InvalidInput(
                f"messages: a campaign sends at most {MAX_MESSAGES} messages to each person; "
                f"you gave {len(self.messages)}. Remove {len(self.messages) - MAX_MESSAGES}, "
                "or make another campaign for the rest.",
                field="messages",
            )
        check_variants(self.variants, self.experiment)
        due_times.check_experiment(self.experiment, self.local_send_at, self.send_window)
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
    variants: list[dict[str, Any]] | None = None
    experiment: dict[str, Any] | None = None
    messaging_type: MessagingType | None = None
    tag: Line | None = None
    audience: dict[str, Any] | None = None
    scheduled_at: datetime | None = None
    priority: Priority | None = None
    send_rate: float | None = None
    expires_at: datetime | None = None
    local_send_at: Any = None
    send_window: Any = None


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


class FrequencyCap(Input):
    """At most `messages` campaign messages per person in `days` days, across the Page's
    campaigns (services/frequency_cap.py)."""

    messages: Annotated[int, Field(ge=1, le=1000)]
    days: Annotated[int, Field(ge=1, le=365)]


class PageUpdate(Patch):
    not_null = ("name", "send_rate", "opt_out_keywords", "timezone")

    name: Name | None = None
    send_rate: Annotated[float, Field(gt=0, le=MAX_SEND_RATE)] | None = None
    timezone: TimeZoneName | None = None
    quiet_hours: QuietHours | None = None
    access_token: AccessToken | None = None
    app_secret: AppSecret | None = None
    opt_out_keywords: (
        list[Annotated[Line, StringConstraints(min_length=1, max_length=50)]] | None
    ) = None
    # Issue 20: null turns the cap off.
    frequency_cap: FrequencyCap | None = Field(
        None,
        description='{"messages": N, "days": D}: at most N campaign messages per person '
        "in D days across the Page's campaigns; null: no cap.",
    )
    # Issue 22: null turns approval off.
    approval_threshold: Annotated[int, Field(ge=0, le=2_000_000_000)] | None = Field(
        None,
        description="Campaigns to more than this many people need a second person's "
        "approval before they start or are scheduled; 0: every campaign; null: none.",
    )


ContactName = Annotated[Line, StringConstraints(strip_whitespace=True, max_length=255)]


class ContactFields(Input):
    first_name: ContactName | None = None
    last_name: ContactName | None = None
    locale: Annotated[Line, StringConstraints(max_length=32)] | None = None
    timezone: TimeZoneName | None = None
    utc_offset_minutes: Annotated[int, Field(ge=-720, le=840)] | None = None
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


class WinnerBody(Input):
    """`POST /api/campaigns/{id}/winner`: the key of the variant the rest gets."""

    key: Annotated[Line, StringConstraints(min_length=1, max_length=8)]


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
    can_approve: bool = True


class UserUpdate(Patch):
    not_null = ("role", "password", "can_send", "can_approve", "is_active")

    role: Role | None = None
    password: Annotated[Line, StringConstraints(min_length=8, max_length=1000)] | None = None
    can_send: bool | None = None
    can_approve: bool | None = None
    is_active: bool | None = None


_Comment = Annotated[Line, StringConstraints(strip_whitespace=True, max_length=2000)]


class ApproveBody(Input):
    """POST /api/campaigns/{id}/approve (issue 22)."""

    comment: Annotated[_Comment, AfterValidator(lambda text: text or None)] | None = Field(
        None, description="Shown with the decision; optional (blank: none)."
    )


class RejectBody(Input):
    """POST /api/campaigns/{id}/reject (issue 22): the comment tells the author why."""

    comment: Annotated[_Comment, StringConstraints(min_length=1)] = Field(
        description="Why it is rejected, shown to the author (1 to 2000 characters)."
    )


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
