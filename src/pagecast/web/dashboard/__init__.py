"""The browser dashboard: server-rendered pages (Jinja2) with HTMX, on the same services and
actions as the JSON API. `install(app)` mounts it; nothing here connects at import."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

__all__ = ["FAVICON_TYPE", "install", "routes"]

STATIC = Path(__file__).resolve().parent.parent / "static"
FAVICON_TYPE = "image/vnd.microsoft.icon"  # IANA's name for .ico


def _routers() -> list[APIRouter]:
    from pagecast.web.dashboard import (
        audit,
        auth,
        campaigns,
        composer,
        contact_list,
        contacts,
        deliveries,
        facebook_connect,
        message_templates,
        ops,
        outbound_webhooks,
        page_overview,
        pages,
        segments,
        series,
        users,
    )

    # The composer first: its /campaigns/new and /campaigns/{id}/edit must win over
    # /campaigns/{id} and /campaigns/{id}/{action}.
    modules = (
        auth,
        composer,
        campaigns,
        deliveries,
        facebook_connect,
        pages,
        page_overview,
        contact_list,
        contacts,
        segments,
        message_templates,
        series,
        ops,
        outbound_webhooks,
        audit,
        users,
    )
    return [m.router for m in modules]


def routes() -> set[tuple[str, str]]:
    """Every (method, path) the dashboard serves (HEAD aside), for the route/role matrix."""
    return {
        (method, route.path)
        for router in _routers()
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
        if method != "HEAD"
    }


async def _favicon() -> FileResponse:
    """Browsers ask for /favicon.ico on every site whatever the page links (a 404 there is
    an error in the console); the pages link the SVG."""
    return FileResponse(STATIC / "favicon.ico", media_type=FAVICON_TYPE)


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_route("/favicon.ico", _favicon, methods=["GET"], include_in_schema=False)
    for router in _routers():
        app.include_router(router)
