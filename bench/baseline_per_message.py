"""P2: Pagecast against the design it replaces (one BullMQ job per message, one row write per result).

The original system queued one job per message and wrote each result to the database one
row at a time. This file implements that design faithfully enough to race it: `--worker`
runs a BullMQ worker (a process, as in production) whose job reads its delivery, contact and
campaign, sends through the same Graph client and httpx settings, and writes the result and
the campaign's counter in its own transaction. Both designs run on the same simulator,
PostgreSQL, Redis, number of worker processes and sends in flight; reported is deliveries per
second from start to the last result written, and Pagecast / baseline.

    uv run python bench/baseline_per_message.py [--quick] [--contacts 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

from _harness import Bench, machine, median, print_table, write_results

from pagecast import eventloop

PAGE = "9500000000000001"
QUEUE = "baseline"


async def _worker(concurrency: int) -> None:
    """The original design's worker: one job = one message = one transaction."""
    from bullmq import Worker as BullWorker
    from sqlalchemy import select, update

    from pagecast.context import AppContext
    from pagecast.graph import GraphClient, GraphError, PageCredentials, make_http_client
    from pagecast.models import Campaign, Contact, Delivery, DeliveryStatus, Page, utcnow
    from pagecast.redis_url import parse_redis_url
    from pagecast.services import campaigns, content, pages
    from pagecast.settings import get_settings

    settings = get_settings()
    ctx = AppContext(settings)
    http = make_http_client(
        settings.graph_api_url,
        connect_timeout=settings.graph_connect_timeout,
        read_timeout=settings.graph_read_timeout,
        max_connections=settings.graph_max_connections,
    )
    graph = GraphClient(http, version=settings.graph_api_version)

    async def process(job: Any, _token: str) -> str:
        delivery_id = int(job.data["delivery_id"])
        async with ctx.db.transaction() as session:
            delivery = await session.get(Delivery, delivery_id)
            assert delivery is not None
            campaign = await session.get(Campaign, delivery.campaign_id)
            person = await session.get(Contact, delivery.contact_id)
            assert campaign is not None and person is not None
            page = await session.get(Page, campaign.page_id)
            assert page is not None
            message = await campaigns.effective_content(session, campaign)
            token, secret = pages.credentials(ctx.vault, page)
        names = {"first_name": person.first_name, "last_name": person.last_name}
        values: dict[str, Any]
        try:
            result = await graph.send_message(
                PageCredentials(token, secret),
                psid=person.psid,
                message=content.to_message(message, names),
                messaging_type=campaign.messaging_type.value,
                metadata=str(delivery_id),
            )
            values = {"status": DeliveryStatus.SENT, "message_id": result.message_id}
            counter = "n_sent"
        except GraphError as exc:
            values = {"status": DeliveryStatus.FAILED, "error_code": exc.code}
            counter = "n_failed"
        async with ctx.db.transaction() as session:
            await session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(**values, sent_at=utcnow(), updated_at=utcnow(), attempts=1)
            )
            await session.execute(
                update(Campaign)
                .where(Campaign.id == campaign.id)
                .values(
                    n_pending=Campaign.n_pending - 1,
                    **{counter: getattr(Campaign, counter) + 1},
                )
            )
        return "ok"

    target = parse_redis_url(str(settings.redis_url))
    worker = BullWorker(
        QUEUE,
        process,
        {"connection": target.connection_kwargs(), "concurrency": concurrency, "autorun": False},
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    runner = asyncio.create_task(worker.run())
    print("baseline worker started", flush=True)
    await stop.wait()
    await worker.close()
    runner.cancel()
    await http.aclose()
    await ctx.close()
    del select


async def _enqueue(bench: Bench, campaign_id: int) -> None:
    """Start: the snapshot (same as Pagecast's) then one job per delivery."""
    from bullmq import Queue as BullQueue
    from sqlalchemy import select, update

    from pagecast.models import Campaign, CampaignStatus, Delivery, DeliveryStatus, utcnow
    from pagecast.redis_url import parse_redis_url
    from pagecast.services import snapshot_insert

    async with bench.db.transaction() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        await snapshot_insert.snapshot(session, campaign, utcnow())
        await session.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(status=CampaignStatus.SENDING)
        )
        ids = list(
            await session.scalars(
                select(Delivery.id).where(
                    Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.PENDING
                )
            )
        )
    queue = BullQueue(QUEUE, {"connection": parse_redis_url(bench.redis.url).connection_kwargs()})
    for i in range(0, len(ids), 1000):
        await queue.addBulk(
            [
                {"name": "send", "data": {"delivery_id": d}, "opts": {"removeOnComplete": True}}
                for d in ids[i : i + 1000]
            ]
        )
    await queue.close()


async def baseline(bench: Bench, contacts: int, workers: int, concurrency: int) -> float:
    await bench.fresh_database()
    page_id = await bench.add_page(PAGE, send_rate=1e6, contacts=contacts)
    bench.sim.add_page(PAGE, f"EAAGbench{PAGE}", per_second=10**9)
    campaign_id = await bench.add_campaign(page_id)
    procs = []
    env = bench.worker_env()
    for k in range(workers):
        log = open(bench.workdir / f"baseline-{k}.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "--worker", str(concurrency)],
                env=env,
                cwd=bench.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        for k in range(workers):
            deadline = time.monotonic() + 60
            while b"worker started" not in (bench.workdir / f"baseline-{k}.log").read_bytes():
                if time.monotonic() > deadline or procs[k].poll() is not None:
                    raise SystemExit((bench.workdir / f"baseline-{k}.log").read_text()[-2000:])
                await asyncio.sleep(0.05)
        started = time.time()
        await _enqueue(bench, campaign_id)
        while (row := await bench.campaign(campaign_id)).n_pending > 0:
            await asyncio.sleep(0.1)
        done = time.time()
        assert row.n_sent == contacts, (row.n_sent, row.n_failed, contacts)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return contacts / (done - started)


async def pagecast(
    bench: Bench, contacts: int, workers: int, concurrency: int, batch: int
) -> float:
    await bench.fresh_database()
    page_id = await bench.add_page(PAGE, send_rate=1e6, contacts=contacts)
    bench.sim.add_page(PAGE, f"EAAGbench{PAGE}", per_second=10**9)
    campaign_id = await bench.add_campaign(page_id)
    bench.start_workers(workers, concurrency=concurrency, batch=batch)
    try:
        started = await bench.start(campaign_id)
        done = await bench.wait_done([campaign_id])
    finally:
        bench.stop_workers()
    return contacts / (done - started)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench("baseline", latency_ms=args.latency)
    try:
        ours, theirs = [], []
        for _ in range(args.runs):
            ours.append(
                await pagecast(bench, args.contacts, args.workers, args.concurrency, args.batch)
            )
            theirs.append(await baseline(bench, args.contacts, args.workers, args.concurrency))
    finally:
        await bench.close()
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return {
        "contacts": args.contacts,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "batch": args.batch,
        "latency_ms": args.latency,
        "pagecast_per_s": median(ours),
        "baseline_per_s": median(theirs),
        "ratio": median(ratios),
        "runs_pagecast": ours,
        "runs_baseline": theirs,
        "runs_ratio": ratios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes (CI smoke)")
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency", default="50-150", help="simulator latency in ms")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--batch", type=int, default=50, help="Pagecast's PAGECAST_SEND_BATCH_SIZE (1 to 50)"
    )
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        choice = os.environ.get("PAGECAST_EVENT_LOOP", "auto")  # the workers' loop
        eventloop.run(_worker(args.worker), choice)  # type: ignore[arg-type]
        return
    if args.quick:
        args.contacts, args.runs = 500, 1
    facts = machine(pg_url="yes")
    result = asyncio.run(run(args))
    print_table(
        f"P2 Pagecast vs one job per message: {args.contacts:,} contacts, {args.workers} worker "
        f"process(es), {args.concurrency} messages in flight each, latency {args.latency} ms, median of "
        f"{args.runs} runs (target: >= 5x)",
        facts,
        ["design", "deliveries/s"],
        [
            [
                f"Pagecast (chunks, {args.batch} messages per request, bulk writes)",
                result["pagecast_per_s"],
            ],
            ["one job per message, row writes", result["baseline_per_s"]],
            ["Pagecast / baseline", f"{result['ratio']:.2f}x"],
        ],
    )
    write_results("baseline_per_message", {"machine": facts, "quick": args.quick, **result})


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
