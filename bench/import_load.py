"""P8: a large CSV import of contacts while Facebook's webhooks and progress reads keep coming.

On PostgreSQL a `pagecast web` process and a `pagecast worker` (which applies the webhook
events) run on a fresh database; on SQLite `pagecast serve`, the default setup (both in one
process, which is what SQLite is for); the client uploads a CSV of N contacts to `POST
/api/pages/{id}/contacts/import` (202: a background job) and, until the job has ended, fires
signed webhook POSTs (an inbound message each, `--webhooks` a second) and campaign progress
reads (`GET /api/campaigns/{id}`, `--reads` a second) on a fixed schedule (open loop: a slow
answer does not delay the next request). Reports the import's duration and rows/s (upload
included), and the latency of the webhook acknowledgements and of the progress reads, with
the same load's latencies during the seconds before the upload (`--baseline`) beside them: on
a shared machine, what the import adds is the difference.

Target (P8, PostgreSQL): 1,000,000 rows in under 60 s, webhook p99 < 500 ms, progress
p99 < 100 ms.

    uv run python bench/import_load.py [--quick] [--postgresql] [--rows N] [--runs 1]
        [--webhooks 20] [--reads 10] [--baseline 10] [--batch-rows N]

Rows default to 1,000,000 with --postgresql and 200,000 on SQLite (the default).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
from _harness import Bench, machine, median, print_table, write_results

PAGE = "9600000000000001"
APP_SECRET = "bench-import-app-secret"
TARGET = {"seconds_per_million": 60.0, "webhook_p99_ms": 500.0, "progress_p99_ms": 100.0}


def write_csv(path: Path, rows: int) -> int:
    """N contacts with names, two tags and a last message time; returns the file's size."""
    with open(path, "w") as out:
        out.write("psid,first_name,last_name,tags,last_inbound_at\n")
        step = 50_000
        for lo in range(0, rows, step):
            out.write(
                "".join(
                    f"{5 * 10**15 + i},First{i},Last{i % 997},t{i % 13};all,"
                    f"2026-11-20T10:{i % 60:02d}:00Z\n"
                    for i in range(lo, min(lo + step, rows))
                )
            )
    return path.stat().st_size


def signed_message(n: int) -> tuple[bytes, dict[str, str]]:
    """An inbound message webhook, signed as Facebook signs it."""
    now = int(time.time() * 1000)
    event = {
        "sender": {"id": str(8 * 10**15 + n % 500)},
        "recipient": {"id": PAGE},
        "timestamp": now,
        "message": {"mid": f"m.bench.{n}.{now}", "text": "hello"},
    }
    body = json.dumps(
        {"object": "page", "entry": [{"id": PAGE, "time": now, "messaging": [event]}]},
        separators=(",", ":"),
    ).encode()
    digest = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_run(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    await bench.fresh_database()
    page_id = await bench.add_page(PAGE, send_rate=40, contacts=1000)
    campaign_id = await bench.add_campaign(page_id)
    token = await bench.api_token()
    if bench.backend == "sqlite":  # the default setup: web and worker in one process
        web = bench.start_web(command="serve")
    else:
        web = bench.start_web()
        bench.start_workers(1, concurrency=20)
    csv_path = bench.workdir / "contacts.csv"
    size = write_csv(csv_path, args.rows)
    # (sent at, latency) of every request: those sent before the upload are the baseline.
    hooks: list[tuple[float, float]] = []
    reads: list[tuple[float, float]] = []
    failures: dict[str, int] = {"webhook": 0, "progress": 0}
    pending: set[asyncio.Task[None]] = set()

    async with (
        httpx.AsyncClient(
            base_url=web.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
            limits=httpx.Limits(max_connections=200),
        ) as api,
        httpx.AsyncClient(base_url=web.url, timeout=60) as facebook,
    ):

        async def hook(n: int) -> None:
            body, headers = signed_message(n)
            t = time.perf_counter()
            answer = await facebook.post("/webhooks/messenger", content=body, headers=headers)
            hooks.append((t, time.perf_counter() - t))
            failures["webhook"] += answer.status_code != 200

        async def read() -> None:
            t = time.perf_counter()
            answer = await api.get(f"/api/campaigns/{campaign_id}")
            reads.append((t, time.perf_counter() - t))
            failures["progress"] += answer.status_code != 200

        async def fire(every: float, make: Any, stop: asyncio.Event) -> None:
            n, start = 0, time.perf_counter()
            while not stop.is_set():
                task = asyncio.create_task(make(n) if make is hook else make())
                pending.add(task)
                task.add_done_callback(pending.discard)
                n += 1
                await asyncio.sleep(max(0.0, start + n * every - time.perf_counter()))

        stop = asyncio.Event()
        load = [
            asyncio.create_task(fire(1 / args.webhooks, hook, stop)),
            asyncio.create_task(fire(1 / args.reads, read, stop)),
        ]
        await asyncio.sleep(args.baseline)  # the same load without an import, for comparison
        began = time.perf_counter()
        with open(csv_path, "rb") as file:
            answer = await api.post(
                f"/api/pages/{page_id}/contacts/import",
                content=file.read(),
                headers={"content-type": "text/csv"},
            )
        assert answer.status_code == 202, answer.text
        uploaded = time.perf_counter() - began
        job = answer.json()
        while job["running"]:
            await asyncio.sleep(0.2)
            job = (await api.get(f"/api/contacts/imports/{job['id']}")).json()
        duration = time.perf_counter() - began
        stop.set()
        await asyncio.gather(*load)
        await asyncio.gather(*pending)
    assert job["state"] == "completed" and job["created"] == args.rows, job
    ms = 1000.0
    base_hooks = [lat for t, lat in hooks if t < began]
    base_reads = [lat for t, lat in reads if t < began]
    during_hooks = [lat for t, lat in hooks if began <= t]
    during_reads = [lat for t, lat in reads if began <= t]
    return {
        "rows": args.rows,
        "mb": size / 1e6,
        "upload_s": uploaded,
        "import_s": duration,
        "rows_per_s": args.rows / duration,
        "webhooks": len(during_hooks),
        "webhook_p50_ms": percentile(during_hooks, 0.5) * ms,
        "webhook_p99_ms": percentile(during_hooks, 0.99) * ms,
        "webhook_max_ms": max(during_hooks, default=float("nan")) * ms,
        "reads": len(during_reads),
        "progress_p50_ms": percentile(during_reads, 0.5) * ms,
        "progress_p99_ms": percentile(during_reads, 0.99) * ms,
        "progress_max_ms": max(during_reads, default=float("nan")) * ms,
        "idle_webhook_p50_ms": percentile(base_hooks, 0.5) * ms,
        "idle_webhook_p99_ms": percentile(base_hooks, 0.99) * ms,
        "idle_progress_p50_ms": percentile(base_reads, 0.5) * ms,
        "idle_progress_p99_ms": percentile(base_reads, 0.99) * ms,
        "failures": failures["webhook"] + failures["progress"],
    }


async def run(args: argparse.Namespace, backend: str) -> list[dict[str, Any]]:
    env = {"PAGECAST_APP_SECRET": APP_SECRET}
    if args.batch_rows:
        env["PAGECAST_IMPORT_BATCH_ROWS"] = str(args.batch_rows)
    bench = Bench("import_load", backend=backend, env=env)
    try:
        return [await one_run(bench, args) for _ in range(args.runs)]
    finally:
        await bench.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows: a smoke run")
    parser.add_argument("--postgresql", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--webhooks", type=float, default=20.0, help="signed POSTs a second")
    parser.add_argument("--reads", type=float, default=10.0, help="progress reads a second")
    parser.add_argument("--batch-rows", type=int, default=None, help="PAGECAST_IMPORT_BATCH_ROWS")
    parser.add_argument(
        "--baseline", type=float, default=None, help="seconds of the same load before the import"
    )
    args = parser.parse_args()
    backend = "postgresql" if args.postgresql else "sqlite"
    if args.rows is None:
        args.rows = 20_000 if args.quick else 1_000_000 if args.postgresql else 200_000
    if args.baseline is None:
        args.baseline = 2.0 if args.quick else 10.0
    facts = machine(pg_url="postgresql" if args.postgresql else None)
    runs = asyncio.run(run(args, backend))
    keys = [
        "rows", "mb", "upload_s", "import_s", "rows_per_s", "webhooks", "webhook_p50_ms",
        "webhook_p99_ms", "webhook_max_ms", "reads", "progress_p50_ms", "progress_p99_ms",
        "progress_max_ms", "failures",
    ]  # fmt: skip
    idle = ["idle_webhook_p50_ms", "idle_webhook_p99_ms", "idle_progress_p50_ms",
            "idle_progress_p99_ms"]  # fmt: skip
    print_table(
        f"P8: import of {args.rows:,} contacts on {backend} with {args.webhooks:g} webhooks/s "
        f"and {args.reads:g} progress reads/s",
        facts,
        ["run", *keys],
        [[i + 1, *(r[k] for k in keys)] for i, r in enumerate(runs)],
    )
    print_table(
        f"the same load during the {args.baseline:g} s before the upload (no import)",
        facts,
        ["run", *idle],
        [[i + 1, *(r[k] for k in idle)] for i, r in enumerate(runs)],
    )
    summary = {k: median([r[k] for r in runs]) for k in keys + idle}
    if backend == "postgresql":
        seconds = summary["import_s"] * 1_000_000 / args.rows
        print(
            f"P8 target: 1,000,000 rows < {TARGET['seconds_per_million']:.0f} s "
            f"(here {seconds:.1f} s per million), webhook p99 < {TARGET['webhook_p99_ms']:.0f} ms "
            f"({summary['webhook_p99_ms']:.0f}), progress p99 < {TARGET['progress_p99_ms']:.0f} "
            f"ms ({summary['progress_p99_ms']:.0f})"
        )
    write_results(
        "import_load",
        {
            "quick": args.quick,
            "backend": backend,
            "machine": facts,
            "args": vars(args),
            "runs": runs,
            "median": summary,
            "target": TARGET,
        },
    )


if __name__ == "__main__":
    main()
