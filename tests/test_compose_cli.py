"""`pagecast pages attachment`: media uploaded once per Page from the command line (issue 19),
run as a real process against the simulator."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from factories import SIM_TOKEN
from test_cli import data_dir, migrated_dir, run

__all__ = ["data_dir", "migrated_dir"]  # fixtures used here

IMAGE = "https://cdn.example.com/poster.jpg"


def test_pages_attachment_uploads_once_and_reuses(data_dir: Path, simulator: object) -> None:
    url = simulator.url  # type: ignore[attr-defined]
    httpx.post(f"{url}/__sim/reset").raise_for_status()
    httpx.post(
        f"{url}/__sim/pages", json={"page_id": "1001", "name": "Acme", "access_token": SIM_TOKEN}
    ).raise_for_status()
    env = {"PAGECAST_GRAPH_API_URL": url}
    assert run(data_dir, "pages", "add", "--token", SIM_TOKEN, **env).returncode == 0
    first = run(data_dir, "pages", "attachment", "1", "--url", IMAGE, **env)
    assert first.returncode == 0, first.stderr
    attachment_id = first.stdout.strip()
    assert attachment_id.isdigit()
    again = run(data_dir, "pages", "attachment", "1", "--url", IMAGE, **env)
    assert again.stdout.strip() == f"{attachment_id} (uploaded before; reused)"


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (("--url", "ftp://cdn.example.com/a.jpg"), "--url: must be an https:// URL"),
        (("--url", "http://cdn.example.com/a.jpg"), "--url: must be an https:// URL"),
        (("--url", IMAGE, "--type", "gif"), "--type:"),
    ],
)
def test_pages_attachment_refuses_bad_input_in_one_line(
    data_dir: Path, args: tuple[str, ...], phrase: str
) -> None:
    result = run(data_dir, "pages", "attachment", "1", *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and phrase in lines[0], result.stderr


def test_pages_attachment_of_an_unknown_page_says_so(data_dir: Path) -> None:
    result = run(data_dir, "pages", "attachment", "7", "--url", IMAGE)
    assert result.returncode == 1 and "Page 7 does not exist" in result.stderr, result.stderr
