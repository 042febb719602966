"""The field types every request body is built from: `Input` (unknown fields refused),
`Text` and `Line` (no control characters), `HttpUrl`/`HttpsUrl` and `TimeZoneName`."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from pagecast import timezones

__all__ = ["HttpUrl", "HttpsUrl", "Input", "Line", "Text", "TimeZoneName"]

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


def _https_url(value: str) -> str:
    if re.match(r"^https://[^\s/$.?#][^\s]*$", value, re.IGNORECASE):
        return value
    if re.match(r"^https://", value, re.IGNORECASE):
        raise ValueError(
            "is not a web address: after https:// comes the site's name, then the path "
            "(https://cdn.example.com/photo.jpg)"
        )
    raise ValueError(
        "must be an https:// URL: Messenger only opens and fetches public HTTPS; "
        "use the https:// address"
    )


def _zone_name(value: str) -> str:
    found = timezones.canonical(value)
    if found is None:
        raise ValueError(timezones.unknown_message(value))
    return found


# An IANA zone name, stored as the tz database spells it ("asia/manila" -> "Asia/Manila").
TimeZoneName = Annotated[Line, AfterValidator(_zone_name)]

HttpUrl = Annotated[Line, StringConstraints(max_length=2000), AfterValidator(_http_url)]
# Media and links Messenger opens itself (images, a card's tap, uploads): public HTTPS only.
HttpsUrl = Annotated[Line, StringConstraints(max_length=2000), AfterValidator(_https_url)]


class Input(BaseModel):
    """Base of every request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
