"""`pagecast campaigns results | winner` (issue 20), run as a real process on a fresh data
directory (test_cli's fixtures): the results by variant, the winner picked by hand, and
refusals in one line."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

import test_cli
from pagecast.db import Database
from pagecast.models import (
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    DeliveryStatus,
    Page,
    utcnow,
)
from test_cli import run

migrated_dir = test_cli.migrated_dir
data_dir = test_cli.data_dir

TWO = [
    {"key": "A", "content": {"text": "Ten percent off"}, "weight": 1},
    {"key": "B", "content": {"text": "Free shipping"}, "weight": 1},
]


async def _experiment(data_dir: Path) -> int:
    """A started A/B campaign in the data dir's database: two people read A, one got B,
    one waits for the winner."""
    db = Database(f"sqlite+aiosqlite:///{(data_dir / 'pagecast.db').resolve()}")
    try:
        async with db.transaction() as session:
            page = Page(fb_page_id="1001", name="Acme", access_token_encrypted="x", send_rate=10)
            session.add(page)
            await session.flush()
            contacts = [Contact(page_id=page.id, psid=str(1000 + i)) for i in range(4)]
            session.add_all(contacts)
            campaign = Campaign(
                name="AB",
                page_id=page.id,
                content=TWO[0]["content"],
                audience={"type": "all"},
                variants=TWO,
                experiment={"test_percent": 50, "decide_after_seconds": 3600},
                variant_seed=7,
                experiment_state="testing",
                status=CampaignStatus.SENDING,
                started_at=utcnow(),
                n_total=4,
                n_read=2,
                n_sent=1,
                n_pending=1,
            )
            session.add(campaign)
            await session.flush()
            now = utcnow()
            for contact, variant, status in zip(
                contacts, ["A", "A", "B", "*"], ["read", "read", "sent", "pending"], strict=True
            ):
                session.add(
                    Delivery(
                        campaign_id=campaign.id,
                        contact_id=contact.id,
                        variant=variant,
                        status=DeliveryStatus(status),
                        sent_at=now if status != "pending" else None,
                        read_at=now if status == "read" else None,
                    )
                )
            return campaign.id
    finally:
        await db.close()


async def _variants(data_dir: Path, campaign_id: int) -> list[str | None]:
    db = Database(f"sqlite+aiosqlite:///{(data_dir / 'pagecast.db').resolve()}")
    try:
        async with db.transaction() as session:
            return list(
                await session.scalars(
                    select(Delivery.variant)
                    .where(Delivery.campaign_id == campaign_id)
                    .order_by(Delivery.id)
                )
            )
    finally:
        await db.close()


def test_results_and_winner_from_the_command_line(data_dir: Path) -> None:
    campaign_id = asyncio.run(_experiment(data_dir))
    shown = run(data_dir, "campaigns", "results", str(campaign_id))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "Experiment: testing, winner none yet."
    a = next(line for line in lines if line.startswith("A\t")).split("\t")
    assert a[1:6] == ["2", "2", "2", "0", "0"] and a[6].startswith("100.0 %")
    b = next(line for line in lines if line.startswith("B\t")).split("\t")
    assert b[1:4] == ["1", "0", "0"] and b[6].startswith("0.0 %")
    assert any(line.startswith("holdout\t0 people") for line in lines)
    unknown = run(data_dir, "campaigns", "winner", str(campaign_id), "C")
    assert unknown.returncode == 1 and "not a variant" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    picked = run(data_dir, "campaigns", "winner", str(campaign_id), "B")
    assert picked.returncode == 0, picked.stderr
    assert f"Campaign {campaign_id}: B won" in picked.stdout
    assert asyncio.run(_variants(data_dir, campaign_id)) == ["A", "A", "B", "B"]
    again = run(data_dir, "campaigns", "winner", str(campaign_id), "A")
    assert again.returncode == 1 and "already decided" in again.stderr
    after = run(data_dir, "campaigns", "results", str(campaign_id))
    assert "winner B" in after.stdout and "B picked by hand." in after.stdout


def test_results_of_a_campaign_without_variants_says_so(data_dir: Path) -> None:
    missing = run(data_dir, "campaigns", "results", "999")
    assert missing.returncode == 1 and "Campaign 999 does not exist" in missing.stderr
