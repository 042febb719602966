"""An A/B campaign's experiment: its results by variant, the decision after
`decide_after_seconds`, the winner picked by hand, and the rest sent the winner.

The state is on the campaign (`experiment_state`: testing, deciding, decided; `winner`,
`experiment_reason`, `decided_at`); who gets what is on the deliveries (`variant`, set by
the snapshot: services/variants.py). Deciding moves the rest (variant `WAITING`) to the
winner in one UPDATE; the engine then sends them like any pending delivery. The statistics
are in services/abstats.py; docs/experiments.md says it in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.db import rowcount
from pagecast.errors import InvalidInput, InvalidState
from pagecast.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from pagecast.permissions import Actor
from pagecast.services import abstats, audit, campaigns, variants

__all__ = [
    "METRICS",
    "Tally",
    "decide",
    "decide_due",
    "decide_one",
    "due",
    "pick_winner",
    "report",
    "tallies",
]

TESTING, DECIDING, DECIDED = "testing", "deciding", "decided"
# The metric's name, its count in a Tally, and how it reads in a reason.
METRICS = {
    "read_rate": ("read", "read rate"),
    "click_rate": ("clicked", "click rate"),
    "reply_rate": ("replied", "reply rate"),
}
_SENT = (DeliveryStatus.SENT.value, DeliveryStatus.DELIVERED.value, DeliveryStatus.READ.value)
_DELIVERED = (DeliveryStatus.DELIVERED.value, DeliveryStatus.READ.value)
_LIVE = (CampaignStatus.SENDING, CampaignStatus.PAUSED, CampaignStatus.COMPLETED)
# A completed campaign has no rest waiting (it would still be pending): nothing to decide.
_DECIDABLE = (CampaignStatus.SENDING, CampaignStatus.PAUSED)


@dataclass(frozen=True)
class Tally:
    """One variant's counts: messages Facebook accepted, and of those delivered, read,
    clicked (first button or quick reply) and replied to."""

    sent: int = 0
    delivered: int = 0
    read: int = 0
    clicked: int = 0
    replied: int = 0

    def count(self, metric: str) -> int:
        return int(getattr(self, METRICS[metric][0]))


def _count_if(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


async def tallies(session: AsyncSession, campaign: Campaign) -> dict[str, Tally]:
    """Every variant's Tally (zeros for a variant nobody got yet), one GROUP BY."""
    status = Delivery.status
    rows = await session.execute(
        select(
            Delivery.variant,
            _count_if(status.in_(_SENT)),
            _count_if(status.in_(_DELIVERED)),
            _count_if(status == DeliveryStatus.READ.value),
            func.count(Delivery.clicked_at),
            func.count(Delivery.replied_at),
        )
        .where(
            Delivery.campaign_id == campaign.id,
            Delivery.variant.in_(variants.keys(campaign)),
        )
        .group_by(Delivery.variant)
    )
    found = {row[0]: Tally(*(int(n) for n in row[1:])) for row in rows}
    return {key: found.get(key, Tally()) for key in variants.keys(campaign)}


async def _holdout(session: AsyncSession, campaign: Campaign) -> tuple[int, int]:
    """The holdout's size, and how many of it replied: a reply recorded on their holdout
    delivery by the variants' rule, within 24 hours of the campaign's start as if it had
    sent them a message then (services/engagement.py)."""
    size, replied = (
        await session.execute(
            select(func.count(), func.count(Delivery.replied_at)).where(
                Delivery.campaign_id == campaign.id, Delivery.reason == variants.HOLDOUT
            )
        )
    ).one()
    return int(size), int(replied)


def _points(value: float) -> str:
    return f"{abs(value) * 100:.1f}".removesuffix(".0")


def decide(campaign: Campaign, counts: dict[str, Tally]) -> tuple[str | None, str]:
    """The winner to send the rest automatically (None: a person decides) and the reason
    in words: the best variant by the metric against the runner-up, by the z-test."""
    settings = campaign.experiment or {}
    metric = settings.get("winner_metric", "read_rate")
    confidence = float(settings.get("confidence", 0.95))
    level = f"{confidence * 100:g} %"
    words = METRICS[metric][1]
    ranked = sorted(
        counts.items(),
        key=lambda kv: (-(abstats.rate(kv[1].count(metric), kv[1].sent) or 0.0), kv[0]),
    )
    (best, b), (second, s) = ranked[0], ranked[1]
    if not b.sent or not s.sent:
        return None, (
            f"Not enough sent to compare ({best}: {b.sent}, {second}: {s.sent} messages sent); "
            "pick a winner."
        )
    counts_ = (b.count(metric), b.sent, s.count(metric), s.sent)
    if not abstats.enough(*counts_):
        return None, (
            f"Not enough data yet to compare {best} and {second} on {words} "
            f"({best}: {b.count(metric)} of {b.sent}, {second}: {s.count(metric)} of {s.sent}; "
            f"the test needs about {abstats.MIN_EXPECTED} of each outcome in each variant); "
            "pick a winner."
        )
    test = abstats.compare(*counts_, confidence)
    lead = f"{best} leads {second} by {_points(test.difference)} points on {words}"
    if test.difference == 0:
        lead = f"{best} and {second} are level on {words}"
    p = f"p = {test.p_value:.2g}" if test.p_value >= 0.001 else "p < 0.001"
    if not test.significant:
        return None, f"{lead}; not significant at {level} ({p}); pick a winner."
    if not settings.get("auto_winner", True):
        return (
            None,
            f"{lead}, significant at {level} ({p}); automatic choice is off: pick a winner.",
        )
    return best, f"{lead}, significant at {level} ({p}); {best} goes to the rest."


async def _apply(
    session: AsyncSession, campaign: Campaign, key: str, reason: str, now: datetime
) -> int:
    """Make `key` the winner: the rest's deliveries get it (one UPDATE) and become due."""
    campaign.winner, campaign.experiment_state = key, DECIDED
    campaign.experiment_reason, campaign.decided_at = reason, now
    result = await session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign.id, Delivery.variant == variants.WAITING)
        .values(variant=key, updated_at=now)
    )
    await session.flush()
    return rowcount(result)


def _decide_at(campaign: Campaign) -> datetime | None:
    if campaign.started_at is None or not campaign.experiment:
        return None
    return campaign.started_at + timedelta(
        seconds=int(campaign.experiment.get("decide_after_seconds", 3600))
    )


async def due(session: AsyncSession, now: datetime) -> list[int]:
    """The ids of the experiments whose test time is over and not decided yet, in order."""
    testing = await session.scalars(
        select(Campaign)
        .where(Campaign.experiment_state == TESTING, Campaign.status.in_(_DECIDABLE))
        .order_by(Campaign.id)
    )
    return [c.id for c in testing if (at := _decide_at(c)) is not None and at <= now]


async def decide_one(session: AsyncSession, campaign_id: int, now: datetime) -> Campaign | None:
    """Decide one due experiment: the winner when the rule allows, else `deciding` with the
    reason. Returns the campaign when it got a winner (its rest is now due: the caller plans
    it), None otherwise (or when another worker's sweep or a person decided it first)."""
    # Locked, then read again: the state and status seen by `due` may have changed since.
    campaign = await session.get(
        Campaign, campaign_id, with_for_update=True, populate_existing=True
    )
    if campaign is None or campaign.experiment_state != TESTING:
        return None
    if campaign.status not in _DECIDABLE:
        return None
    winner, reason = decide(campaign, await tallies(session, campaign))
    if winner is None:
        campaign.experiment_state, campaign.experiment_reason = DECIDING, reason
        campaign.decided_at = now
    else:
        await _apply(session, campaign, winner, reason, now)
    await audit.record(
        session,
        Actor.system(),
        "campaign.experiment_decided" if winner else "campaign.experiment_deciding",
        object_type="campaign",
        object_id=campaign.id,
        details={"winner": winner, "reason": reason},
    )
    await session.flush()
    return campaign if winner else None


async def decide_due(session: AsyncSession, now: datetime) -> list[Campaign]:
    """Decide every due experiment in one transaction (locked in id order, so two callers
    never wait on each other in a cycle). Returns the campaigns that got a winner. The
    worker's sweep decides each in its own transaction instead (worker/experiment.py)."""
    decided = []
    for campaign_id in await due(session, now):
        campaign = await decide_one(session, campaign_id, now)
        if campaign is not None:
            decided.append(campaign)
    return decided


async def pick_winner(
    session: AsyncSession, actor: Actor, campaign_id: int, key: Any, now: datetime
) -> Campaign:
    """The winner picked by hand (testing or deciding); the rest gets it."""
    campaign = await session.get(
        Campaign, campaign_id, with_for_update=True, populate_existing=True
    ) or await campaigns.get(session, campaign_id)  # the latter raises NotFound
    if not campaign.experiment:
        raise InvalidState(
            f"Campaign {campaign.id} is not an experiment; a winner is picked only for a "
            "campaign with variants and an experiment.",
            field="key",
        )
    if campaign.experiment_state == DECIDED:
        raise InvalidState(
            f"Campaign {campaign.id}'s experiment is already decided: {campaign.winner} won.",
            field="key",
        )
    keys = variants.keys(campaign)
    if not isinstance(key, str) or key not in keys:
        raise InvalidInput(
            f"key: {key!r} is not a variant of campaign {campaign.id}; pick one of "
            f"{', '.join(keys)}.",
            field="key",
        )
    if campaign.status not in _LIVE:
        raise InvalidState(
            f"Campaign {campaign.id} is {campaign.status.value}; a winner is picked once it "
            "has started (and before it is cancelled).",
            field="key",
        )
    moved = await _apply(session, campaign, key, f"{key} picked by hand.", now)
    await audit.record(
        session,
        actor,
        "campaign.winner_picked",
        object_type="campaign",
        object_id=campaign.id,
        details={"winner": key, "rest": moved},
    )
    return campaign


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _status(campaign: Campaign) -> str:
    state = campaign.experiment_state or TESTING
    if campaign.status in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED):
        return "done"  # whatever was decided: nothing more is sent
    if state != DECIDED:
        return state
    if campaign.status is CampaignStatus.SENDING:
        return "sending_winner"
    return DECIDED


def _rate(successes: int, trials: int) -> dict[str, Any]:
    interval = abstats.wilson(successes, trials)
    return {
        "rate": abstats.rate(successes, trials),
        "low": interval[0] if interval else None,
        "high": interval[1] if interval else None,
    }


async def report(session: AsyncSession, campaign: Campaign) -> dict[str, Any] | None:
    """The `experiment` object of GET /api/campaigns/{id}: its settings, status, winner,
    reason, each variant's counts and rates (95 % Wilson intervals), and the holdout."""
    if not campaign.variants:
        return None
    counts = await tallies(session, campaign)
    rows: dict[str, Any] = {}
    for key, t in counts.items():
        rows[key] = {
            "sent": t.sent,
            "delivered": t.delivered,
            "read": t.read,
            "clicked": t.clicked,
            "replied": t.replied,
            "rates": {
                "delivery_rate": _rate(t.delivered, t.sent),
                "read_rate": _rate(t.read, t.sent),
                "click_rate": _rate(t.clicked, t.sent),
                "reply_rate": _rate(t.replied, t.sent),
            },
        }
    body: dict[str, Any] = dict(campaign.experiment or {})
    body |= {"variants": rows, "winner": campaign.winner}
    if not campaign.experiment:
        return body | {"status": None, "reason": None, "holdout": None}
    size, replied = await _holdout(session, campaign)
    held = abstats.rate(replied, size)
    lift = {
        key: (
            None
            if held is None or rows[key]["rates"]["reply_rate"]["rate"] is None
            else rows[key]["rates"]["reply_rate"]["rate"] - held
        )
        for key in rows
    }
    return body | {
        "status": _status(campaign),
        "reason": campaign.experiment_reason,
        "decide_at": _iso(_decide_at(campaign)),
        "decided_at": _iso(campaign.decided_at),
        "holdout": {
            "size": size,
            "replied": replied,
            "reply_rate": _rate(replied, size),
            "lift": lift,
        },
    }
