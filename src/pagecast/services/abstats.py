"""The statistics of an A/B test, pure functions on counts (docs/experiments.md).

Written here on the standard library's `statistics.NormalDist` rather than with SciPy or
statsmodels: the two formulas are a few lines each, and neither library is a dependency of
Pagecast (docs/architecture.md, "Issue 20: variants").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

__all__ = ["MIN_EXPECTED", "Comparison", "compare", "enough", "rate", "wilson"]

_NORMAL = NormalDist()
# The normal approximation of the z-test holds when each arm expects at least this many
# successes and failures (the usual rule of thumb: n·p ≥ 5 and n·(1 − p) ≥ 5).
MIN_EXPECTED = 5


def enough(x1: int, n1: int, x2: int, n2: int) -> bool:
    """Whether the z-test may be trusted on these counts: each arm expects at least
    MIN_EXPECTED successes and as many failures at the pooled rate (what the test assumes
    when the arms are equal). compare(3, 3, 0, 3) is not enough: 1.5 expected each way."""
    if n1 <= 0 or n2 <= 0:
        return False
    pooled = (x1 + x2) / (n1 + n2)
    return all(n * pooled >= MIN_EXPECTED and n * (1 - pooled) >= MIN_EXPECTED for n in (n1, n2))


def rate(successes: int, trials: int) -> float | None:
    """successes / trials, None when nothing was tried."""
    return successes / trials if trials else None


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (it stays inside [0, 1] and is sound for
    small counts and rates near 0 or 1, unlike p ± z·√(p(1−p)/n)); None for no trials."""
    if trials <= 0:
        return None
    z = _NORMAL.inv_cdf(1 - (1 - confidence) / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # At 0 or every success the bound is exactly 0 or 1 (the float sum leaves 1e-17 or so).
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= trials else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class Comparison:
    """Two proportions compared: the difference (first minus second), the z statistic and
    the two-sided p-value; `significant` at the confidence asked."""

    difference: float
    z: float
    p_value: float
    significant: bool


def compare(x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95) -> Comparison:
    """The two-proportion z-test with the pooled proportion: is x1/n1 different from x2/n2
    beyond chance, at `confidence`? No trials on a side, no variance at all (both 0 % or
    both 100 %), or too few to trust the approximation (`enough`) is never significant."""
    if n1 <= 0 or n2 <= 0:
        return Comparison(0.0, 0.0, 1.0, False)
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return Comparison(p1 - p2, 0.0, 1.0, False)
    z = (p1 - p2) / math.sqrt(variance)
    p_value = 2 * (1 - _NORMAL.cdf(abs(z)))
    significant = p_value < 1 - confidence and enough(x1, n1, x2, n2)
    return Comparison(p1 - p2, z, p_value, significant)
