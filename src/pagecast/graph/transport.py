"""The keep-alive pool behind the Graph client: several small httpcore pools, not one big one.

httpcore's pool walks every connection it holds on each request and each response close
(`_assign_requests_to_connections`: `has_expired` / `is_idle`, a readability poll and a
`getpeername` per idle connection). With 100 requests in flight that walk over 100
connections was 35-40 % of a worker's CPU in the profile (docs/performance.md). Spreading the
same connections over shards of about 16 keeps every walk short; a request goes to the shard
with the fewest requests in flight, so the shards fill evenly.
"""

from __future__ import annotations

import httpx

__all__ = ["ShardedTransport"]

_CONNECTIONS_PER_SHARD = 16


class ShardedTransport(httpx.AsyncBaseTransport):
    """At most `max_connections` keep-alive connections, split over several httpcore pools."""

    def __init__(self, *, max_connections: int, keepalive_expiry: float = 30.0) -> None:
        shards = max(1, -(-max_connections // _CONNECTIONS_PER_SHARD))
        per_shard = -(-max_connections // shards)
        limits = httpx.Limits(
            max_connections=per_shard,
            max_keepalive_connections=per_shard,
            keepalive_expiry=keepalive_expiry,
        )
        # One TLS context for every shard: each loads the CA bundle (about 0.8 MB apiece).
        tls = httpx.create_ssl_context()
        self._shards = [httpx.AsyncHTTPTransport(limits=limits, verify=tls) for _ in range(shards)]
        self._in_flight = [0] * shards

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._shards)), key=self._in_flight.__getitem__)
        self._in_flight[index] += 1
        try:
            return await self._shards[index].handle_async_request(request)
        finally:
            # The answer's body is still to be read, but it is small: counting the request
            # until its headers arrive is enough to spread the load.
            self._in_flight[index] -= 1

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()
