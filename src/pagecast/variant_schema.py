"""The request bodies of A/B tests (issue 20): a campaign's variants and its experiment.

`CampaignCreate` takes `variants` instead of `content`, and optionally an `experiment`;
the rules that need more than one field live in `check` (called from the campaign's own
validator, so every error names its field: `variants[1].key`, `experiment.test_percent`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from pagecast.errors import InvalidInput
from pagecast.input_types import Input
from pagecast.message_schema import Content

__all__ = ["KEYS", "MAX_VARIANTS", "MIN_VARIANTS", "ExperimentIn", "VariantIn", "check"]

KEYS = ("A", "B", "C", "D", "E")
MIN_VARIANTS, MAX_VARIANTS = 2, len(KEYS)
METRICS = ("read_rate", "click_rate", "reply_rate")


class VariantIn(Input):
    key: Literal["A", "B", "C", "D", "E"] = Field(
        description="The variant's key: A, B, C, D or E, each once."
    )
    content: Content
    weight: Annotated[int, Field(ge=1, le=1000)] = Field(
        1, description="Its share of the people (or of the test cohort): weight / sum of weights."
    )


class ExperimentIn(Input):
    test_percent: Annotated[float, Field(gt=0, le=100)] = Field(
        description="Percent of the audience split among the variants first."
    )
    holdout_percent: Annotated[float, Field(ge=0, lt=100)] = Field(
        0, description="Percent of the audience that gets nothing (the comparison group)."
    )
    winner_metric: Literal["read_rate", "click_rate", "reply_rate"] = "read_rate"
    decide_after_seconds: Annotated[int, Field(ge=60, le=30 * 86400)] = Field(
        3600, description="How long after the start the test is decided."
    )
    auto_winner: bool = Field(
        True,
        description="Send the winner to the rest by itself when the difference is significant.",
    )
    confidence: Annotated[float, Field(ge=0.5, le=0.999)] = Field(
        0.95, description="The confidence the automatic decision needs (two-proportion z-test)."
    )


def check(variants: list[VariantIn] | None, experiment: ExperimentIn | None) -> None:
    """The rules across fields: 2–5 variants with unique keys, an experiment only with
    variants, test and holdout that leave room for each other."""
    if variants is None:
        if experiment is not None:
            raise InvalidInput(
                "experiment: an experiment needs variants; give 2 to 5 in `variants` "
                "(instead of `content`), or leave the experiment out",
                field="experiment",
            )
        return
    if not MIN_VARIANTS <= len(variants) <= MAX_VARIANTS:
        raise InvalidInput(
            f"variants: give {MIN_VARIANTS} to {MAX_VARIANTS} variants (keys A to E); "
            f"you gave {len(variants)}",
            field="variants",
        )
    seen: set[str] = set()
    for index, variant in enumerate(variants):
        if variant.key in seen:
            raise InvalidInput(
                f"variants[{index}].key: {variant.key} is used twice; each variant needs its "
                "own key (A, B, C, D, E)",
                field=f"variants[{index}].key",
            )
        seen.add(variant.key)
    if experiment is not None and experiment.test_percent + experiment.holdout_percent > 100:
        raise InvalidInput(
            f"experiment.test_percent: {experiment.test_percent:g} % test and "
            f"{experiment.holdout_percent:g} % holdout make more than 100 %; lower one of them",
            field="experiment.test_percent",
        )
