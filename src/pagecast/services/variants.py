"""A campaign's A/B variants: who gets which, decided in SQL inside the snapshot.

Each person's place is a seeded hash of (campaign seed, contact id) computed by the
snapshot's INSERT … SELECT itself (`assignment`), in integer arithmetic both SQLite and
PostgreSQL do alike (products stay under 2^63), so no row passes through Python and the
same person lands in the same place on any backend, any worker, any resume. The result is
stored in `deliveries.variant`; nothing ever computes it again for a delivery that exists.

With an experiment the hash first cuts the audience into the holdout (skipped, reason
`holdout`), the test cohort (a variant by weight) and the rest (`WAITING`, services/
experiments.py sends them the winner). docs/experiments.md explains it in words.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, case, cast, literal, literal_column, or_

from pagecast.errors import Hint, InvalidState
from pagecast.message_schema import Content
from pagecast.models import Campaign, Contact
from pagecast.services import content

__all__ = [
    "HOLDOUT",
    "WAITING",
    "assignment",
    "by_variant",
    "columns",
    "keep_started",
    "keys",
    "new_seed",
    "not_waiting",
    "prepare",
]

HOLDOUT = "holdout"  # the skip reason of the holdout's deliveries
WAITING = "*"  # deliveries.variant of a person who waits for the experiment's winner
_P = 2_147_483_647  # 2^31 - 1, a prime: every step below stays under 2^62
_BUCKETS = 10_000  # cohorts are cut in hundredths of a percent


def new_seed() -> int:
    return secrets.randbelow(_P - 1) + 1


def _hash(contact_id: Any, salt: int) -> Any:
    """A well-mixed integer in [0, _P) from a contact id and a salt, in SQL: an affine step,
    a square (not linear: neighbouring ids land far apart) and another affine step."""
    x = cast(contact_id, BigInteger)
    h = (x * literal(48_271, BigInteger) + literal(salt, BigInteger)) % _P
    h = (h * h + literal(salt, BigInteger)) % _P
    return (h * literal(16_807, BigInteger) + x) % _P


def _salts(seed: int) -> tuple[int, int]:
    """The salts of the cohort cut and of the variant pick (independent of each other)."""
    return seed % _P, (seed * 31 + 7_919) % _P


def keys(campaign: Campaign) -> list[str]:
    return [v["key"] for v in campaign.variants or []]


def _pick(campaign: Campaign, contact_id: Any) -> Any:
    """The variant by weight: a hash modulo the sum of the weights, cut at each weight."""
    variants = campaign.variants or []
    total = sum(int(v["weight"]) for v in variants)
    point = _hash(contact_id, _salts(campaign.variant_seed or 1)[1]) % total
    whens, edge = [], 0
    for variant in variants[:-1]:
        edge += int(variant["weight"])
        whens.append((point < edge, variant["key"]))
    return case(*whens, else_=variants[-1]["key"]) if whens else literal(variants[-1]["key"])


def _cut(campaign: Campaign) -> tuple[Any, int, int]:
    """The person's bucket in [0, 10000) and the holdout's and the test cohort's upper edges."""
    experiment = campaign.experiment or {}
    bucket = _hash(Contact.id, _salts(campaign.variant_seed or 1)[0]) % _BUCKETS
    holdout = round(float(experiment.get("holdout_percent", 0)) * _BUCKETS / 100)
    test = round(float(experiment.get("test_percent", 100)) * _BUCKETS / 100)
    return bucket, holdout, holdout + test


def assignment(campaign: Campaign, reason: Any) -> tuple[Any, dict[str, Any]]:
    """The snapshot's reason (the holdout added to `reason`, an exclusion CASE) and the extra
    columns it inserts ({"variant": …}; none for a campaign without variants)."""
    if not campaign.variants:
        return reason, {}
    pick = _pick(campaign, Contact.id)
    if not campaign.experiment:
        return reason, {"variant": pick}
    bucket, holdout, test = _cut(campaign)
    reason = case((reason.is_not(None), reason), (bucket < holdout, HOLDOUT), else_=None)
    # The rest waits for the winner; once there is one (a slice inserted after the
    # decision or a hand pick), it gets the winner at once: nothing would move it later.
    rest = literal(campaign.winner) if campaign.winner else literal(WAITING)
    variant = case((bucket < holdout, None), (bucket < test, pick), else_=rest)
    return reason, {"variant": variant}


def columns(variants: Sequence[Any] | None, experiment: Any | None) -> dict[str, Any]:
    """The campaign's columns for the variants and experiment of a request (`VariantIn`,
    `ExperimentIn`); `content` is variant A's, for readers of one message."""
    if not variants:
        return {"variants": None, "experiment": None}
    stored = [{"key": v.key, "content": v.content.stored(), "weight": v.weight} for v in variants]
    return {
        "variants": stored,
        "experiment": experiment.model_dump(mode="json") if experiment is not None else None,
        "content": stored[0]["content"],
        "messages": None,
    }


def by_variant(campaign: Campaign) -> dict[str, list[Content]]:
    """Each variant's messages, parsed once (a chunk builds this once, not per delivery)."""
    return {
        v["key"]: [content.parse(v["content"], f"variants[{i}].content")]
        for i, v in enumerate(campaign.variants or [])
    }


def not_waiting(variant: Any) -> Any:
    """The engine's rule for the rest of an experiment: a delivery that waits for the
    winner (`variant` = WAITING) is not due; deliveries._due and pending_ranges add it.
    The literal is written in the SQL, not bound: so PostgreSQL matches the condition with
    the partial index `ix_deliveries_campaign_id_due_pending` even in a generic plan."""
    return or_(variant.is_(None), variant != literal_column(f"'{WAITING}'"))


def prepare(campaign: Campaign, *, new_seed_: bool = False) -> None:
    """A campaign not started yet: its seed (kept once set, unless `new_seed_`: a copy) and
    its experiment's state back to `testing` with no winner."""
    if not campaign.variants:
        campaign.variant_seed = None
    elif campaign.variant_seed is None or new_seed_:
        campaign.variant_seed = new_seed()
    campaign.experiment_state = "testing" if campaign.experiment else None
    campaign.winner = campaign.experiment_reason = campaign.decided_at = None


def keep_started(campaign: Campaign, field: str) -> None:
    """A started A/B campaign keeps its variants: its people were assigned to them (a new
    message given in `field` is refused)."""
    if campaign.variants:
        raise InvalidState(
            f"Campaign {campaign.id} has started as an A/B test; its variants cannot change "
            "any more. Duplicate it ({hint}) to send different ones.",
            field=field,
            hint=Hint(
                api=f"POST /api/campaigns/{campaign.id}/duplicate",
                cli=f"`pagecast campaigns duplicate {campaign.id}`",
            ),
        )
