"""`pagecast contacts list | export`, run as real processes on a fresh data directory: the
header, filters, sort and pages, --json, "No contacts.", the export (to stdout and to a
file, importable back) and bad options as one line with exit 1."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from factories import ADMIN_ACTOR
from pagecast.db import Database
from pagecast.models import Contact, utcnow
from pagecast.schemas import PageCreate
from pagecast.security import Vault
from pagecast.services import contacts, pages

PAGECAST = str(Path(sys.executable).parent / "pagecast")
KEY = "cli-test-key"
PEOPLE = 12  # psid 5000..5011; every third a vip, every other one wrote an hour ago


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("contacts") / "data"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAGECAST_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env |= {"PAGECAST_DATA_DIR": str(data), "PAGECAST_SECRET_KEY": KEY}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PAGECAST, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    assert run("db", "upgrade").returncode == 0
    run.page = seed(data)  # type: ignore[attr-defined]
    return run


def seed(data: Path) -> tuple[int, int]:
    """A Page with PEOPLE contacts, and an empty second Page; their ids."""

    async def create() -> tuple[int, int]:
        db = Database(f"sqlite+aiosqlite:///{data / 'pagecast.db'}")

        def owner(fb_id: str) -> Any:
            async def verify(_token: str, _secret: str | None) -> pages.Owner:
                return pages.Owner(id=fb_id, name=f"Shop {fb_id}")

            return verify

        try:
            async with db.transaction() as session:
                made = [
                    await pages.connect(
                        session,
                        ADMIN_ACTOR,
                        Vault(KEY.encode()),
                        PageCreate(access_token=f"token-{fb_id}"),
                        verify=owner(fb_id),
                        default_send_rate=40,
                    )
                    for fb_id in ("1001", "1002")
                ]
                now = utcnow()
                for i in range(PEOPLE):
                    person = Contact(
                        page_id=made[0].id,
                        psid=f"50{i:02d}",
                        first_name="=Eve" if i == 1 else f"Ann{i:02d}",
                        last_name="Lee",
                        last_inbound_at=now - timedelta(hours=1) if i % 2 == 0 else None,
                        timezone="Asia/Manila" if i == 4 else None,
                    )
                    session.add(person)
                    await session.flush()
                    if i % 3 == 0:
                        await contacts.add_tags(session, [(person.id, "vip"), (person.id, "b")])
            return made[0].id, made[1].id
        finally:
            await db.close()

    return asyncio.run(create())


def test_list_has_a_header_a_row_each_and_the_total(cli: Any) -> None:
    page, _ = cli.page
    done = cli("contacts", "list", "--page", str(page), "--tag", "vip")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["ID", "PSID", "NAME", "TAGS", "WINDOW", "LAST", "MESSAGE", "FLAGS"]
    assert [line.split()[1] for line in lines[1:]] == ["5000", "5003", "5006", "5009"]
    assert "4 contacts match." in done.stderr


def test_filters_sort_and_cursor(cli: Any) -> None:
    page, _ = cli.page
    args = ("contacts", "list", "--page", str(page), "--json")
    inside = json.loads(cli(*args, "--window", "inside", "--no-tag", "vip").stdout)
    assert [c["psid"] for c in inside["items"]] == ["5002", "5004", "5008", "5010"]
    assert inside["total"] == 4
    zoned = json.loads(cli(*args, "--timezone", "asia/manila").stdout)
    assert [c["psid"] for c in zoned["items"]] == ["5004"]
    both = json.loads(cli(*args, "--all-tags", "vip,b", "--sort", "-name", "--limit", "3").stdout)
    assert [c["psid"] for c in both["items"]] == ["5009", "5006", "5003"]
    rest = json.loads(
        cli(*args, "--all-tags", "vip,b", "--sort", "-name", "--cursor", both["next_cursor"]).stdout
    )
    assert [c["psid"] for c in rest["items"]] == ["5000"] and rest["next_cursor"] is None


def test_an_empty_list_says_so(cli: Any) -> None:
    _, empty = cli.page
    done = cli("contacts", "list", "--page", str(empty))
    assert (done.returncode, done.stdout) == (0, "No contacts.\n")
    done = cli("contacts", "list", "--page", str(cli.page[0]), "--search", "nobody")
    assert done.stdout == "No contacts.\n"


def test_export_streams_the_filter_as_importable_csv(cli: Any, tmp_path: Path) -> None:
    page, other = cli.page
    done = cli("contacts", "export", "--page", str(page), "--tag", "vip")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout, newline="")))
    assert [r["psid"] for r in rows] == ["5000", "5003", "5006", "5009"]
    assert rows[0]["tags"] == "b;vip"
    target = tmp_path / "everyone.csv"
    done = cli("contacts", "export", "--page", str(page), "--output", str(target))
    assert done.returncode == 0 and f"Exported to {target}" in done.stderr
    everyone = list(csv.DictReader(io.StringIO(target.read_text(), newline="")))
    assert len(everyone) == PEOPLE
    assert everyone[1]["first_name"] == "'=Eve"  # kept text in a spreadsheet
    imported = cli("contacts", "import", "--page", str(other), str(target))
    assert imported.returncode == 0, imported.stderr
    copied = json.loads(cli("contacts", "list", "--page", str(other), "--json").stdout)
    assert copied["total"] == PEOPLE


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("list", "--window", "soon"), "--window:"),
        (("list", "--timezone", "Mars/Base"), "--timezone: 'Mars/Base' is not a time zone"),
        (("list", "--inbound-from", "2026-02-01", "--inbound-to", "2026-01-01"), "--inbound-to"),
        (("list", "--inbound-from", "tuesday"), "--inbound-from: is not a date"),
        (("list", "--sort", "age"), "sort: 'age' is not a sort"),
        (("list", "--cursor", "nope"), "cursor: it is not one this API returned"),
        (("export", "--output", "/no/such/folder/x.csv"), "--output: the folder"),
    ],
)
def test_bad_options_are_one_line_with_exit_1(cli: Any, args: tuple[str, ...], words: str) -> None:
    command, *rest = args
    done = cli("contacts", command, "--page", str(cli.page[0]), *rest)
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    assert done.stdout == ""


def test_a_missing_page_is_an_error_not_an_empty_file(cli: Any) -> None:
    done = cli("contacts", "export", "--page", "999")
    assert done.returncode == 1 and "Page 999 does not exist" in done.stderr
    assert done.stdout == ""
