"""The payload of every BullMQ job, typed in one place.

`queue.py` writes a job's `data` with `to_data()`; the worker's handler reads it back with
`from_data()`. Jobs carry ids, never recipients or content (docs/design.md invariant 1). The job
names are part of what BullMQ (and a Node worker) sees: they do not change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "JOB_CHUNK",
    "JOB_PLAN",
    "JOB_SCHEDULE",
    "JOB_SNAPSHOT",
    "JOB_WEBHOOK",
    "ChunkJob",
    "PlanJob",
    "ScheduleJob",
    "SnapshotJob",
    "WebhookJob",
]

JOB_CHUNK = "chunk"
JOB_PLAN = "plan"
JOB_SCHEDULE = "schedule"
JOB_SNAPSHOT = "snapshot"
JOB_WEBHOOK = "webhook"


@dataclass(frozen=True)
class PlanJob:
    """Plan a campaign's next chunks after delivery `after_id` (`queue.enqueue_plan`).

    `round` > 0 re-plans under new job ids; with `since`, the chunks of deliveries in
    (since, after_id] must be mostly under way first, and `step` numbers each later look.
    """

    NAME: ClassVar[str] = JOB_PLAN
    campaign_id: int
    after_id: int = 0
    round: int = 0
    since: int | None = None
    step: int = 0
    # Issue 20: the pass plans deliveries due in (due_after, due_upto] (epoch milliseconds;
    # due_after None: also those due at once; due_upto None: the pass's first job sets it
    # to its own time). worker/plan.py.
    due_after: int | None = None
    due_upto: int | None = None

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "campaign_id": self.campaign_id,
            "after_id": self.after_id,
            "round": self.round,
        }
        if self.since is not None:
            data |= {"since": self.since, "step": self.step}
        for name in ("due_after", "due_upto"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PlanJob:
        return cls(
            campaign_id=int(data["campaign_id"]),
            after_id=int(data["after_id"]),
            round=int(data.get("round", 0)),
            since=None if data.get("since") is None else int(data["since"]),
            step=int(data.get("step", 0)),
            due_after=None if data.get("due_after") is None else int(data["due_after"]),
            due_upto=None if data.get("due_upto") is None else int(data["due_upto"]),
        )


@dataclass(frozen=True)
class ChunkJob:
    """Send a campaign's due deliveries with ids in [first_id, last_id]."""

    NAME: ClassVar[str] = JOB_CHUNK
    campaign_id: int
    first_id: int
    last_id: int

    def to_data(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "first_id": self.first_id, "last_id": self.last_id}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ChunkJob:
        return cls(int(data["campaign_id"]), int(data["first_id"]), int(data["last_id"]))


@dataclass(frozen=True)
class ScheduleJob:
    """Start a scheduled campaign whose time has come."""

    NAME: ClassVar[str] = JOB_SCHEDULE
    campaign_id: int

    def to_data(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ScheduleJob:
        return cls(int(data["campaign_id"]))


@dataclass(frozen=True)
class SnapshotJob:
    """Insert the rest of a large audience: contact ids in (after, upto]."""

    NAME: ClassVar[str] = JOB_SNAPSHOT
    campaign_id: int
    after: int
    upto: int

    def to_data(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "after": self.after, "upto": self.upto}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> SnapshotJob:
        return cls(int(data["campaign_id"]), int(data.get("after", 0)), int(data["upto"]))


@dataclass(frozen=True)
class WebhookJob:
    """Process stored webhook events (ids of `webhook_events` rows), sorted."""

    NAME: ClassVar[str] = JOB_WEBHOOK
    event_ids: tuple[int, ...]

    def to_data(self) -> dict[str, Any]:
        return {"event_ids": list(self.event_ids)}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> WebhookJob:
        return cls(tuple(int(i) for i in data["event_ids"]))
