"""The per-Page frequency cap (services/frequency_cap.py): off unless set; at most N campaign
messages per person in D days across the Page's campaigns. People over it are skipped at
the snapshot with reason `frequency_cap` (sliced snapshots too), and the audience preview
counts them. Set by the API, the CLI and the dashboard (tests/dashboard/test_frequency_cap_browser.py).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from factories import ADMIN_ACTOR, connected_page, postgresql_only
from pagecast.db import Database
from pagecast.models import Contact, Delivery, DeliveryStatus, Role, utcnow
from pagecast.schemas import CampaignCreate
from pagecast.security import Vault
from pagecast.services import campaigns, snapshots
from test_cli import data_dir, migrated_dir, run  # noqa: F401  (fixtures)
from test_sending import add_people, deliveries_by_psid, new_campaign, setup_page


async def past_sends(
    db: Database, client: httpx.AsyncClient, page_id: int, sends: dict[str, list[float]]
) -> None:
    """Earlier campaigns of the Page reached these people: psid -> days ago of each send (one
    campaign per send: a campaign has one delivery per person)."""
    async with db.transaction() as session:
        ids = dict((await session.execute(select(Contact.psid, Contact.id))).all())
    most = max(len(days) for days in sends.values())
    earlier = [await new_campaign(client, page_id, name=f"Earlier {i}") for i in range(most)]
    now = utcnow()
    rows = [
        {
            "campaign_id": earlier[i],
            "contact_id": ids[psid],
            "status": DeliveryStatus.READ.value,
            "attempts": 1,
            "sent_at": now - timedelta(days=ago),
            "updated_at": now,
        }
        for psid, days in sends.items()
        for i, ago in enumerate(days)
    ]
    async with db.transaction() as session:
        await session.execute(insert(Delivery), rows)


async def set_cap(client: httpx.AsyncClient, page_id: int, cap: Any) -> httpx.Response:
    return await client.patch(f"/api/pages/{page_id}", json={"frequency_cap": cap})


@pytest.fixture
async def admin(api: Any) -> httpx.AsyncClient:
    return await api(Role.ADMIN)  # type: ignore[no-any-return]


async def test_the_cap_is_off_by_default_and_set_and_removed_by_patch(
    admin: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    page_id = await setup_page(admin, sim)
    assert (await admin.get(f"/api/pages/{page_id}")).json()["frequency_cap"] is None
    response = await set_cap(admin, page_id, {"messages": 2, "days": 7})
    assert response.status_code == 200, response.text
    assert response.json()["frequency_cap"] == {"messages": 2, "days": 7}
    renamed = await admin.patch(f"/api/pages/{page_id}", json={"name": "Renamed"})
    assert renamed.json()["frequency_cap"] == {"messages": 2, "days": 7}  # left out: kept
    assert (await set_cap(admin, page_id, None)).json()["frequency_cap"] is None


@pytest.mark.parametrize(
    ("cap", "field", "said"),
    [
        ({"messages": 0, "days": 7}, "frequency_cap.messages", "greater than or equal to 1"),
        ({"messages": 2, "days": 0}, "frequency_cap.days", "greater than or equal to 1"),
        ({"messages": 2, "days": 400}, "frequency_cap.days", "less than or equal to 365"),
        ({"messages": 2}, "frequency_cap.days", "required"),
        ({"messages": "many", "days": 7}, "frequency_cap.messages", "integer"),
        ({"messages": 2.5, "days": 7}, "frequency_cap.messages", "integer"),
        ({"messages": 2, "days": 7, "weeks": 1}, "frequency_cap.weeks", ""),
        (3, "frequency_cap", ""),
    ],
)
async def test_a_bad_cap_is_refused_naming_the_field(
    admin: httpx.AsyncClient, sim: httpx.AsyncClient, cap: Any, field: str, said: str
) -> None:
    page_id = await setup_page(admin, sim)
    response = await set_cap(admin, page_id, cap)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field, error
    assert said in error["message"], error
    assert (await admin.get(f"/api/pages/{page_id}")).json()["frequency_cap"] is None


async def test_people_over_the_cap_are_counted_by_the_preview_and_skipped_at_the_start(
    admin: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    page_id = await setup_page(admin, sim)
    a, b, c, d = await add_people(sim, admin, page_id, 4)
    # a: two sends this week (capped); b: one (not); c: two, one of them 10 days ago (not);
    # d: never messaged.
    await past_sends(db, admin, page_id, {a: [1, 3], b: [2], c: [1, 10]})
    campaign_id = await new_campaign(admin, page_id)
    audience = f"/api/campaigns/{campaign_id}/audience"
    off = (await admin.get(audience)).json()
    assert (off["eligible"], off["excluded"]["frequency_cap"]) == (4, 0)  # off by default
    assert (await set_cap(admin, page_id, {"messages": 2, "days": 7})).status_code == 200
    preview = (await admin.get(audience)).json()
    assert preview["total"] == 4 and preview["eligible"] == 3
    assert preview["excluded"]["frequency_cap"] == 1
    review = (await admin.get(f"/api/campaigns/{campaign_id}/review")).json()
    assert "1 over the Page's frequency cap" in review["excluded_words"]
    started = await admin.post(f"/api/campaigns/{campaign_id}/start")
    assert started.status_code == 202, started.text
    assert (started.json()["counts"]["pending"], started.json()["counts"]["skipped"]) == (3, 1)
    rows = await deliveries_by_psid(db, campaign_id)
    assert (rows[a].status, rows[a].reason) == (DeliveryStatus.SKIPPED, "frequency_cap")
    assert {rows[p].status for p in (b, c, d)} == {DeliveryStatus.PENDING}


async def test_the_other_reasons_come_first_and_a_one_day_cap_counts_one_day(
    admin: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    page_id = await setup_page(admin, sim)
    a, b = await add_people(sim, admin, page_id, 2)
    c, d = await add_people(sim, admin, page_id, 2, start=50, hours_ago=30)  # window closed
    await past_sends(db, admin, page_id, {a: [0.5], b: [1.5], c: [0.5]})
    assert (await set_cap(admin, page_id, {"messages": 1, "days": 1})).status_code == 200
    campaign_id = await new_campaign(admin, page_id)
    preview = (await admin.get(f"/api/campaigns/{campaign_id}/audience")).json()
    assert preview["excluded"]["frequency_cap"] == 1 and preview["excluded"]["outside_window"] == 2
    assert (await admin.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    rows = await deliveries_by_psid(db, campaign_id)
    assert {p: rows[p].reason for p in (a, b, c, d)} == {
        a: "frequency_cap",
        b: None,
        c: "outside_window",
        d: "outside_window",
    }


async def test_everyone_over_the_cap_means_nobody_eligible(
    admin: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    page_id = await setup_page(admin, sim)
    (a,) = await add_people(sim, admin, page_id, 1)
    await past_sends(db, admin, page_id, {a: [1]})
    assert (await set_cap(admin, page_id, {"messages": 1, "days": 7})).status_code == 200
    campaign_id = await new_campaign(admin, page_id)
    refused = await admin.post(f"/api/campaigns/{campaign_id}/start")
    assert refused.status_code == 409, refused.text
    assert "1 over the Page's frequency cap" in refused.json()["error"]["message"]


@postgresql_only
async def test_a_sliced_snapshot_skips_people_over_the_cap_in_every_slice(
    admin: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database, monkeypatch: Any
) -> None:
    monkeypatch.setattr(snapshots, "SNAPSHOT_FIRST", 5)
    monkeypatch.setattr(snapshots, "SNAPSHOT_SLICE", 4)
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, admin, page_id, 14)
    capped = psids[::3]  # in the first slice and in the later ones
    await past_sends(db, admin, page_id, {psid: [1.0] for psid in capped})
    assert (await set_cap(admin, page_id, {"messages": 1, "days": 7})).status_code == 200
    campaign_id = await new_campaign(admin, page_id)
    started = await admin.post(f"/api/campaigns/{campaign_id}/start")
    assert started.status_code == 202, started.text
    assert started.json()["counts"]["skipped"] == 2  # the first slice's
    async with db.transaction() as session:
        upto = int(await session.scalar(select(Contact.id).order_by(Contact.id.desc()).limit(1)))
        after = await snapshots.resume_point(session, campaign_id)
    while after < upto:
        async with db.transaction() as session:
            after = await snapshots.insert_slice(session, campaign_id, after=after, upto=upto)
    rows = await deliveries_by_psid(db, campaign_id)
    assert {p for p, row in rows.items() if row.reason == "frequency_cap"} == set(capped)
    counts = (await admin.get(f"/api/campaigns/{campaign_id}")).json()["counts"]
    assert (counts["skipped"], counts["pending"]) == (len(capped), 14 - len(capped))


def test_the_cli_sets_shows_and_removes_the_cap(data_dir: Path) -> None:  # noqa: F811
    url = f"sqlite+aiosqlite:///{data_dir / 'pagecast.db'}"

    async def a_page_with_a_clicked_campaign() -> None:
        db = Database(url)
        page = await connected_page(db, Vault(b"cli-test-key"))
        async with db.transaction() as session:
            campaign = await campaigns.create(
                session,
                ADMIN_ACTOR,
                CampaignCreate(name="Sale", page_id=page.id, content={"text": "Hi"}),
            )
            now = utcnow()
            await session.execute(
                insert(Delivery),
                [
                    {
                        "campaign_id": campaign.id,
                        "contact_id": contact,
                        "status": DeliveryStatus.READ.value,
                        "attempts": 1,
                        "sent_at": now,
                        "clicked_at": now if contact < 3 else None,
                        "replied_at": now if contact == 1 else None,
                        "updated_at": now,
                    }
                    for contact in (1, 2, 3)
                ],
            )
        await db.close()

    asyncio.run(a_page_with_a_clicked_campaign())
    set_ = run(data_dir, "pages", "frequency-cap", "1", "2", "7")
    assert set_.returncode == 0, set_.stderr
    assert "frequency cap: at most 2 messages per person in 7 days" in set_.stdout
    bad = run(data_dir, "pages", "frequency-cap", "1", "0", "7")
    assert bad.returncode == 1 and bad.stderr.startswith("Error: frequency_cap.messages: ")
    half = run(data_dir, "pages", "frequency-cap", "1", "2")
    assert half.returncode == 1 and "both MESSAGES and DAYS" in half.stderr
    both = run(data_dir, "pages", "frequency-cap", "1", "2", "7", "--off")
    assert both.returncode == 1 and "--off" in both.stderr
    off = run(data_dir, "pages", "frequency-cap", "1", "--off")
    assert off.returncode == 0 and "frequency cap: off" in off.stdout
    shown = run(data_dir, "campaigns", "show", "1")
    assert shown.returncode == 0, shown.stderr
    assert "Campaign 1 (Sale) is draft." in shown.stdout and "total 0  pending 0" in shown.stdout
    assert "clicked 2  replied 1" in shown.stdout
