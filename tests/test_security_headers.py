"""Security headers on every answer (issue 17, item 13): CSP without inline script and with
`frame-ancestors 'none'`, nosniff, a Referrer-Policy, and HSTS only when the public URL is
https. The browser side (no violation on any page) is tests/dashboard/test_content_security.py."""

from __future__ import annotations

from typing import Any

from factories import app_client
from pagecast.db import Database
from pagecast.settings import Settings
from pagecast.web.app import create_app
from pagecast.web.security_headers import CONTENT_SECURITY_POLICY


async def _headers(settings: Settings, db: Database, path: str, **kwargs: Any) -> Any:
    app = create_app(settings, database=db)
    try:
        async with app_client(app) as client:
            if kwargs:
                return (await client.post(path, **kwargs)).headers
            return (await client.get(path)).headers
    finally:
        await app.state.context.close()


async def test_every_answer_carries_the_policy_and_no_hsts_over_http(
    settings: Settings, db: Database
) -> None:
    big = {"content": b"x" * 2_000_000, "headers": {"content-type": "application/json"}}
    for path, kwargs in [
        ("/login", {}),
        ("/healthz", {}),
        ("/api/campaigns", {}),  # 401
        ("/static/dashboard.css", {}),
        ("/no/such/page", {}),
        ("/api/auth/login", big),  # refused by the body limit before any handler
    ]:
        headers = await _headers(settings, db, path, **kwargs)
        policy = headers["content-security-policy"]
        assert policy == CONTENT_SECURITY_POLICY, path
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in headers, path


async def test_hsts_when_the_public_url_is_https(settings: Settings, db: Database) -> None:
    https = settings.model_copy(update={"public_url": "https://pagecast.example.com"})
    headers = await _headers(https, db, "/login")
    assert headers["strict-transport-security"] == "max-age=31536000"
    http = settings.model_copy(update={"public_url": "http://intranet.example"})
    assert "strict-transport-security" not in await _headers(http, db, "/login")


async def test_the_api_reference_pages_get_their_own_policy_still_unframeable(
    settings: Settings, db: Database
) -> None:
    headers = await _headers(settings, db, "/docs")
    policy = headers["content-security-policy"]
    assert "https://cdn.jsdelivr.net" in policy and "frame-ancestors 'none'" in policy
