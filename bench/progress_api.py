"""P7: `GET /api/campaigns/{id}` latency at 100 requests/s during a large send.

A `pagecast web` process serves the API while two `pagecast worker` processes send a large
campaign; an open-loop client fires the progress request every 10 ms and records each
answer's latency. Reports p50 and p99.

The send runs at its Page's rate (`--send-rate`, default 300/s: Meta's ceiling for a Page)
against a simulator answering in 50-150 ms, as a large send runs in production. With
`--send-rate 0` the Page has no limit and the workers send as fast as the simulator answers
(`--latency 0`): that saturates this machine's cores, the web process included.

    uv run python bench/progress_api.py [--quick] [--contacts 100000] [--seconds 20] [--runs 3]
        [--send-rate 300] [--latency 50-150] [--web-nice N] [--worker-nice N]
        [--client-nice N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import httpx
from _harness import Bench, machine, median, print_table, write_results

PAGE = "9700000000000001"


async def one_run(bench: Bench, args: argparse.Namespace) -> dict[str, float]:
    await bench.fresh_database()
    unlimited = not args.send_rate
    page_id = await bench.add_page(
        PAGE, send_rate=1e6 if unlimited else args.send_rate, contacts=args.contacts
    )
    if unlimited:
        bench.sim.add_page(PAGE, f"EAAGbench{PAGE}", per_second=10**9)
    campaign_id = await bench.add_campaign(page_id)
    token = await bench.api_token()
    web = bench.start_web(nice=args.web_nice)
    bench.start_workers(args.workers, nice=args.worker_nice)
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
            sent_before = (await bench.campaign(campaign_id)).n_sent

            async def probe() -> None:
                nonlocal errors
                t = time.perf_counter()
                response = await api.get(f"/api/campaigns/{campaign_id}")
                latencies.append(time.perf_counter() - t)
                errors += response.status_code != 200

            tasks = []
            # The client (this process's event loop thread) at --client-nice while it
            # measures, as a client on a machine of its own would be.
            nice_before = os.getpriority(os.PRIO_PROCESS, 0)
            if args.client_nice != nice_before:
                os.setpriority(os.PRIO_PROCESS, 0, args.client_nice)
            try:
                web_cpu = web.cpu_seconds()
                begin = time.perf_counter()
                for i in range(int(args.seconds * args.rps)):
                    await asyncio.sleep(max(0.0, begin + i / args.rps - time.perf_counter()))
                    tasks.append(asyncio.create_task(probe()))
                await asyncio.gather(*tasks)
                span = time.perf_counter() - begin
            finally:
                if args.client_nice != nice_before:
                    os.setpriority(os.PRIO_PROCESS, 0, nice_before)
            web_cpu = web.cpu_seconds() - web_cpu
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
        "web_cpu_ms_per_request": web_cpu / len(latencies) * 1000,
        "errors": errors,
        "sent_during": row.n_sent,
        "send_rate_during": (row.n_sent - sent_before) / span,
        "sending_throughout": still_sending,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench("progress", latency_ms=args.latency)
    try:
        runs = [await one_run(bench, args) for _ in range(args.runs)]
    finally:
        await bench.close()
    return {
        "contacts": args.contacts,
        "rps": args.rps,
        "seconds": args.seconds,
        "send_rate": args.send_rate,
        "latency": args.latency,
        "web_nice": args.web_nice,
        "worker_nice": args.worker_nice,
        "client_nice": args.client_nice,
        "runs": runs,
        "p50_ms": median([r["p50_ms"] for r in runs]),
        "p99_ms": median([r["p99_ms"] for r in runs]),
        "web_cpu_ms_per_request": median([r["web_cpu_ms_per_request"] for r in runs]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes (CI smoke)")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rps", type=float, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--send-rate", type=float, default=300, help="the Page's rate (0: no limit at all)"
    )
    parser.add_argument("--latency", default="50-150", help="simulator latency in ms")
    parser.add_argument(
        "--web-nice",
        type=int,
        default=0,
        help="the web process's nice value (-10: it takes the CPU ahead of the senders, as a "
        "web process on cores of its own would; negative values need root)",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        help="PAGECAST_WORKER_NICE of the workers (10: they yield the CPU to the web process)",
    )
    parser.add_argument(
        "--client-nice",
        type=int,
        default=0,
        help="this process's nice value while it sends the requests and times the answers "
        "(-10: the client is not delayed by the senders, as on a machine of its own)",
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.contacts, args.seconds, args.runs, args.workers = 5_000, 2, 1, 1
    facts = machine(pg_url="yes")
    result = asyncio.run(run(args))
    print_table(
        f"P7 progress API at {args.rps:.0f} req/s for {args.seconds:.0f} s during a "
        f"{args.contacts:,}-contact send ({args.workers} workers, Page rate "
        f"{args.send_rate or 'unlimited'}, simulator {args.latency} ms, web nice "
        f"{args.web_nice}, workers nice {args.worker_nice}, client nice {args.client_nice}), "
        f"median of {args.runs} "
        "runs (target: p99 < 50 ms)",
        facts,
        [
            "p50 ms",
            "p99 ms",
            "web CPU ms/request",
            "requests",
            "errors",
            "sends/s meanwhile",
            "still sending at the end",
        ],
        [
            [
                result["p50_ms"],
                result["p99_ms"],
                result["web_cpu_ms_per_request"],
                sum(r["requests"] for r in result["runs"]),
                sum(r["errors"] for r in result["runs"]),
                median([r["send_rate_during"] for r in result["runs"]]),
                all(r["sending_throughout"] for r in result["runs"]),
            ]
        ],
    )
    write_results("progress_api", {"machine": facts, "quick": args.quick, **result})


if __name__ == "__main__":
    main()
