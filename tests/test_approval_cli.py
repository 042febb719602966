"""Two-person approval on the command line (issue 22): `pages approval-threshold`,
`campaigns approve | reject` (as the CLI itself or `--as EMAIL`), `users can-approve`, and
the list filtered to the campaigns awaiting approval. The CLI that asked for a start is its
author: it can never approve it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from sqlalchemy import insert

from factories import ADMIN_ACTOR, connected_page
from pagecast.db import Database
from pagecast.models import Contact, utcnow
from pagecast.schemas import CampaignCreate
from pagecast.security import Vault
from pagecast.services import campaigns
from test_cli import data_dir, migrated_dir, run  # noqa: F401  (fixtures)


def _seed(data: Path) -> None:
    """A Page with 3 people who wrote an hour ago, and a draft to all of them."""

    async def seed() -> None:
        db = Database(f"sqlite+aiosqlite:///{data / 'pagecast.db'}")
        try:
            page = await connected_page(db, Vault(b"cli-test-key"))
            async with db.transaction() as session:
                now = utcnow()
                await session.execute(
                    insert(Contact),
                    [
                        {"page_id": page.id, "psid": f"90{i}", "last_inbound_at": now}
                        for i in range(3)
                    ],
                )
                await campaigns.create(
                    session,
                    ADMIN_ACTOR,
                    CampaignCreate(name="Sale", page_id=page.id, content={"text": "Hi"}),
                )
        finally:
            await db.close()

    asyncio.run(seed())


def test_the_cli_sets_the_threshold_and_decides_as_a_user_never_as_the_author(
    data_dir: Path,  # noqa: F811
) -> None:
    _seed(data_dir)
    redis = {"PAGECAST_REDIS_URL": os.environ.get("PAGECAST_TEST_REDIS_URL", "")}
    redis = {k: v for k, v in redis.items() if v}

    def cli(*args: str) -> tuple[int, str, str]:
        done = run(data_dir, *args, **redis)
        return done.returncode, done.stdout, done.stderr

    code, out, err = cli("pages", "approval-threshold", "1", "--", "-1")
    assert code == 1 and err.startswith("Error: approval_threshold: "), err
    code, out, err = cli("pages", "approval-threshold", "1", "2", "--off")
    assert code == 1 and "--off" in err
    code, out, err = cli("pages", "approval-threshold", "1", "2")
    assert code == 0 and "campaigns to more than 2 people need approval" in out, err

    code, out, err = cli("campaigns", "start", "1")
    assert code == 0, err
    assert "is awaiting approval (3 people)" in out and "campaigns approve 1" in out
    code, out, err = cli("campaigns", "list", "--status", "awaiting_approval")
    assert code == 0 and "\tawaiting_approval\t" in out.splitlines()[1], out
    code, out, err = cli("campaigns", "show", "1")
    assert "approval pending: cli asked at" in out and "to start (3 people)" in out, out

    code, out, err = cli("campaigns", "approve", "1")  # the CLI asked: it is the author
    assert code == 1 and "two-person approval" in err, err

    code, out, err = cli(
        "users", "create", "--email", "m@example.com", "--role", "manager", "--no-approve"
    )
    assert code == 0, err
    code, out, err = cli("users", "list")
    assert "APPROVE" in out.splitlines()[0] and "\tyes\tno\tUTC" in out.splitlines()[1], out
    code, out, err = cli("campaigns", "approve", "1", "--as", "m@example.com")
    assert code == 1 and "campaigns:approve" in err, err
    code, out, err = cli("users", "can-approve", "m@example.com", "yes")
    assert code == 0 and "m@example.com (manager) may approve campaigns." in out, err

    code, out, err = cli("campaigns", "reject", "1", "--as", "m@example.com", "--comment", " ")
    assert code == 1 and err.startswith("Error: comment: "), err
    code, out, err = cli(
        "campaigns", "reject", "1", "--as", "m@example.com", "--comment", "Fix the price"
    )
    assert code == 0, err
    assert 'rejected by m@example.com: "Fix the price"; it is draft.' in out, out
    assert "Rejected by m@example.com: Fix the price" in out

    assert cli("campaigns", "start", "1")[0] == 0
    code, out, err = cli("campaigns", "approve", "1", "--as", "m@example.com", "--comment", "ok")
    assert code == 0, err
    assert 'approved by m@example.com: "ok"; it is sending.' in out, out
