"""P10: the contacts list of a Page with 1,000,000 contacts (PostgreSQL, issue 21).

A bench database gets a Page with `--contacts` contacts written by the database itself
(generate_series): names repeat every 1,000, 90 % wrote in the last 10 days (10 % never),
2 % opted out, 20 % in Asia/Manila; tags `b` on a third, `vip` on a seventh, `rare` on one
in a thousand. Each case is the service's work as the API does it (`contact_list.page`, the
first page of 50, and `contact_list.total`), warm, median of `--runs`; `plan` is the scans
PostgreSQL chose for the page. Then the CSV export of every contact (`render.contacts_csv`,
written to /dev/null) with rows/s, the process's peak RSS before and after and the peak of
Python allocations during it (tracemalloc), which stays flat when the export streams.

    uv run python bench/contacts_list.py [--quick] [--contacts 1000000] [--runs 7]
        [--database NAME] [--no-export]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
import tracemalloc
from typing import Any

from _harness import fresh_postgres, machine, median, print_table, write_results
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql

from pagecast.contact_filter_schema import ContactFilter
from pagecast.db import Database, upgrade
from pagecast.models import Contact, utcnow
from pagecast.permissions import Actor
from pagecast.schemas import PageCreate
from pagecast.security import Vault
from pagecast.services import contact_filter, contact_list, pages
from pagecast.web import render

# (label, filter, sort) of each measured case.
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("no filter", {}, "id"),
    ("tag vip (any of)", {"tags_any": ["vip"]}, "id"),
    ("tags vip and b (all of)", {"tags_all": ["vip", "b"]}, "id"),
    ("tag rare", {"tags_any": ["rare"]}, "id"),
    ("none of b", {"tags_none": ["b"]}, "id"),
    ("window inside", {"window": "inside"}, "id"),
    ("window outside, not opted out", {"window": "outside", "opted_out": False}, "id"),
    ("inbound between 2 dates", {"inbound_from": "D-5", "inbound_to": "D-3"}, "id"),
    ("search 'ann123'", {"q": "ann123"}, "id"),
    ("search a PSID", {"q": "8000000000000777"}, "id"),
    ("time zone Asia/Manila", {"timezone": "Asia/Manila"}, "id"),
    ("sort -last_inbound", {}, "-last_inbound"),
    ("sort name, tag vip", {"tags_any": ["vip"]}, "name"),
    ("sort -created", {}, "-created"),
]


async def seed(db: Database, count: int) -> int:
    async def owner(_token: str, _secret: str | None) -> pages.Owner:
        return pages.Owner(id="9800000000000010", name="Bench contacts")

    async with db.transaction() as session:
        page = await pages.connect(
            session,
            Actor.system(),
            Vault(b"bench-secret-key-0123456789abcdef0123456789"),
            PageCreate(access_token="EAAGbenchcontacts"),
            verify=owner,
            default_send_rate=40,
        )
        await session.execute(text("INSERT INTO tags (name) VALUES ('b'), ('vip'), ('rare')"))
    step = 250_000
    for lo in range(0, count, step):
        async with db.transaction() as session:
            await session.execute(
                text(
                    "INSERT INTO contacts (page_id, psid, first_name, last_name, timezone, "
                    "last_inbound_at, opted_out_at, is_tester, created_at, updated_at) "
                    "SELECT :page, (8000000000000000 + g)::text, 'Ann' || (g % 1000), 'Lee', "
                    "CASE WHEN g % 5 = 0 THEN 'Asia/Manila' END, "
                    "CASE WHEN g % 10 <> 0 THEN now() - (g % 240) * interval '1 hour' END, "
                    "CASE WHEN g % 50 = 0 THEN now() END, false, "
                    "now() - (g % 1000) * interval '1 minute', now() "
                    "FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g"
                ),
                {"page": page.id, "lo": lo, "hi": min(lo + step, count) - 1},
            )
    async with db.transaction() as session:
        for name, every in (("b", 3), ("vip", 7), ("rare", 1000)):
            await session.execute(
                text(
                    "INSERT INTO contact_tags (contact_id, tag_id) SELECT c.id, t.id "
                    "FROM contacts c, tags t WHERE t.name = :name AND c.id % :every = 0"
                ),
                {"name": name, "every": every},
            )
        await session.execute(text("ANALYZE contacts"))
        await session.execute(text("ANALYZE contact_tags"))
        await session.execute(text("ANALYZE tags"))
    return page.id


def _filter(given: dict[str, Any]) -> ContactFilter:
    today = utcnow().date()
    days = {f"D-{n}": (today.fromordinal(today.toordinal() - n)).isoformat() for n in range(9)}
    return ContactFilter.model_validate(
        {k: days.get(v, v) if isinstance(v, str) else v for k, v in given.items()}
    )


async def _plan(db: Database, page_id: int, f: ContactFilter, sort: str) -> str:
    order = contact_list.parse_sort(sort)
    query = (
        select(Contact)
        .where(*contact_filter.clauses(page_id, f, utcnow()))
        .order_by(*contact_list._order(order, False))
        .limit(51)
    )
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with db.reading() as session:
        lines = [r[0] for r in await session.execute(text(f"EXPLAIN {sql}"))]
    scans = [line.strip().removeprefix("->  ").split("  (")[0] for line in lines if "Scan" in line]
    return "; ".join(dict.fromkeys(scans))[:90]


async def measure(db: Database, page_id: int, runs: int) -> list[list[Any]]:
    rows = []
    for label, given, sort in CASES:
        f, order = _filter(given), contact_list.parse_sort(sort)
        page_ms, total_ms, total = [], [], 0
        for _ in range(runs + 1):  # the first run warms the cache and is not counted
            async with db.reading() as session:
                started = time.perf_counter()
                await contact_list.page(session, page_id, f, now=utcnow(), sort=order, limit=50)
                page_ms.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                total = await contact_list.total(session, page_id, f, now=utcnow())
                total_ms.append((time.perf_counter() - started) * 1000)
        rows.append(
            [
                label,
                sort,
                total,
                median(page_ms[1:]),
                median(total_ms[1:]),
                await _plan(db, page_id, f, sort),
            ]
        )
    return rows


async def _write_all(db: Database, page_id: int) -> tuple[int, int]:
    size, lines = 0, 0
    with open("/dev/null", "w") as sink:
        async for chunk in render.contacts_csv(db, page_id, ContactFilter(), utcnow()):
            sink.write(chunk)
            size += len(chunk)
            lines += chunk.count("\n")
    return lines - 1, size


async def export(db: Database, page_id: int) -> dict[str, Any]:
    """Two passes: timed and RSS (no tracing, which slows Python several times), then
    under tracemalloc for the peak of Python allocations."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    rows, size = await _write_all(db, page_id)
    seconds = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    await _write_all(db, page_id)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "mb_written": size / 1e6,
        "python_peak_mb": peak / 1e6,
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
    }


async def _run(args: argparse.Namespace) -> tuple[str, float, list[list[Any]], dict[str, Any]]:
    url = await fresh_postgres(args.database)
    db = Database(url)
    try:
        await upgrade(db)
        started = time.perf_counter()
        page_id = await seed(db, args.contacts)
        seeded = time.perf_counter() - started
        rows = await measure(db, page_id, args.runs)
        exported = {} if args.no_export else await export(db, page_id)
    finally:
        await db.close()
    return url, seeded, rows, exported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="20,000 contacts, 2 runs")
    parser.add_argument(
        "--database",
        default="pagecast_bench_contacts_list",
        help="the bench database (dropped and re-created)",
    )
    parser.add_argument(
        "--no-export", action="store_true", help="measure the list only, not the CSV export"
    )
    args = parser.parse_args()
    if args.quick:
        args.contacts, args.runs = 20_000, 2
    url, seeded, rows, exported = asyncio.run(_run(args))
    facts = machine(url)
    header = ["case", "sort", "matching", "page ms", "total ms", "plan (page)"]
    print_table(
        f"P10: contacts list, {args.contacts:,} contacts (seeded in {seeded:.0f} s), "
        f"median of {args.runs} (target: page < 200 ms, total < 1,000 ms)",
        facts,
        header,
        rows,
    )
    if exported:
        print(
            f"export: {exported['rows']:,} rows in {exported['seconds']:.1f} s "
            f"({exported['rows_per_s']:,.0f} rows/s, {exported['mb_written']:.0f} MB of CSV); "
            f"Python allocations peak {exported['python_peak_mb']:.1f} MB; peak RSS "
            f"{exported['rss_before_mb']:.0f} MB before, {exported['rss_after_mb']:.0f} MB after"
        )
    write_results(
        "contacts_list",
        {
            "machine": facts,
            "quick": args.quick,
            "contacts": args.contacts,
            "runs": args.runs,
            "cases": [dict(zip(header, r, strict=True)) for r in rows],
            "export": exported,
        },
    )


if __name__ == "__main__":
    main()
