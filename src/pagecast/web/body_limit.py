"""One limit on request bodies for every route, enforced before the body is read.

Pure ASGI middleware, so nothing (FastAPI's body parsing, Starlette's form parser, a handler
that streams) ever buffers more than the limit:

- a `Content-Length` over the limit is answered 413 at once; the app never runs and the
  body is never read;
- a body without a length (chunked) is counted while the app reads it, and answered 413 as
  soon as it passes the limit; the app then sees `BodyTooLarge` from `receive` and whatever
  it answers is dropped.

Every route gets `PAGECAST_MAX_BODY_BYTES`. The few routes that need more are listed in
`LARGER_LIMITS` below, each with the setting that holds its limit: the CSV import (API and
dashboard) takes `import_max_bytes` (and room for the multipart form around the file: the
import itself refuses a file over the setting exactly), the webhook its own
`webhook_max_body_bytes`. The
table is matched before routing, so a Content-Length over the limit never reaches a
handler, a dependency or the database.
"""

from __future__ import annotations

import html
import json

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pagecast.settings import Settings, env_names
from pagecast.web.uploads import FORM_OVERHEAD

__all__ = ["LARGER_LIMITS", "BodyLimit", "BodyTooLarge"]

_DEFAULT = "max_body_bytes"

# (method, path template) -> the setting that holds the route's limit. One place, one rule.
LARGER_LIMITS: dict[tuple[str, str], str] = {
    ("POST", "/api/pages/{page_id}/contacts/import"): "import_max_bytes",
    ("POST", "/contacts/import"): "import_max_bytes",
    ("POST", "/webhooks/messenger"): "webhook_max_body_bytes",
}
# Room for the multipart form around an uploaded file (web/uploads.py refuses the file itself).
_FORM_ROOM = {"import_max_bytes": FORM_OVERHEAD}
_COMPILED = [
    (method, compile_path(path)[0], setting) for (method, path), setting in LARGER_LIMITS.items()
]


class BodyTooLarge(Exception):
    """Raised from `receive` once a streamed body passed its limit (already answered 413)."""


class BodyLimit:
    """The middleware; `settings` gives the limits."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        setting = _setting_for(scope)
        limit = int(getattr(self.settings, setting)) + _FORM_ROOM.get(setting, 0)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, send, setting, limit, f"Content-Length {declared:,}")
            return
        state = {"read": 0, "answered": False, "started": False}

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > limit:
                    if not state["started"]:
                        state["answered"] = True
                        await _refuse(
                            scope, send, setting, limit, f"more than {state['read']:,} bytes"
                        )
                    raise BodyTooLarge(f"request body over {limit} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            if state["answered"]:
                return  # the 413 went out already: drop what the app answers after it
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if not state["answered"]:
                raise


def _setting_for(scope: Scope) -> str:
    path = scope["path"]
    for method, pattern, setting in _COMPILED:
        if scope["method"] == method and pattern.match(path):
            return setting
    return _DEFAULT


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _refuse(scope: Scope, send: Send, setting: str, limit: int, size: str) -> None:
    variable = env_names(setting)[0]
    upload = setting in _FORM_ROOM
    what = "split the file into smaller files" if upload else "send a smaller body"
    message = (
        f"The request body ({size}) is over this route's limit of {limit:,} bytes "
        f"({variable}); nothing was read or changed. To go on, {what}, or raise {variable}."
    )
    path = str(scope.get("path", ""))
    headers = dict(scope["headers"])
    browser = b"hx-request" in headers or b"text/html" in headers.get(b"accept", b"")
    if browser and not path.startswith(("/api/", "/webhooks/")):  # a dashboard form
        body = f'<p class="alert" role="alert">{html.escape(message)}</p>'.encode()
        content_type = b"text/html; charset=utf-8"
    else:
        error = {"code": "payload_too_large", "message": message, "field": "body", "limit": limit}
        body = json.dumps({"error": error}).encode()
        content_type = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
