"""The one place outbound webhooks touch the network (issue 22): a signed JSON POST to an
admin's endpoint, with the SSRF guard.

aiohttp, as the Graph transport (docs/architecture.md, "Issue 23"). The guard runs after DNS
resolution, inside the connector's resolver: every address the name resolves to is checked,
the refused ones are dropped, and aiohttp connects to the addresses that passed, the very
ones checked (no second lookup an attacker's DNS could answer differently), while the Host
header and the TLS server name stay the URL's. An address literal in the URL skips aiohttp's
resolver, so it is checked before the request. Redirects are not followed: a 3xx is a failed
attempt (a redirect could point anywhere, including inside the network).

Nothing here knows the database: `post` answers what happened (`Outcome`), services decide.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

__all__ = ["EXCERPT_CHARS", "OutboundHttp", "Outcome", "RefusedTarget", "refusal"]

logger = logging.getLogger(__name__)

# What an attempt keeps of the answer's body (or of the error), for the delivery log.
EXCERPT_CHARS = 500
_READ_BYTES = 4 * EXCERPT_CHARS
_SETTING = "PAGECAST_WEBHOOKS_ALLOW_PRIVATE_TARGETS"


class RefusedTarget(Exception):
    """The endpoint's address is not one Pagecast sends to (private, loopback...)."""


@dataclass(frozen=True)
class Outcome:
    """One attempt as it went: the answer's status (None without an answer), how long it
    took, the body's first characters, and the error when there was no usable answer."""

    status: int | None
    ms: int
    excerpt: str = ""
    error: str | None = None


def refusal(address: str) -> str | None:
    """Why an IP address is refused as a webhook target, or None when it is public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, hit in (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("non-public", not ip.is_global),
    ):
        if hit:
            return f"{ip} is {'an' if kind[0] in 'aeiou' else 'a'} {kind} address"
    return None


def _refused_message(host: str, why: str) -> str:
    return (
        f"refused: {host} resolves to a target Pagecast does not send to ({why}). Use a public "
        f"address, or set {_SETTING}=true if this receiver is inside your network on purpose."
    )


class _CheckedResolver(AbstractResolver):
    """The system resolver, keeping only the addresses `refusal` lets through."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if refusal(r["host"]) is None]
        if not allowed:
            why = "; ".join(sorted({str(refusal(r["host"])) for r in found}))
            raise RefusedTarget(_refused_message(host.rstrip("."), why))
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _refused_in(exc: BaseException) -> RefusedTarget | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, RefusedTarget):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class OutboundHttp:
    """A keep-alive pool for webhook POSTs; `close()` it when the worker stops."""

    def __init__(self, *, timeout: float, allow_private: bool) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                # A cached answer would skip the resolver, so every connection resolves (and
                # is checked) anew.
                resolver=None if self.allow_private else _CheckedResolver(),
                use_dns_cache=False,
                limit=50,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """POST `body` to `url`; never raises for what the endpoint or the network did."""
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        host = urlsplit(url).hostname or ""
        if not self.allow_private:
            literal = _literal_refusal(host)
            if literal is not None:
                return Outcome(status=None, ms=0, error=_refused_message(host, literal))
        try:
            async with self._client().post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                raw = await response.content.read(_READ_BYTES)
                excerpt = raw.decode("utf-8", errors="replace")[:EXCERPT_CHARS]
                return Outcome(status=response.status, ms=took(), excerpt=excerpt)
        except Exception as exc:  # every failure is an attempt's outcome, never a crash
            refused = _refused_in(exc)
            if refused is not None:
                return Outcome(status=None, ms=took(), error=str(refused)[:EXCERPT_CHARS])
            return Outcome(status=None, ms=took(), error=_described(exc)[:EXCERPT_CHARS])


def _literal_refusal(host: str) -> str | None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return refusal(host)


def _described(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out: the endpoint did not answer in time (PAGECAST_WEBHOOKS_TIMEOUT_SECONDS)"
    return f"{type(exc).__name__}: {str(exc) or 'no detail'}"
