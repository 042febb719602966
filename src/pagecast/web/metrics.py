"""`/metrics` in the Prometheus text format, produced by prometheus_client.

Web and worker processes are many, so nothing is counted in this process: each scrape reads
the shared figures (the database's through services/metrics.py, Redis's through the
queue) into a `Snapshot`, and a custom collector turns the snapshot into metric families
(prometheus_client's "Custom Collectors": a collector's `collect` is synchronous, so the
reading happens before). docs/operations.md lists every family and the alert rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from pagecast.context import AppContext
from pagecast.models import PageStatus, utcnow
from pagecast.queue import LATENCY_BUCKETS
from pagecast.services.metrics import DatabaseFigures, database_figures

__all__ = ["Snapshot", "render", "snapshot"]


@dataclass
class Snapshot:
    """Every figure of one scrape."""

    database: DatabaseFigures
    queues: dict[str, dict[str, int]] = field(default_factory=dict)  # queue -> state -> jobs
    heartbeat_ages: dict[str, float] = field(default_factory=dict)  # worker id -> seconds
    # as `Queue.metrics` returns them: latency, sends, throttles
    sent: dict[str, dict[str, str]] = field(default_factory=dict)
    taken_at: datetime = field(default_factory=utcnow)


async def snapshot(ctx: AppContext) -> Snapshot:
    """Read the database's and Redis's figures (Redis must answer: the caller's 503 if not)."""
    async with ctx.db.transaction() as session:
        figures = await database_figures(session)
    now = utcnow()
    return Snapshot(
        database=figures,
        queues={"sending": await ctx.queue.counts(), "webhooks": await ctx.queue.webhook_counts()},
        heartbeat_ages={
            str(beat["id"]): _age(beat, now) for beat in await ctx.queue.live_workers()
        },
        sent=await ctx.queue.metrics(),
        taken_at=now,
    )


def render(figures: Snapshot) -> bytes:
    """The snapshot in the Prometheus text format (prometheus_client's `generate_latest`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(figures))
    return generate_latest(registry)


def _age(beat: dict[str, Any], now: datetime) -> float:
    last = datetime.fromisoformat(str(beat["last_heartbeat"]))  # aware, UTC (worker/process.py)
    return max(0.0, (now - last).total_seconds())


class _Collector(Collector):
    def __init__(self, figures: Snapshot) -> None:
        self._figures = figures

    def collect(self) -> Iterator[Metric]:
        db, sent = self._figures.database, self._figures.sent
        deliveries = GaugeMetricFamily(
            "pagecast_deliveries",
            "Deliveries of all campaigns by Page and status.",
            labels=["page", "status"],
        )
        for page, by_status in sorted(db.deliveries.items()):
            for status, n in by_status.items():
                deliveries.add_metric([page, status], n)
        yield deliveries

        pages = GaugeMetricFamily(
            "pagecast_page_status",
            "1 for a Page's current status (token_invalid: its token must be renewed), 0 for "
            "the others.",
            labels=["page", "status"],
        )
        for page, current in sorted(db.page_status.items()):
            for status in PageStatus:
                pages.add_metric([page, status.value], 1 if status.value == current else 0)
        yield pages

        campaigns = GaugeMetricFamily(
            "pagecast_campaigns", "Campaigns by status.", labels=["status"]
        )
        for status, n in db.campaigns.items():
            campaigns.add_metric([status], n)
        yield campaigns

        breaker = GaugeMetricFamily(
            "pagecast_campaigns_paused_by_breaker",
            "Paused campaigns the circuit breaker or a spam warning paused, by Page.",
            labels=["page"],
        )
        for page in sorted(db.page_status):
            breaker.add_metric([page], db.paused_by_breaker.get(page, 0))
        yield breaker

        outbound = GaugeMetricFamily(
            "pagecast_outbound_webhook_deliveries",
            "Outbound webhook deliveries (one event owed to one endpoint) by status.",
            labels=["status"],
        )
        for status, n in db.outbound_deliveries.items():
            outbound.add_metric([status], n)
        yield outbound

        endpoints = GaugeMetricFamily(
            "pagecast_webhook_endpoints",
            "Outbound webhook endpoints, turned on or off (by an admin or after 3 days of "
            "failures).",
            labels=["state"],
        )
        for state, n in db.webhook_endpoints.items():
            endpoints.add_metric([state], n)
        yield endpoints
        awaiting = GaugeMetricFamily(
            "pagecast_campaigns_awaiting_approval",
            "Campaigns awaiting a second person's approval before they start or are "
            "scheduled, by Page.",
            labels=["page"],
        )
        for page in sorted(db.page_status):
            awaiting.add_metric([page], db.awaiting_approval.get(page, 0))
        yield awaiting
        oldest = db.oldest_approval_request
        yield GaugeMetricFamily(
            "pagecast_approval_oldest_request_age_seconds",
            "Seconds since the oldest request for approval still waiting was made (0: none).",
            value=max(0.0, (self._figures.taken_at - oldest).total_seconds()) if oldest else 0.0,
        )

        queue_jobs = GaugeMetricFamily(
            "pagecast_queue_jobs",
            "Jobs of the sending and webhooks queues by state.",
            labels=["queue", "state"],
        )
        for queue, counts in self._figures.queues.items():
            for state, n in counts.items():
                queue_jobs.add_metric([queue, state], n)
        yield queue_jobs

        ages = self._figures.heartbeat_ages
        yield GaugeMetricFamily(
            "pagecast_workers", "Workers whose heartbeat has not expired.", value=len(ages)
        )
        heartbeat = GaugeMetricFamily(
            "pagecast_worker_heartbeat_age_seconds",
            "Seconds since each live worker's last heartbeat.",
            labels=["worker"],
        )
        for worker, age in sorted(ages.items()):
            heartbeat.add_metric([worker], age)
        yield heartbeat

        throttles = CounterMetricFamily(
            "pagecast_throttle_events",
            "Chunks whose sends Facebook throttled, by Page.",
            labels=["page"],
        )
        for page, throttled in sorted(sent.get("throttles", {}).items()):
            throttles.add_metric([page], int(throttled))
        yield throttles

        sends = CounterMetricFamily(
            "pagecast_sends",
            "Send API calls by Page and outcome.",
            labels=["page", "outcome"],
        )
        for key, calls in sorted(sent.get("sends", {}).items()):
            page, _, outcome = key.partition(":")
            sends.add_metric([page, outcome], int(calls))
        yield sends

        latency = sent.get("latency", {})
        buckets, cumulative = [], 0
        for bound in (*LATENCY_BUCKETS, "+Inf"):
            cumulative += int(latency.get(f"le_{bound}", 0))
            buckets.append((str(bound), cumulative))
        yield HistogramMetricFamily(
            "pagecast_send_latency_seconds",
            "Send API call latency.",
            buckets=buckets,
            sum_value=float(latency.get("sum", 0)),
        )
