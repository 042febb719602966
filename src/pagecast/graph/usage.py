"""Rate-limit usage headers (`X-Business-Use-Case-Usage`, `X-App-Usage`, `X-Page-Usage`).

Graph reports usage as percentages of a budget, in JSON serialised into a header, and only
once usage is "meaningful" (docs/graph-api.md, "Usage headers"). Parsing never raises: a
missing or garbled header gives an empty `Usage`, which is not the same as "0 % used".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Usage", "UsageEntry"]

_BUC_HEADER = "x-business-use-case-usage"
_APP_HEADER = "x-app-usage"
_PAGE_HEADER = "x-page-usage"
_METRICS = ("call_count", "total_time", "total_cputime")


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """One usage record: a BUC entry for one object and type, or the app / legacy Page usage."""

    source: str  # "business" | "app" | "page"
    object_id: str | None
    type: str | None  # BUC type: "messenger", "pages", ...
    call_count: float
    total_time: float
    total_cputime: float
    regain_minutes: float

    @property
    def max_percent(self) -> float:
        """The highest of the three percentages (they can exceed 100 while throttled)."""
        return max(self.call_count, self.total_time, self.total_cputime)


@dataclass(frozen=True, slots=True)
class Usage:
    """Everything the usage headers of one response said; empty when they were absent."""

    entries: tuple[UsageEntry, ...] = ()

    @property
    def present(self) -> bool:
        """True when the response carried at least one parseable usage header."""
        return bool(self.entries)

    @property
    def max_percent(self) -> float:
        """The highest percentage over all entries (0.0 when no header was present)."""
        return max((e.max_percent for e in self.entries), default=0.0)

    @property
    def regain_seconds(self) -> float:
        """Seconds until access is regained: the largest `estimated_time_to_regain_access` (minutes) x 60."""
        return max((e.regain_minutes for e in self.entries), default=0.0) * 60.0

    def for_object(self, object_id: str) -> tuple[UsageEntry, ...]:
        """The BUC entries reported for one business object (a Page id)."""
        return tuple(e for e in self.entries if e.object_id == object_id)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Usage:
        """Parse the usage headers of a response; names are matched case-insensitively."""
        lowered = {str(k).lower(): v for k, v in headers.items()}
        entries: list[UsageEntry] = []
        raw = lowered.get(_BUC_HEADER)
        if raw is not None:
            entries.extend(_parse_buc(raw))
        for name, source in ((_APP_HEADER, "app"), (_PAGE_HEADER, "page")):
            raw = lowered.get(name)
            if raw is not None:
                data = _loads(raw)
                if isinstance(data, dict) and (entry := _entry(data, source, None)) is not None:
                    entries.append(entry)
        return cls(tuple(entries))

    def merged(self, other: Usage) -> Usage:
        """Both sets of entries (a batch operation's own headers plus the batch response's)."""
        return Usage(self.entries + other.entries)


def _loads(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None


def _number(value: Any) -> float:
    # bool is an int subclass; a non-finite or non-numeric value counts as absent.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else 0.0


def _entry(data: dict[str, Any], source: str, object_id: str | None) -> UsageEntry | None:
    if not any(key in data for key in (*_METRICS, "estimated_time_to_regain_access")):
        return None
    kind = data.get("type")
    return UsageEntry(
        source=source,
        object_id=object_id,
        type=kind if isinstance(kind, str) else None,
        call_count=_number(data.get("call_count")),
        total_time=_number(data.get("total_time")),
        total_cputime=_number(data.get("total_cputime")),
        regain_minutes=_number(data.get("estimated_time_to_regain_access")),
    )


def _parse_buc(raw: str) -> list[UsageEntry]:
    # {"<object id>": [{"type": "messenger", "call_count": N, ...}, ...], ...}
    data = _loads(raw)
    if not isinstance(data, dict):
        return []
    entries: list[UsageEntry] = []
    for object_id, items in data.items():
        if isinstance(items, dict):  # tolerate a single object instead of an array
            items = [items]
        if not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, dict) and (entry := _entry(item, "business", str(object_id))):
                entries.append(entry)
    return entries
