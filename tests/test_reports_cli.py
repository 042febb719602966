"""`pagecast campaigns report ID` and `pagecast pages overview ID` (issue 21), run as real
processes on a fresh data directory: text, --json (the API's body) and bad input."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from factories import ADMIN_ACTOR
from pagecast.db import Database
from pagecast.models import Campaign, CampaignStatus, Contact, Delivery, DeliveryStatus, utcnow
from pagecast.schemas import CampaignCreate, PageCreate
from pagecast.security import Vault
from pagecast.services import campaigns, counters, pages

PAGECAST = str(Path(sys.executable).parent / "pagecast")
KEY = "cli-test-key"
# (status, error kind, code): one curable failure, one blocked person, two sent.
ROWS = [
    (DeliveryStatus.FAILED, "retry", 2),
    (DeliveryStatus.FAILED, "recipient_unreachable", 551),
    (DeliveryStatus.SENT, None, None),
    (DeliveryStatus.READ, None, None),
]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("reports") / "data"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAGECAST_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    # No Redis answers there: the overview says its throttle is unknown, the rest shows.
    env |= {
        "PAGECAST_DATA_DIR": str(data),
        "PAGECAST_SECRET_KEY": KEY,
        "PAGECAST_REDIS_URL": "redis://127.0.0.1:1/13",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PAGECAST, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    assert run("db", "upgrade").returncode == 0
    run.ids = seed(data)  # type: ignore[attr-defined]
    return run


def seed(data: Path) -> tuple[int, int]:
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
                made = await campaigns.create(
                    session,
                    ADMIN_ACTOR,
                    CampaignCreate(name="Reported", page_id=page.id, content={"text": "Hi"}),
                )
                now = utcnow()
                for i, (status, kind, code) in enumerate(ROWS):
                    person = Contact(
                        page_id=page.id, psid=f"8000{i}", created_at=now, updated_at=now
                    )
                    session.add(person)
                    await session.flush()
                    sent = status in (DeliveryStatus.SENT, DeliveryStatus.READ)
                    session.add(
                        Delivery(
                            campaign_id=made.id,
                            contact_id=person.id,
                            status=status,
                            attempts=1,
                            reason="retries_exhausted" if kind == "retry" else kind,
                            error_kind=kind,
                            error_code=code,
                            sent_at=now if sent else None,
                        )
                    )
                await counters.shift(
                    session, made.id, {s: 1 for s, *_ in ROWS[1:]} | {DeliveryStatus.FAILED: 2}
                )
                await session.execute(
                    update(Campaign)
                    .where(Campaign.id == made.id)
                    .values(n_total=4, status=CampaignStatus.COMPLETED, started_at=now)
                )
            return made.id, page.id
        finally:
            await db.close()

    return asyncio.run(create())


def test_campaign_report_as_text_and_json(cli: Any) -> None:
    campaign_id, _ = cli.ids
    shown = cli("campaigns", "report", str(campaign_id))
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert text.startswith(f"Campaign {campaign_id}: Reported (completed)")
    assert "1          failed that a retry can cure" in text
    assert "delivered  50.0 % of sent" in text
    assert "This person cannot receive messages from the Page" in text
    body = json.loads(cli("campaigns", "report", str(campaign_id), "--json").stdout)
    assert body["counts"]["failed"] == 2 and body["retryable_failed"] == 1
    assert body["rates"]["read"] == 0.5


def test_page_overview_as_text_and_json(cli: Any) -> None:
    _, page_id = cli.ids
    shown = cli("pages", "overview", str(page_id))
    assert shown.returncode == 0, shown.stderr
    assert "Last 30 days: 2 sent, 2 failed, 0 opted out" in shown.stdout
    assert "unknown (Redis cannot be reached)" in shown.stdout
    assert shown.stdout.splitlines()[-1].split()[1:] == ["2", "2"]  # today
    body = json.loads(cli("pages", "overview", str(page_id), "--json").stdout)
    assert len(body["days"]) == 30 and body["throttle"] is None


def test_a_missing_campaign_or_page_is_one_line_and_exit_1(cli: Any) -> None:
    missing = cli("campaigns", "report", "4242")
    assert missing.returncode == 1
    assert (
        missing.stderr.strip().count("\n") == 0 and "Campaign 4242 does not exist" in missing.stderr
    )
    page = cli("pages", "overview", "4242")
    assert page.returncode == 1 and "4242" in page.stderr and page.stdout == ""
