"""Request bodies and response parsing for `GraphClient`: bytes in, results or `GraphError` out."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pagecast.graph.errors import (
    ErrorKind,
    GraphError,
    classify,
    error_from_body,
    redact_text,
    throttle_seconds,
)
from pagecast.graph.models import SendResult, UserToken
from pagecast.graph.usage import Usage

__all__ = [
    "AUTH_PARAMS",
    "INVALID_JSON",
    "bad_answer",
    "batch_item",
    "decode_json",
    "send_body",
    "send_result",
    "status_error",
    "transport_error",
    "user_token",
]

INVALID_JSON: Any = object()
# Never sent again when following a `paging.next` URL (real Graph puts the token there).
AUTH_PARAMS = frozenset({"access_token", "appsecret_proof"})
_QUERY = re.compile(r"\?\S*")


def decode_json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return INVALID_JSON


def send_body(
    psid: str,
    message: Mapping[str, Any],
    *,
    messaging_type: str,
    tag: str | None,
    metadata: str | None,
    notification_type: str | None,
) -> dict[str, Any]:
    msg = dict(message)
    if metadata is not None:
        msg["metadata"] = metadata
    body: dict[str, Any] = {
        "recipient": {"id": psid},
        "messaging_type": messaging_type,
        "message": msg,
    }
    if tag is not None:
        body["tag"] = tag
    if notification_type is not None:
        body["notification_type"] = notification_type
    return body


def send_result(data: Any, usage: Usage, *, context: str) -> SendResult:
    if not isinstance(data, dict):
        # A 2xx we cannot read: Graph may well have accepted the message.
        raise bad_answer(context, usage, idempotent=False, detail="not a JSON object")

    def text(key: str) -> str | None:
        value = data.get(key)
        return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None

    return SendResult(
        recipient_id=text("recipient_id"),
        message_id=text("message_id"),
        attachment_id=text("attachment_id"),
        usage=usage,
    )


def batch_item(
    item: Any, batch_usage: Usage, *, index: int, redact: tuple[str, ...]
) -> SendResult | GraphError:
    context = f"batch operation {index}"
    if item is None:
        # Spec 5: a null element means the operation timed out or was not run; it may have been sent.
        return GraphError(
            f"{context}: no result (timed out or not run); the message may have been delivered",
            kind=ErrorKind.AMBIGUOUS,
            usage=batch_usage,
        )
    if not isinstance(item, dict):
        return bad_answer(context, batch_usage, idempotent=False, detail="not an object")
    headers = item.get("headers")
    op_headers = {
        str(h.get("name")): str(h.get("value"))
        for h in (headers if isinstance(headers, list) else [])
        if isinstance(h, dict)
        and isinstance(h.get("name"), str)
        and isinstance(h.get("value"), str)
    }
    op_usage = Usage.from_headers(op_headers)
    usage = op_usage if op_usage.present else batch_usage
    raw_code = item.get("code")
    status = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    raw_body = item.get("body")
    # The body is a JSON document serialised into a string: parse it a second time
    # (docs/graph-api.md, "Graph batch requests").
    body = decode_json(raw_body.encode()) if isinstance(raw_body, str) else raw_body
    error = error_from_body(body, status=status, usage=usage, context=context, redact=redact)
    if error is not None:
        return error
    if status is None:
        return bad_answer(context, usage, idempotent=False, detail="no status code")
    if not 200 <= status < 300:
        lowered = {name.lower(): value for name, value in op_headers.items()}
        return status_error(status, lowered.get("retry-after"), usage, context)
    try:
        return send_result(body, usage, context=context)
    except GraphError as exc:
        return exc


def status_error(status: int, retry_after: str | None, usage: Usage, context: str) -> GraphError:
    """A non-2xx answer without a Graph error body: 429 throttles, 5xx retries, the rest is ours."""
    kind = classify(None, None, http_status=status)
    regain = throttle_seconds(usage, retry_after) if kind is ErrorKind.THROTTLE else None
    return GraphError(
        f"{context}: HTTP {status} without a Graph error body ({kind.value})",
        kind=kind,
        status=status,
        usage=usage,
        regain_seconds=regain,
    )


def bad_answer(
    context: str, usage: Usage, *, idempotent: bool, detail: str, status: int | None = None
) -> GraphError:
    # A 2xx we cannot understand: for a send it may have been accepted, so it is ambiguous.
    kind = ErrorKind.RETRY if idempotent else ErrorKind.AMBIGUOUS
    return GraphError(
        f"{context}: unexpected answer from Graph ({detail}; {kind.value})",
        kind=kind,
        status=status,
        usage=usage,
    )


def transport_error(
    exc: BaseException,
    context: str,
    *,
    idempotent: bool,
    may_have_left: bool,
    redact: tuple[str, ...] = (),
) -> GraphError:
    """A failure with no answer: `retry` when the request cannot have left (the transport
    says, `transport.may_have_left`), else `ambiguous`: it may have been delivered.

    For reads (`idempotent`) nothing can have been delivered, so they are always `retry`.
    """
    kind = ErrorKind.AMBIGUOUS if may_have_left and not idempotent else ErrorKind.RETRY
    phase = "after the request was sent" if may_have_left else "before the request was sent"
    # The token is only in a header, but aiohttp's text can hold the URL with its query
    # (`Connection timeout to host <url>`), where Login's calls carry the app secret and the
    # code, percent-encoded: the query goes, and the secrets in any other form too.
    detail = _QUERY.sub("?…", redact_text(str(exc), redact))[:200]
    return GraphError(
        f"{context}: {type(exc).__name__} {phase} ({kind.value}): {detail}", kind=kind
    )


def user_token(data: Any, usage: Usage, *, context: str, idempotent: bool) -> UserToken:
    """`{"access_token", "token_type", "expires_in"}` from `oauth/access_token`."""
    token = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise bad_answer(context, usage, idempotent=idempotent, detail="no access_token")
    expires_in = data.get("expires_in")
    token_type = data.get("token_type")
    return UserToken(
        access_token=token,
        token_type=token_type if isinstance(token_type, str) else "bearer",
        expires_in=expires_in
        if isinstance(expires_in, int) and not isinstance(expires_in, bool)
        else None,
    )
