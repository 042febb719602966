"""Pagecast's error hierarchy: expected failures that say what went wrong and what to do.

Services raise these; each edge renders them once (the web app as
`{"error": {"code", "message", "field"}}` with `status_code`, the CLI as one line on stderr
and exit 1, the worker on the delivery row).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ConfigError",
    "Conflict",
    "Forbidden",
    "Hint",
    "InvalidInput",
    "InvalidState",
    "NobodyEligible",
    "NotFound",
    "PagecastError",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UpstreamError",
    "field_path",
    "in_words",
    "reconnect_hint",
]


def field_path(parts: Iterable[str | int]) -> str:
    """A field's path as people read it: `content.cards[2].buttons[0].title`."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def in_words(error: Mapping[str, Any]) -> str:
    """One pydantic error (an item of `ValidationError.errors()`) as what is wrong, in words."""
    kind, ctx = error["type"], error.get("ctx") or {}
    given = error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field; remove it"
    text = given if isinstance(given, str) else None
    if text is not None and kind in ("string_too_long", "too_long"):
        return f"has {len(text)} characters; at most {ctx['max_length']} are allowed; shorten it"
    if text is not None and kind in ("string_too_short", "too_short"):
        if ctx.get("min_length") == 1:
            return "is empty; write something"
        return f"has {len(text)} characters; at least {ctx['min_length']} are needed"
    if kind == "string_pattern_mismatch":
        return _pattern_in_words(str(ctx.get("pattern", "")))
    if kind == "too_long":
        return f"has {ctx.get('actual_length')} items; at most {ctx['max_length']} are allowed"
    if kind == "too_short":
        return f"has {ctx.get('actual_length')} items; at least {ctx['min_length']} are needed"
    return str(error["msg"]).removeprefix("Value error, ")


def _pattern_in_words(pattern: str) -> str:
    digits = re.fullmatch(r"\^\[0-9\]\{(\d+),(\d+)\}\$", pattern)
    if digits:
        return f"must be digits only (0-9), {digits[1]} to {digits[2]} of them; copy the id again"
    if "@" in pattern:
        return "is not an email address; write it as name@example.com"
    return "does not have the expected form; check what the field takes in the API documentation"


@dataclass(frozen=True)
class Hint:
    """What to do next, worded for each edge: the API route for an API client (`api`), the
    command for someone at the command line (`cli`). One error, one source, two wordings."""

    api: str
    cli: str


def reconnect_hint(page_id: int, fb_page_id: str) -> Hint:
    """How to give a Page a new token: the API's PATCH, or the CLI's Facebook Login."""
    return Hint(
        api=f"PATCH /api/pages/{page_id}",
        cli=f"`pagecast pages connect-facebook --page {fb_page_id}`",
    )


class PagecastError(Exception):
    """An expected failure we can explain to the person who caused it.

    `message` is the API's wording. With a `hint`, the message names where the hint goes with
    `{hint}` (else the hint ends it), and `cli_message` words it for the command line.
    """

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, hint: Hint | None = None) -> None:
        self.hint = hint
        self._template = message if hint is None or "{hint}" in message else f"{message} {{hint}}"
        self.message = self._worded("api")
        super().__init__(self.message)
        self.field = field

    def _worded(self, edge: str) -> str:
        if self.hint is None:
            return self._template
        return self._template.replace("{hint}", getattr(self.hint, edge))

    @property
    def cli_message(self) -> str:
        """The message with its hint worded for the command line."""
        return self._worded("cli")

    def extra(self) -> dict[str, Any]:
        """Facts beyond the message that a client can act on (keys of the error body)."""
        return {}


class InvalidInput(PagecastError):
    status_code = 422
    code = "invalid_input"


class Unauthorized(PagecastError):
    status_code = 401
    code = "unauthorized"


class Forbidden(PagecastError):
    status_code = 403
    code = "forbidden"


class NotFound(PagecastError):
    status_code = 404
    code = "not_found"


class Conflict(PagecastError):
    """A uniqueness rule would be broken (a duplicate name, email or Page)."""

    status_code = 409
    code = "conflict"


class InvalidState(PagecastError):
    """The object is in a state that does not allow the action."""

    status_code = 409
    code = "invalid_state"


class NobodyEligible(InvalidState):
    """A campaign would reach nobody now: refused at start, with who was excluded and why."""

    code = "no_eligible_people"

    def __init__(self, message: str, *, excluded: dict[str, int]) -> None:
        super().__init__(message, field="audience")
        self.excluded = excluded

    def extra(self) -> dict[str, Any]:
        return {"excluded": self.excluded}


class PayloadTooLarge(PagecastError):
    status_code = 413
    code = "payload_too_large"


class UpstreamError(PagecastError):
    """Facebook (or the simulator) refused or failed a call we needed."""

    status_code = 502
    code = "upstream_error"


class TooManyRequests(PagecastError):
    """A limit was reached; `retry_after` seconds until it lets the caller in again."""

    status_code = 429
    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(PagecastError):
    status_code = 503
    code = "service_unavailable"


class ConfigError(PagecastError):
    status_code = 500
    code = "config_error"
