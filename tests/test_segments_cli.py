"""`pagecast segments list | create | delete` as real processes (issue 21)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from factories import SIM_TOKEN
from test_cli import data_dir, migrated_dir, run  # noqa: F401 (fixtures of the CLI's tests)


def _page_with_contacts(data_dir: Path, tmp_path: Path, simulator: Any) -> None:  # noqa: F811
    url = simulator.url
    httpx.post(f"{url}/__sim/reset").raise_for_status()
    httpx.post(
        f"{url}/__sim/pages", json={"page_id": "1001", "name": "Acme", "access_token": SIM_TOKEN}
    ).raise_for_status()
    added = run(data_dir, "pages", "add", "--token", SIM_TOKEN, PAGECAST_GRAPH_API_URL=url)
    assert added.returncode == 0, added.stderr
    people = tmp_path / "people.csv"
    people.write_text('psid\ttags\n1\t"vip;gold"\n2\tvip\n3\tgold\n')  # tab-separated
    imported = run(data_dir, "contacts", "import", str(people), "--page", "1")
    assert imported.returncode == 0, imported.stderr


def test_segments_are_created_listed_and_deleted(
    data_dir: Path,  # noqa: F811
    tmp_path: Path,
    simulator: Any,
) -> None:
    _page_with_contacts(data_dir, tmp_path, simulator)
    empty = run(data_dir, "segments", "list", "--page", "1")
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.splitlines() == ["No segments."]
    assert json.loads(run(data_dir, "segments", "list", "--page", "1", "--json").stdout) == []

    created = run(
        data_dir,
        "segments",
        "create",
        "--page",
        "1",
        "--name",
        "Gold VIPs",
        "--tags-all",
        "vip,gold",
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "Segment 1 (Gold VIPs) of Page 1: 1 contacts now."
    wide = run(
        data_dir,
        "segments",
        "create",
        "--page",
        "1",
        "--name",
        "VIPs",
        "--filter",
        '{"tags_any": ["vip"]}',
    )
    assert wide.returncode == 0, wide.stderr

    listed = run(data_dir, "segments", "list", "--page", "1")
    assert listed.stdout.splitlines() == [
        "ID\tCONTACTS\tNAME\tFILTER",
        '1\t1\tGold VIPs\t{"tags_all": ["vip", "gold"]}',
        '2\t2\tVIPs\t{"tags_any": ["vip"]}',
    ]
    as_json = json.loads(run(data_dir, "segments", "list", "--page", "1", "--json").stdout)
    assert [(s["name"], s["count"]) for s in as_json] == [("Gold VIPs", 1), ("VIPs", 2)]

    deleted = run(data_dir, "segments", "delete", "1")
    assert deleted.returncode == 0 and deleted.stdout.strip() == "Segment 1 deleted."
    missing = run(data_dir, "segments", "delete", "1")
    assert missing.returncode == 1 and missing.stderr.strip() == "Error: Segment 1 does not exist."


def test_bad_segment_input_is_one_line_with_exit_1(
    data_dir: Path,  # noqa: F811
    tmp_path: Path,
    simulator: Any,
) -> None:
    _page_with_contacts(data_dir, tmp_path, simulator)
    for args, said in (
        (("--window", "sometimes"), "filter.window:"),
        (("--filter", "{not json"), "--filter: not JSON"),
        (("--filter", "[1]"), "--filter: give a JSON object"),
        (("--filter", '{"tags_any": 5}', "--tags-any", "vip"), "filter.tags_any[0]:"),
    ):
        result = run(data_dir, "segments", "create", "--page", "1", "--name", "x", *args)
        assert result.returncode == 1, result.stdout
        assert result.stderr.startswith("Error: " + said) and len(result.stderr.splitlines()) == 1
    run(data_dir, "segments", "create", "--page", "1", "--name", "x")
    again = run(data_dir, "segments", "create", "--page", "1", "--name", "x")
    assert again.returncode == 1 and "already has a segment named 'x'" in again.stderr
