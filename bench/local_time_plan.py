"""P9: planning a local-time send ("10:00 in each person's zone") for 1,000,000 contacts across
400 time zones on PostgreSQL, under 20 s.

The audience snapshot is the plan: each delivery gets its due time (services/due_plan.py) in
the snapshot's INSERT … SELECT. Contacts are spread over 400 zones (IANA names, a share with
only a profile offset, a share with none: the Page's zone). Each run times, on a fresh
database:

- `plain`: the snapshot of an ordinary campaign (no due times: the path every send had),
- `local`: the snapshot of the same audience with `local_send_at` and Page quiet hours,
  zones read once and each person's due time joined in SQL,

and checks a sample of due times against the rule (services/due_times.py) in Python.

    uv run python bench/local_time_plan.py [--quick] [--contacts 1000000] [--zones 400]
        [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from _harness import fresh_postgres, machine, median, print_table, write_results
from sqlalchemy import select, text, update

from pagecast import timezones
from pagecast.db import Database, upgrade
from pagecast.models import Campaign, CampaignStatus, Contact, Delivery, Page
from pagecast.services import due_times, snapshot_insert

P9_LIMIT_S = 20.0


def _zones(count: int) -> list[str]:
    """`count` distinct zone names, spread over the tz database."""
    names = [n for n in timezones.names() if "/" in n and not n.startswith("Etc/")]
    step = max(1, len(names) // count)
    return names[::step][:count]


async def _seed(db: Database, contacts: int, zones: list[str]) -> tuple[int, int]:
    """A Page with `contacts` contacts: 80 % with an IANA zone (round robin over `zones`),
    10 % with a profile offset only, 10 % with neither. Returns (page id, campaign id)."""
    async with db.transaction() as session:
        page = Page(
            fb_page_id="9900000000000001",
            name="P9",
            access_token_encrypted="x",
            send_rate=300,
            timezone="Europe/Berlin",
            quiet_hours={"start": "21:00", "end": "08:00"},
        )
        session.add(page)
        await session.flush()
        page_id = page.id
    zone_list = list(zones)
    step = 200_000
    for lo in range(1, contacts + 1, step):
        hi = min(lo + step, contacts + 1) - 1
        async with db.transaction() as session:
            await session.execute(
                text(
                    "INSERT INTO contacts (page_id, psid, first_name, last_inbound_at, timezone, "
                    "utc_offset_minutes, created_at, updated_at) "
                    "SELECT :page, g::text, 'F', now() - interval '1 hour', "
                    "CASE WHEN g % 10 < 8 THEN (CAST(:zones AS text[]))[1 + g % :n] END, "
                    "CASE WHEN g % 10 = 8 THEN ((g / 10) % 27 - 12) * 60 END, now(), now() "
                    "FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g"
                ),
                {"page": page_id, "zones": zone_list, "n": len(zones), "lo": lo, "hi": hi},
            )
    async with db.transaction() as session:
        await session.execute(text("ANALYZE contacts"))
    return page_id, 0


async def _campaign(db: Database, page_id: int, local: datetime | None) -> Campaign:
    async with db.transaction() as session:
        campaign = Campaign(
            name="P9",
            page_id=page_id,
            content={"text": "hi"},
            audience={"type": "all"},
            local_send_at=local,
            status=CampaignStatus.SENDING,
        )
        session.add(campaign)
        await session.flush()
        return campaign


async def _snapshot(db: Database, campaign: Campaign, now: datetime) -> float:
    started = time.perf_counter()
    async with db.transaction() as session:
        fresh = await session.get(Campaign, campaign.id)
        assert fresh is not None
        await snapshot_insert.snapshot(session, fresh, now)
    return time.perf_counter() - started


async def _check_sample(db: Database, campaign_id: int, now: datetime, local: datetime) -> int:
    """Due times of 2,000 deliveries recomputed by the rule in Python; returns mismatches."""
    async with db.transaction() as session:
        page = await session.scalar(select(Page))
        assert page is not None
        rules = due_times.Rules(
            now=now,
            local_send_at=local,
            quiet=due_times.parse_hours(page.quiet_hours, "quiet_hours"),
        )
        rows = await session.execute(
            select(Contact.timezone, Contact.utc_offset_minutes, Delivery.due_at)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Delivery.campaign_id == campaign_id)
            .limit(2000)
        )
        wrong = 0
        for name, offset, due in rows:
            zone = due_times.zone_of(name, offset, page.timezone)
            if due_times.due_at(rules, zone) != due:
                wrong += 1
        return wrong


async def one_run(url: str, args: argparse.Namespace, zones: list[str]) -> dict[str, Any]:
    db = Database(url)
    try:
        await upgrade(db, "head")
        page_id, _ = await _seed(db, args.contacts, zones)
        now = datetime.now(UTC).replace(microsecond=0)
        local = (now + timedelta(days=1)).replace(tzinfo=None, hour=10, minute=0, second=0)
        plain = await _campaign(db, page_id, None)
        # An ordinary campaign on a Page with quiet hours also reads zones: time it without.
        async with db.transaction() as session:
            await session.execute(update(Page).values(quiet_hours=None))
        plain_s = await _snapshot(db, plain, now)
        async with db.transaction() as session:
            await session.execute(
                update(Page).values(quiet_hours={"start": "21:00", "end": "08:00"})
            )
            await session.execute(text("DELETE FROM deliveries"))
        campaign = await _campaign(db, page_id, local)
        local_s = await _snapshot(db, campaign, now)
        async with db.transaction() as session:
            distinct = await session.scalar(
                text("SELECT count(DISTINCT due_at) FROM deliveries WHERE campaign_id = :c"),
                {"c": campaign.id},
            )
        wrong = await _check_sample(db, campaign.id, now, local)
        return {"plain_s": plain_s, "local_s": local_s, "due_times": distinct, "wrong": wrong}
    finally:
        await db.close()


async def run(args: argparse.Namespace, zones: list[str]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for _ in range(args.runs):
        url = await fresh_postgres("pagecast_bench_local_time")
        results.append(await one_run(url, args, zones))
    return results


def main(args: argparse.Namespace) -> None:
    zones = _zones(args.zones)
    facts = machine(pg_url="yes")
    results = asyncio.run(run(args, zones))
    local_s = median([r["local_s"] for r in results])
    rows = [
        [
            "plain snapshot (no due times)",
            args.contacts,
            "-",
            median([r["plain_s"] for r in results]),
            "",
        ],
        [
            f"local 10:00 + quiet hours ({len(zones)} zones)",
            args.contacts,
            results[0]["due_times"],
            local_s,
            "pass" if local_s < P9_LIMIT_S else "FAIL",
        ],
    ]
    print_table(
        f"P9: local-time planning on PostgreSQL (median of {args.runs} runs; limit "
        f"{P9_LIMIT_S:g} s)",
        facts,
        ["snapshot", "contacts", "distinct due times", "seconds", "P9"],
        rows,
    )
    wrong = sum(r["wrong"] for r in results)
    print(f"sampled due times that differ from the rule: {wrong}")
    write_results(
        "local_time_plan",
        {
            "machine": facts,
            "quick": args.quick,
            "args": vars(args),
            "zones": len(zones),
            "runs": results,
        },
    )
    if wrong:
        raise SystemExit("due times differ from services/due_times.py")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 contacts, one run")
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--zones", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
    parsed = parser.parse_args()
    if parsed.quick:
        parsed.contacts, parsed.runs = 20_000, 1
    main(parsed)
