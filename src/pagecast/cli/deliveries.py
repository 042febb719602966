"""`pagecast campaigns deliveries ID`: a campaign's deliveries, as the API lists them.

The same filters, pages and columns as `GET /api/campaigns/{id}/deliveries`
(`services.delivery_list`, `web.render.delivery`): a table with a header, `--json` the API's
body, `--csv` every matching delivery as the API's CSV.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from pagecast.cli.base import campaigns_app, id_argument, run

__all__ = ["campaigns_deliveries"]

_COLUMNS = ("ID", "PSID", "NAME", "STATUS", "REASON", "VARIANT", "ERROR", "ATTEMPTS", "SENT")


def _row(item: Any) -> list[str]:
    error = ""
    if item.error_code is not None:
        error = str(item.error_code)
        if item.error_subcode is not None:
            error += f"/{item.error_subcode}"
    sent = item.sent_at.strftime("%Y-%m-%d %H:%M:%S") if item.sent_at else ""
    return [
        str(item.id),
        item.psid or "-",
        item.name or "",
        item.status.value,
        item.reason or "",
        item.variant or "",
        error,
        str(item.attempts),
        sent,
    ]


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_COLUMNS)]
    lines = [[*_COLUMNS], *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


@campaigns_app.command("deliveries")
def campaigns_deliveries(
    campaign_id: int = id_argument(),
    status: list[str] = typer.Option(
        [], "--status", help="A delivery status (repeat, or separate with commas)."
    ),
    variant: str | None = typer.Option(None, "--variant", help="A variant's key (A, B, …)."),
    error_code: int | None = typer.Option(None, "--error-code", help="A Graph error code."),
    reason: str | None = typer.Option(None, "--reason", help="A reason code."),
    limit: int = typer.Option(50, "--limit", min=1, max=500, help="Rows per page (1–500)."),
    cursor: str | None = typer.Option(None, "--cursor", help="The page after a previous one."),
    as_csv: bool = typer.Option(False, "--csv", help="Every matching delivery as CSV."),
    as_json: bool = typer.Option(False, "--json", help="The API's JSON body."),
) -> None:
    """List a campaign's deliveries: person, status, reason, variant, error, attempts."""
    from pagecast.schemas import BIGINT_MAX, ID_MAX
    from pagecast.services import campaigns, delivery_list
    from pagecast.web import render

    if error_code is not None and not -ID_MAX - 1 <= error_code <= ID_MAX:
        raise typer.BadParameter(f"{error_code} is not an error code.", param_hint="--error-code")

    def filters() -> Any:
        return delivery_list.parse(
            status=status, variant=variant, error_code=error_code, reason=reason
        )

    if as_csv:

        async def write_csv(ctx: Any) -> None:
            chosen = filters()
            async with ctx.db.transaction() as session:
                await campaigns.get(session, campaign_id)

            async for text in render.deliveries_csv(ctx.db, campaign_id, chosen):
                sys.stdout.write(text)

        run(write_csv)
        return

    async def fetch(ctx: Any) -> Any:
        chosen = filters()
        after = render.parse_cursor(cursor, BIGINT_MAX)
        async with ctx.db.transaction() as session:
            return await delivery_list.page(session, campaign_id, chosen, after=after, limit=limit)

    found = run(fetch)
    next_cursor = render.cursor(found.last) if found.more else None
    if as_json:
        body = {"items": [render.delivery(i) for i in found.items], "next_cursor": next_cursor}
        typer.echo(json.dumps(body, indent=2))
        return
    if not found.items:
        typer.echo("No deliveries.")
        return
    typer.echo(_table([_row(item) for item in found.items]))
    if next_cursor is not None:
        typer.echo(f"More: add --cursor {next_cursor}", err=True)
