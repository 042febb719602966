"""P7: `GET /api/campaigns/{id}` latency at 100 requests/s during a large send.

A `pagecast web` process serves the API while two `pagecast worker` processes send a large
campaign as fast as the simulator answers; an open-loop client fires the progress request
every 10 ms and records each answer's latency. Reports p50 and p99.

    uv run python bench/progress_api.py [--quick] [--contacts 100000] [--seconds 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx
from _harness import Bench, machine, median, print_table, write_results

PAGE = "9700000000000001"


async def one_run(bench: Bench, args: argparse.Namespace) -> dict[str, float]:
    await bench.fresh_database()
    page_id = await bench.add_page(PAGE, send_rate=1e6, contacts=args.contacts)
    bench.sim.add_page(PAGE, f"EAAGbench{PAGE}", per_second=10**9)
    campaign_id = await bench.add_campaign(page_id)
    token = await bench.api_token()
    web = bench.start_web()
    bench.start_workers(args.workers)
    latencies: list[float] = []
    errors = 0
    try:
        async with httpx.AsyncClient(
            base_url=web.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as api:
            started = await api.post(f"/api/campaigns/{campaign_id}/start")
            assert started.status_code == 202, started.text
            while (await bench.campaign(campaign_id)).n_sent == 0:
                await asyncio.sleep(0.05)

            async def probe() -> None:
                nonlocal errors
                t = time.perf_counter()
                response = await api.get(f"/api/campaigns/{campaign_id}")
                latencies.append(time.perf_counter() - t)
                errors += response.status_code != 200

            tasks = []
            begin = time.perf_counter()
            for i in range(int(args.seconds * args.rps)):
                await asyncio.sleep(max(0.0, begin + i / args.rps - time.perf_counter()))
                tasks.append(asyncio.create_task(probe()))
            await asyncio.gather(*tasks)
            row = await bench.campaign(campaign_id)
            still_sending = row.status.value == "sending"
            await api.post(f"/api/campaigns/{campaign_id}/pause")
    finally:
        bench.stop_workers()
        for w in bench.webs:
            w.stop()
        bench.webs = []
    latencies.sort()
    return {
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "requests": len(latencies),
        "errors": errors,
        "sent_during": row.n_sent,
        "sending_throughout": still_sending,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench("progress")
    try:
        runs = [await one_run(bench, args) for _ in range(args.runs)]
    finally:
        await bench.close()
    return {
        "contacts": args.contacts,
        "rps": args.rps,
        "seconds": args.seconds,
        "runs": runs,
        "p50_ms": median([r["p50_ms"] for r in runs]),
        "p99_ms": median([r["p99_ms"] for r in runs]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes (CI smoke)")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rps", type=float, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.contacts, args.seconds, args.runs, args.workers = 5_000, 2, 1, 1
    facts = machine(pg_url="yes")
    result = asyncio.run(run(args))
    print_table(
        f"P7 progress API at {args.rps:.0f} req/s for {args.seconds:.0f} s during a "
        f"{args.contacts:,}-contact send ({args.workers} workers), median of {args.runs} runs "
        "(target: p99 < 50 ms)",
        facts,
        ["p50 ms", "p99 ms", "requests", "errors", "still sending at the end"],
        [
            [
                result["p50_ms"],
                result["p99_ms"],
                sum(r["requests"] for r in result["runs"]),
                sum(r["errors"] for r in result["runs"]),
                all(r["sending_throughout"] for r in result["runs"]),
            ]
        ],
    )
    write_results("progress_api", {"machine": facts, "quick": args.quick, **result})


if __name__ == "__main__":
    main()
