"""The last command-line gaps of issue 21, each run as a real process on SQLite:
`contacts bulk` (tag, untag, opt-out by PSID, by filter, --all) and its refusals,
`contacts tags`, `campaigns archive | unarchive` and `campaigns list --search --archived`."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from factories import ADMIN_ACTOR, create_user
from pagecast.db import Database
from pagecast.models import AuditLog, CampaignStatus, Contact, Role, Tag, contact_tags
from pagecast.schemas import CampaignCreate, PageCreate
from pagecast.security import Vault
from pagecast.services import campaigns, contacts, pages
from processes import WebProcess, clean_env
from test_cli import migrated_dir, run

__all__ = ["migrated_dir"]  # a fixture: each test copies one migrated database

PEOPLE = 6  # psid 6000..6005; every other one (6000, 6002, 6004) a vip


@pytest.fixture
def data_dir(migrated_dir: Path, tmp_path: Path) -> Path:
    """A data dir with a migrated database (copied: migrating once per test is slow)."""
    return Path(shutil.copytree(migrated_dir, tmp_path / "data"))


def _db(data_dir: Path) -> Database:
    return Database(f"sqlite+aiosqlite:///{data_dir / 'pagecast.db'}")


def _seed(data_dir: Path) -> dict[str, int]:
    """A Page with PEOPLE contacts, a second Page, a cancelled campaign and a draft."""

    async def verify(_token: str, _secret: str | None) -> pages.Owner:
        return pages.Owner(id="1001", name="Shop")

    async def create() -> dict[str, int]:
        db = _db(data_dir)
        try:
            async with db.transaction() as session:
                vault = Vault(b"cli-test-key")
                page = await pages.connect(
                    session,
                    ADMIN_ACTOR,
                    vault,
                    PageCreate(access_token="t1"),
                    verify=verify,
                    default_send_rate=40,
                )
                for i in range(PEOPLE):
                    person = Contact(page_id=page.id, psid=f"600{i}", first_name=f"Ann{i}")
                    session.add(person)
                    await session.flush()
                    if i % 2 == 0:
                        await contacts.add_tags(session, [(person.id, "vip")])
                made = {"page": page.id}
                for name, status in (("Spring sale", "cancelled"), ("Summer sale", "draft")):
                    body = {"page_id": page.id, "name": name, "content": {"text": "Hi"}}
                    c = await campaigns.create(
                        session, ADMIN_ACTOR, CampaignCreate.model_validate(body)
                    )
                    c.status = CampaignStatus(status)
                    made[status] = c.id
                return made
        finally:
            await db.close()

    return asyncio.run(create())


def _tagged(data_dir: Path, tag: str) -> list[str]:
    async def read() -> list[str]:
        db = _db(data_dir)
        try:
            async with db.reading() as session:
                rows = await session.scalars(
                    select(Contact.psid)
                    .join(contact_tags, contact_tags.c.contact_id == Contact.id)
                    .join(Tag, Tag.id == contact_tags.c.tag_id)
                    .where(Tag.name == tag)
                    .order_by(Contact.psid)
                )
                return list(rows)
        finally:
            await db.close()

    return asyncio.run(read())


def _opted_out(data_dir: Path) -> list[str]:
    async def read() -> list[str]:
        db = _db(data_dir)
        try:
            async with db.reading() as session:
                query = select(Contact.psid).where(Contact.opted_out_at.is_not(None))
                return list(await session.scalars(query.order_by(Contact.psid)))
        finally:
            await db.close()

    return asyncio.run(read())


def _audits(data_dir: Path) -> int:
    async def read() -> int:
        db = _db(data_dir)
        try:
            async with db.reading() as session:
                return int(await session.scalar(select(func.count()).select_from(AuditLog)) or 0)
        finally:
            await db.close()

    return asyncio.run(read())


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_bulk_tags_by_psid_untags_by_filter_and_opts_out_all(data_dir: Path) -> None:
    page = str(_seed(data_dir)["page"])
    tagged = run(data_dir, "contacts", "bulk", "tag", "--page", page, "--tag", "spring",
                 "--psid", "6001,6002", "--psid", "6003")  # fmt: skip
    assert tagged.returncode == 0, tagged.stderr
    assert tagged.stdout.strip() == "3 contacts tagged 'spring'."
    assert _tagged(data_dir, "spring") == ["6001", "6002", "6003"]
    # Untag the vips only (6000, 6002, 6004): of the spring ones, only 6002 changes.
    untagged = run(data_dir, "contacts", "bulk", "untag", "--page", page, "--tag", "spring",
                   "--has-tag", "vip", "--json")  # fmt: skip
    assert untagged.returncode == 0, untagged.stderr
    assert json.loads(untagged.stdout) == {"changed": 1}
    assert _tagged(data_dir, "spring") == ["6001", "6003"]
    out = run(data_dir, "contacts", "bulk", "opt-out", "--page", page, "--all")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{PEOPLE} contacts opted out."
    assert _opted_out(data_dir) == [f"600{i}" for i in range(PEOPLE)]


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (("tag", "--tag", "x"), "choose the contacts: --psid P"),
        (("tag", "--tag", "x", "--psid", "6000", "--all"), "--psid chooses the contacts itself"),
        (("burn", "--all"), "ACTION: 'burn' is not a bulk action; use tag, untag or opt-out"),
        (("tag", "--all"), "--tag: tag needs the name of the tag"),
        (("tag", "--tag", "x", "--psid", "6000,nobody"), "1 of the PSIDs given are not contacts"),
        (("tag", "--tag", "x", "--window", "soon"), "--window:"),
    ],
)
def test_bulk_refusals_are_one_line_and_change_nothing(
    data_dir: Path, args: tuple[str, ...], phrase: str
) -> None:
    page = str(_seed(data_dir)["page"])
    audits = _audits(data_dir)
    line = _one_error_line(run(data_dir, "contacts", "bulk", *args, "--page", page))
    assert phrase in line, line
    assert _tagged(data_dir, "x") == [] and _audits(data_dir) == audits


def test_tags_lists_names_with_counts(data_dir: Path) -> None:
    page = str(_seed(data_dir)["page"])
    run(data_dir, "contacts", "bulk", "tag", "--page", page, "--tag", "vintage", "--psid", "6001")
    shown = run(data_dir, "contacts", "tags", "--page", page)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == ["TAG\tCONTACTS", "vip\t3", "vintage\t1"]
    some = run(data_dir, "contacts", "tags", "--page", page, "-q", "VIN", "--json")
    assert json.loads(some.stdout) == [{"name": "vintage", "contacts": 1}]
    none = run(data_dir, "contacts", "tags", "--page", page, "-q", "zzz")
    assert none.stdout.strip() == "No tags."
    assert "Page 99 does not exist" in _one_error_line(
        run(data_dir, "contacts", "tags", "--page", "99")
    )


def test_archive_unarchive_and_list_by_search_and_archived(data_dir: Path) -> None:
    made = _seed(data_dir)
    cancelled, draft = str(made["cancelled"]), str(made["draft"])

    def listed(*args: str) -> list[Any]:
        done = run(data_dir, "campaigns", "list", "--json", *args)
        assert done.returncode == 0, done.stderr
        return [c["name"] for c in json.loads(done.stdout)]

    archived = run(data_dir, "campaigns", "archive", cancelled)
    assert archived.returncode == 0, archived.stderr
    assert archived.stdout.startswith(f"Campaign {cancelled} (Spring sale) is archived")
    assert listed("-q", "SALE") == ["Summer sale"]
    assert listed("--archived") == ["Spring sale"]
    refused = _one_error_line(run(data_dir, "campaigns", "archive", draft))
    assert "only completed or cancelled campaigns can be archived" in refused
    back = run(data_dir, "campaigns", "unarchive", cancelled, "--json")
    assert back.returncode == 0 and json.loads(back.stdout)["archived_at"] is None
    assert listed("--search", "spring") == ["Spring sale"]


@pytest.fixture
def served(data_dir: Path) -> Iterator[tuple[str, str, dict[str, int]]]:
    """A real `pagecast web` on a seeded data dir: its URL, an admin's token, the seeded ids."""
    made = _seed(data_dir)

    async def token() -> str:
        db = _db(data_dir)
        try:
            return (await create_user(db, Role.ADMIN))[1]
        finally:
            await db.close()

    raw = asyncio.run(token())
    env = clean_env({"PAGECAST_DATA_DIR": str(data_dir), "PAGECAST_SECRET_KEY": "cli-test-key"})
    web = WebProcess(data_dir.parent, env).start()
    try:
        yield web.url, raw, made
    finally:
        web.stop()


def test_url_archives_lists_archived_and_unarchives(
    tmp_path: Path, served: tuple[str, str, dict[str, int]]
) -> None:
    url, token, made = served
    cancelled = str(made["cancelled"])

    def remote(*args: str) -> subprocess.CompletedProcess[str]:
        return run(tmp_path / "laptop", "--url", url, *args, PAGECAST_TOKEN=token)

    archived = remote("campaigns", "archive", cancelled, "--json")
    assert archived.returncode == 0, archived.stderr
    assert json.loads(archived.stdout)["archived_at"] is not None
    listed = remote("campaigns", "list", "--archived", "-q", "spring", "--json")
    assert [c["name"] for c in json.loads(listed.stdout)] == ["Spring sale"], listed.stderr
    assert "only completed or cancelled" in _one_error_line(
        remote("campaigns", "archive", str(made["draft"]))
    )
    back = remote("campaigns", "unarchive", cancelled)
    assert back.stdout.strip() == f"Campaign {cancelled} (Spring sale) is back in the list."
    assert not (tmp_path / "laptop").exists()
