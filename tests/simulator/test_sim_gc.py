"""The simulator's event loop does not stop for full garbage collections of its records."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Records kept as the simulator keeps calls, then enough short-lived containers to pass
# the young generations' thresholds many times; prints how many full collections ran.
_WORKLOAD = """
import gc, sys
from pagecast.simulator.server import no_full_collections
if sys.argv[1] == "quiet":
    no_full_collections()
before = gc.get_stats()[2]["collections"]
kept = []
for i in range(300_000):
    kept.append({"time": float(i), "psid": str(i)})
    [[] for _ in range(3)]
print(gc.get_stats()[2]["collections"] - before)
"""


@pytest.mark.parametrize(("mode", "expect_full"), [("default", True), ("quiet", False)])
def test_the_simulator_runs_no_full_collection_on_its_own(mode: str, expect_full: bool) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WORKLOAD, mode], capture_output=True, text=True, check=True
    )
    full = int(done.stdout)
    assert (full > 0) is expect_full, (mode, full)
