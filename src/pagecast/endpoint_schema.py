"""Bodies of the outbound webhooks API (issue 22): an endpoint's URL, its chosen events and a
description. The same models check the dashboard's form and the CLI's options."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StrictBool, StringConstraints

from pagecast.input_types import HttpUrl, Input, Line
from pagecast.schemas import Patch
from pagecast.services.outbound_events import EVENT_TYPES

__all__ = ["EndpointCreate", "EndpointUpdate", "known_events"]


def known_events() -> str:
    return ", ".join(EVENT_TYPES)


def _url(value: str) -> str:
    parts = urlsplit(value)
    if not parts.hostname:
        raise ValueError("has no host name after http:// or https://; write https://host/path")
    try:
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("has a port that is not a number from 1 to 65535")
    if parts.username or parts.password:
        raise ValueError("holds a user name or password; authenticate with the signature instead")
    return value


def _events(value: list[str]) -> list[str]:
    unknown = [e for e in value if e not in EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"{', '.join(repr(e) for e in unknown)}: not an event Pagecast sends; choose from "
            f"{known_events()}"
        )
    if not value:
        raise ValueError(f"choose at least one event from {known_events()}")
    return [e for e in EVENT_TYPES if e in value]  # known order, no duplicates


EndpointUrl = Annotated[HttpUrl, AfterValidator(_url)]
EventNames = Annotated[
    list[Annotated[str, StringConstraints(max_length=64)]],
    Field(max_length=50),
    AfterValidator(_events),
]
Description = Annotated[Line, StringConstraints(strip_whitespace=True, max_length=200)]


class EndpointCreate(Input):
    url: EndpointUrl = Field(description="Where Pagecast POSTs the events: http:// or https://.")
    events: EventNames = Field(description="The event types sent to it; at least one.")
    description: Description = Field("", description="A note for admins: what receives them.")


class EndpointUpdate(Patch):
    not_null = ("url", "events", "description", "enabled")

    url: EndpointUrl | None = None
    events: EventNames | None = None
    description: Description | None = None
    enabled: StrictBool | None = Field(
        None,
        description="false turns the endpoint off (its deliveries wait); true turns it on "
        "again and clears its failing state.",
    )
