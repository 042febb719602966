"""Issue 22: the command line's changes emit the same outbound events (it calls the same
services in process): `campaigns create`, `duplicate`, `start` and `cancel`, and a
`contacts import`. Run as a person runs it, a `pagecast` process on a SQLite data dir."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from factories import SIM_TOKEN
from test_cli import data_dir, migrated_dir, run

__all__ = ["data_dir", "migrated_dir"]  # fixtures used here


def test_the_command_line_emits_what_the_api_emits(
    data_dir: Path, tmp_path: Path, simulator: object
) -> None:
    url = simulator.url  # type: ignore[attr-defined]
    httpx.post(f"{url}/__sim/reset").raise_for_status()
    httpx.post(
        f"{url}/__sim/pages", json={"page_id": "1001", "name": "Acme", "access_token": SIM_TOKEN}
    ).raise_for_status()
    assert (
        run(data_dir, "pages", "add", "--token", SIM_TOKEN, PAGECAST_GRAPH_API_URL=url).returncode
        == 0
    )
    people = tmp_path / "people.csv"
    recent = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    people.write_text(f"psid,first_name,last_inbound_at\n1,Ana,{recent}\n2,Ben,{recent}\n")
    assert run(data_dir, "contacts", "import", str(people), "--page", "1").returncode == 0
    for args in (
        ("campaigns", "create", "--page", "1", "--name", "Hello", "--text", "Hi"),
        ("campaigns", "duplicate", "1"),
        ("campaigns", "cancel", "2"),
        ("campaigns", "start", "1"),
        ("campaigns", "pause", "1"),
    ):
        done = run(data_dir, *args)
        assert done.returncode == 0, done.stderr
    with sqlite3.connect(data_dir / "pagecast.db") as conn:
        rows = conn.execute(
            "SELECT type, campaign_id, data FROM outbound_events ORDER BY id"
        ).fetchall()
    found = [(t, c, json.loads(d)) for t, c, d in rows]
    assert [(t, c) for t, c, _ in found] == [
        ("import.completed", None),
        ("campaign.created", 1),
        ("campaign.created", 2),
        ("campaign.cancelled", 2),
        ("campaign.started", 1),
        ("campaign.paused", 1),
    ]
    assert (found[0][2]["created"], found[0][2]["state"]) == (2, "completed")
    assert found[1][2]["name"] == "Hello" and found[2][2]["copied_from"] == 1
    assert found[3][2]["reason"] == "person"
    # The command line's actor has no user id, as the system's has none: still a person.
    assert (found[5][2]["reason"], found[5][2]["message"]) == ("person", "Paused by cli")
