"""The benchmark suite's quick modes still run (so `bench/` never rots).

Each benchmark runs as `python bench/<name>.py --quick`: its own simulator, private
redis-server, bench database and worker processes, a few seconds of work, a table and a
JSON file in bench/results/. PostgreSQL must answer at 127.0.0.1:5432 (the benchmarks
create their own `pagecast_bench_*` databases); otherwise the test is skipped.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.parametrize(
    ("script", "result"),
    [
        ("throughput.py", "throughput"),
        ("transport.py", "transport"),
        ("baseline_per_message.py", "baseline_per_message"),
        ("rate_fidelity.py", "rate_fidelity"),
        ("start_latency.py", "start_latency"),
        ("memory.py", "memory"),
        ("progress_api.py", "progress_api"),
        ("serve_load.py", "serve_load"),
        ("import_load.py", "import_load"),
        ("delivery_list.py", "delivery_list"),
        ("contacts_list.py", "contacts_list"),
        ("local_time_plan.py", "local_time_plan"),
        ("audit_list.py", "audit_list"),
    ],
)
def test_quick_benchmark_runs(script: str, result: str) -> None:
    if not _postgres_answers():
        pytest.skip("the benchmarks need PostgreSQL at 127.0.0.1:5432")
    latest = BENCH / "results" / f"{result}-latest.json"
    latest.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAGECAST_")}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick"],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "machine: cores" in done.stdout
    data = json.loads(latest.read_text())
    assert data["quick"] is True
    assert data["machine"]["cores"] == os.cpu_count()
    if result == "serve_load":
        _serve_holds_the_load(data["runs"][0])


def _serve_holds_the_load(run: dict[str, object]) -> None:
    """The default `pagecast serve` under a Page's load (issue 16): progress reads answer
    with p99 under 1 s, the writers never see "database is locked", every count ends true,
    and a signal stops it in order. (613s are not checked here: the bench's simulator shares
    the cores and may date calls late, docs/performance.md; tests/test_pacing.py checks the
    pace.)"""
    assert run["completed"] is True, run
    assert run["p99_ms"] < 1000, run  # type: ignore[operator]
    assert run["read_errors"] == 0, run
    assert (run["database_locked"], run["tracebacks"], run["queue_unavailable"]) == (0, 0, 0), run
    assert run["every_read"] is True, (run["counts"], run["rows"])
    shutdown = run["shutdown_statuses"]
    assert isinstance(shutdown, dict) and shutdown["exit_code"] == 0, shutdown
    assert "did_not_exit" not in shutdown and not any(k.startswith("5") for k in shutdown)
