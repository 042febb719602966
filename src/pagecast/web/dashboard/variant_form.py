"""The composer's A/B test section (issue 20): the form's message is variant A; B to E
are texts of their own, each with a weight; an optional experiment (test cohort, holdout,
metric, when to decide). `apply` turns the form into the API's `variants` and `experiment`
(the API's validation then names any wrong field); `values_of` reads a saved campaign back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pagecast.errors import InvalidInput
from pagecast.models import Campaign
from pagecast.variant_schema import KEYS, METRICS

__all__ = ["CONFIDENCES", "KEYS", "METRICS", "apply", "values_of"]

CONFIDENCES = ("0.9", "0.95", "0.99")


def _number(value: str) -> Any:
    """A number typed in the form; text that is not one (infinity, "nan", 1e400 included) is
    passed on for the API to name."""
    for kind in (int, float):
        try:
            number = kind(value)
        except ValueError:
            continue
        return number if math.isfinite(number) else value
    return value


def apply(form: Mapping[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """`data` (the composer's API body) with the A/B test of the form, when it is on: the
    message becomes variant A, and `content` gives way to `variants`."""

    def get(name: str) -> str:
        return str(form.get(name, "")).strip()

    if not get("ab_on"):
        return data
    if "messages" in data:
        raise InvalidInput(
            "variants: an A/B test sends one message per variant; remove the other messages "
            "of the sequence, or turn the A/B test off",
            field="variants",
        )
    variants = [
        {"key": "A", "content": data.pop("content"), "weight": _number(get("ab_weight_A") or "1")}
    ]
    for key in KEYS[1:]:
        text = str(form.get(f"ab_text_{key}", ""))
        if text.strip():
            weight = _number(get(f"ab_weight_{key}") or "1")
            variants.append({"key": key, "content": {"text": text}, "weight": weight})
    data["variants"] = variants
    if get("ab_test_percent"):
        hours = _number(get("ab_decide_hours") or "1")
        data["experiment"] = {
            "test_percent": _number(get("ab_test_percent")),
            "holdout_percent": _number(get("ab_holdout_percent") or "0"),
            "winner_metric": get("ab_metric") or "read_rate",
            "decide_after_seconds": round(hours * 3600)
            if isinstance(hours, int | float)
            else hours,
            "auto_winner": bool(get("ab_auto")),
            "confidence": _number(get("ab_confidence") or "0.95"),
        }
    return data


def values_of(campaign: Campaign) -> dict[str, Any]:
    """A saved A/B campaign as the section's form values (variant A is the form's message)."""
    if not campaign.variants:
        return {}
    values: dict[str, Any] = {"ab_on": "1"}
    for variant in campaign.variants:
        values[f"ab_weight_{variant['key']}"] = variant.get("weight", 1)
        if variant["key"] != "A":
            values[f"ab_text_{variant['key']}"] = variant["content"].get("text", "")
    experiment = campaign.experiment
    if experiment:
        values |= {
            "ab_test_percent": f"{experiment['test_percent']:g}",
            "ab_holdout_percent": f"{experiment.get('holdout_percent', 0):g}",
            "ab_metric": experiment.get("winner_metric", "read_rate"),
            "ab_decide_hours": f"{experiment.get('decide_after_seconds', 3600) / 3600:g}",
            "ab_auto": "1" if experiment.get("auto_winner", True) else "",
            "ab_confidence": f"{experiment.get('confidence', 0.95):g}",
        }
    return values
