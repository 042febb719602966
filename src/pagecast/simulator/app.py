"""The simulator as a lean raw-ASGI app: Graph paths, the batch root and `/__sim/` control.

Parsing is done once here (query, JSON, form or multipart body (`bodies`), token header, version prefix); the Graph
pipeline in `routes.handle` is synchronous, so a Send call costs one parse, one dict walk
and one `json.dumps`.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from pagecast.simulator import batch, control, routes
from pagecast.simulator.bodies import decode_params
from pagecast.simulator.clock import Clock
from pagecast.simulator.context import GraphRequest, Outcome
from pagecast.simulator.errors import GraphError
from pagecast.simulator.state import SimState
from pagecast.simulator.webhooks import Emitter

__all__ = ["ConnectionDropped", "SimulatorApp", "decode_params"]

SUPPORTED_VERSIONS = ("v21.0", "v22.0", "v23.0", "v24.0", "v25.0", "v26.0")
EXPIRED_VERSIONS = ("v18.0", "v19.0", "v20.0")
DEFAULT_VERSION = "v25.0"
_VERSION = re.compile(r"^v\d+\.\d+$")
_STATIC_HEADERS = [
    (b"content-type", b"application/json; charset=UTF-8"),
    (b"x-fb-rev", b"1023412345"),
    (b"cache-control", b"private, no-cache, no-store, must-revalidate"),
    (b"pragma", b"no-cache"),
    (b"expires", b"Sat, 01 Jan 2000 00:00:00 GMT"),
    (b"access-control-allow-origin", b"*"),
    (b"strict-transport-security", b"max-age=15552000"),
]


class ConnectionDropped(Exception):
    """Raised in-process (no socket to close) where a real server would drop the connection."""


class SimulatorApp:
    """ASGI callable; `state` and `emitter` are public for tests and the control plane."""

    def __init__(
        self,
        *,
        seed: int,
        latency_ms: tuple[float, float],
        clock: Clock,
        app_secret: str | None,
        webhook_url: str | None,
        verify_token: str | None,
    ) -> None:
        self.state = SimState(
            seed=seed,
            clock=clock,
            app_secret=app_secret,
            webhook_url=webhook_url,
            verify_token=verify_token,
        )
        self.latency_ms = self.start_latency_ms = latency_ms
        self.emitter = Emitter(self.state)
        self.state.emitter = self.emitter

    async def aclose(self) -> None:
        await self.emitter.close()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path: str = scope["path"]
        if path.startswith("/__sim/") or path == "/__sim":
            status, payload = await control.dispatch(
                self, scope["method"], path, _query(scope), body
            )
            await _respond(
                send, status, [(b"content-type", b"application/json")], json.dumps(payload).encode()
            )
            return
        await self._graph(scope, body, send)

    async def _graph(self, scope: dict[str, Any], body: bytes, send: Any) -> None:
        state = self.state
        content_type = authorization = host = ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
        segments = tuple(s for s in scope["path"].split("/") if s)
        version = DEFAULT_VERSION
        if segments and _VERSION.match(segments[0]):
            version, segments = segments[0], segments[1:]
        req = GraphRequest(
            method=scope["method"],
            path=scope["path"],
            version=version,
            segments=segments,
            query=_query(scope),
            params=decode_params(body, content_type),
            authorization=authorization or None,
            base_url=f"{scope.get('scheme', 'http')}://{host}",
        )
        if version not in SUPPORTED_VERSIONS:
            if version in EXPIRED_VERSIONS:
                version = req.version = SUPPORTED_VERSIONS[0]
            else:
                err = GraphError(
                    2635,
                    f"(#2635) You are calling a deprecated or unknown "
                    f"version of the Graph API ({version}).",
                )
                await self._answer(send, routes.error_outcome(state, err), version)
                return
        if not segments and req.method == "POST":
            outcome = batch.handle_batch(state, req)
        else:
            outcome = routes.handle(state, req)
        # Graph counts a call toward the Page's limits when it arrives; the latency is the
        # time it takes to answer (docs/simulator.md).
        low, high = self.latency_ms
        if high > 0:
            await asyncio.sleep(state.rng("latency").uniform(low, high) / 1000.0)
        if outcome.drop is not None:
            await _drop(send)
            return
        await self._answer(send, outcome, version)

    async def _answer(self, send: Any, outcome: Outcome, version: str) -> None:
        state = self.state
        trace = state.trace_id()
        headers = [
            *_STATIC_HEADERS,
            (b"facebook-api-version", version.encode()),
            (b"x-fb-trace-id", trace.encode()),
            (b"x-fb-request-id", trace[::-1].encode()),
            (b"x-fb-debug", (trace * 4).encode()),
        ]
        if outcome.raw is not None:
            headers[0] = (b"content-type", outcome.content_type.encode())
            body = outcome.raw
        else:
            body = json.dumps(outcome.body, separators=(",", ":")).encode()
        for name, value in outcome.headers:
            headers.append((name.encode(), value.encode()))
        await _respond(send, outcome.status, headers, body)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.emitter.warm()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _query(scope: dict[str, Any]) -> dict[str, str]:
    raw = scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)) if raw else {}


async def _respond(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _drop(send: Any) -> None:
    """Close the client's connection without an answer (uvicorn), or raise in-process."""
    cycle: Any = getattr(send, "__self__", None)  # uvicorn's request cycle when served by it
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionDropped("The simulator dropped the connection (injected timeout).")
    cycle.disconnected = True  # tell uvicorn not to answer a 500 for the missing response
    transport.close()
