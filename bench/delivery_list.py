"""P11: `GET /api/campaigns/{id}/deliveries` on a 1,000,000-delivery campaign (PostgreSQL).

A bench database gets a Page with 1,000,000 contacts, a smaller campaign first (100,000
deliveries, so the big one's ids do not start at 1) and the measured campaign with one
delivery per contact, written by the database itself in a spread like a finished send:
72 % read, 12 % delivered, 6 % sent, 3 % failed (551, 613, 10 and 100 in falling numbers),
5 % skipped (`outside_window`), 2 % pending; variants A, B, C. Each case is the API's
answer from a `pagecast web` process over HTTP (authentication and JSON included), warm,
median of `--runs`; `query ms` is the service's read alone in the bench process; `plan` the
scans PostgreSQL chose (EXPLAIN of the same query). Then the whole CSV of one filter, with
the web process's peak RSS (VmHWM) before and after it.

    uv run python bench/delivery_list.py [--quick] [--deliveries 1000000] [--runs 20]
        [--csv-status read,delivered,sent] [--before-0023]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    PG_SERVER,
    Redis,
    Web,
    fresh_postgres,
    machine,
    median,
    print_table,
    write_results,
)
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from pagecast.db import Database, upgrade
from pagecast.models import Role
from pagecast.permissions import Actor
from pagecast.schemas import CampaignCreate, Content, PageCreate, UserCreate
from pagecast.services import campaigns, delivery_list, pages, tokens, users
from pagecast.services.delivery_list import Filters
from pagecast.web import render

SECRET = "bench-secret-key-0123456789abcdef0123456789"

# (label, query parameters) of each measured page.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("first page", {}),
    ("page in the middle", {"after": "middle"}),
    ("last page", {"after": "end"}),
    ("status=failed", {"status": "failed"}),
    ("status=read", {"status": "read"}),
    ("status=failed,skipped", {"status": "failed,skipped"}),
    ("status=pending (last 2 %)", {"status": "pending"}),
    ("error_code=551", {"error_code": 551}),
    ("error_code=10 (1 in 10,000)", {"error_code": 10}),
    ("variant=B", {"variant": "B"}),
    ("reason=outside_window", {"reason": "outside_window"}),
    ("status=failed&variant=C", {"status": "failed", "variant": "C"}),
]

_DELIVERIES = text(
    """
    INSERT INTO deliveries (campaign_id, contact_id, status, reason, attempts, variant,
        sent_at, delivered_at, read_at, error_code, error_subcode, error_kind, error_message,
        fbtrace_id, parts_sent, updated_at)
    SELECT :campaign, c.id, s.status,
        CASE s.status WHEN 'skipped' THEN 'outside_window' END,
        CASE WHEN s.status IN ('pending', 'skipped') THEN 0 ELSE 1 END,
        chr(65 + (c.id % 3)),
        CASE WHEN s.status IN ('sent', 'delivered', 'read') THEN now() END,
        CASE WHEN s.status IN ('delivered', 'read') THEN now() END,
        CASE WHEN s.status = 'read' THEN now() END,
        s.code, NULL,
        CASE WHEN s.code IS NOT NULL THEN 'recipient_unreachable' END,
        CASE WHEN s.code IS NOT NULL THEN 'error ' || s.code END,
        CASE WHEN s.code IS NOT NULL THEN 'trace' || c.id END,
        CASE WHEN s.status IN ('sent', 'delivered', 'read') THEN 1 ELSE 0 END,
        now()
    FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM contacts
          WHERE page_id = :page ORDER BY id LIMIT :count) c
    CROSS JOIN LATERAL (
        SELECT CASE
            WHEN c.n > :count * 0.98 THEN 'pending'
            WHEN c.n % 100 < 72 THEN 'read'
            WHEN c.n % 100 < 84 THEN 'delivered'
            WHEN c.n % 100 < 90 THEN 'sent'
            WHEN c.n % 100 < 93 THEN 'failed'
            ELSE 'skipped' END AS status,
        CASE WHEN c.n <= :count * 0.98 AND c.n % 100 BETWEEN 90 AND 92 THEN
            CASE WHEN c.n % 10000 = 90 THEN 10 WHEN c.n % 1000 = 91 THEN 100
                 WHEN c.n % 7 = 0 THEN 613 ELSE 551 END END AS code
    ) s
    """
)


async def seed(db: Database, count: int) -> tuple[int, str]:
    """The Page, contacts and both campaigns; returns the measured campaign's id and an
    admin's API token."""

    async def owner(_token: str, _secret: str | None) -> pages.Owner:
        return pages.Owner(id="9800000000000001", name="Bench listing")

    async with db.transaction() as session:
        page = await pages.connect(
            session,
            Actor.system(),
            _vault(),
            PageCreate(access_token="EAAGbenchlisting"),
            verify=owner,
            default_send_rate=40,
        )
        made = [
            await campaigns.create(
                session,
                Actor.system(),
                CampaignCreate(name=name, page_id=page.id, content=Content(text="Hi")),
            )
            for name in ("earlier", "listed")
        ]
        user = await users.create(
            session, Actor.system(), UserCreate(email="bench@example.com", role=Role.ADMIN)
        )
        _, raw = await tokens.create(session, Actor.system(), user, "bench")
    step = 250_000
    for lo in range(0, count, step):
        async with db.transaction() as session:
            await session.execute(
                text(
                    "INSERT INTO contacts (page_id, psid, first_name, last_name, created_at, "
                    "updated_at) SELECT :page, (8000000000000000 + g)::text, 'F' || g, 'L', "
                    "now(), now() FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g"
                ),
                {"page": page.id, "lo": lo, "hi": min(lo + step, count) - 1},
            )
    async with db.transaction() as session:
        for campaign, n in ((made[0], count // 10), (made[1], count)):
            await session.execute(
                _DELIVERIES, {"campaign": campaign.id, "page": page.id, "count": n}
            )
    async with db.transaction() as session:
        await session.execute(text("ANALYZE contacts"))
        await session.execute(text("ANALYZE deliveries"))
    return made[1].id, raw


def _vault() -> Any:
    from pagecast.security import Vault

    return Vault(SECRET.encode())


async def _plan(db: Database, campaign_id: int, filters: Filters, after: int | None) -> str:
    """The scans of the plan PostgreSQL chooses for the page's query."""
    query = delivery_list.query(campaign_id, filters, after=after, limit=51)
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with db.transaction() as session:
        lines = [row[0] for row in await session.execute(text("EXPLAIN " + sql))]
    scans = [line.strip().lstrip("-> ").split("  ")[0] for line in lines if "Scan" in line]
    return "; ".join(scans)


async def _indexes_before_0023(db: Database) -> None:
    """The indexes as they were before migration 0023 (for the before/after table)."""
    async with db.transaction() as session:
        for name in (
            "ix_deliveries_campaign_id_status_id",
            "ix_deliveries_campaign_id_error_code",
            "ix_deliveries_campaign_id_reason",
        ):
            await session.execute(text(f"DROP INDEX {name}"))
        await session.execute(
            text(
                "CREATE INDEX ix_deliveries_campaign_id_status ON deliveries (campaign_id, status)"
            )
        )
        await session.execute(text("ANALYZE deliveries"))


async def _query_ms(db: Database, campaign_id: int, filters: Filters, after: int | None) -> float:
    """The service's read alone (`delivery_list.page`), in this process."""
    t = time.perf_counter()
    async with db.transaction() as session:
        await delivery_list.page(session, campaign_id, filters, after=after, limit=50)
    return (time.perf_counter() - t) * 1000


def _web_env(workdir: Path, url: str, redis_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAGECAST_") and k not in ("REDIS_URL", "DATABASE_URL")
    }
    return env | {
        "PAGECAST_DATABASE_URL": url,
        "PAGECAST_REDIS_URL": redis_url,
        "PAGECAST_SECRET_KEY": SECRET,
        "PAGECAST_DATA_DIR": str(workdir / "data"),
    }


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(args: argparse.Namespace, facts: dict[str, Any]) -> dict[str, Any]:
    url = await fresh_postgres("pagecast_bench_delivery_list")
    db = Database(url)
    await upgrade(db, "head")
    t = time.perf_counter()
    campaign_id, token = await seed(db, args.deliveries)
    seeded = time.perf_counter() - t
    if args.before_0023:
        await _indexes_before_0023(db)
    async with db.transaction() as session:
        middle, end = (
            await session.execute(
                text(
                    "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY id), max(id) - 10 "
                    "FROM deliveries WHERE campaign_id = :c"
                ),
                {"c": campaign_id},
            )
        ).one()
    workdir = Path(tempfile.mkdtemp(prefix="pagecast-bench-delivery-list-"))
    redis = Redis(workdir)
    web = Web(workdir, _web_env(workdir, url, redis.url))
    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(
            base_url=web.url, headers={"Authorization": f"Bearer {token}"}, timeout=600
        ) as client:
            path = f"/api/campaigns/{campaign_id}/deliveries"
            for label, case in CASES:
                params = dict(case)
                after = {"middle": middle, "end": end}.get(params.pop("after", ""))
                if after is not None:
                    params["cursor"] = render.cursor(after)
                status = params.get("status")
                filters = delivery_list.parse(
                    status=[status] if status else [],
                    variant=params.get("variant"),
                    error_code=params.get("error_code"),
                    reason=params.get("reason"),
                )
                times, queries = [], []
                for _ in range(args.runs + 2):  # the first two warm the caches
                    t = time.perf_counter()
                    answer = await client.get(path, params=params)
                    times.append(time.perf_counter() - t)
                    assert answer.status_code == 200, answer.text
                    queries.append(await _query_ms(db, campaign_id, filters, after))
                listed = len(answer.json()["items"])
                plan = await _plan(db, campaign_id, filters, after)
                ms = median(times[2:]) * 1000
                rows.append([label, listed, ms, median(queries[2:]), plan])
                results[label] = {
                    "items": listed,
                    "api_median_ms": ms,
                    "api_max_ms": max(times[2:]) * 1000,
                    "query_median_ms": median(queries[2:]),
                    "plan": plan,
                }
            # The whole CSV of one filter, streamed: rows/s and the web process's peak RSS.
            before = _peak_rss_mb(web.proc.pid)
            t = time.perf_counter()
            size = 1
            if args.csv_status:
                async with client.stream(
                    "GET", path, params={"status": args.csv_status}, headers={"Accept": "text/csv"}
                ) as answer:
                    async for chunk in answer.aiter_bytes():
                        size += chunk.count(b"\n")
                size -= 1
            csv_s = max(time.perf_counter() - t, 1e-9)
            after_rss = _peak_rss_mb(web.proc.pid)
    finally:
        web.stop()
        redis.stop()
        await db.close()
    print_table(
        f"P11: deliveries listing, {args.deliveries:,} deliveries (PostgreSQL), "
        f"limit 50, median of {args.runs}"
        + (", indexes before migration 0023" if args.before_0023 else ""),
        facts,
        ["case", "items", "API ms", "query ms", "plan (scans)"],
        rows,
    )
    csv_rows = size - 1
    if args.csv_status:
        print(
            f"CSV status={args.csv_status}: {csv_rows:,} rows in {csv_s:.1f} s "
            f"({csv_rows / csv_s:,.0f} rows/s); the web process's peak RSS {before:.0f} MB "
            f"before, {after_rss:.0f} MB after"
        )
    print(f"seeding took {seeded:.0f} s")
    return {
        "deliveries": args.deliveries,
        "before_0023": args.before_0023,
        "cases": results,
        "csv": {
            "status": args.csv_status,
            "rows": csv_rows,
            "seconds": csv_s,
            "web_peak_rss_mb_before": before,
            "web_peak_rss_mb_after": after_rss,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes (CI smoke)")
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--csv-status",
        default="read,delivered,sent",
        help='the status filter of the CSV run ("": no CSV run)',
    )
    parser.add_argument(
        "--before-0023", action="store_true", help="the indexes as before migration 0023"
    )
    args = parser.parse_args()
    if args.quick:
        args.deliveries, args.runs = 20_000, 3
    facts = machine(PG_SERVER)
    result = asyncio.run(run(args, facts))
    write_results("delivery_list", {"machine": facts, "quick": args.quick, **result})


if __name__ == "__main__":
    main()
