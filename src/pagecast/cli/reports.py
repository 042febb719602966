"""`pagecast campaigns report ID` and `pagecast pages overview ID` (issue 21): the bodies of
`GET /api/campaigns/{id}/report` and `GET /api/pages/{id}/overview` (web/reports_body.py),
as text or, with `--json`, as the API gives them."""

from __future__ import annotations

import json
from typing import Any

import typer

from pagecast.cli.base import campaigns_app, id_argument, pages_app, run

__all__ = ["campaigns_report", "pages_overview"]


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f} %"


def report_text(body: dict[str, Any]) -> str:
    """The report as lines for a terminal."""
    counts, timings, rates = body["counts"], body["timings"], body["rates"]
    lines = [
        f"Campaign {body['campaign_id']}: {body['name']} ({body['status']})",
        "",
        "COUNT      STATUS",
        *(f"{n:<10} {key}" for key, n in counts.items() if key != "total" and n),
        f"{counts['total']:<10} total",
        f"{body['retryable_failed']:<10} failed that a retry can cure "
        f"(`pagecast campaigns retry-failed {body['campaign_id']}`)",
        "",
        "RATE",
        f"delivered  {_percent(rates['delivered'])} of sent",
        f"read       {_percent(rates['read'])} of sent",
        f"failed     {_percent(rates['failed'])} of attempted",
        f"skipped    {_percent(rates['skipped'])} of total",
        "",
        "TIMING",
        *(f"{key:<18} {'-' if value is None else value}" for key, value in timings.items()),
    ]
    if body["reasons"]:
        lines += ["", "COUNT      STATUS     REASON"]
        lines += [
            f"{r['count']:<10} {r['status']:<10} {r['words'] or r['reason']}"
            for r in body["reasons"]
        ]
    if body["errors"]:
        lines += ["", "COUNT      CODE       MEANING"]
        for e in body["errors"]:
            code = "-" if e["code"] is None else str(e["code"])
            lines.append(f"{e['count']:<10} {code:<10} {e['meaning']} {e['what_to_do']}".rstrip())
    return "\n".join(lines)


def overview_text(body: dict[str, Any]) -> str:
    """The overview as lines for a terminal."""
    throttle = body["throttle"]
    if throttle is None:
        limit = "unknown (Redis cannot be reached)"
    elif throttle["throttled"]:
        limit = f"throttled by Facebook for {throttle['throttled_for_seconds']} s ({throttle['reason']})"
    else:
        limit = "not throttled"
    token = body["token"]
    lines = [
        f"Page {body['page_id']}: {body['name']}",
        f"Token: {token['status']}. {token['meaning']} {token['what_to_do']}".rstrip(),
        f"Send rate: {body['send_rate']:g} messages a second; {limit}",
        f"Last 30 days: {body['sent']} sent, {body['failed']} failed, {body['opt_outs']} opted out",
    ]
    lines += [
        f"Paused: campaign {c['id']} {c['name']}: {c['reason']}" for c in body["paused_campaigns"]
    ]
    lines += ["", "DAY          SENT     FAILED"]
    lines += [f"{d['day']}   {d['sent']:<8} {d['failed']}" for d in body["days"]]
    return "\n".join(lines)


@campaigns_app.command("report")
def campaigns_report(
    campaign_id: int = id_argument(),
    as_json: bool = typer.Option(False, "--json", help="The API's JSON body."),
) -> None:
    """A campaign's report: counts, reasons, errors in words, rates and timings."""
    from pagecast.web import reports_body

    body = run(lambda ctx: reports_body.campaign_report(ctx, campaign_id))
    typer.echo(json.dumps(body, indent=2) if as_json else report_text(body))


@pages_app.command("overview")
def pages_overview(
    page_id: int = id_argument(),
    as_json: bool = typer.Option(False, "--json", help="The API's JSON body."),
) -> None:
    """A Page's last 30 days: sent and failed by day, opt-outs, throttle and token state."""
    from pagecast.web import reports_body

    body = run(lambda ctx: reports_body.overview(ctx, page_id))
    typer.echo(json.dumps(body, indent=2) if as_json else overview_text(body))
