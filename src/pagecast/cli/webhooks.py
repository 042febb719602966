"""`pagecast webhooks list | add | show | update | delete | deliveries | redeliver | ping |
rotate-secret` (issue 22): outbound webhook endpoints, on this machine's database or a remote
Pagecast (`--url`, an admin's token). Both answer the API's JSON, so `--json` prints the same
fields either way; the secret is printed by `add` and `rotate-secret` only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer

from pagecast.cli.base import app, cli_actor, id_argument
from pagecast.cli.output import json_option, print_json, print_object, print_table

webhooks_app = typer.Typer(
    help="Outbound webhooks: endpoints that receive Pagecast's events (admins).",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")
T = TypeVar("T")


class _Local:
    """This machine's database: the services, answering the API's bodies."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    async def list(self) -> dict[str, Any]:
        from pagecast.services import webhook_endpoints as hooks
        from pagecast.web import webhook_render as render

        async with self.ctx.db.reading() as session:
            return {"items": [render.endpoint(e) for e in await hooks.list_all(session)]}

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        from pagecast.endpoint_schema import EndpointCreate
        from pagecast.services import webhook_endpoints as hooks
        from pagecast.web import webhook_render as render

        async with self.ctx.db.transaction() as session:
            made = await hooks.create(session, cli_actor(), self.ctx.vault, EndpointCreate(**body))
            return render.created(made)

    async def get(self, webhook_id: int) -> dict[str, Any]:
        from pagecast.services import webhook_endpoints as hooks
        from pagecast.web import webhook_render as render

        async with self.ctx.db.reading() as session:
            return render.endpoint(await hooks.get(session, webhook_id))

    async def update(self, webhook_id: int, body: dict[str, Any]) -> dict[str, Any]:
        from pagecast.endpoint_schema import EndpointUpdate
        from pagecast.services import webhook_endpoints as hooks
        from pagecast.web import webhook_render as render

        async with self.ctx.db.transaction() as session:
            change = EndpointUpdate(**body)
            return render.endpoint(await hooks.update(session, cli_actor(), webhook_id, change))

    async def delete(self, webhook_id: int) -> None:
        from pagecast.services import webhook_endpoints as hooks

        async with self.ctx.db.transaction() as session:
            await hooks.delete(session, cli_actor(), webhook_id)

    async def rotate(self, webhook_id: int) -> dict[str, Any]:
        from pagecast.services import webhook_endpoints as hooks
        from pagecast.web import webhook_render as render

        async with self.ctx.db.transaction() as session:
            made = await hooks.rotate_secret(session, cli_actor(), self.ctx.vault, webhook_id)
            return render.created(made)

    async def log(self, webhook_id: int, query: dict[str, Any]) -> dict[str, Any]:
        from pagecast.services import webhook_endpoints as hooks
        from pagecast.web import webhook_render as render

        async with self.ctx.db.reading() as session:
            return render.log(await hooks.delivery_log(session, webhook_id, **query))

    async def redeliver(self, webhook_id: int, delivery_id: int) -> dict[str, Any]:
        from pagecast.services import webhook_endpoints as hooks
        from pagecast.web import webhook_render as render

        async with self.ctx.db.transaction() as session:
            await hooks.redeliver(session, cli_actor(), webhook_id, delivery_id)
            return render.log_item(await hooks.log_entry(session, webhook_id, delivery_id))

    async def ping(self, webhook_id: int) -> dict[str, Any]:
        from pagecast.services import webhook_endpoints as hooks
        from pagecast.web import webhook_render as render

        async with self.ctx.db.transaction() as session:
            delivery = await hooks.ping(session, cli_actor(), webhook_id)
            return render.log_item(await hooks.log_entry(session, webhook_id, delivery.id))


class _Remote:
    """A remote Pagecast (`--url`), over `/api/webhooks` with an admin's token."""

    def __init__(self, remote: Any) -> None:
        self.remote = remote

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.remote._call(method, f"/api/webhooks{path}", **kwargs)

    async def list(self) -> dict[str, Any]:
        return dict(await self._call("GET", ""))

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._call("POST", "", json=body))

    async def get(self, webhook_id: int) -> dict[str, Any]:
        return dict(await self._call("GET", f"/{webhook_id}"))

    async def update(self, webhook_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._call("PATCH", f"/{webhook_id}", json=body))

    async def delete(self, webhook_id: int) -> None:
        await self._call("DELETE", f"/{webhook_id}")

    async def rotate(self, webhook_id: int) -> dict[str, Any]:
        return dict(await self._call("POST", f"/{webhook_id}/rotate-secret"))

    async def log(self, webhook_id: int, query: dict[str, Any]) -> dict[str, Any]:
        params = {k: v for k, v in query.items() if v is not None}
        return dict(await self._call("GET", f"/{webhook_id}/deliveries", params=params))

    async def redeliver(self, webhook_id: int, delivery_id: int) -> dict[str, Any]:
        path = f"/{webhook_id}/deliveries/{delivery_id}/redeliver"
        return dict(await self._call("POST", path))

    async def ping(self, webhook_id: int) -> dict[str, Any]:
        return dict(await self._call("POST", f"/{webhook_id}/ping"))


def _on(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work` on the remote Pagecast with --url, else on this machine's database."""
    from pagecast.cli.backend import Remote, use

    async def chosen(backend: Any) -> T:
        return await work(_Remote(backend) if isinstance(backend, Remote) else _Local(backend.ctx))

    return use(chosen)


def _checked(model_name: str, body: dict[str, Any]) -> dict[str, Any]:
    """The body as the API would check it: one line naming the field if it is wrong."""
    from pydantic import ValidationError

    from pagecast import endpoint_schema
    from pagecast.cli.base import fail, validation_line
    from pagecast.errors import InvalidInput

    try:
        checked = getattr(endpoint_schema, model_name).model_validate(body)
    except ValidationError as exc:
        fail(validation_line(exc))
    except InvalidInput as exc:  # a PATCH's null
        fail(exc.cli_message)
    return dict(checked.model_dump(mode="json", include=set(body)))


def _events(value: str | None) -> list[str] | None:
    return None if value is None else [e.strip() for e in value.split(",") if e.strip()]


def _state(item: dict[str, Any]) -> str:
    if not item["enabled"]:
        return "off"
    return f"failing since {item['failing_since']}" if item["failing_since"] else "on"


def _print_secret(item: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(item)
        return
    typer.echo(f"Webhook endpoint {item['id']}: {item['url']}")
    typer.echo(f"Secret: {item['secret']}")
    typer.echo("Store the secret now: Pagecast shows it only this once.")


@webhooks_app.command("list")
def webhooks_list(as_json: bool = json_option()) -> None:
    """List the endpoints with their state and events."""
    print_table(
        _on(lambda h: h.list())["items"],
        [
            ("ID", lambda e: e["id"]),
            ("STATE", _state),
            ("EVENTS", lambda e: ",".join(e["events"])),
            ("URL", lambda e: e["url"]),
        ],
        empty="No webhook endpoints.",
        as_json=as_json,
    )


@webhooks_app.command("add")
def webhooks_add(
    url: str = typer.Option(..., "--endpoint", help="The URL Pagecast POSTs the events to."),
    events: str = typer.Option(
        ..., "--events", help="Event types, comma-separated (campaign.started,...)."
    ),
    description: str = typer.Option("", "--description", help="A note for admins."),
    as_json: bool = json_option(),
) -> None:
    """Register an endpoint; prints its signing secret, this once."""
    body = _checked(
        "EndpointCreate", {"url": url, "events": _events(events), "description": description}
    )
    _print_secret(_on(lambda h: h.create(body)), as_json)


@webhooks_app.command("show")
def webhooks_show(
    webhook_id: int = id_argument("Endpoint id (see `pagecast webhooks list`)."),
    as_json: bool = json_option(),
) -> None:
    """Show one endpoint (never its secret)."""
    print_object(_on(lambda h: h.get(webhook_id)), as_json=as_json)


@webhooks_app.command("update")
def webhooks_update(
    webhook_id: int = id_argument("Endpoint id (see `pagecast webhooks list`)."),
    url: str | None = typer.Option(None, "--endpoint", help="A new URL."),
    events: str | None = typer.Option(None, "--events", help="The new event list (a,b)."),
    description: str | None = typer.Option(None, "--description", help="A new note."),
    enabled: bool | None = typer.Option(
        None, "--enable/--disable", help="Turn on (clears the failing state) or off."
    ),
    as_json: bool = json_option(),
) -> None:
    """Change an endpoint's URL, events or description, or turn it on or off."""
    given = {"url": url, "events": _events(events), "description": description, "enabled": enabled}
    body = _checked("EndpointUpdate", {k: v for k, v in given.items() if v is not None})
    print_object(_on(lambda h: h.update(webhook_id, body)), as_json=as_json)


@webhooks_app.command("delete")
def webhooks_delete(
    webhook_id: int = id_argument("Endpoint id (see `pagecast webhooks list`)."),
) -> None:
    """Delete an endpoint and its delivery log."""
    _on(lambda h: h.delete(webhook_id))
    typer.echo(f"Webhook endpoint {webhook_id} deleted.")


@webhooks_app.command("rotate-secret")
def webhooks_rotate(
    webhook_id: int = id_argument("Endpoint id (see `pagecast webhooks list`)."),
    as_json: bool = json_option(),
) -> None:
    """Make a new signing secret (printed once); the next deliveries are signed with it."""
    _print_secret(_on(lambda h: h.rotate(webhook_id)), as_json)


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    webhook_id: int = id_argument("Endpoint id (see `pagecast webhooks list`)."),
    status: str | None = typer.Option(None, "--status", help="pending, delivered or failed."),
    limit: int = typer.Option(50, "--limit", min=1, max=200, help="Deliveries per page."),
    cursor: str | None = typer.Option(None, "--cursor", help="`next_cursor` of a page."),
    as_json: bool = json_option(),
) -> None:
    """The endpoint's delivery log, newest first."""
    from pagecast.services.outbound_deliveries import STATUSES

    if status is not None and status not in STATUSES:
        choices = f"{', '.join(STATUSES[:-1])} or {STATUSES[-1]}"
        raise typer.BadParameter(f"{status!r}: choose {choices}")
    query: dict[str, Any] = {"status": status, "limit": limit, "cursor": cursor}
    page = _on(lambda h: h.log(webhook_id, query))
    if as_json:
        print_json(page)
        return
    print_table(
        page["items"],
        [
            ("ID", lambda d: d["id"]),
            ("EVENT", lambda d: d["event"]["type"]),
            ("STATUS", lambda d: d["status"]),
            ("ATTEMPTS", lambda d: d["attempts"]),
            ("CODE", lambda d: d["last_status_code"]),
            ("MS", lambda d: d["last_response_ms"]),
            ("NEXT", lambda d: d["next_attempt_at"]),
            ("ERROR", lambda d: d["last_error"]),
        ],
        empty="No deliveries.",
    )
    if page["next_cursor"]:
        typer.echo(f"More: --cursor {page['next_cursor']}")


@webhooks_app.command("redeliver")
def webhooks_redeliver(
    webhook_id: int = id_argument("Endpoint id."),
    delivery_id: int = id_argument("Delivery id (see `pagecast webhooks deliveries`)."),
) -> None:
    """Send a delivery's event again (the worker sends it at once)."""
    _on(lambda h: h.redeliver(webhook_id, delivery_id))
    typer.echo(f"Delivery {delivery_id} of webhook endpoint {webhook_id} will be sent again.")


@webhooks_app.command("ping")
def webhooks_ping(
    webhook_id: int = id_argument("Endpoint id (see `pagecast webhooks list`)."),
) -> None:
    """Send a `webhook.ping` event to this endpoint only."""
    item = _on(lambda h: h.ping(webhook_id))
    typer.echo(
        f"Ping {item['event']['id']} queued for webhook endpoint {webhook_id} (delivery "
        f"{item['id']}); see `pagecast webhooks deliveries {webhook_id}`."
    )
