"""What one Graph call carries through the simulator: the parsed request and its bookkeeping.

`GraphRequest` is built by the ASGI layer (or by a batch operation); `CallContext` collects
what the call log, the usage headers and the connection-drop logic need to know afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pagecast.simulator.state import OutboxEntry, Page, Token

__all__ = ["CallContext", "GraphRequest", "Outcome"]


@dataclass(slots=True)
class GraphRequest:
    method: str
    path: str
    version: str
    segments: tuple[str, ...]
    query: dict[str, str]
    params: dict[str, Any]
    authorization: str | None = None
    in_batch: bool = False
    base_url: str = ""

    def param(self, name: str) -> Any:
        """A parameter from the query string or the body (the body wins)."""
        if name in self.params:
            return self.params[name]
        return self.query.get(name)


@dataclass(slots=True)
class CallContext:
    token: Token | None = None
    page: Page | None = None
    psid: str | None = None
    bucket: str | None = None  # "messenger" | "pages": which budget the call was charged to
    throttled: int = 0  # regain minutes when the call was throttled by its budget
    app_metered: bool = False  # made with a USER or app token: counted for x-app-usage
    entry: OutboxEntry | None = None
    drop: str | None = None  # "after" once a timeout-after-commit has been decided
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Outcome:
    """The response of one Graph call, before common headers are added."""

    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: str | None = None  # "before" | "after": close the connection instead of answering
    raw: bytes | None = None
    content_type: str = "application/json; charset=UTF-8"
    code: int | None = None
    subcode: int | None = None
