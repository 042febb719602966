"""Redis URL parsing, masking and real connections over TCP, a unix socket and TLS."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from bullmq import Queue
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis_support import TlsFiles, free_port

from pagecast.errors import ConfigError
from pagecast.redis_url import (
    RedisTarget,
    mask_redis_url,
    parse_redis_url,
    unreachable_message,
)


def _no_retry_client(kwargs: dict[str, Any]) -> aioredis.Redis:
    # redis-py 8 retries a failed connect three times with backoff; failures here are expected.
    return aioredis.Redis(**kwargs, retry=Retry(NoBackoff(), 0))


FORMS = (
    "Use redis://[[user]:password@]host[:port][/db], rediss://… (the same over TLS), "
    "or unix:///path/to/redis.sock[?db=N]."
)

VALID: list[tuple[str, dict[str, Any]]] = [
    ("redis://host", {"host": "host", "port": 6379, "db": 0, "password": None}),
    ("redis://host:6380/3", {"host": "host", "port": 6380, "db": 3}),
    ("redis://127.0.0.1:6379?db=5", {"host": "127.0.0.1", "db": 5}),
    ("redis://host/7?db=7", {"db": 7}),
    (
        "redis://alice:pa%40ss@host:7000",
        {"username": "alice", "password": "pa@ss", "port": 7000, "db": 0},
    ),
    ("redis://:secret@host", {"username": None, "password": "secret", "host": "host"}),
    ("redis://bob@host", {"username": "bob", "password": None}),
    ("redis://[::1]:6390/2", {"host": "::1", "port": 6390, "db": 2}),
    ("REDIS://Host.Example", {"host": "host.example"}),
    ("rediss://cache.example:6380/1", {"tls": True, "tls_verify": True, "port": 6380, "db": 1}),
    ("rediss://h?ssl_cert_reqs=none", {"tls": True, "tls_verify": False}),
    ("rediss://h?ssl_ca_certs=/etc/ca.pem", {"tls_ca_file": "/etc/ca.pem"}),
    ("unix:///run/redis.sock", {"unix_path": "/run/redis.sock", "host": None, "port": None}),
    ("unix:///tmp/r.sock?db=4", {"unix_path": "/tmp/r.sock", "db": 4}),
    ("unix://:pw@/tmp/r.sock", {"unix_path": "/tmp/r.sock", "password": "pw"}),
]


@pytest.mark.parametrize(("url", "expected"), VALID, ids=[u for u, _ in VALID])
def test_parse_accepts_every_documented_form(url: str, expected: dict[str, Any]) -> None:
    target = parse_redis_url(url)
    for name, value in expected.items():
        assert getattr(target, name) == value, name


def test_tls_options_come_from_the_caller() -> None:
    target = parse_redis_url("rediss://h", tls_ca_file="/ca.pem", tls_verify=False)
    kwargs = target.connection_kwargs()
    assert kwargs["ssl"] is True
    assert kwargs["ssl_ca_certs"] == "/ca.pem"
    assert kwargs["ssl_cert_reqs"] == "none"
    assert kwargs["ssl_check_hostname"] is False
    # A CA file means nothing without TLS.
    assert parse_redis_url("redis://h", tls_ca_file="/ca.pem").tls_ca_file is None


def test_connection_kwargs_never_time_out_reads() -> None:
    tcp = parse_redis_url("redis://u:p@h:1/2").connection_kwargs()
    assert tcp["socket_timeout"] is None
    assert 0 < tcp["socket_connect_timeout"] <= 10
    assert tcp["health_check_interval"] > 0
    assert (tcp["host"], tcp["port"], tcp["db"], tcp["username"], tcp["password"]) == (
        "h",
        1,
        2,
        "u",
        "p",
    )
    assert "ssl" not in tcp
    unix = parse_redis_url("unix:///s.sock?db=1").connection_kwargs()
    assert unix["unix_socket_path"] == "/s.sock" and "host" not in unix
    for key in ("decode_responses", "retry", "retry_on_error"):  # bullmq sets these itself
        assert key not in tcp and key not in unix


INVALID: list[tuple[str, str, str]] = [
    ("redsi://:hunter2@host", "redsi://:***@host", "unknown scheme 'redsi'"),
    ("http://host", "http://host", "unknown scheme 'http'"),
    ("redis://host:notaport", "redis://host:notaport", "the port is not a number"),
    ("redis://:hunter2@host:99999", "redis://:***@host:99999", "the port is not a number"),
    ("redis://host/zero", "redis://host/zero", "the database 'zero' is not a number"),
    ("redis://host?db=-1", "redis://host?db=-1", "the database '-1' is not a number"),
    ("redis://host/1?db=2", "redis://host/1?db=2", "two databases"),
    ("redis://:hunter2@:6379", "redis://:***@:6379", "the host is missing"),
    ("redis://", "redis://", "the host is missing"),
    ("", "", "it is empty"),
    ("localhost:6379", "localhost:6379", "no scheme"),
    ("hunter2@localhost", "***@localhost", "no scheme"),
    ("not a url at all", "not a url at all", "no scheme"),
    ("unix://host/r.sock", "unix://host/r.sock", "a unix URL has no host"),
    ("unix://", "unix://", "the socket path is missing"),
    ("redis://h?timeout=3", "redis://h?timeout=3", "unknown parameter 'timeout'"),
    ("redis://h?ssl_cert_reqs=none", "redis://h?ssl_cert_reqs=none", "need rediss://"),
    ("redis://u:hun/ter2@h", "redis://u:***@h", ""),
    ("redis://u:hunter2@h#frag", "redis://u:***@h#frag", "fragment"),
]


@pytest.mark.parametrize(
    ("url", "masked", "why"), INVALID, ids=[u or "empty" for u, _, _ in INVALID]
)
def test_invalid_urls_name_the_setting_masked_value_and_forms(
    url: str, masked: str, why: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_redis_url(url, setting="PAGECAST_REDIS_URL")
    message = info.value.message
    assert message.startswith(f"PAGECAST_REDIS_URL is not a Redis URL: {masked!r} (")
    assert why in message
    assert message.endswith(FORMS)
    assert "hunter2" not in message and "hun/ter2" not in message
    assert info.value.field == "PAGECAST_REDIS_URL"


def test_the_example_message_from_the_issue() -> None:
    with pytest.raises(ConfigError) as info:
        parse_redis_url("redsi://:pw@host")
    assert (
        str(info.value)
        == f"REDIS_URL is not a Redis URL: 'redsi://:***@host' (unknown scheme 'redsi'). {FORMS}"
    )


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://alice:pw@h:1/2", "redis://alice:***@h:1/2"),
        ("redis://:p@ss@h", "redis://:***@h"),
        ("unix://:pw@/tmp/r.sock?db=1", "unix://:***@/tmp/r.sock?db=1"),
        ("rediss://h?password=pw&db=1", "rediss://h?password=***&db=1"),
        ("redis://alice@h", "redis://alice@h"),
        ("redis://h", "redis://h"),
    ],
)
def test_mask_hides_passwords(url: str, masked: str) -> None:
    assert mask_redis_url(url) == masked


def test_repr_and_str_never_show_the_password() -> None:
    target = parse_redis_url("redis://alice:hunter2@h:6380/1")
    assert "hunter2" not in repr(target)
    assert "hunter2" not in str(target)
    assert target.masked == "redis://alice:***@h:6380/1"
    assert target.where == "h:6380"
    assert parse_redis_url("redis://[::1]").where == "[::1]:6379"
    assert parse_redis_url("unix:///run/r.sock").where == "/run/r.sock"


async def test_unreachable_message_names_where_and_what_to_do() -> None:
    target = parse_redis_url(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    client = _no_retry_client(target.connection_kwargs())
    with pytest.raises(RedisConnectionError) as info:
        await client.ping()
    await client.aclose()
    assert unreachable_message(target, info.value) == (
        f"Redis at {target.where} is unreachable (Connection refused). "
        "Start Redis, or unset REDIS_URL to use the embedded one."
    )


async def test_unreachable_message_for_a_missing_socket(short_tmp: Path) -> None:
    target = parse_redis_url(f"unix://{short_tmp}/none.sock", setting="PAGECAST_REDIS_URL")
    client = _no_retry_client(target.connection_kwargs())
    with pytest.raises(RedisConnectionError) as info:
        await client.ping()
    await client.aclose()
    message = unreachable_message(target, info.value)
    assert message == (
        f"Redis at {short_tmp}/none.sock is unreachable (no socket at that path). "
        "Start Redis, or unset PAGECAST_REDIS_URL to use the embedded one."
    )


def test_unreachable_message_for_a_timeout() -> None:
    target = parse_redis_url("redis://:hunter2@10.0.0.1")
    message = unreachable_message(target, TimeoutError("Timeout connecting to server"))
    assert message.startswith(
        "Redis at 10.0.0.1:6379 is unreachable (Timeout connecting to server)."
    )


async def _ping_and_db(kwargs: dict[str, Any]) -> tuple[bool, int]:
    client = _no_retry_client(kwargs)
    try:
        key = f"pagecast:test:{uuid.uuid4().hex}"
        await client.set(key, "1", ex=60)
        info = await client.client_info()
        return bool(await client.ping()), int(info["db"])
    finally:
        await client.aclose()


async def test_tcp_connection(machine_redis: aioredis.Redis, machine_redis_url: str) -> None:
    assert await _ping_and_db(parse_redis_url(machine_redis_url).connection_kwargs()) == (True, 14)
    assert await machine_redis.dbsize() == 1  # the key went to db 14


async def test_blocking_pop_outlives_redis_py_default_read_timeout(
    machine_redis: aioredis.Redis, machine_redis_url: str
) -> None:
    """bullmq's idle worker blocks for 5 s; redis-py 8 would time the read out at 5 s."""
    client = aioredis.Redis(**parse_redis_url(machine_redis_url).connection_kwargs())
    try:

        async def push_late() -> None:
            await asyncio.sleep(5.3)
            await machine_redis.rpush("pagecast:test:bell", "ding")

        pusher = asyncio.create_task(push_late())
        popped = await client.blpop(["pagecast:test:bell"], timeout=8)
        await pusher
        assert popped == (b"pagecast:test:bell", b"ding")
    finally:
        await client.aclose()


async def test_unix_socket_connection_with_password(unix_server: Path) -> None:
    target = parse_redis_url(f"unix://:s3cret@{unix_server}?db=3")
    assert await _ping_and_db(target.connection_kwargs()) == (True, 3)


async def test_tls_connection_verifies_the_server(tls_server: tuple[int, TlsFiles]) -> None:
    port, files = tls_server
    url = f"rediss://127.0.0.1:{port}/2"
    verified = parse_redis_url(url, tls_ca_file=str(files.ca))
    assert await _ping_and_db(verified.connection_kwargs()) == (True, 2)
    # Without our CA the server's certificate is refused...
    with pytest.raises(RedisConnectionError) as info:
        await _ping_and_db(parse_redis_url(url).connection_kwargs())
    assert "certificate verify failed" in str(info.value) or isinstance(
        info.value.__cause__, ssl.SSLError
    )
    # ...unless verification is off.
    unverified = parse_redis_url(url, tls_verify=False)
    assert await _ping_and_db(unverified.connection_kwargs()) == (True, 2)
    assert await _ping_and_db(parse_redis_url(url + "?ssl_cert_reqs=none").connection_kwargs())


async def _bullmq_round_trip(target: RedisTarget) -> int:
    name = f"pc-test-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, {"connection": target.connection_kwargs()})
    try:
        await queue.add("chunk", {"campaign_id": 1}, {"jobId": "c1:0"})
        await queue.add("chunk", {"campaign_id": 1}, {"jobId": "c1:0"})  # same id: no-op
        counts = await queue.getJobCounts("waiting")
        await queue.obliterate(force=True)
        return int(counts["waiting"])
    finally:
        await queue.close()


async def test_bullmq_queue_over_tcp(machine_redis: aioredis.Redis, machine_redis_url: str) -> None:
    assert await _bullmq_round_trip(parse_redis_url(machine_redis_url)) == 1


async def test_bullmq_queue_over_unix_socket(unix_server: Path) -> None:
    assert await _bullmq_round_trip(parse_redis_url(f"unix://:s3cret@{unix_server}")) == 1


async def test_bullmq_queue_over_tls(tls_server: tuple[int, TlsFiles]) -> None:
    port, files = tls_server
    target = parse_redis_url(f"rediss://127.0.0.1:{port}", tls_ca_file=str(files.ca))
    assert await _bullmq_round_trip(target) == 1
