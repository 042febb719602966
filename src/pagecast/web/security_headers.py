"""Headers every response carries: a Content-Security-Policy without inline script,
`frame-ancestors 'none'`, `X-Content-Type-Options: nosniff`, a Referrer-Policy, and
Strict-Transport-Security when Pagecast is reached over https (PAGECAST_PUBLIC_URL).

Pure ASGI middleware: it adds headers to the response start and touches nothing else, so
streams (SSE, CSV) pass through unchanged. The dashboard loads only its own files
(`/static/`): no inline script, no inline style, no `javascript:` link. FastAPI's API
reference pages (`/docs`, `/redoc`) are the one exception: they are FastAPI's own HTML, which
loads Swagger UI / ReDoc from the jsDelivr CDN and starts it with an inline script, so they
get a policy that allows exactly that (and nothing else: still no framing).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "SecurityHeaders"]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_CDN = "https://cdn.jsdelivr.net"
_API_REFERENCE_POLICY = (
    f"default-src 'self'; script-src 'self' 'unsafe-inline' {_CDN}; "
    f"style-src 'self' 'unsafe-inline' {_CDN} https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    f"font-src 'self' https://fonts.gstatic.com; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_API_REFERENCE = ("/docs", "/docs/oauth2-redirect", "/redoc")
HSTS = "max-age=31536000"


class SecurityHeaders:
    """Adds the headers to every HTTP response; `https` turns on Strict-Transport-Security."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),  # browsers without frame-ancestors
        ]
        if https:
            common.append((b"strict-transport-security", HSTS.encode()))
        self._pages = [(b"content-security-policy", CONTENT_SECURITY_POLICY.encode()), *common]
        self._reference = [
            (b"content-security-policy", _API_REFERENCE_POLICY.encode()),
            *common,
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._reference if scope["path"] in _API_REFERENCE else self._pages
        names = {name for name, _ in extra}

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = kept + extra
            await send(message)

        await self.app(scope, receive, with_headers)
