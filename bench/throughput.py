"""P1: end-to-end deliveries per second against a bare aiohttp client's ceiling on this machine.

For each simulator latency (0 ms, uniform 50-150 ms), 1 and 2 `pagecast worker`
processes, and each way of sending (`PAGECAST_SEND_BATCH_SIZE` 1: a request per message;
50: Graph batch requests): start a campaign of N contacts on one Page whose limit is out of
the way and time start -> every delivery recorded (the campaign's `completed_at`). In the
same run, the ceiling: the same number of processes, each a bare `aiohttp.ClientSession`
(no Pagecast Graph client, no httpx, no database, no queue) posting the bytes Pagecast posts
(one `POST /v25.0/me/messages` per message, or a Graph batch request `POST /v25.0/` of 50,
its body built as `GraphClient.send_batch` builds it) with the same number of messages in
flight to the same simulator. Reports pipeline / ceiling and each side's CPU per message.

A second table splits the machine's CPU during each pipeline run (start -> done) between the
workers, the web process (none here), the simulator, Redis, PostgreSQL (every process of
the server, so other databases' work too), this benchmark's own process (its polling of the
campaign), everything else, and idle time, each as CPU seconds and a share of all cores
(/proc): where the pipeline and the ceiling both run out of cores, the ceiling is the machine.
In the results JSON the ceiling's numbers keep their `raw_` keys (`raw_per_s`, `raw_cpu_us`,
`runs_raw`); `ceiling` names the client, `cpu_split` holds the second table.

    uv run python bench/throughput.py [--quick] [--contacts 50000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from pagecast import eventloop

if TYPE_CHECKING:
    from _harness import Bench

# The parent imports `_harness` (and with it most of Pagecast) where it needs it: a ceiling
# process imports aiohttp and nothing of Pagecast's but its event-loop choice.

PAGE = "9100000000000001"
TOKEN = f"EAAGbench{PAGE}"
FIRST_NAME = "{{first_name|there}}"  # the one placeholder of the bench campaign's text
# Idle connections dropped before uvicorn's 5 s keep-alive closes them, as Pagecast does.
KEEPALIVE_S = 4.0
GROUPS = ("workers", "web", "simulator", "redis", "postgres", "bench", "other", "idle")


def _loop_setting() -> eventloop.EventLoop:
    choice = os.environ.get("PAGECAST_EVENT_LOOP", "auto")
    assert choice in ("auto", "asyncio", "uvloop"), choice
    return choice  # type: ignore[return-value]


# ------------------------------------------------------------------ the ceiling


def _json(value: Any) -> bytes:
    """JSON as Pagecast's client puts it on the wire (compact, UTF-8)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _send_body(psid: str, text: str, metadata: str) -> dict[str, Any]:
    """The Send API body of one text message, as the worker has GraphClient build it."""
    return {
        "recipient": {"id": psid},
        "messaging_type": "UPDATE",
        "message": {"text": text, "metadata": metadata},
    }


def _batch_body(version: str, token: str, bodies: list[dict[str, Any]]) -> bytes:
    """A Graph batch request's body as `GraphClient.send_batch` builds it: each operation's
    body URL-encoded (JSON values dumped) with the token, the whole as JSON."""
    operations = [
        {
            "method": "POST",
            "relative_url": f"{version}/me/messages",
            "body": urlencode(
                {
                    key: value if isinstance(value, str) else json.dumps(value)
                    for key, value in {**body, "access_token": token}.items()
                }
            ),
        }
        for body in bodies
    ]
    return _json({"batch": operations, "include_headers": True})


async def _raw_child(
    *,
    url: str,
    first_psid: int,
    count: int,
    concurrency: int,
    start_at: float,
    batch: int,
    version: str,
    text: str,
    connect_timeout: float,
    read_timeout: float,
) -> None:
    """One ceiling process: `count` messages, `concurrency` in flight, a bare aiohttp client."""
    import aiohttp

    in_flight = concurrency if batch == 1 else max(1, concurrency // batch)  # the same messages
    session = aiohttp.ClientSession(
        base_url=url,
        connector=aiohttp.TCPConnector(limit=in_flight, keepalive_timeout=KEEPALIVE_S),
        timeout=aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=read_timeout),
        headers={
            "Accept": "application/json",
            "User-Agent": "pagecast",
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json",
        },
    )
    failures = 0

    def body(k: int) -> dict[str, Any]:
        return _send_body(str(first_psid + k), text.replace(FIRST_NAME, f"F{k}"), str(k))

    async def one(k: int) -> int:
        """One message, one request: the number of messages that failed."""
        async with session.post(f"/{version}/me/messages", data=_json(body(k))) as response:
            answer = json.loads(await response.read())
            return int(response.status != 200 or "message_id" not in answer)

    async def many(k: int) -> int:
        """`batch` messages in one Graph batch request: the number that failed."""
        size = min(batch, count - k)
        data = _batch_body(version, TOKEN, [body(j) for j in range(k, k + size)])
        async with session.post(f"/{version}/", data=data) as response:
            answer = json.loads(await response.read())
        if response.status != 200 or not isinstance(answer, list):
            return size
        return size - sum(1 for item in answer[:size] if item and item.get("code") == 200)

    send = one if batch == 1 else many
    requests = iter(range(0, count, batch))

    async def lane() -> None:
        nonlocal failures
        for k in requests:
            try:
                failures += await send(k)
            except Exception:
                failures += min(batch, count - k)

    await asyncio.sleep(max(0.0, start_at - time.time()))
    started, cpu = time.time(), time.process_time()
    await asyncio.gather(*(lane() for _ in range(in_flight)))
    cpu = time.process_time() - cpu
    print(json.dumps({"started": started, "ended": time.time(), "failures": failures, "cpu": cpu}))
    await session.close()


def raw_ceiling(
    url: str, offset: int, total: int, processes: int, concurrency: int, batch: int = 1
) -> tuple[float, float]:
    """Messages per second of `processes` bare aiohttp clients together, and CPU µs per
    message."""
    from _harness import TEXT, psid

    from pagecast.settings import Settings

    settings = Settings(graph_api_url=url)
    share = total // processes
    start_at = time.time() + 2.0  # every child imported and ready
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--raw-child",
                json.dumps(
                    {
                        "url": url,
                        "first_psid": int(psid(offset + k * share)),
                        "count": share,
                        "concurrency": concurrency,
                        "start_at": start_at,
                        "batch": batch,
                        "version": settings.graph_api_version,
                        "text": TEXT,
                        "connect_timeout": settings.graph_connect_timeout,
                        "read_timeout": settings.graph_read_timeout,
                    }
                ),
            ],
            stdout=subprocess.PIPE,
        )
        for k in range(processes)
    ]
    results = [
        json.loads(child.communicate()[0].decode().strip().splitlines()[-1]) for child in children
    ]
    failed = sum(r["failures"] for r in results)
    if failed > total // 100:
        raise SystemExit(f"ceiling: more than 1 % of the messages failed: {results}")
    if failed:
        # An ambiguous send (a keep-alive connection the server closed as it was reused)
        # costs the pipeline a delivery settled later; here it is only counted.
        print(f"ceiling: {failed} of {total} messages failed", file=sys.stderr)
    span = max(r["ended"] for r in results) - min(r["started"] for r in results)
    return share * processes / span, sum(r["cpu"] for r in results) / (share * processes) * 1e6


def _same_text() -> None:
    """The ceiling renders the campaign text as Pagecast does (else it would send other bytes)."""
    from _harness import TEXT

    from pagecast.schemas import Content
    from pagecast.services import content

    pagecast = content.to_message(Content(text=TEXT), {"first_name": "F7", "last_name": "L"})
    assert pagecast == {"text": TEXT.replace(FIRST_NAME, "F7")}, pagecast


# ------------------------------------------------------------------ the pipeline's CPU split


def _cpu_reading(bench: Bench) -> dict[str, float | None]:
    """CPU seconds used so far by each group of processes (None: not measurable here)."""
    from _harness import cpu_seconds, machine_cpu_seconds, postgres_cpu_seconds

    busy, idle = machine_cpu_seconds()
    return {
        "workers": sum(w.cpu_seconds() for w in bench.workers),
        "web": sum(w.cpu_seconds() for w in bench.webs) if bench.webs else None,
        "simulator": cpu_seconds(bench.sim.proc.pid),
        "redis": cpu_seconds(bench.redis.proc.pid),
        "postgres": postgres_cpu_seconds() if bench.backend == "postgresql" else None,
        "bench": time.process_time(),
        "busy": busy,
        "idle": idle,
        "wall": time.monotonic(),
    }


def _cpu_split(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, Any]:
    """The wall time between two readings, and each group's CPU seconds and share of all the
    cores over it (None where the group was not measured)."""
    used = {
        key: None if (a := after[key]) is None or (b := before[key]) is None else a - b
        for key in after
    }
    wall, busy = used.pop("wall"), used.pop("busy")
    assert wall is not None and busy is not None
    used["other"] = busy - sum(v for k, v in used.items() if k != "idle" and v is not None)
    capacity = wall * (os.cpu_count() or 1)
    return {
        "wall_s": wall,
        "groups": {
            group: None if (cpu := used[group]) is None else {"cpu_s": cpu, "share": cpu / capacity}
            for group in GROUPS
        },
    }


def _median_split(splits: list[dict[str, Any]]) -> dict[str, Any]:
    from _harness import median

    def group(name: str) -> dict[str, float] | None:
        runs = [s["groups"][name] for s in splits if s["groups"][name] is not None]
        if not runs:
            return None
        return {key: median([r[key] for r in runs]) for key in ("cpu_s", "share")}

    return {
        "wall_s": median([s["wall_s"] for s in splits]),
        "groups": {name: group(name) for name in GROUPS},
    }


async def pipeline(
    bench: Bench, contacts: int, workers: int, concurrency: int, batch: int, *, ab: bool = False
) -> tuple[float, float, dict[str, Any]]:
    """Deliveries per second, start -> completed, with `workers` worker processes, the
    workers' CPU µs per delivery, and the machine's CPU split over the run."""
    await bench.fresh_database()
    page_id = await bench.add_page(PAGE, send_rate=1e6, contacts=contacts)
    bench.sim.add_page(PAGE, TOKEN, per_second=10**9)
    campaign_id = await bench.add_campaign(page_id, ab=ab)
    running = bench.start_workers(workers, concurrency=concurrency, batch=batch)
    try:
        cpu = sum(w.cpu_seconds() for w in running)
        before = _cpu_reading(bench)
        started = await bench.start(campaign_id)
        done = await bench.wait_done([campaign_id])
        split = _cpu_split(before, _cpu_reading(bench))
        cpu = sum(w.cpu_seconds() for w in running) - cpu
        row = await bench.campaign(campaign_id)
        assert row.n_sent == contacts, (row.n_sent, contacts)
    finally:
        bench.stop_workers()
    return contacts / (done - started), cpu / contacts * 1e6, split


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from _harness import Bench, median

    _same_text()
    rows: list[dict[str, Any]] = []
    for latency in args.latencies:
        bench = Bench("throughput", latency_ms=latency)
        try:
            for workers in args.workers:
                for batch in args.batches:
                    piped, raw, piped_cpu, raw_cpu, splits = [], [], [], [], []
                    for _ in range(args.runs):
                        rate, cpu, split = await pipeline(
                            bench, args.contacts, workers, args.concurrency, batch, ab=args.ab
                        )
                        piped.append(rate)
                        piped_cpu.append(cpu)
                        splits.append(split)
                        rate, cpu = raw_ceiling(
                            bench.sim.url,
                            int(PAGE[-3:]) * 10**7,
                            args.contacts,
                            workers,
                            args.concurrency,
                            batch=batch,
                        )
                        raw.append(rate)
                        raw_cpu.append(cpu)
                    ratios = [p / r for p, r in zip(piped, raw, strict=True)]
                    rows.append(
                        {
                            "latency_ms": latency,
                            "workers": workers,
                            "batch": batch,
                            "pipeline_per_s": median(piped),
                            "raw_per_s": median(raw),
                            "ratio": median(ratios),
                            "pipeline_cpu_us": median(piped_cpu),
                            "raw_cpu_us": median(raw_cpu),
                            "runs_pipeline": piped,
                            "runs_raw": raw,
                            "runs_ratio": ratios,
                            "cpu_split": _median_split(splits),
                            "runs_cpu_split": splits,
                        }
                    )
        finally:
            await bench.close()
    return {
        "contacts": args.contacts,
        "concurrency": args.concurrency,
        "ceiling": _ceiling_client(),
        "cores": os.cpu_count(),
        "rows": rows,
    }


def _ceiling_client() -> str:
    from importlib import metadata

    return f"aiohttp {metadata.version('aiohttp')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes (CI smoke)")
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--latencies", nargs="+", default=["0", "50-150"])
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[1, 50], help="PAGECAST_SEND_BATCH_SIZE values"
    )
    parser.add_argument(
        "--ab", action="store_true", help="an A/B campaign (two variants) instead of one message"
    )
    parser.add_argument("--raw-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_child:
        # On the workers' loop.
        eventloop.run(_raw_child(**json.loads(args.raw_child)), _loop_setting())
        return
    if args.quick:
        args.contacts, args.runs, args.workers, args.batches = 600, 1, [1], [1, 50]
        args.latencies = ["0"]
    from _harness import machine, print_table, write_results

    facts = machine(pg_url="yes")
    result = asyncio.run(run(args))
    print_table(
        f"P1 throughput{' (A/B campaign)' if args.ab else ''}: {args.contacts:,} contacts, "
        f"{args.concurrency} messages in flight per "
        f"process, median of {args.runs} runs (target: pipeline / aiohttp ceiling >= 0.85 at "
        "50-150 ms; worker CPU <= 1,000 µs/msg at 1 msg/request)",
        facts,
        [
            "latency ms",
            "workers",
            "msgs/request",
            "pipeline/s",
            "aiohttp ceiling/s",
            "pipeline / ceiling",
            "CPU µs/msg pipeline",
            "CPU µs/msg ceiling",
        ],
        [
            [
                r["latency_ms"],
                r["workers"],
                r["batch"],
                r["pipeline_per_s"],
                r["raw_per_s"],
                r["ratio"],
                r["pipeline_cpu_us"],
                r["raw_cpu_us"],
            ]
            for r in result["rows"]
        ],
    )
    cores = result["cores"]
    print_table(
        f"P1 CPU split during the pipeline runs (start -> done): CPU seconds and share of "
        f"{cores} cores, median of {args.runs} runs; postgres is the whole server, other is "
        "every other process on the machine",
        facts,
        ["latency ms", "workers", "msgs/request", "wall s", *GROUPS],
        [
            [
                r["latency_ms"],
                r["workers"],
                r["batch"],
                r["cpu_split"]["wall_s"],
                *(_split_cell(r["cpu_split"]["groups"][g]) for g in GROUPS),
            ]
            for r in result["rows"]
        ],
    )
    name = "throughput-ab" if args.ab else "throughput"
    write_results(name, {"machine": facts, "quick": args.quick, "ab": args.ab, **result})


def _split_cell(used: dict[str, float] | None) -> str:
    return "—" if used is None else f"{used['cpu_s']:.2f} s {used['share']:.0%}"


if __name__ == "__main__":
    main()
