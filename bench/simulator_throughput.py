"""Send API throughput of the simulator over a real socket.

Starts `pagecast simulator` (uvicorn, httptools, uvloop: one process, so one core) as a
subprocess on a free loopback port, sets it up with httpx (a Page, 1,000 people inside the
window, the per-second limit out of the way), then fires Send calls over many keep-alive
connections from bare asyncio streams. Prints one row per run and the medians: wall-clock
calls/s, and calls per second of the server's own CPU time (what one core sustains).

    uv run python bench/simulator_throughput.py [--runs 3] [--requests 20000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

PAGE_ID, TOKEN = "1234567890123456", "bench-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _command(port: int) -> list[str]:
    exe = shutil.which("pagecast") or str(Path(sys.executable).with_name("pagecast"))
    return [exe, "simulator", "--host", "127.0.0.1", "--port", str(port), "--seed", "1"]


async def _wait_up(client: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"pagecast simulator exited with {proc.returncode}")
        try:
            await client.get("/__sim/stats")
            return
        except httpx.TransportError:
            await asyncio.sleep(0.1)
    raise SystemExit("pagecast simulator did not answer within 20 s")


async def _setup(client: httpx.AsyncClient, people: int) -> list[str]:
    await client.post("/__sim/reset")
    await client.post(
        "/__sim/pages",
        json={
            "page_id": PAGE_ID,
            "name": "Bench",
            "access_token": TOKEN,
            "engaged_users": 10**6,
            "subscribe": False,
        },
    )
    await client.post("/__sim/limits", json={"page_id": PAGE_ID, "per_second_text": 10**9})
    psids = [str(10**15 + i) for i in range(people)]
    await client.post(
        "/__sim/users",
        json=[
            {
                "page_id": PAGE_ID,
                "psid": p,
                "first_name": "F",
                "last_name": "L",
                "last_user_action": "now",
            }
            for p in psids
        ],
    )
    return psids


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report calls per server core."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _request(i: int, psid: str) -> bytes:
    body = json.dumps(
        {
            "recipient": {"id": psid},
            "messaging_type": "UPDATE",
            "message": {"text": f"Hello {i}", "metadata": f"bench={i}"},
        }
    ).encode()
    head = (
        f"POST /v25.0/me/messages?access_token={TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(
    port: int,
    counter: Iterator[int],
    psids: list[str],
    latencies: list[float],
    statuses: dict[int, int],
) -> None:
    """One keep-alive HTTP/1.1 connection sending Send calls back to back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in counter:
            started = time.perf_counter()
            writer.write(_request(i, psids[i % len(psids)]))
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _run(base: str, port: int, pid: int, requests: int, concurrency: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as control:
        psids = await _setup(control, 1000)
        # the load itself comes from bare asyncio streams: on this machine one httpx client
        # process tops out near 600 calls/s, far below what the simulator answers
        check = await control.post(
            "/v25.0/me/messages",
            params={"access_token": TOKEN},
            json={
                "recipient": {"id": psids[0]},
                "messaging_type": "UPDATE",
                "message": {"text": "check"},
            },
        )
        assert check.status_code == 200, check.text
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        warm = iter(range(min(requests, 2000)))
        await asyncio.gather(*(_connection(port, warm, psids, [], {}) for _ in range(concurrency)))
        counter = iter(range(requests))
        cpu_before = _cpu_seconds(pid)
        started = time.perf_counter()
        await asyncio.gather(
            *(_connection(port, counter, psids, latencies, statuses) for _ in range(concurrency))
        )
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds(pid) - cpu_before
        stats = (await control.get("/__sim/stats")).json()
    latencies.sort()
    return {
        "requests": requests,
        "seconds": elapsed,
        "calls_per_s": requests / elapsed,
        "per_core": requests / cpu if cpu else float("nan"),
        "server_cpu": cpu,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": sum(n for code, n in statuses.items() if code != 200),
        "accepted": stats["accepted"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    port = _free_port()
    proc = subprocess.Popen(_command(port), env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(_wait(base, proc))
        rows = [
            asyncio.run(_run(base, port, proc.pid, args.requests, args.concurrency))
            for _ in range(args.runs)
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(
        f"Simulator Send throughput: {args.requests} calls per run, "
        f"{args.concurrency} in flight, zero latency, {os.cpu_count()} CPUs on this machine"
    )
    print(
        f"{'run':>4} {'calls/s':>9} {'per core':>9} {'srv cpu s':>9} {'seconds':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'accepted':>9}"
    )
    for i, row in enumerate(rows, 1):
        print(
            f"{i:>4} {row['calls_per_s']:>9.0f} {row['per_core']:>9.0f} "
            f"{row['server_cpu']:>9.2f} {row['seconds']:>8.2f} {row['p50_ms']:>7.1f} "
            f"{row['p99_ms']:>7.1f} {row['errors']:>6.0f} {row['accepted']:>9.0f}"
        )
    print(
        f"median calls/s (wall clock, client and server share the machine): "
        f"{statistics.median(row['calls_per_s'] for row in rows):.0f}"
    )
    print(
        f"median calls per second of server CPU (one core): "
        f"{statistics.median(row['per_core'] for row in rows):.0f}"
    )


async def _wait(base: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        await _wait_up(client, proc)


if __name__ == "__main__":
    main()
