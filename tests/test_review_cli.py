"""`pagecast contacts tester|testers` and `pagecast campaigns test`, run as real processes on a
fresh data directory, sending through the Graph simulator (issue 19, review and test)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from factories import ADMIN_ACTOR, SIM_TOKEN
from pagecast.db import Database
from pagecast.embedded_redis import EmbeddedRedis
from pagecast.models import utcnow
from pagecast.ratelimit import PageLimiter
from pagecast.schemas import CampaignCreate
from pagecast.services import campaigns

PAGECAST = str(Path(sys.executable).parent / "pagecast")
PAGE = "1001"


@pytest.fixture
def cli(tmp_path: Path, simulator: Any) -> Any:
    data = tmp_path / "data"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAGECAST_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env |= {
        "PAGECAST_DATA_DIR": str(data),
        "PAGECAST_SECRET_KEY": "cli-test-key",
        "PAGECAST_GRAPH_API_URL": simulator.url,
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PAGECAST, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    run.data = data  # type: ignore[attr-defined]
    assert run("db", "upgrade").returncode == 0
    return run


def a_draft(data: Path) -> int:
    async def create() -> int:
        db = Database(f"sqlite+aiosqlite:///{data / 'pagecast.db'}")
        try:
            async with db.transaction() as session:
                body = CampaignCreate(
                    name="Menu", page_id=1, content={"text": "Hi {{first_name|there}}"}
                )
                return (await campaigns.create(session, ADMIN_ACTOR, body)).id
        finally:
            await db.close()

    return asyncio.run(create())


def _page_with_two_contacts(cli: Any, url: str, tmp_path: Path) -> None:
    """Page 1 (Acme, in the simulator) with contacts 1 (Ana, PSID 11) and 2 (Ben, PSID 12)."""
    httpx.post(f"{url}/__sim/reset").raise_for_status()
    httpx.post(
        f"{url}/__sim/pages", json={"page_id": PAGE, "name": "Acme", "access_token": SIM_TOKEN}
    ).raise_for_status()
    httpx.post(
        f"{url}/__sim/users",
        json=[
            {"page_id": PAGE, "psid": p, "first_name": n, "last_user_action": "now"}
            for p, n in (("11", "Ana"), ("12", "Ben"))
        ],
    ).raise_for_status()
    assert cli("pages", "add", "--token", SIM_TOKEN).returncode == 0
    recent = (utcnow() - timedelta(hours=1)).isoformat()
    people = tmp_path / "people.csv"
    people.write_text(f"psid,first_name,last_inbound_at\n11,Ana,{recent}\n12,Ben,{recent}\n")
    assert cli("contacts", "import", str(people), "--page", "1").returncode == 0


def test_a_tester_is_marked_listed_and_sent_a_test_line_by_line(
    cli: Any, simulator: Any, tmp_path: Path
) -> None:
    url = simulator.url
    _page_with_two_contacts(cli, url, tmp_path)

    marked = cli("contacts", "tester", "1", "--on")
    assert marked.returncode == 0, marked.stderr
    assert marked.stdout.strip() == "Contact 1 (PSID 11) is a tester of Page 1."
    listed = cli("contacts", "testers", "--page", "1")
    assert listed.stdout.strip().splitlines() == ["ID\tPSID\tNAME", "1\t11\tAna"]

    campaign_id = a_draft(cli.data)
    sent = cli("campaigns", "test", str(campaign_id), "--contact", "1", "--contact", "2")
    assert sent.returncode == 1, sent.stderr  # one of the two was not sent
    lines = sent.stdout.strip().splitlines()
    outbox = httpx.get(f"{url}/__sim/outbox", params={"page_id": PAGE}).json()["messages"]
    assert [(m["psid"], m["message"]) for m in outbox] == [("11", {"text": "Hi Ana"})]
    assert lines == [
        f"contact 1: sent ({outbox[0]['mid']})",
        "contact 2: refused: Contact 2 is not a tester of Acme. Mark them as one first "
        '(PATCH /api/contacts/2 {"is_tester": true}, or on the Contacts page).',
    ]

    unmarked = cli("contacts", "tester", "1", "--off")
    assert unmarked.stdout.strip() == "Contact 1 (PSID 11) is not a tester of Page 1."
    assert cli("contacts", "testers", "--page", "1").stdout.startswith("No testers on Page 1.")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("campaigns", "test", "999", "--contact", "1"), "Campaign 999 does not exist"),
        (("campaigns", "test", "1", "--contact", "0"), "--contact: 0 is not an id"),
        (("campaigns", "test", "1"), "--contact"),
        (("contacts", "tester", "999", "--on"), "Contact 999 does not exist"),
    ],
)
def test_bad_test_commands_say_what_was_wrong_in_one_line(
    cli: Any, args: tuple[str, ...], said: str
) -> None:
    result = cli(*args)
    assert result.returncode != 0 and said in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


async def _throttle(redis_url: str, page_id: int, seconds: float) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    try:
        await PageLimiter(redis).throttle(page_id, seconds, "Graph error 613")
    finally:
        await redis.aclose()


def test_a_cli_test_joins_the_embedded_redis_and_its_pages_limiter(
    cli: Any, simulator: Any, tmp_path: Path
) -> None:
    """Without REDIS_URL, `campaigns test` uses the data dir's embedded Redis: the one a
    running `pagecast serve` owns, so a throttle its workers set holds for the test too."""
    url = simulator.url
    _page_with_two_contacts(cli, url, tmp_path)
    assert cli("contacts", "tester", "1", "--on").returncode == 0
    campaign_id = a_draft(cli.data)
    serving = EmbeddedRedis(cli.data)  # what `pagecast serve` starts on this data dir
    redis_url = asyncio.run(serving.start())
    try:
        asyncio.run(_throttle(redis_url, 1, 60))
        sent = cli("campaigns", "test", str(campaign_id), "--contact", "1")
    finally:
        asyncio.run(serving.stop())
    assert sent.returncode == 1, sent.stderr
    said = "contact 1: failed: The Page's send rate is taken for the next "
    assert sent.stdout.startswith(said), sent.stdout  # the Page throttled in serve's Redis
    assert httpx.get(f"{url}/__sim/outbox", params={"page_id": PAGE}).json()["messages"] == []
