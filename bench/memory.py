"""P6: worker peak RSS and Redis memory for campaigns of 10,000, 100,000 and 1,000,000.

One `pagecast worker` process sends each campaign (the Page's limit out of the way) for at
most `--max-seconds` of sending (the 10,000 campaign completes); Redis `used_memory` is
sampled every 0.25 s from the start call on. Reports the worker's peak RSS (VmHWM) and the
highest `used_memory`.

    uv run python bench/memory.py [--quick] [--sizes 10000 100000 1000000] [--max-seconds 60] [--runs 3]
        [--batch N] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from _harness import Bench, machine, median, print_table, write_results

PAGE = "9600000000000001"


async def one_run(
    bench: Bench,
    size: int,
    max_seconds: float,
    *,
    batch: int | None,
    concurrency: int,
    ab: bool = False,
) -> dict[str, float]:
    await bench.fresh_database()
    page_id = await bench.add_page(
        PAGE, send_rate=1e6, contacts=size, sim_people=min(size, 100_000)
    )
    bench.sim.add_page(PAGE, f"EAAGbench{PAGE}", per_second=10**9)
    campaign_id = await bench.add_campaign(page_id, ab=ab)
    [worker] = bench.start_workers(1, concurrency=concurrency, batch=batch)
    redis_peak = bench.redis.used_memory()
    try:
        start = asyncio.create_task(bench.start(campaign_id))
        first_sent = None
        while True:
            redis_peak = max(redis_peak, bench.redis.used_memory())
            if start.done():
                row = await bench.campaign(campaign_id)
                if row.status.value != "sending":
                    break
                if row.n_sent and first_sent is None:
                    first_sent = time.monotonic()
                if first_sent is not None and time.monotonic() - first_sent > max_seconds:
                    break
            await asyncio.sleep(0.25)
        await start
        rss = worker.peak_rss_mb()
        row = await bench.campaign(campaign_id)
    finally:
        bench.stop_workers()
    return {"worker_rss_mb": rss, "redis_mb": redis_peak / 2**20, "sent": row.n_sent}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench("memory")
    rows = []
    try:
        for size in args.sizes:
            runs = [
                await one_run(
                    bench,
                    size,
                    args.max_seconds,
                    batch=args.batch,
                    concurrency=args.concurrency,
                    ab=args.ab,
                )
                for _ in range(args.runs)
            ]
            rows.append(
                {
                    "recipients": size,
                    "worker_rss_mb": median([r["worker_rss_mb"] for r in runs]),
                    "redis_mb": median([r["redis_mb"] for r in runs]),
                    "sent": median([r["sent"] for r in runs]),
                    "runs": runs,
                }
            )
    finally:
        await bench.close()
    return {
        "max_seconds": args.max_seconds,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes (CI smoke)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--max-seconds", type=float, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--batch", type=int, default=None, help="PAGECAST_SEND_BATCH_SIZE (default: Pagecast's)"
    )
    parser.add_argument("--concurrency", type=int, default=100, help="sends in flight")
    parser.add_argument(
        "--ab", action="store_true", help="an A/B campaign (two variants) instead of one message"
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.max_seconds, args.runs = [1_000, 5_000], 2, 1
    facts = machine(pg_url="yes")
    result = asyncio.run(run(args))
    print_table(
        f"P6 memory{' (A/B campaign)' if args.ab else ''}: one worker "
        f"({args.concurrency} in flight, batch {args.batch or 'default'}), "
        f"at most {args.max_seconds:.0f} s of sending per campaign, "
        f"median of {args.runs} runs (targets: worker < 100 MB, Redis < 50 MB, flat)",
        facts,
        ["recipients", "worker peak RSS MB", "Redis used_memory MB", "sent in the window"],
        [[r["recipients"], r["worker_rss_mb"], r["redis_mb"], r["sent"]] for r in result["rows"]],
    )
    name = "memory-ab" if args.ab else "memory"
    write_results(name, {"machine": facts, "quick": args.quick, "ab": args.ab, **result})


if __name__ == "__main__":
    main()
