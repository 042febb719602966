"""Typed results of Graph calls, and the shape of one message in a batch send.

Tokens in results (`UserToken`, `ManagedPage`) are left out of their `repr()`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pagecast.graph.usage import Usage

__all__ = [
    "BatchMessage",
    "Conversation",
    "ConversationMessage",
    "ConversationPage",
    "GranularScope",
    "ManagedPage",
    "PageIdentity",
    "Participant",
    "Permissions",
    "SendResult",
    "TokenInfo",
    "UserProfile",
    "UserToken",
]


@dataclass(frozen=True, slots=True)
class SendResult:
    """A message (or sender action) Graph accepted. `message_id` is None for sender actions."""

    recipient_id: str | None
    message_id: str | None
    attachment_id: str | None = None
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class BatchMessage:
    """One message of a batch send; the same fields as `GraphClient.send_message` takes."""

    psid: str
    message: Mapping[str, Any]
    messaging_type: str = "UPDATE"
    tag: str | None = None
    metadata: str | None = None
    notification_type: str | None = None


@dataclass(frozen=True, slots=True)
class PageIdentity:
    """The owner of a token (`GET /me?fields=id,name`): the Page for a Page token."""

    id: str
    name: str | None
    usage: Usage = field(default_factory=Usage)


def _parse_time(value: Any) -> datetime | None:
    # Graph writes "2026-05-01T12:34:56+0000" (docs/graph-api.md, "Conversations and profiles");
    # fromisoformat reads it on 3.11+.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)


class Participant(_Lenient):
    """A person or the Page in a conversation."""

    id: str
    name: str | None = None
    email: str | None = None


class ConversationMessage(_Lenient):
    """One of the last messages of a conversation."""

    id: str | None = None
    message: str | None = None
    from_id: str | None = None
    created_time: datetime | None = None

    @field_validator("created_time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> datetime | None:
        return _parse_time(value)


class Conversation(_Lenient):
    """A Messenger thread of the Page, with its participants and its last messages."""

    id: str
    page_id: str
    updated_time: datetime | None = None
    participants: tuple[Participant, ...] = ()
    messages: tuple[ConversationMessage, ...] = ()
    message_count: int | None = None
    unread_count: int | None = None

    @field_validator("updated_time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> datetime | None:
        return _parse_time(value)

    @property
    def user(self) -> Participant | None:
        """The participant who is not the Page."""
        return next((p for p in self.participants if p.id != self.page_id), None)

    @property
    def psid(self) -> str | None:
        return self.user.id if self.user else None

    @property
    def last_user_message_at(self) -> datetime | None:
        """When the person last wrote, among the messages returned (not `updated_time`:
        docs/graph-api.md, "Messaging windows and message tags")."""
        times = [
            m.created_time
            for m in self.messages
            if m.created_time is not None and m.from_id is not None and m.from_id != self.page_id
        ]
        return max(times, default=None)

    @classmethod
    def from_graph(cls, data: Mapping[str, Any], page_id: str) -> Conversation:
        """Build from one element of the Conversations API `data` array."""
        participants = [p for p in _data_list(data.get("participants")) if p.get("id") is not None]
        messages = [
            {
                **m,
                "from_id": (m.get("from") or {}).get("id")
                if isinstance(m.get("from"), dict)
                else None,
            }
            for m in _data_list(data.get("messages"))
        ]
        return cls.model_validate(
            {**data, "page_id": page_id, "participants": participants, "messages": messages}
        )


def _data_list(value: Any) -> list[dict[str, Any]]:
    # Edges come wrapped as {"data": [...], "paging": {...}}.
    if isinstance(value, dict):
        value = value.get("data")
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


@dataclass(frozen=True, slots=True)
class ConversationPage:
    """One page of `GET /{page}/conversations`, with the cursor URL of the next page."""

    conversations: tuple[Conversation, ...]
    next_url: str | None
    usage: Usage = field(default_factory=Usage)

    @property
    def after_cursor(self) -> str | None:
        """The `after` cursor of `next_url`, to resume listing from the next page."""
        if self.next_url is None:
            return None
        return dict(parse_qsl(urlsplit(self.next_url).query)).get("after")


class UserProfile(_Lenient):
    """`GET /{psid}?fields=first_name,last_name,profile_pic,...` (docs/graph-api.md,
    "Conversations and profiles").

    `profile_pic` URLs expire; do not store them for long.
    """

    id: str
    first_name: str | None = None
    last_name: str | None = None
    name: str | None = None
    profile_pic: str | None = None
    locale: str | None = None
    timezone: float | None = None
    gender: str | None = None
    usage: Usage = Field(default_factory=Usage, exclude=True)


# ----------------------------------------------------------------------------- Facebook Login


@dataclass(frozen=True, slots=True)
class UserToken:
    """A user access token from `oauth/access_token` (a code exchange or `fb_exchange_token`).

    `expires_in` is in seconds from when it was answered (None when Graph gave none: the
    token does not expire on a timer). `repr()` never shows the token.
    """

    access_token: str = field(repr=False)
    token_type: str = "bearer"
    expires_in: int | None = None


@dataclass(frozen=True, slots=True)
class Permissions:
    """`GET /me/permissions`: what the person granted, declined, or granted once but let
    expire (Graph's `status` values), each in Graph's order."""

    granted: tuple[str, ...] = ()
    declined: tuple[str, ...] = ()
    expired: tuple[str, ...] = ()

    def missing(self, needed: Sequence[str]) -> tuple[str, ...]:
        """The permissions of `needed` that are not granted (declined, expired or never asked)."""
        return tuple(p for p in needed if p not in self.granted)


class ManagedPage(_Lenient):
    """A Page the person manages, from `GET /me/accounts`, with its own Page access token.

    `access_token` is None when Graph did not give one (the person has no task on the Page
    that allows it); `repr()` never shows it.
    """

    id: str
    name: str | None = None
    access_token: str | None = Field(default=None, repr=False)
    tasks: tuple[str, ...] = ()
    category: str | None = None


class GranularScope(_Lenient):
    """One permission of a token and, for Page permissions, the Pages it was granted for."""

    scope: str
    target_ids: tuple[str, ...] = ()


class TokenInfo(_Lenient):
    """`GET /debug_token?input_token=...`: what a token is, whose, until when, and what it may do.

    `expires_at` is None for a token that does not expire on a timer (Graph's 0).
    `error_code` / `error_subcode` say why a token is not valid.
    """

    is_valid: bool = False
    app_id: str | None = None
    type: str | None = None
    user_id: str | None = None
    profile_id: str | None = None
    expires_at: datetime | None = None
    scopes: tuple[str, ...] = ()
    granular_scopes: tuple[GranularScope, ...] = ()
    error_code: int | None = None
    error_subcode: int | None = None
    error_message: str | None = None

    @field_validator("expires_at", mode="before")
    @classmethod
    def _epoch(cls, value: Any) -> datetime | None:
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return datetime.fromtimestamp(value, UTC)
        return None

    @classmethod
    def from_graph(cls, data: Mapping[str, Any]) -> TokenInfo:
        """Build from the `data` object of Graph's answer (its `error` flattened)."""
        error = data.get("error")
        flat = dict(data)
        if isinstance(error, dict):
            flat |= {
                "error_code": error.get("code"),
                "error_subcode": error.get("subcode"),
                "error_message": error.get("message"),
            }
        return cls.model_validate(flat)
