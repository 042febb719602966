"""How long a CSV import of N contacts takes, on SQLite and PostgreSQL, with nothing else
running (the import job of `pagecast contacts import`, in this process). Prints a table.
`bench/import_load.py` measures an import through the web app under webhooks (P8).

    uv run python bench/contacts_import.py [--rows 100000] [--runs 3]

PostgreSQL: PAGECAST_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/pagecast_bench,
created if missing); skipped when no server answers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from pagecast.db import Database, downgrade, upgrade
from pagecast.import_runner import ImportOptions, ImportRunner
from pagecast.permissions import Actor
from pagecast.schemas import PageCreate
from pagecast.security import Vault
from pagecast.services import pages
from pagecast.settings import normalise_database_url

PG_URL = "postgresql://postgres@127.0.0.1:5432/pagecast_bench"


def make_csv(rows: int) -> bytes:
    lines = ["psid,first_name,last_name,tags,last_inbound_at"]
    lines += [
        f"{10**12 + i},First{i},Last{i},tag{i % 7};all,2026-11-20T10:{i % 60:02d}:00Z"
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


async def one_run(url: str, data: bytes) -> float:
    db = Database(url)
    await downgrade(db, "base")
    await upgrade(db, "head")
    actor = Actor.system()

    async def owner(_t: str, _s: str | None) -> pages.Owner:
        return pages.Owner(id="1", name="Bench")

    async with db.transaction() as session:
        page = await pages.connect(
            session,
            actor,
            Vault(b"k"),
            PageCreate(access_token="t"),
            verify=owner,
            default_send_rate=40,
        )
    workdir = Path(tempfile.mkdtemp())
    csv_path = workdir / "contacts.csv"
    csv_path.write_bytes(data)
    runner = ImportRunner(db, ImportOptions(directory=workdir / "imports"))
    started = time.perf_counter()
    job = await runner.run_here(actor, page.id, csv_path)
    elapsed = time.perf_counter() - started
    assert job.created == data.count(b"\n") - 1, job
    await db.close()
    return elapsed


async def pg_available(url: str) -> bool:
    parsed = make_url(url)
    try:
        conn = await asyncpg.connect(
            host=parsed.host,
            port=parsed.port or 5432,
            user=parsed.username,
            database="postgres",
            timeout=3,
        )
    except Exception:
        return False
    if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname=$1", parsed.database):
        await conn.execute(f'CREATE DATABASE "{parsed.database}"')
    await conn.close()
    return True


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    data = make_csv(args.rows)
    backends = {"sqlite": f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"}
    if await pg_available(PG_URL):
        backends["postgresql"] = normalise_database_url(PG_URL)
    print(
        f"CSV import of {args.rows:,} contacts ({len(data) / 1e6:.1f} MB), median of {args.runs} runs"
    )
    print(f"{'backend':<12} {'median s':>9} {'rows/s':>10}  runs")
    for name, url in backends.items():
        times = [await one_run(url, data) for _ in range(args.runs)]
        median = statistics.median(times)
        print(
            f"{name:<12} {median:>9.2f} {args.rows / median:>10,.0f}  {', '.join(f'{t:.2f}' for t in times)}"
        )


if __name__ == "__main__":
    asyncio.run(main())
