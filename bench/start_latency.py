"""P4 and P5: start latency and the audience snapshot of a 1,000,000-contact campaign.

PostgreSQL only. One `pagecast web` (the API) and one `pagecast worker` run as processes;
the campaign is started with `POST /api/campaigns/{id}/start` like a client would. Reports
the time of the start call, the time from the start call to the first Send call the
simulator sees, and the time until every delivery row exists (`n_total` reaches the
audience size).

    uv run python bench/start_latency.py [--quick] [--contacts 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx
from _harness import Bench, machine, median, print_table, write_results
from sqlalchemy import func, select

from pagecast.models import Campaign, Delivery, utcnow
from pagecast.services import snapshot_insert

PAGE = "9400000000000001"


async def _snapshot_complete(bench: Bench, campaign_id: int, contacts: int) -> bool:
    """Every delivery row exists: no snapshot job left (queue.SNAPSHOT_PREFIX) and the rows
    are all there."""
    if bench.redis.command("EXISTS", f"pagecast:snapshot:{campaign_id}").strip() != "0":
        return False
    async with bench.db.transaction() as session:
        written = await session.scalar(
            select(func.count()).where(Delivery.campaign_id == campaign_id)
        )
    return written == contacts


async def one_run(bench: Bench, contacts: int) -> dict[str, float]:
    await bench.fresh_database()
    page_id = await bench.add_page(PAGE, send_rate=300, contacts=contacts, sim_people=5_000)
    campaign_id = await bench.add_campaign(page_id)
    token = await bench.api_token()
    web = bench.start_web()
    bench.start_workers(1)
    headers = {"Authorization": f"Bearer {token}"}
    first_send = snapshot_done = float("nan")
    try:
        async with httpx.AsyncClient(base_url=web.url, headers=headers, timeout=300) as api:
            before = bench.sim.stats()["calls"]  # the token check (GET /me) is one
            t0 = time.time()
            call = asyncio.create_task(api.post(f"/api/campaigns/{campaign_id}/start"))
            while not call.done() or first_send != first_send or snapshot_done != snapshot_done:
                now = time.time()
                if first_send != first_send and bench.sim.stats()["calls"] > before:
                    sends = [
                        c["time"] for c in bench.sim.calls(PAGE) if c["path"].endswith("/messages")
                    ]
                    first_send = min(sends) - t0
                if (
                    snapshot_done != snapshot_done
                    and call.done()
                    and await _snapshot_complete(bench, campaign_id, contacts)
                ):
                    snapshot_done = time.time() - t0
                if now - t0 > 600:
                    raise SystemExit("no first send or snapshot within 600 s")
                await asyncio.sleep(0.02)
            response = await call
            assert response.status_code == 202, response.text
            start_call = float(response.elapsed.total_seconds())
            await api.post(f"/api/campaigns/{campaign_id}/pause")
    finally:
        bench.stop_workers()
        for w in bench.webs:
            w.stop()
        bench.webs = []
    # Before: the whole audience in one INSERT ... SELECT inside the start transaction.
    other = await bench.add_campaign(page_id)
    async with bench.db.transaction() as session:
        campaign = await session.get(Campaign, other)
        assert campaign is not None
        t = time.perf_counter()
        await snapshot_insert.snapshot(session, campaign, utcnow())
        one_statement = time.perf_counter() - t
    return {
        "start_call_s": start_call,
        "first_send_s": first_send,
        "snapshot_s": snapshot_done,
        "one_statement_snapshot_s": one_statement,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench("start")
    try:
        runs = [await one_run(bench, args.contacts) for _ in range(args.runs)]
    finally:
        await bench.close()
    return {
        "contacts": args.contacts,
        "runs": runs,
        **{key: median([r[key] for r in runs]) for key in runs[0]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes (CI smoke)")
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.contacts, args.runs = min(args.contacts, 20_000), 1
    facts = machine(pg_url="yes")
    result = asyncio.run(run(args))
    print_table(
        f"P4/P5 start of a {args.contacts:,}-contact campaign on PostgreSQL, median of {args.runs} "
        "runs (targets: first Send < 1 s after start, snapshot < 20 s)",
        facts,
        [
            "start API call s",
            "start -> first Send s",
            "start -> snapshot done s",
            "before: one INSERT ... SELECT s",
        ],
        [
            [
                result["start_call_s"],
                result["first_send_s"],
                result["snapshot_s"],
                result["one_statement_snapshot_s"],
            ]
        ],
    )
    write_results("start_latency", {"machine": facts, "quick": args.quick, **result})


if __name__ == "__main__":
    main()
