"""`pagecast series create | list | show | pause | resume | end` (issue 20), run as real
processes on a fresh data directory."""

from __future__ import annotations

from pathlib import Path

import httpx

from factories import SIM_TOKEN
from test_cli import data_dir, migrated_dir, run

__all__ = ["data_dir", "migrated_dir"]  # fixtures used here


def _page(data_dir: Path, url: str) -> dict[str, str]:
    httpx.post(f"{url}/__sim/reset").raise_for_status()
    httpx.post(
        f"{url}/__sim/pages", json={"page_id": "1001", "name": "Acme", "access_token": SIM_TOKEN}
    ).raise_for_status()
    env = {"PAGECAST_GRAPH_API_URL": url}
    assert run(data_dir, "pages", "add", "--token", SIM_TOKEN, **env).returncode == 0
    return env


def test_a_series_is_created_listed_shown_paused_resumed_and_ended(
    data_dir: Path, simulator: object
) -> None:
    env = _page(data_dir, simulator.url)  # type: ignore[attr-defined]
    made = run(
        data_dir,
        "series", "create", "--page", "1", "--name", "Welcome", "--weekly", "mon,thu",
        "--at", "09:30", "--timezone", "Asia/Manila", "--text", "Hi {{first_name|there}}",
        **env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("Series 1 (Welcome) is active; its first run is ")
    assert "09:30 UTC+08:00" in made.stdout
    listed = run(data_dir, "series", "list").stdout.strip().splitlines()[-1].split("\t")
    assert listed[0] == "1" and listed[1] == "active"
    assert listed[3] == "Every Monday, Thursday at 09:30 (Asia/Manila)"
    assert listed[4:] == ["never_twice", "Welcome"]
    shown = run(data_dir, "series", "show", "1").stdout.splitlines()
    assert shown[0] == "Series 1: Welcome (active, never_twice)"
    assert len([line for line in shown if line.startswith("next\t")]) == 5
    paused = run(data_dir, "series", "pause", "1")
    # No next run while paused: resuming starts again from the schedule's next time.
    assert paused.stdout.strip() == "Series 1 is paused."
    resumed = run(data_dir, "series", "resume", "1")
    assert resumed.stdout.startswith("Series 1 is active; next run ")
    ended = run(data_dir, "series", "end", "1")
    assert ended.stdout.strip() == "Series 1 is ended."
    again = run(data_dir, "series", "resume", "1")
    assert again.returncode == 1 and "has ended" in again.stderr


def test_bad_series_input_is_one_line_naming_the_field(data_dir: Path, simulator: object) -> None:
    env = _page(data_dir, simulator.url)  # type: ignore[attr-defined]
    base = ("series", "create", "--page", "1", "--name", "W", "--text", "Hi")
    for extra, said in (
        (("--cron", "0 9 * *"), "schedule: '0 9 * *' has 4 fields"),
        (("--daily", "9h"), "schedule: '9h' is not a time of day"),
        (("--weekly", "mon,someday", "--at", "09:00"), "not a day of the week"),
        (
            ("--daily", "09:00", "--timezone", "Mars/Base"),
            "timezone: 'Mars/Base' is not a time zone",
        ),
        ((), "schedule: give one of"),
        (("--daily", "09:00", "--cron", "* * * * *"), "schedule: give one of"),
    ):
        result = run(data_dir, *base, *extra, **env)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and said in lines[0], result.stderr
    missing = run(data_dir, "series", "show", "9")
    assert missing.returncode == 1 and "Series 9 does not exist" in missing.stderr
