"""`pagecast audit`: the audit log, as `GET /api/audit` lists it, here or remote (`--url`).

The same filters, pages and bodies as the API (`services.audit_list`, `web.render.audit`): a
table with a header (`cli/output.py`), `--json` the API's body, `--csv` every matching entry
as the API's CSV.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from pagecast.cli.base import app
from pagecast.cli.output import print_json, print_table

__all__ = ["audit"]

_COLUMNS = (
    ("ID", lambda e: e["id"]),
    ("TIME (UTC)", lambda e: (e["at"] or "").replace("T", " ").removesuffix("Z")[:19]),
    ("ACTOR", lambda e: e["actor"]),
    ("ACTION", lambda e: e["action"]),
    ("OBJECT", lambda e: f"{e['object_type']} {e['object_id'] or ''}".strip()),
    ("CHANGE", lambda e: e["change"] or ""),
)


async def _local_page(ctx: Any, query: dict[str, Any], cursor: str | None, limit: int) -> Any:
    from pagecast.services import audit_list
    from pagecast.web import render

    filters = audit_list.parse(**query)
    async with ctx.db.reading() as session:
        found = await audit_list.page(session, filters, cursor=cursor, limit=limit)
    return {"items": [render.audit(r) for r in found.items], "next_cursor": found.next_cursor}


async def _local_csv(ctx: Any, query: dict[str, Any]) -> None:
    from pagecast.csv_export import csv_chunks
    from pagecast.services import audit_list

    filters = audit_list.parse(**query)

    async def rows() -> Any:
        async for batch in audit_list.batches(ctx.db, filters):
            yield [audit_list.csv_row(r) for r in batch]

    async for text in csv_chunks(audit_list.CSV_COLUMNS, rows()):
        sys.stdout.write(text)


async def _remote_csv(remote: Any, params: dict[str, Any]) -> None:
    from pagecast.cli.backend import RemoteError

    async with remote.http.stream("GET", "/api/audit", params=params | {"format": "csv"}) as r:
        if r.status_code >= 400:
            await r.aread()
            try:
                error = r.json()["error"]
            except (ValueError, KeyError, TypeError):
                error = {"message": f"HTTP {r.status_code} from {remote.url}"}
            raise RemoteError(str(error["message"]), field=error.get("field"))
        async for text in r.aiter_text():
            sys.stdout.write(text)


@app.command("audit")
def audit(
    actor: str | None = typer.Option(
        None, "--actor", help="A user id, or the name entries carry (an email, cli, system)."
    ),
    action: str | None = typer.Option(
        None, "--action", help="One action (user.created) or a prefix ending in . or * (campaign.)."
    ),
    object_type: str | None = typer.Option(
        None, "--object-type", help="campaign, page, user, contact, …"
    ),
    object_id: int | None = typer.Option(None, "--object-id", help="The object's id."),
    since: str | None = typer.Option(
        None, "--since", help="From this time on: ISO 8601 with a zone (2026-12-01T09:00:00Z)."
    ),
    until: str | None = typer.Option(None, "--until", help="Before this time (ISO 8601, zone)."),
    limit: int = typer.Option(50, "--limit", min=1, max=500, help="Entries per page (1–500)."),
    cursor: str | None = typer.Option(None, "--cursor", help="The page after a previous one."),
    as_csv: bool = typer.Option(False, "--csv", help="Every matching entry as CSV."),
    as_json: bool = typer.Option(False, "--json", help="The API's JSON body."),
) -> None:
    """The audit log, newest first: who did what to which object, and the change."""
    from pagecast.cli.backend import Local, Remote, use
    from pagecast.services import audit_list

    if as_csv and as_json:
        raise typer.BadParameter("give --csv or --json, not both.", param_hint="--csv")
    query: dict[str, Any] = {
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "since": since,
        "until": until,
    }
    params = {k: v for k, v in query.items() if v is not None}

    async def work(backend: Any) -> Any:
        if isinstance(backend, Local):
            if as_csv:
                return await _local_csv(backend.ctx, query)
            return await _local_page(backend.ctx, query, cursor, limit)
        assert isinstance(backend, Remote)
        audit_list.parse(**query)  # a bad filter is refused here, in the API's words
        if as_csv:
            return await _remote_csv(backend, params)
        paging = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        return await backend._call("GET", "/api/audit", params=params | paging)

    body = use(work)
    if as_csv:
        return
    if as_json:
        print_json(body)
        return
    rows = [item | {"change": audit_list.change_text(item["details"])} for item in body["items"]]
    print_table(rows, _COLUMNS, empty="No audit entries.")
    if body["next_cursor"]:
        typer.echo(f"More: add --cursor {body['next_cursor']}", err=True)
