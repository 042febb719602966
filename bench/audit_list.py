"""P12: `GET /api/audit` pages on 200,000 audit entries, on SQLite and PostgreSQL.

A bench database (SQLite file, and PostgreSQL database `pagecast_bench_audit`, dropped and
re-created) gets 200,000 entries spread over 180 days, in the mix a busy install writes:
45 % campaign actions, 20 % contact edits, 15 % logins, 3 % failed logins, the rest Page,
user, token, segment and import actions, by 40 people, `system` and `cli`. Each case is the
service's read of one page of 50 (`services.audit_list.page`, what the API, the dashboard and
the CLI call), warm, median of `--runs`; `plan` is what PostgreSQL chose (EXPLAIN). Each
backend runs twice: at migration 0029, the last before 0030 (the audit log's indexes before
issue 22: `at`, and (object_type, object_id)), and at the head (0030: the indexes ending in
`id`). The tables are seeded with the head's models, so the first run cannot be older.

    uv run python bench/audit_list.py [--quick] [--entries 200000] [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _harness import fresh_postgres, machine, median, print_table, write_results
from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects import postgresql

from pagecast.db import Database, downgrade, upgrade
from pagecast.models import AuditLog, Role, User
from pagecast.services import audit_list
from pagecast.services.audit_list import _query

START = datetime(2026, 6, 1, tzinfo=UTC)
DAYS = 180
ACTIONS: list[tuple[str, str, float]] = [  # (action, object type, share)
    ("campaign.updated", "campaign", 0.15),
    ("campaign.created", "campaign", 0.06),
    ("campaign.started", "campaign", 0.05),
    ("campaign.completed", "campaign", 0.05),
    ("campaign.test_sent", "campaign", 0.05),
    ("campaign.scheduled", "campaign", 0.03),
    ("campaign.paused", "campaign", 0.02),
    ("campaign.resumed", "campaign", 0.02),
    ("campaign.archived", "campaign", 0.02),
    ("contact.updated", "contact", 0.12),
    ("contact.opted_out", "contact", 0.03),
    ("contacts.tag", "page", 0.05),
    ("auth.login", "user", 0.12),
    ("auth.logout", "user", 0.03),
    ("auth.login_failed", "user", 0.03),
    ("page.updated", "page", 0.03),
    ("page.token_replaced", "page", 0.005),
    ("contacts.import_started", "page", 0.02),
    ("contacts.imported", "page", 0.02),
    ("segment.updated", "segment", 0.03),
    ("token.created", "user", 0.01),
    ("token.revoked", "user", 0.005),
    ("user.role_changed", "user", 0.003),
    ("user.password_reset", "user", 0.002),
    ("user.created", "user", 0.005),
    ("template.updated", "template", 0.03),
]
PEOPLE = [f"marketer{i}@example.com" for i in range(40)]


def _entries(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    weights = [share for _, _, share in ACTIONS]
    rows = []
    for i in range(n):
        action, kind, _ = rng.choices(ACTIONS, weights)[0]
        who = rng.random()
        actor_id: int | None = None
        if who < 0.05:
            actor = "system"
        elif who < 0.07:
            actor = "cli"
        else:
            person = min(int(rng.paretovariate(1.2)) - 1, len(PEOPLE) - 1)
            actor, actor_id = PEOPLE[person], person + 1
        rows.append(
            {
                "at": START + timedelta(seconds=i * DAYS * 86_400 / n),
                "actor_id": actor_id,
                "actor": actor,
                "action": action,
                "object_type": kind,
                "object_id": rng.randint(1, 3_000),
                "details": {"changes": {"name": {"from": "Autumn", "to": "Autumn sale"}}},
            }
        )
    return rows


def cases(n: int) -> list[tuple[str, audit_list.Filters, bool]]:
    """(label, filters, from the middle): each measured page."""
    day = START + timedelta(days=120)
    return [
        ("first page, no filter", audit_list.parse(), False),
        ("page in the middle, no filter", audit_list.parse(), True),
        ("action=campaign. (a prefix)", audit_list.parse(action="campaign."), False),
        ("action=user.role_changed", audit_list.parse(action="user.role_changed"), False),
        ("action=auth.login_failed", audit_list.parse(action="auth.login_failed"), False),
        ("actor=one person", audit_list.parse(actor="marketer20@example.com"), False),
        ("actor=cli", audit_list.parse(actor="cli"), False),
        ("actor=user id 21", audit_list.parse(actor="21"), False),
        ("actor nobody (no match)", audit_list.parse(actor="nobody@example.com"), False),
        ("object campaign 1234", audit_list.parse(object_type="campaign", object_id=1234), False),
        (
            "one day (since, until)",
            audit_list.parse(since=day.isoformat(), until=(day + timedelta(days=1)).isoformat()),
            False,
        ),
        (
            "actor + action prefix",
            audit_list.parse(actor="marketer20@example.com", action="user."),
            False,
        ),
    ]


async def _seed(db: Database, n: int) -> None:
    async with db.transaction() as session:
        await session.execute(
            insert(User), [{"email": email, "role": Role.MANAGER} for email in PEOPLE]
        )
    rows = _entries(n)
    for start in range(0, n, 5_000):
        async with db.transaction() as session:
            await session.execute(insert(AuditLog), rows[start : start + 5_000])
    if db.dialect == "postgresql":
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE audit_log"))
    else:
        async with db.transaction() as session:
            await session.execute(text("ANALYZE"))


async def _plan(db: Database, filters: audit_list.Filters, before: int | None) -> str:
    if db.dialect != "postgresql":
        statement = _query(filters, before=before, limit=51)
        compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
        async with db.reading() as session:
            rows = (await session.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))).all()
        return "; ".join(str(r[-1]) for r in rows)
    statement = _query(filters, before=before, limit=51)
    compiled = statement.compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    async with db.reading() as session:
        rows = (await session.execute(text(f"EXPLAIN {compiled}"))).all()
    scans = [
        r[0].strip().lstrip("-> ").split("  ")[0] for r in rows if "Scan" in r[0] or "Sort" in r[0]
    ]
    return "; ".join(scans)


async def _measure(db: Database, n: int, runs: int) -> list[list[Any]]:
    async with db.reading() as session:
        top = int(await session.scalar(select(AuditLog.id).order_by(AuditLog.id.desc())) or 0)
    found = []
    for label, filters, middle in cases(n):
        cursor = audit_list.encode_cursor(top - n // 2) if middle else None
        times, count = [], 0
        for _ in range(runs + 2):  # two warm-up reads
            began = time.perf_counter()
            async with db.reading() as session:
                page = await audit_list.page(session, filters, cursor=cursor, limit=50)
            times.append((time.perf_counter() - began) * 1000)
            count = len(page.items)
        before = audit_list.decode_cursor(cursor)
        async with db.reading() as session:
            matching = await session.scalar(
                select(func.count()).select_from(AuditLog).where(*filters.clauses())
            )
        found.append(
            [
                label,
                f"{matching:,}",
                count,
                round(median(times[2:]), 2),
                await _plan(db, filters, before),
            ]
        )
    return found


async def _backend(url: str, n: int, runs: int) -> dict[str, list[list[Any]]]:
    db = Database(url)
    try:
        await downgrade(db, "base")
        await upgrade(db, "0029")
        await _seed(db, n)
        results = {"0029": await _measure(db, n, runs)}
        await upgrade(db, "head")
        if db.dialect == "postgresql":
            async with db.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("ANALYZE audit_log"))
        results["head"] = await _measure(db, n, runs)
        return results
    finally:
        await db.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 entries, 3 runs.")
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    n, runs = (20_000, 3) if args.quick else (args.entries, args.runs)
    facts = machine()
    payload: dict[str, Any] = {
        "machine": facts,
        "quick": args.quick,
        "entries": n,
        "runs": runs,
        "results": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        urls = {
            "sqlite": f"sqlite+aiosqlite:///{Path(tmp) / 'audit.db'}",
            "postgresql": await fresh_postgres("pagecast_bench_audit"),
        }
        for backend, url in urls.items():
            results = await _backend(url, n, runs)
            payload["results"][backend] = results
            for revision, rows in results.items():
                print_table(
                    f"P12 audit list, {backend}, {n:,} entries, indexes of {revision}",
                    facts,
                    ["case", "matching", "rows", "ms (median)", "plan"],
                    rows,
                )
    write_results("audit_list", payload)


if __name__ == "__main__":
    asyncio.run(main())
