"""`GraphError` and the one place Graph failures are classified (docs/design.md invariant 5).

Classification is on `error.code` / `error.error_subcode`, never on the HTTP status, except
for responses without a Graph error body (5xx -> retry, 429 -> throttle) and for transport
failures. `docs/graph-errors.md` is the table in prose.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from pagecast.graph.usage import Usage

__all__ = [
    "DEFAULT_THROTTLE_SECONDS",
    "ErrorKind",
    "GraphError",
    "OAuthProblem",
    "classify",
    "code_text",
    "error_from_body",
    "is_per_second_limit",
    "is_spam_warning",
    "oauth_problem",
    "redact_text",
    "revokes_token",
    "throttle_seconds",
]

# Spec 3.2/4.3: without `estimated_time_to_regain_access`, pause at least 60 s.
DEFAULT_THROTTLE_SECONDS = 60.0
_TOKEN_INVALID = 190
_PER_SECOND = 613


class ErrorKind(enum.StrEnum):
    """What the caller should do about a failed Graph call."""

    RETRY = "retry"
    THROTTLE = "throttle"
    STOP_PAGE = "stop_page"
    RECIPIENT_UNREACHABLE = "recipient_unreachable"
    OUTSIDE_WINDOW = "outside_window"
    BAD_REQUEST = "bad_request"
    AMBIGUOUS = "ambiguous"


class OAuthProblem(enum.StrEnum):
    """Why Facebook Login's token endpoint (or a user token) was refused; each is a
    `bad_request`: the person starts the login again, or the app settings are fixed."""

    APP_ID_INVALID = "app_id_invalid"  # 101: PAGECAST_APP_ID is not the app's id
    APP_SECRET_INVALID = "app_secret_invalid"  # 1 "Error validating client secret."
    CODE_INVALID = "code_invalid"  # 100 without subcode: not a code Facebook gave
    CODE_EXPIRED = "code_expired"  # 100/36007: older than ten minutes
    REDIRECT_URI_MISMATCH = "redirect_uri_mismatch"  # 100/36008: not the dialog's redirect_uri
    CODE_USED = "code_used"  # 100/36009: already exchanged
    TOKEN_INVALID = "token_invalid"  # 190: the user token is expired, revoked or garbled


_CODE_PROBLEMS = {
    36007: OAuthProblem.CODE_EXPIRED,
    36008: OAuthProblem.REDIRECT_URI_MISMATCH,
    36009: OAuthProblem.CODE_USED,
}


def oauth_problem(
    code: int | None, subcode: int | None, message: str = "", *, code_exchange: bool = False
) -> OAuthProblem | None:
    """The `OAuthProblem` of an error answered to one of Facebook Login's calls, or None
    (a transport failure, a throttle, an outage, a missing permission).

    `code_exchange`: the call exchanged a code, so a code 100 without subcode is about the
    code; on the other calls it is about the user token (a Page token given instead, say).
    The client-secret error is code 1, otherwise Graph's "unknown error, retry", and the
    appsecret_proof errors have no subcode: their messages are the only signal
    (docs/graph-api.md, "Versions and authentication").
    """
    if code == 101:
        return OAuthProblem.APP_ID_INVALID
    if code == 1 and "client secret" in message.lower():
        return OAuthProblem.APP_SECRET_INVALID
    if code == 100 and "appsecret_proof" in message:
        return OAuthProblem.APP_SECRET_INVALID
    if code == 100:
        known = _CODE_PROBLEMS.get(subcode) if subcode is not None else None
        if known is not None:
            return known
        return OAuthProblem.CODE_INVALID if code_exchange else OAuthProblem.TOKEN_INVALID
    if code == _TOKEN_INVALID:
        return OAuthProblem.TOKEN_INVALID
    return None


_THROTTLE_CODES = frozenset({4, 17, 32, 341, 613, 80001, 80002, 80004, 80006})
_RETRY_CODES = frozenset({1, 2, 1200})
_STOP_PAGE_CODES = frozenset({102, 104, 190, 368, 2022})
_RECIPIENT_CODES = frozenset({230, 551, 9000001})
# Another app or an automated flow owns the thread: skip now, do not suppress (docs/graph-errors.md).
_NOT_NOW_CODES = frozenset({2018300, 2018321})
_PROFILE_CODES = frozenset({2018218, 2018247})
_OUTSIDE_WINDOW_10 = frozenset({2018278, 2018065, 2534022, 2018336})
_RECIPIENT_10 = frozenset({2018108, 1893015})
_SPAM_WARNING = (613, 2018338)


def is_spam_warning(code: int | None, subcode: int | None) -> bool:
    """613/2018338: Meta warns that this traffic looks abusive. Classified `throttle` (the
    Page slows down), and the campaign that earned it stops until someone resumes it."""
    return (code, subcode) == _SPAM_WARNING


def is_per_second_limit(code: int | None, subcode: int | None, regain_seconds: float) -> bool:
    """613 with no subcode and no regain estimate in the usage headers: Graph's per-second
    limit (calls over the Page's rate this second), not a spent budget."""
    return code == _PER_SECOND and subcode is None and regain_seconds <= 0


def revokes_token(code: int | None) -> bool:
    """190: the access token is invalid (expired, revoked, password changed). A Page stopped
    by it is `token_invalid`; by any other `stop_page` error, `restricted`."""
    return code == _TOKEN_INVALID


def code_text(code: int | None, subcode: int | None) -> str:
    """How an error's code is written for people: `613/2018338`, or `190` without a subcode."""
    return f"{code}/{subcode}" if subcode is not None else f"{code}"


def classify(
    code: int | None,
    subcode: int | None,
    *,
    message: str = "",
    is_transient: bool = False,
    http_status: int | None = None,
) -> ErrorKind:
    """The `ErrorKind` for a Graph error body, or for an HTTP status when there is no body (code None)."""
    if code is None:
        if http_status == 429:
            return ErrorKind.THROTTLE
        if http_status is not None and http_status >= 500:
            return ErrorKind.RETRY
        return ErrorKind.BAD_REQUEST
    if code == 4 and subcode == 2018354:  # minimum gap between marketing messages
        return ErrorKind.OUTSIDE_WINDOW
    if code in _THROTTLE_CODES:
        return ErrorKind.THROTTLE
    if code == 2 and subcode == 2018344:  # privacy terms on labels: a request problem
        return ErrorKind.BAD_REQUEST
    if code in _RETRY_CODES:
        return ErrorKind.RETRY
    if code in _STOP_PAGE_CODES:
        return ErrorKind.STOP_PAGE
    if code in _RECIPIENT_CODES:
        return ErrorKind.RECIPIENT_UNREACHABLE
    if code == 9:  # 9/2018352: the user performed too many actions; skip for now
        return ErrorKind.OUTSIDE_WINDOW
    if code == 10:
        if subcode in _OUTSIDE_WINDOW_10:
            return ErrorKind.OUTSIDE_WINDOW
        if subcode in _RECIPIENT_10:
            return ErrorKind.RECIPIENT_UNREACHABLE
        return ErrorKind.STOP_PAGE  # no subcode, 1893063 (Page restricted), 1404170, ...
    if code == 200:
        if subcode == 1545041:
            return ErrorKind.RECIPIENT_UNREACHABLE
        if subcode == 2018021:  # phone-matching terms: a request problem, not the Page's
            return ErrorKind.BAD_REQUEST
        return ErrorKind.STOP_PAGE  # missing permission, 2018028 app not live, ...
    if code == 100:
        return _classify_100(subcode, message)
    if code in _NOT_NOW_CODES:
        return ErrorKind.OUTSIDE_WINDOW
    if is_transient:
        return ErrorKind.RETRY
    return ErrorKind.BAD_REQUEST


def _classify_100(subcode: int | None, message: str) -> ErrorKind:
    if subcode == 2018001:
        return ErrorKind.RECIPIENT_UNREACHABLE
    if subcode in (2018047, 2018294):  # upload failure / video fetch timeout: bounded retry
        return ErrorKind.RETRY
    if subcode in (33, 2018164):  # wrong Page id or app: configuration
        return ErrorKind.STOP_PAGE
    # The appsecret_proof errors have no subcode; the message is the only signal
    # (docs/graph-api.md, "Versions and authentication").
    if "appsecret_proof" in message:
        return ErrorKind.STOP_PAGE
    return ErrorKind.BAD_REQUEST


class GraphError(Exception):
    """A failed Graph call: an error body, a bad HTTP status, a garbled answer or a transport failure.

    `kind` says what to do; `code`, `subcode`, `fbtrace_id` and `status` say what Graph
    answered (all None for transport failures); `usage` holds the response's usage headers;
    `regain_seconds` is set for `throttle`. Never contains an access token or app secret.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        status: int | None = None,
        code: int | None = None,
        subcode: int | None = None,
        fbtrace_id: str | None = None,
        error_type: str | None = None,
        graph_message: str | None = None,
        is_transient: bool = False,
        usage: Usage | None = None,
        regain_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status
        self.code = code
        self.subcode = subcode
        self.fbtrace_id = fbtrace_id
        self.error_type = error_type
        self.graph_message = graph_message
        self.is_transient = is_transient
        self.usage = usage if usage is not None else Usage()
        self.regain_seconds = regain_seconds
        # Set by Facebook Login's calls (`GraphClient.exchange_code`, ...): why it was refused.
        self.oauth_problem: OAuthProblem | None = None

    @property
    def spam_warning(self) -> bool:
        """613/2018338: Meta warns that this traffic looks abusive (`is_spam_warning`)."""
        return is_spam_warning(self.code, self.subcode)

    @property
    def per_second_limit(self) -> bool:
        """Graph's per-second limit (`is_per_second_limit`)."""
        return is_per_second_limit(self.code, self.subcode, self.usage.regain_seconds)

    @property
    def revokes_token(self) -> bool:
        """The access token is invalid (`revokes_token`)."""
        return revokes_token(self.code)

    @property
    def code_text(self) -> str:
        """`code_text` of this error's code and subcode."""
        return code_text(self.code, self.subcode)

    @property
    def profile_unavailable(self) -> bool:
        """2018218 / 2018247 from the User Profile API: fall back to no name
        (docs/graph-api.md, "Conversations and profiles")."""
        return self.code in _PROFILE_CODES

    def __repr__(self) -> str:
        return (
            f"GraphError(kind={self.kind.value!r}, status={self.status!r}, code={self.code!r}, "
            f"subcode={self.subcode!r}, fbtrace_id={self.fbtrace_id!r}, message={self.message!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive pickling by default (queues, process pools).
        return (_rebuild, (self.message, dict(vars(self))))


def _rebuild(message: str, state: dict[str, Any]) -> GraphError:
    error = GraphError(message, kind=ErrorKind(state.pop("kind")))
    error.__dict__.update(state)
    return error


class _ErrorBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: str = ""
    type: str | None = None
    code: int
    error_subcode: int | None = None
    is_transient: bool = False
    fbtrace_id: str | None = None


class _ErrorEnvelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    error: _ErrorBody


def error_from_body(
    body: Any, *, status: int | None, usage: Usage, context: str, redact: tuple[str, ...] = ()
) -> GraphError | None:
    """The `GraphError` for a decoded JSON body holding a Graph error envelope, else None."""
    if not isinstance(body, dict) or "error" not in body:
        return None
    try:
        err = _ErrorEnvelope.model_validate(body).error
    except ValidationError:
        return None
    graph_message = redact_text(err.message, redact)
    kind = classify(err.code, err.error_subcode, message=err.message, is_transient=err.is_transient)
    return GraphError(
        f"{context}: Graph error {code_text(err.code, err.error_subcode)} "
        f"({kind.value}, HTTP {status}): {graph_message}"
        f" [fbtrace_id={err.fbtrace_id}]",
        kind=kind,
        status=status,
        code=err.code,
        subcode=err.error_subcode,
        fbtrace_id=err.fbtrace_id,
        error_type=err.type,
        graph_message=graph_message,
        is_transient=err.is_transient,
        usage=usage,
        regain_seconds=throttle_seconds(usage) if kind is ErrorKind.THROTTLE else None,
    )


def throttle_seconds(usage: Usage, retry_after: str | None = None) -> float:
    """How long a throttled Page should wait: the usage header's regain time, else Retry-After, else 60 s."""
    if usage.regain_seconds > 0:
        return usage.regain_seconds
    if retry_after is not None:
        try:
            seconds = float(retry_after)
        except ValueError:
            seconds = 0.0
        if 0 < seconds < 86400 * 7:
            return seconds
    return DEFAULT_THROTTLE_SECONDS


def redact_text(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret in it replaced by `[redacted]`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text
