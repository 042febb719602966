"""The FastAPI application factory. Creating the app connects to nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from pagecast import __version__
from pagecast.context import AppContext
from pagecast.db import Database
from pagecast.settings import Settings, get_settings
from pagecast.web import dashboard, errors
from pagecast.web.api import (
    admin,
    audit,
    auth,
    campaigns,
    contact_list,
    contacts,
    deliveries,
    outbound_webhooks,
    page_setup,
    pages,
    reports,
    segments,
    series,
    templates,
    users,
    webhooks,
)
from pagecast.web.body_limit import BodyLimit
from pagecast.web.security_headers import SecurityHeaders

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    context: AppContext | None = None,
) -> FastAPI:
    """Build the app. `database` lets tests share one engine; a `context` given by the caller
    (`pagecast serve`, which shares it with its in-process worker) is closed by the caller."""
    owned = context is None
    context = context or AppContext(settings or get_settings(), database=database)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            await context.close()

    app = FastAPI(
        title="Pagecast",
        version=__version__,
        description="Facebook Messenger campaigns for your Pages.",
        lifespan=lifespan,
    )
    app.state.context = context
    errors.install(app)
    app.add_middleware(BodyLimit, settings=context.settings)
    https = (context.settings.public_url or "").lower().startswith("https://")
    app.add_middleware(SecurityHeaders, https=https)  # outermost: also on the 413s

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, Any]:
        """Liveness: the process answers. No authentication, no database call."""
        return {"ok": True, "version": __version__}

    routers = (
        auth,
        users,
        audit,
        pages,
        page_setup,
        contact_list,
        contacts,
        segments,
        templates,
        campaigns,
        series,
        deliveries,
        outbound_webhooks,
    )
    for module in (*routers, reports, admin, webhooks):
        app.include_router(module.router)
    dashboard.install(app)
    return app
