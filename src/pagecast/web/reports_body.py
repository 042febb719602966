"""The bodies of a campaign's report and a Page's overview (issue 21), shared by the API
(`GET /api/campaigns/{id}/report`, `GET /api/pages/{id}/overview`), the dashboard and the
CLI (`pagecast campaigns report`, `pagecast pages overview`), so all three say the same."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pagecast.context import AppContext
from pagecast.services import page_overview, reports
from pagecast.web import render
from pagecast.web.dashboard import explain

__all__ = ["campaign_report", "overview", "page_overview_body", "report_body", "report_rows"]

logger = logging.getLogger(__name__)


def report_body(found: reports.Report) -> dict[str, Any]:
    campaign = found.campaign
    return {
        "campaign_id": campaign.id,
        "name": campaign.name,
        "page_id": campaign.page_id,
        "status": campaign.status.value,
        "counts": found.counts,
        "retryable_failed": found.retryable_failed,
        "reasons": [
            {"status": status, "reason": reason, "words": words, "count": n}
            for status, reason, words, n in found.reasons
        ],
        "errors": [
            {
                "status": g.status,
                "reason": g.reason,
                "kind": g.kind,
                "code": g.code,
                "subcode": g.subcode,
                "count": g.count,
                "meaning": meaning,
                "what_to_do": todo,
                "example": g.example,
            }
            for g in found.errors
            for meaning, todo in [explain.delivery_error(g.code, g.subcode, g.kind, g.reason)]
        ],
        "rates": found.rates,
        "timings": {
            "created_at": render.utc_text(campaign.created_at),
            "started_at": render.utc_text(campaign.started_at),
            "finished_at": render.utc_text(campaign.completed_at),
            "duration_seconds": found.duration_seconds,
            "first_send_at": render.utc_text(found.first_send),
            "last_send_at": render.utc_text(found.last_send),
            "sends_per_second": found.sends_per_second,
        },
    }


async def campaign_report(ctx: AppContext, campaign_id: int) -> dict[str, Any]:
    async with ctx.db.reading() as session:
        return report_body(await reports.report(session, campaign_id))


def report_rows(body: dict[str, Any]) -> Iterator[list[Any]]:
    """The report as CSV rows of (section, key, words, value)."""
    for key, n in body["counts"].items():
        yield ["count", key, "", n]
    yield [
        "count",
        "retryable_failed",
        "failed deliveries a retry can cure",
        body["retryable_failed"],
    ]
    for r in body["reasons"]:
        yield ["reason", f"{r['status']}:{r['reason']}", r["words"], r["count"]]
    for e in body["errors"]:
        code = "" if e["code"] is None else str(e["code"])
        if e["subcode"] is not None:
            code += f"/{e['subcode']}"
        yield [
            "error",
            f"{e['status']}:{code or e['kind'] or e['reason']}",
            e["meaning"],
            e["count"],
        ]
    for key, rate in body["rates"].items():
        yield ["rate", key, "", "" if rate is None else rate]
    for key, value in body["timings"].items():
        yield ["timing", key, "", "" if value is None else value]


def page_overview_body(
    found: page_overview.Overview, throttle: dict[str, Any] | None
) -> dict[str, Any]:
    page = found.page
    meaning, todo = explain.page_status(page.status.value)
    return {
        "page_id": page.id,
        "name": page.name,
        "days": [
            {"day": d.isoformat(), "sent": s, "failed": f}
            for d, s, f in zip(found.days, found.sent, found.failed, strict=True)
        ],
        "sent": sum(found.sent),
        "failed": sum(found.failed),
        "opt_outs": found.opt_outs,
        "send_rate": page.send_rate,
        "throttle": throttle,
        "paused_campaigns": [
            {"id": c.id, "name": c.name, "reason": c.status_reason} for c in found.paused
        ],
        "token": {
            "status": page.status.value,
            "reason": page.status_reason,
            "meaning": meaning,
            "what_to_do": todo,
        },
    }


async def overview(ctx: AppContext, page_id: int) -> dict[str, Any]:
    """The Page's overview; its throttle is None when Redis cannot be reached (the rest
    comes from the database and is shown all the same)."""
    async with ctx.db.reading() as session:
        found = await page_overview.get(session, page_id)
    try:
        state = await ctx.limiter.state(page_id)
        throttle: dict[str, Any] | None = {
            "throttled": state["throttled_until"] is not None,
            "throttled_for_seconds": round(state["throttled_for"], 1),
            "reason": state["reason"],
            "rate": state["rate"],
        }
    except Exception:  # Redis down or unset: the overview still answers
        logger.warning("page %d overview: the limiter state could not be read", page_id)
        throttle = None
    return page_overview_body(found, throttle)
