"""`pagecast campaigns deliveries ID`, run as a real process on a fresh data directory:
the table and its header, filters, pages, --json, --csv, "No deliveries." and bad input."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from factories import ADMIN_ACTOR
from pagecast.db import Database
from pagecast.models import Contact, Delivery, DeliveryStatus, utcnow
from pagecast.schemas import CampaignCreate, PageCreate
from pagecast.security import Vault
from pagecast.services import campaigns, pages
from pagecast.web import render

PAGECAST = str(Path(sys.executable).parent / "pagecast")
KEY = "cli-test-key"
STATUSES = [DeliveryStatus.READ, DeliveryStatus.FAILED, DeliveryStatus.SENT, DeliveryStatus.FAILED]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One data dir for the module (the commands only read it), seeded once."""
    data = tmp_path_factory.mktemp("deliveries") / "data"
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
    run.ids = seed(data, STATUSES)  # type: ignore[attr-defined]
    return run


def seed(data: Path, statuses: list[DeliveryStatus]) -> tuple[int, int]:
    """A campaign with one delivery per status given (and an empty one); their ids."""

    async def create() -> tuple[int, int]:
        db = Database(f"sqlite+aiosqlite:///{data / 'pagecast.db'}")

        async def owner(_token: str, _secret: str | None) -> pages.Owner:
            return pages.Owner(id="1001", name="Acme")

        try:
            async with db.transaction() as session:
                page = await pages.connect(
                    session,
                    ADMIN_ACTOR,
                    Vault(KEY.encode()),
                    PageCreate(access_token="token-1001"),
                    verify=owner,
                    default_send_rate=40,
                )
                made = [
                    await campaigns.create(
                        session,
                        ADMIN_ACTOR,
                        CampaignCreate(name=name, page_id=page.id, content={"text": "Hi"}),
                    )
                    for name in ("Listed", "Empty")
                ]
                for i, status in enumerate(statuses):
                    person = Contact(
                        page_id=page.id,
                        psid=f"7000{i}",
                        first_name="Bo" if i else "=Eve",
                        last_name=f"N{i}",
                        created_at=utcnow(),
                        updated_at=utcnow(),
                    )
                    session.add(person)
                    await session.flush()
                    failed = status is DeliveryStatus.FAILED
                    session.add(
                        Delivery(
                            campaign_id=made[0].id,
                            contact_id=person.id,
                            status=status,
                            variant="AB"[i % 2],
                            attempts=1,
                            reason="retries_exhausted" if failed else None,
                            error_code=613 if failed else None,
                            error_subcode=2018338 if failed else None,
                        )
                    )
            return made[0].id, made[1].id
        finally:
            await db.close()

    return asyncio.run(create())


def test_the_table_has_a_header_and_a_row_per_delivery(cli: Any) -> None:
    listed_id, empty_id = cli.ids
    shown = cli("campaigns", "deliveries", str(listed_id))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == list(
        ("ID", "PSID", "NAME", "STATUS", "REASON", "VARIANT", "ERROR", "ATTEMPTS", "SENT")
    )
    assert len(lines) == 5 and lines[2].split()[:4] == ["2", "70001", "Bo", "N1"]
    assert "retries_exhausted" in lines[2] and "613/2018338" in lines[2]
    empty = cli("campaigns", "deliveries", str(empty_id))
    assert empty.returncode == 0 and empty.stdout == "No deliveries.\n"


def test_filters_and_pages_follow_the_api(cli: Any) -> None:
    listed_id, _ = cli.ids
    failed = cli("campaigns", "deliveries", str(listed_id), "--status", "failed")
    assert [line.split()[0] for line in failed.stdout.splitlines()[1:]] == ["2", "4"]
    both = cli("campaigns", "deliveries", str(listed_id), "--status", "read,sent", "--variant", "A")
    assert [line.split()[0] for line in both.stdout.splitlines()[1:]] == ["1", "3"]
    coded = cli("campaigns", "deliveries", str(listed_id), "--error-code", "613", "--limit", "1")
    assert [line.split()[0] for line in coded.stdout.splitlines()[1:]] == ["2"]
    assert "More: add --cursor " in coded.stderr
    cursor = coded.stderr.split("--cursor ")[1].strip()
    rest = cli("campaigns", "deliveries", str(listed_id), "--error-code", "613", "--cursor", cursor)
    assert [line.split()[0] for line in rest.stdout.splitlines()[1:]] == ["4"]
    assert rest.stderr == ""


def test_json_is_the_apis_body_and_csv_the_apis_file(cli: Any) -> None:
    listed_id, _ = cli.ids
    answered = cli("campaigns", "deliveries", str(listed_id), "--json", "--limit", "3")
    body = json.loads(answered.stdout)
    assert [i["id"] for i in body["items"]] == [1, 2, 3] and body["next_cursor"]
    assert list(body["items"][0]) == list(render.DELIVERY_FIELDS)
    exported = cli("campaigns", "deliveries", str(listed_id), "--csv", "--status", "failed,read")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout, newline="")))
    assert [r["id"] for r in rows] == ["1", "2", "4"]
    assert rows[0]["first_name"] == "'=Eve"  # a formula stays text (csv_export)
    assert rows[1]["reason_words"] == "temporary errors until the retries ran out"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--status", "lost"), "status: 'lost' is not a delivery status"),
        (("--cursor", "nope"), "cursor is not one this API returned"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(cli: Any, args: tuple[str, ...], said: str) -> None:
    listed_id, _ = cli.ids
    failed = cli("campaigns", "deliveries", str(listed_id), *args)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith("Error: ") and said in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1


def test_an_unknown_campaign_is_named(cli: Any) -> None:
    for extra in ((), ("--csv",)):
        missing = cli("campaigns", "deliveries", "77", *extra)
        assert missing.returncode == 1 and "Campaign 77 does not exist" in missing.stderr
