"""The embedded Redis: a private server per data dir, joined by other processes, durable."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from bullmq import Queue

from pagecast.embedded_redis import EmbeddedRedis
from pagecast.errors import ServiceUnavailable
from pagecast.redis_url import parse_redis_url

SRC = Path(__file__).resolve().parents[2] / "src"

# A second process on the same data dir: start (join), report, stop, or wait to be killed.
CHILD = """
import asyncio, json, sys, time
from pagecast.embedded_redis import EmbeddedRedis

async def main(data_dir, then):
    embedded = EmbeddedRedis(data_dir)
    url = await embedded.start()
    print(json.dumps({"url": url, "owner": embedded.owner, "server_pid": embedded.server_pid}),
          flush=True)
    if then == "sleep":
        time.sleep(60)
    await embedded.stop()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def _child(data_dir: Path, then: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), then],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _client(url: str) -> aioredis.Redis:
    return aioredis.Redis(**parse_redis_url(url).connection_kwargs(), decode_responses=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def _servers_for(server: EmbeddedRedis) -> list[int]:
    """Pids of running redis-servers working in this data dir (Redis rewrites its argv)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                running = Path(os.readlink(entry / "exe")).name == "redis-server"
                if running and Path(os.readlink(entry / "cwd")) == server.dir:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return [pid for pid in pids if _alive(pid)]


def _tcp_listening_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    return inodes


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "data")
    yield server
    await server.stop()


async def test_starts_private_durable_and_local_only(embedded: EmbeddedRedis) -> None:
    url = await embedded.start()
    assert url.startswith("unix://") and embedded.owner
    client = _client(url)
    try:
        assert await client.ping()
        assert await client.config_get("appendonly") == {"appendonly": "yes"}
        assert await client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert await client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert await client.config_get("port") == {"port": "0"}
        assert (await client.info("server"))["redis_version"].startswith("6.2")
    finally:
        await client.aclose()
    assert (embedded.dir.stat().st_mode & 0o777) == 0o700
    assert (embedded.socket_path.stat().st_mode & 0o077) == 0
    pid = embedded.server_pid
    assert pid is not None
    sockets = {
        os.readlink(f"/proc/{pid}/fd/{fd}")[len("socket:[") : -1]
        for fd in os.listdir(f"/proc/{pid}/fd")
        if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")
    }
    assert sockets, "the server has its unix socket open"
    assert not sockets & _tcp_listening_inodes(), "the embedded Redis listens on TCP"


async def test_queued_work_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with EmbeddedRedis(data) as first:
        client = _client(first.url)
        await client.set("pagecast:test:kept", "yes")
        await client.aclose()
        queue = Queue("pc-test", {"connection": parse_redis_url(first.url).connection_kwargs()})
        await queue.add("chunk", {"campaign_id": 7}, {"jobId": "7:0"})
        await queue.close()
        first_pid = first.server_pid
    assert first_pid is not None and not _alive(first_pid)
    assert (data / "redis" / "appendonly.aof").stat().st_size > 0

    async with EmbeddedRedis(data) as second:
        assert second.server_pid != first_pid
        client = _client(second.url)
        assert await client.get("pagecast:test:kept") == "yes"
        await client.aclose()
        queue = Queue("pc-test", {"connection": parse_redis_url(second.url).connection_kwargs()})
        assert (await queue.getJobCounts("waiting"))["waiting"] == 1
        await queue.close()


async def test_a_second_process_joins_instead_of_starting_another(
    embedded: EmbeddedRedis, tmp_path: Path
) -> None:
    url = await embedded.start()
    child = _child(tmp_path / "data", "stop")
    out, _ = await asyncio.to_thread(child.communicate, timeout=30)
    assert child.returncode == 0
    seen = json.loads(out)
    assert seen == {"url": url, "owner": False, "server_pid": embedded.server_pid}
    assert _servers_for(embedded) == [embedded.server_pid]
    # The joiner's stop() left the owner's server running.
    client = _client(url)
    assert await client.ping()
    await client.aclose()


async def test_a_second_instance_in_the_same_process_joins(embedded: EmbeddedRedis) -> None:
    url = await embedded.start()
    other = EmbeddedRedis(embedded.data_dir)
    assert await other.start() == url
    assert not other.owner
    await other.stop()
    client = _client(url)
    assert await client.ping()
    await client.aclose()


async def test_the_server_dies_with_a_killed_owner_and_keeps_its_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    child = _child(data, "sleep")
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 30)
        seen = json.loads(line)
        assert seen["owner"] is True
        client = _client(seen["url"])
        await client.set("pagecast:test:before-kill", "1")
        await client.aclose()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        deadline = time.monotonic() + 10
        while _alive(seen["server_pid"]) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not _alive(seen["server_pid"]), "the server outlived its SIGKILLed owner"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    async with EmbeddedRedis(data) as again:
        assert again.owner
        client = _client(again.url)
        assert await client.get("pagecast:test:before-kill") == "1"
        await client.aclose()


async def test_long_data_dirs_get_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    async with EmbeddedRedis(deep) as server:
        assert len(str(server.socket_path)) < 100
        assert str(server.socket_path).startswith("/tmp/pagecast-")
        assert (server.socket_path.parent.stat().st_mode & 0o777) == 0o700
        client = _client(server.url)
        assert await client.ping()
        await client.aclose()


async def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'FATAL: cannot open the AOF' >&2\nexit 1\n")
    fake.chmod(0o755)
    server = EmbeddedRedis(tmp_path / "data", binary=fake, start_timeout=5)
    with pytest.raises(ServiceUnavailable) as info:
        await server.start()
    assert "did not start (exited with 1" in info.value.message
    assert "FATAL: cannot open the AOF" in info.value.message
    assert not server.owner
    # The lock was released: a working start on the same dir now owns the server.
    async with EmbeddedRedis(tmp_path / "data") as working:
        assert working.owner
