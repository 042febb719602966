"""Graph errors as the simulator raises them, and their catalogue of exact messages
(docs/graph-errors.md).

A `GraphError` carries what the envelope needs (`code`, `error_subcode`, `type`, message) and
the HTTP status; `app.py` renders it once, with a fresh `fbtrace_id` and, for
`OAuthException`, the `WWW-Authenticate` header.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = [
    "GraphError",
    "RawFault",
    "access_token_required",
    "appsecret_invalid",
    "appsecret_required",
    "bad_param",
    "cannot_parse_token",
    "invalid_token",
    "unsupported",
]

_TRANSIENT_CODES = frozenset({1, 2, 1200})
# An authorization code expired (36007), bound to another redirect_uri (36008) or used (36009).
_CODE_SUBCODES = frozenset({36007, 36008, 36009})
_USER_TEXT = {
    368: (
        "You can't use this feature right now",
        "We limit how often you can post, comment or do other things in a given amount of time "
        "in order to help protect the community from spam.",
    ),
    551: ("Message Not Sent", "This person isn't available right now."),
}


class GraphError(Exception):
    """One Graph error envelope plus its HTTP status (None: use the default status map)."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        type: str = "OAuthException",
        status: int | None = None,
        is_transient: bool | None = None,
        error_data: Any = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.subcode = subcode
        self.type = type
        self.status = status
        self.is_transient = is_transient
        self.error_data = error_data
        self.usage_header: tuple[str, str] | None = None

    def http_status(
        self,
        *,
        permission_status: int = 400,
        throttle_status: int = 400,
        code_1200_status: int = 500,
    ) -> int:
        """The default status map, with its knobs (docs/simulator.md, "Requests and answers")."""
        if self.status is not None:
            return self.status
        if self.code in (1, 2):
            return 500
        if self.code == 1200:
            return code_1200_status
        if self.code == 10 or 200 <= self.code <= 299:
            return permission_status
        if self.code in (4, 17, 32, 613, 80001, 80006):
            return throttle_status
        return 400

    def envelope(self, fbtrace_id: str, *, user_text: bool = True) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        transient = self.is_transient
        if transient is None and self.code in _TRANSIENT_CODES:
            transient = True
        if transient is not None and self.code in _TRANSIENT_CODES:
            error["is_transient"] = transient
        if user_text and self.code in _USER_TEXT:
            error["error_user_title"], error["error_user_msg"] = _USER_TEXT[self.code]
        if self.error_data is not None:
            error["error_data"] = self.error_data
        error["fbtrace_id"] = fbtrace_id
        return {"error": error}

    def www_authenticate(self) -> str | None:
        if self.type != "OAuthException":
            return None
        if self.code in (102, 104, 190):
            slug = "invalid_token"
        elif self.code == 100 and self.subcode in _CODE_SUBCODES:
            slug = "invalid_code"
        elif self.code == 10 or 200 <= self.code <= 299:
            slug = "insufficient_scope"
        else:
            slug = "invalid_request"
        safe = self.message.replace('"', "'")
        return f'OAuth "Facebook Platform" "{slug}" "{safe}"'


class RawFault(Exception):
    """An injected failure without a Graph body: raw 5xx HTML, an empty 429, or a timeout."""

    def __init__(self, kind: str, *, status: int = 0) -> None:
        super().__init__(kind)
        self.kind = kind  # "http" | "timeout_before" | "timeout_after"
        self.status = status


def access_token_required() -> GraphError:
    return GraphError(104, "An access token is required to request this resource.")


def cannot_parse_token() -> GraphError:
    return GraphError(190, "Invalid OAuth access token - Cannot parse access token")


def _graph_date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%A, %d-%b-%y %H:%M:%S UTC")


def invalid_token(
    subcode: int, *, app_id: str, expired_at: float = 0.0, now: float = 0.0
) -> GraphError:
    """190 with the message Graph gives for each invalidation subcode."""
    prefix = "Error validating access token: "
    messages = {
        458: f"The user has not authorized application {app_id}.",
        459: "You cannot access the app till you log in to www.facebook.com and follow the "
        "instructions given.",
        460: "The session has been invalidated because the user changed their password or "
        "Facebook has changed the session for security reasons.",
        463: f"Session has expired on {_graph_date(expired_at)}. "
        f"The current time is {_graph_date(now)}.",
        464: "Sessions for the user are not allowed because the user is not a confirmed user.",
        467: "The session is invalid because the user logged out.",
        492: "The session is invalid because the user no longer has a role on the Page.",
    }
    return GraphError(
        190, prefix + messages.get(subcode, "The session is invalid."), subcode=subcode
    )


def appsecret_required() -> GraphError:
    return GraphError(
        100,
        "API calls from the server require an appsecret_proof argument",
        type="GraphMethodException",
    )


def appsecret_invalid() -> GraphError:
    return GraphError(
        100, "Invalid appsecret_proof provided in the API argument", type="GraphMethodException"
    )


def unsupported(method: str, object_id: str) -> GraphError:
    verb = "get" if method == "GET" else ("delete" if method == "DELETE" else "post")
    return GraphError(
        100,
        f"(#100) Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot "
        "be loaded due to missing permissions, or does not support this operation. Please read "
        "the Graph API documentation at https://developers.facebook.com/docs/graph-api",
        subcode=33,
        type="GraphMethodException",
    )


def bad_param(message: str, *, subcode: int | None = None) -> GraphError:
    """A code 100 validation error; `message` is the text after `(#100) `."""
    return GraphError(100, f"(#100) {message}", subcode=subcode)
