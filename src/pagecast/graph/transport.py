"""The keep-alive pool behind the Graph client: one aiohttp session per process.

aiohttp was chosen by measurement over httpx (docs/architecture.md, "Issue 23"): on the same
machine and simulator, httpx spent about 5 ms of CPU per request and aiohttp a third of a
millisecond. This module is the only one that knows aiohttp. It keeps what a sender needs:

- timeouts for connecting, for waiting on a free connection, and for the answer;
- idle connections dropped before a server's own keep-alive timeout can close them (uvicorn's
  is 5 s): a request written on a connection the server is closing fails without an answer,
  which a sender must count as ambiguous;
- one TLS context for every connection;
- a request held, built and on its connection, until its slot (`not_before`), and a hook
  called once it has been written (`on_sent`), both through aiohttp's request tracing;
- `may_have_left(exc)`: whether a failed request can have reached the server.

aiohttp itself sends a GET again once when a kept-alive connection turns out to be closed;
it never does so for a POST, so a message is never sent twice by the transport.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace, TracebackType
from typing import Any

import aiohttp
import certifi
from yarl import URL

__all__ = ["KEEPALIVE_EXPIRY_S", "Answer", "GraphHttp", "may_have_left"]

KEEPALIVE_EXPIRY_S = 4.0

logger = logging.getLogger(__name__)

_DEFAULT_HEADERS = {"Accept": "application/json", "User-Agent": "pagecast"}
_JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Answer:
    """A response, read whole: its status, headers (names case-insensitive) and body."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


@dataclass(slots=True)
class _Hooks:
    """What one request asked of the tracing callbacks."""

    on_sent: Callable[[], None] | None
    not_before: float | None
    has_body: bool
    sent: bool = False

    async def hold(self) -> None:
        # A loop's timers may fire up to a millisecond early (uvloop's are in whole
        # milliseconds): sleep again until the moment has truly come.
        while self.not_before is not None and (early := self.not_before - time.monotonic()) > 0:
            await asyncio.sleep(early)

    def written(self) -> None:
        if self.sent or self.on_sent is None:
            return
        self.sent = True
        try:
            self.on_sent()
        except Exception:  # the request is out: a failing hook must not make it ambiguous
            logger.exception("the hook after a written Graph request failed")


async def _on_connection(
    _session: aiohttp.ClientSession, trace: SimpleNamespace, _params: object
) -> None:
    # A connection is ours (new or reused) and the request is built: wait for the slot.
    if isinstance(hooks := trace.trace_request_ctx, _Hooks):
        await hooks.hold()


async def _on_headers(
    _session: aiohttp.ClientSession, trace: SimpleNamespace, _params: object
) -> None:
    if isinstance(hooks := trace.trace_request_ctx, _Hooks) and not hooks.has_body:
        hooks.written()


async def _on_body(
    _session: aiohttp.ClientSession, trace: SimpleNamespace, _params: object
) -> None:
    # aiohttp signals a body chunk as it hands it to the connection (headers go with it).
    if isinstance(hooks := trace.trace_request_ctx, _Hooks):
        hooks.written()


def _tracing() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_connection_create_end.append(_on_connection)
    config.on_connection_reuseconn.append(_on_connection)
    config.on_request_headers_sent.append(_on_headers)
    config.on_request_chunk_sent.append(_on_body)
    return config


class GraphHttp:
    """At most `max_connections` keep-alive connections to one Graph host; the caller closes it.

    No connection (and no aiohttp session) exists until the first request, so it can be
    built outside a running event loop.
    """

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_connections: int = 400,
        pool_timeout: float | None = 60.0,
        keepalive_expiry: float = KEEPALIVE_EXPIRY_S,
    ) -> None:
        self.base_url = URL(base_url)
        self._prefix = self.base_url.raw_path.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        # `connect` bounds the wait for a free connection plus the connect itself. aiohttp
        # has no write timeout, and its read timeout starts once the body is written: a
        # body too large for the socket's buffer (a Graph batch) sent to a peer that stopped
        # reading would wait for the kernel to give up. `total` bounds the whole request:
        # the connection, a hold (`not_before`, a fraction of a second), and twice the read
        # timeout for the write and the answer.
        connect = None if pool_timeout is None else pool_timeout + connect_timeout
        self.timeout = aiohttp.ClientTimeout(
            total=None if connect is None else connect + 1.0 + 2 * read_timeout,
            connect=connect,
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            limit_per_host=0,
            keepalive_timeout=self.keepalive_expiry,
            ssl=_tls_context(),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            headers=_DEFAULT_HEADERS,
            cookie_jar=aiohttp.DummyCookieJar(),
            trace_configs=[_tracing()],
        )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        on_sent: Callable[[], None] | None = None,
        not_before: float | None = None,
    ) -> Answer:
        """One request to `path` on the base URL; the whole answer, whatever its status.

        Raises:
            Exception: what aiohttp raised; `may_have_left` says whether it was sent.
        """
        session = self._session or self._open()
        url = self.base_url.with_path(self._prefix + path, encoded=True)
        if query:
            url = url.with_query(query)
        body = None
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
            headers = {**(headers or {}), "Content-Type": _JSON}
        hooks = (
            None
            if on_sent is None and not_before is None
            else _Hooks(on_sent, not_before, has_body=body is not None)
        )
        async with session.request(
            method,
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            trace_request_ctx=hooks,
        ) as response:
            content = await response.read()
        if logger.isEnabledFor(logging.DEBUG):  # the query (`appsecret_proof`) stays out
            logger.debug("HTTP Request: %s %s -> %s", method, path, response.status)
        return Answer(response.status, response.headers, content)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> GraphHttp:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for the process (loading the CA bundle costs about 1 MB each time)."""
    return ssl.create_default_context(cafile=certifi.where())


# Raised before a byte of the request left: the server cannot have seen it.
_NOT_SENT = (
    aiohttp.ClientConnectorError,  # refused, DNS, TLS handshake, proxy
    aiohttp.ConnectionTimeoutError,  # no free connection or no connect in time
    aiohttp.InvalidURL,
    aiohttp.NonHttpUrlClientError,
)


def may_have_left(exc: BaseException) -> bool:
    """Whether a request that failed with `exc` can have reached the server.

    Only failures to get a connection are known to come before the request was written; a
    timeout or a drop after that, and anything unexpected, may have come after.
    """
    return not isinstance(exc, _NOT_SENT)
