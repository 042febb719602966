"""`pagecast audit` (issue 22), run as real processes on SQLite: the table, --json (the API's
body), --csv, the filters, paging by --cursor, bad input in one line, and --url against a
real `pagecast web` answering the same body."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from factories import create_user
from pagecast.db import Database
from pagecast.models import Role
from pagecast.permissions import Actor
from pagecast.services import audit
from processes import WebProcess, clean_env
from test_cli import migrated_dir, run

__all__ = ["migrated_dir"]


@pytest.fixture
def data_dir(migrated_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(migrated_dir, tmp_path / "data"))


def _seed(data_dir: Path) -> str:
    """Seven entries (the admin's user and token, five seeded); the admin's API token."""

    async def create() -> str:
        db = Database(f"sqlite+aiosqlite:///{data_dir / 'pagecast.db'}")
        try:
            _, token = await create_user(db, Role.ADMIN, email="boss@example.com")
            ann = Actor(
                user_id=None, name="ann@example.com", role=Role.ADMIN, permissions=frozenset()
            )
            async with db.transaction() as session:
                for i, action in enumerate(
                    ["campaign.created", "campaign.updated", "page.updated", "user.role_changed"]
                ):
                    await audit.record(
                        session,
                        ann,
                        action,
                        object_type=action.split(".")[0],
                        object_id=10 + i,
                        details={"changes": {"name": {"from": "A", "to": f"B{i}"}}},
                    )
                await audit.record(
                    session,
                    ann,
                    "auth.login_failed",
                    object_type="user",
                    object_id=None,
                    details={"reason": "wrong password", "ip": "=1+1"},
                )
            return token
        finally:
            await db.close()

    return asyncio.run(create())


def test_table_json_csv_filters_and_paging(data_dir: Path) -> None:
    _seed(data_dir)
    table = run(data_dir, "audit", "--actor", "ann@example.com")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split("\t") == ["ID", "TIME (UTC)", "ACTOR", "ACTION", "OBJECT", "CHANGE"]
    assert [line.split("\t")[3] for line in lines[1:]] == [
        "auth.login_failed",
        "user.role_changed",
        "page.updated",
        "campaign.updated",
        "campaign.created",
    ]
    assert lines[2].split("\t")[4:] == ["user 13", 'name: "A" → "B3"']

    body = json.loads(run(data_dir, "audit", "--action", "campaign.", "--json").stdout)
    assert [e["action"] for e in body["items"]] == ["campaign.updated", "campaign.created"]
    assert body["next_cursor"] is None
    assert body["items"][0]["details"]["changes"]["name"] == {"from": "A", "to": "B1"}

    first = run(data_dir, "audit", "--limit", "2", "--json")
    page = json.loads(first.stdout)
    assert len(page["items"]) == 2 and page["next_cursor"]
    text_page = run(data_dir, "audit", "--limit", "2")
    assert f"More: add --cursor {page['next_cursor']}" in text_page.stderr
    rest = json.loads(
        run(data_dir, "audit", "--limit", "500", "--cursor", page["next_cursor"], "--json").stdout
    )
    ids = [e["id"] for e in page["items"] + rest["items"]]
    assert len(ids) == 7 and ids == sorted(set(ids), reverse=True)

    exported = run(data_dir, "audit", "--object-type", "user", "--csv")
    rows = list(csv.reader(io.StringIO(exported.stdout)))
    assert rows[0][:5] == ["id", "at", "actor", "actor_id", "action"]
    assert {r[5] for r in rows[1:]} == {"user"}
    failed = next(r for r in rows if r[4] == "auth.login_failed")
    assert failed[7] == "reason: wrong password; ip: =1+1"  # inside the cell: no formula start
    one = json.loads(
        run(data_dir, "audit", "--object-type", "page", "--object-id", "12", "--json").stdout
    )
    assert [e["action"] for e in one["items"]] == ["page.updated"]
    none = run(data_dir, "audit", "--actor", "nobody@example.com")
    assert none.stdout.strip() == "No audit entries."


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--action", "bad action"], "action: 'bad action' is not an action"),
        (["--since", "2026-11-01"], "since: '2026-11-01' has no time zone"),
        (["--until", "soon"], "until: 'soon' is not an ISO 8601 time"),
        (["--cursor", "nope"], "cursor: it is not one this API returned"),
        (["--object-type", "no way"], "object_type:"),
        (["--limit", "0"], "--limit"),
        (["--csv", "--json"], "give --csv or --json, not both"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(data_dir: Path, args: list[str], words: str) -> None:
    done = run(data_dir, "audit", *args)
    assert done.returncode == 1, done.stdout
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert words in done.stderr


@pytest.fixture
def served(data_dir: Path) -> Iterator[tuple[str, str]]:
    token = _seed(data_dir)
    env = clean_env({"PAGECAST_DATA_DIR": str(data_dir), "PAGECAST_SECRET_KEY": "cli-test-key"})
    web = WebProcess(data_dir.parent, env).start()
    try:
        yield web.url, token
    finally:
        web.stop()


def test_url_answers_the_same_entries_as_this_machine(
    data_dir: Path, tmp_path: Path, served: tuple[str, str]
) -> None:
    url, token = served

    def remote(*args: str) -> dict[str, object] | str:
        done = run(tmp_path / "laptop", "--url", url, "audit", *args, PAGECAST_TOKEN=token)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if "--json" in args else done.stdout

    local = json.loads(run(data_dir, "audit", "--action", "campaign.", "--json").stdout)
    assert remote("--action", "campaign.", "--json") == local
    exported = remote("--actor", "ann@example.com", "--csv")
    assert isinstance(exported, str)
    assert exported == run(data_dir, "audit", "--actor", "ann@example.com", "--csv").stdout
    refused = run(
        tmp_path / "laptop", "--url", url, "audit", "--cursor", "nope", PAGECAST_TOKEN=token
    )
    assert refused.returncode == 1 and "cursor:" in refused.stderr
    assert not (tmp_path / "laptop").exists()


def test_the_queue_command_retrying_failed_jobs_is_recorded_as_the_cli(data_dir: Path) -> None:
    assert run(data_dir, "queue", "--retry-failed").returncode == 0
    listed = run(data_dir, "audit", "--action", "queue.", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)["items"]
    assert (entry["actor"], entry["action"], entry["object_type"]) == (
        "cli",
        "queue.retry_failed",
        "queue",
    )
