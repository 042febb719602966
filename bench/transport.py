"""HTTP client libraries for the Send API: sends per second and the client's CPU per request.

Chooses the Graph client's HTTP transport by measurement. Against one `pagecast simulator`
on loopback (one Page whose rate limit is out of the way, its people known), each client
makes N `POST /v25.0/me/messages` calls with the body and `Authorization: Bearer` header
Pagecast sends, C of them in flight, at simulator latency 0 and uniform 50-150 ms
(`/__sim/latency`). The clients:

- `httpx`: `httpx.AsyncClient`, its connection limits raised to C;
- `httpx+aiohttp`: the same `httpx.AsyncClient` interface over the `httpx-aiohttp`
  transport (a dev dependency; the row says so when it cannot be imported);
- `aiohttp`: a bare `aiohttp.ClientSession` (a keep-alive `TCPConnector` of C connections);
- `pagecast`: Pagecast's own `GraphClient.send_message` over `make_http_client`, whatever
  transport it has at the time.

Each run is its own subprocess on uvloop. It first sends C calls (one per connection: the
pool opened, the imports done), then times the N calls: sends/s is N over their wall time,
CPU per request the process's CPU time over the same span (`time.process_time`) divided
by N. The simulator's CPU per request is measured around the whole run too, since client
and simulator share the machine's cores. `bound/s` is C over the mean simulated latency:
no client can go faster. Medians of `--runs`.

    uv run python bench/transport.py [--quick] [--sends 4000] [--in-flight 50 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _harness import Simulator

# The parent imports `_harness` (and with it most of Pagecast) where it needs it; a client
# process imports only the client it measures, so no other heap slows its collections.

PAGE = "9100000000000002"
TOKEN = f"EAAGbench{PAGE}"
VERSION = "v25.0"
TEXT = "Hello F{i}, our autumn offer is live."
CLIENTS = ("httpx", "httpx+aiohttp", "aiohttp", "pagecast")
HEADERS = {"Accept": "application/json", "User-Agent": "pagecast"}
PSID_OFFSET = 2 * 10**7

Send = Callable[[int], Awaitable[bool]]


def _body(first_psid: int, i: int) -> dict[str, Any]:
    """The Send API body Pagecast's worker builds for message `i` (text, metadata)."""
    return {
        "recipient": {"id": str(first_psid + i)},
        "messaging_type": "UPDATE",
        "message": {"text": TEXT.format(i=i), "metadata": str(i)},
    }


def _encode(body: Any) -> bytes:
    """JSON as httpx encodes `json=` (compact, UTF-8), so every client sends the same bytes."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _sent(status: int, content: bytes) -> bool:
    """Whether the answer is a delivered message; every client decodes the JSON, as Pagecast."""
    return status == 200 and "message_id" in json.loads(content)


# ------------------------------------------------------------------ one run (a subprocess)


async def _child(
    client: str, url: str, sends: int, in_flight: int, first_psid: int
) -> dict[str, Any]:
    """Time `sends` calls through `client`, `in_flight` at a time, after a warm-up."""
    async with contextlib.AsyncExitStack() as stack:
        send = await _open(client, url, in_flight, first_psid, stack)
        counter = iter(range(sends))
        failures = 0

        async def lane() -> None:
            nonlocal failures
            for i in counter:
                try:
                    ok = await send(i)
                except Exception:
                    ok = False
                failures += not ok

        await asyncio.gather(*(send(i) for i in range(in_flight)))  # the warm-up
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(lane() for _ in range(in_flight)))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu": cpu, "failures": failures}


async def _open(
    client: str, url: str, in_flight: int, first_psid: int, stack: contextlib.AsyncExitStack
) -> Send:
    """The client named `client` (closed by `stack`) as one function: send message i."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    path = f"/{VERSION}/me/messages"
    if client in ("httpx", "httpx+aiohttp"):
        import httpx

        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        transport: httpx.AsyncBaseTransport | None = None
        if client == "httpx+aiohttp":
            from httpx_aiohttp import AiohttpTransport

            transport = AiohttpTransport(limits=limits)
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=url,
                limits=limits,
                transport=transport,
                timeout=httpx.Timeout(connect=5, read=30, write=30, pool=60),
                headers=HEADERS,
            )
        )

        async def send_httpx(i: int) -> bool:
            response = await http.post(path, json=_body(first_psid, i), headers=auth)
            return _sent(response.status_code, response.content)

        return send_httpx
    if client == "aiohttp":
        import aiohttp

        session = await stack.enter_async_context(
            aiohttp.ClientSession(
                base_url=url,
                connector=aiohttp.TCPConnector(limit=in_flight, keepalive_timeout=4),
                timeout=aiohttp.ClientTimeout(sock_connect=5, sock_read=30),
                headers=HEADERS,
            )
        )
        headers = {**auth, "Content-Type": "application/json"}

        async def send_aiohttp(i: int) -> bool:
            async with session.post(
                path, data=_encode(_body(first_psid, i)), headers=headers
            ) as response:
                return _sent(response.status, await response.read())

        return send_aiohttp
    assert client == "pagecast", client
    from pagecast.graph import GraphClient, PageCredentials, make_http_client

    pc_http = make_http_client(url, connect_timeout=5, read_timeout=30, max_connections=in_flight)
    await stack.enter_async_context(pc_http)
    graph = GraphClient(pc_http, version=VERSION)
    creds = PageCredentials(TOKEN)

    async def send_pagecast(i: int) -> bool:
        body = _body(first_psid, i)
        result = await graph.send_message(
            creds,
            psid=body["recipient"]["id"],
            message={"text": body["message"]["text"]},
            messaging_type="UPDATE",
            metadata=str(i),
        )
        return result.message_id is not None

    return send_pagecast


def _run_child(raw: str) -> None:
    import uvloop

    try:
        result = uvloop.run(_child(*json.loads(raw)))
    except ImportError as exc:  # the row says what is missing
        result = {"error": f"cannot import {exc.name}"}
    print(json.dumps(result))


# ------------------------------------------------------------------ the parent


def one_run(
    sim: Simulator, latency: str, client: str, sends: int, in_flight: int
) -> dict[str, Any]:
    """A fresh simulator state, then one subprocess run of `client`."""
    from _harness import cpu_seconds, psid

    sim.reset()
    sim.add_page(PAGE, TOKEN, per_second=10**9)
    sim.add_people(PAGE, PSID_OFFSET, max(sends, in_flight))
    sim.post("/__sim/latency", {"ms": latency})
    sim_cpu = cpu_seconds(sim.proc.pid)
    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            json.dumps([client, sim.url, sends, in_flight, int(psid(PSID_OFFSET))]),
        ],
        capture_output=True,
        text=True,
    )
    sim_cpu = cpu_seconds(sim.proc.pid) - sim_cpu
    lines = child.stdout.strip().splitlines()
    if child.returncode != 0 or not lines:
        return {"error": f"exit {child.returncode}: {child.stderr.strip()[-300:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    if "error" not in result:
        result["sim_cpu_us"] = sim_cpu / (sends + in_flight) * 1e6
    return result


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from _harness import Simulator, median

    rows: list[dict[str, Any]] = []
    workdir = Path(tempfile.mkdtemp(prefix="pagecast-bench-transport-"))
    sim = Simulator(workdir)
    try:
        for latency in args.latencies:
            low, _, high = latency.partition("-")
            mean_ms = (float(low) + float(high or low)) / 2
            for in_flight in args.in_flight:
                for client in args.clients:
                    runs = [
                        one_run(sim, latency, client, args.sends, in_flight)
                        for _ in range(args.runs)
                    ]
                    done = [r for r in runs if "error" not in r]
                    row: dict[str, Any] = {
                        "client": client,
                        "in_flight": in_flight,
                        "latency_ms": latency,
                        "bound_per_s": in_flight / mean_ms * 1000 if mean_ms else None,
                        "runs": runs,
                    }
                    if done:
                        row |= {
                            "sends_per_s": median([args.sends / r["seconds"] for r in done]),
                            "cpu_us": median([r["cpu"] / args.sends * 1e6 for r in done]),
                            "sim_cpu_us": median([r["sim_cpu_us"] for r in done]),
                            "failures": max(r["failures"] for r in done),
                        }
                    else:
                        row["error"] = runs[0]["error"]
                    rows.append(row)
                    print(f"  {client} {in_flight} in flight, {latency} ms: done", flush=True)
    finally:
        sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes (CI smoke)")
    parser.add_argument("--sends", type=int, default=4000)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--latencies", nargs="+", default=["0", "50-150"])
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _run_child(args.child)
        return
    if args.quick:
        args.sends, args.runs, args.in_flight = 500, 1, [50]
    from _harness import machine, print_table, write_results

    facts = machine()
    rows = run(args)
    print_table(
        f"HTTP clients against the simulator: {args.sends:,} Send API calls per run, "
        f"median of {args.runs} runs, each client on uvloop in its own process",
        facts,
        [
            "client",
            "in flight",
            "latency ms",
            "sends/s",
            "bound/s",
            "client CPU µs/request",
            "simulator CPU µs/request",
            "failures",
        ],
        [
            [
                r["client"],
                r["in_flight"],
                r["latency_ms"],
                *(
                    [
                        r["sends_per_s"],
                        r["bound_per_s"] or "—",
                        r["cpu_us"],
                        r["sim_cpu_us"],
                        r["failures"],
                    ]
                    if "error" not in r
                    else [r["error"], "—", "—", "—", "—"]
                ),
            ]
            for r in rows
        ],
    )
    write_results(
        "transport",
        {
            "machine": facts,
            "quick": args.quick,
            "sends": args.sends,
            "versions": _versions(),
            "rows": rows,
        },
    )


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in ("httpx", "httpx-aiohttp", "aiohttp", "uvloop"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


if __name__ == "__main__":
    main()
