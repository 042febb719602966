"""Contact imports as background jobs (issue 17, item 4): nothing else waits for them.

The web app answers 202 with a job at once; the file is read in a worker thread a batch of
rows at a time, valid or not, and written a batch per transaction, so the health probe, a
signed webhook (which writes) and progress reads answer while it runs. Limits (size, tags per
row), the job's report, and what a stopped process leaves behind.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from factories import ADMIN_ACTOR, app_client, connected_page, create_user, import_contacts
from pagecast.db import Database
from pagecast.models import ContactImport, ImportState, Role, utcnow
from pagecast.security import Vault
from pagecast.services import import_jobs
from pagecast.settings import Settings
from pagecast.web.app import create_app
from pagecast.web.uploads import store_upload
from test_webhooks import APP_SECRET, NO_REDIS, envelope, inbound, signed, wire

CSV_HEADER = b"psid,first_name,tags,last_inbound_at\n"


@pytest.fixture
async def app(settings: Settings, db: Database) -> AsyncIterator[Any]:
    """The app with the webhook's secret and no Redis: webhook events are written inline,
    in the web process, so they compete with the import for the database."""
    application = create_app(
        settings.model_copy(
            update={
                "app_secret": SecretStr(APP_SECRET),
                "redis_url": NO_REDIS,
                "import_batch_rows": 1000,
            }
        ),
        database=db,
    )
    yield application
    await application.state.context.close()


@pytest.fixture
async def manager(app: Any, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    _, token = await create_user(db, Role.MANAGER, email="m@example.com")
    async with app_client(app, token) as client:
        yield client


@pytest.fixture
async def page_id(db: Database, vault: Vault) -> int:
    return (await connected_page(db, vault)).id


def invalid_rows(count: int, start: int = 2) -> bytes:
    """Rows whose psid is not a Page-scoped id (the case that froze the server for 33 s)."""
    return b"".join(b"not-a-psid-%d,Name,,\n" % i for i in range(start, start + count))


async def start(client: httpx.AsyncClient, page_id: int, data: bytes) -> dict[str, Any]:
    answer = await client.post(
        f"/api/pages/{page_id}/contacts/import", content=data, headers={"content-type": "text/csv"}
    )
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


async def job(client: httpx.AsyncClient, import_id: int) -> dict[str, Any]:
    answer = await client.get(f"/api/contacts/imports/{import_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_the_server_answers_while_many_invalid_rows_are_imported(
    app: Any, manager: httpx.AsyncClient, page_id: int
) -> None:
    """The health probe, a signed webhook that writes and a progress read keep answering
    during the import: their slowest answer is a small part of the import's duration (before,
    the parse held the event loop from start to end)."""
    data = CSV_HEADER + invalid_rows(300_000) + b"123,Valid,vip,\n"
    slowest, rounds, states = 0.0, 0, set()
    async with app_client(app) as anonymous:

        async def one_round(import_id: int | None) -> dict[str, Any]:
            assert (await anonymous.get("/healthz")).status_code == 200
            body = wire(envelope(inbound(f"9{rounds}", "hi", f"m.{rounds}")))
            hook = await anonymous.post("/webhooks/messenger", content=body, headers=signed(body))
            assert hook.status_code == 200, hook.text
            return await job(manager, import_id) if import_id else {}

        await one_round(None)  # the first webhook's one-time costs are not the import's
        began = time.perf_counter()
        report = await start(manager, page_id, data)
        assert report["state"] == "running" and report["rows"] == 0
        while report["running"]:
            t0 = time.perf_counter()
            report = await one_round(report["id"])
            slowest = max(slowest, time.perf_counter() - t0)
            rounds += 1
            states.add(report["progress"] if report["running"] else None)
    duration = time.perf_counter() - began
    assert report["state"] == "completed", report
    assert (report["rows"], report["refused"], report["created"]) == (300_001, 300_000, 1)
    assert rounds >= 5, f"only {rounds} rounds of requests during a {duration:.1f} s import"
    assert len(states) >= 3, "progress should be seen moving while the import runs"
    # Before, one round lasted the whole import; a round may wait for a batch's write.
    assert slowest < duration / 3, f"a round took {slowest:.2f} s of a {duration:.2f} s import"


async def test_a_row_with_more_tags_than_the_cap_is_refused_with_the_reason(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    fifty = ";".join(f"t{i}" for i in range(50))
    many = ";".join(f"t{i}" for i in range(100_000))
    data = CSV_HEADER + f"1,Ana,{fifty},\n2,Ben,{many},\n".encode()
    report = await import_contacts(manager, page_id, data)
    assert (report["created"], report["refused"]) == (1, 1)
    assert report["errors"] == [
        {
            "row": 3,
            "column": "tags",
            "reason": "has 100,000 tags; a contact may have at most 50 "
            "(PAGECAST_IMPORT_MAX_TAGS_PER_CONTACT)",
        }
    ]
    [ana] = (await manager.get(f"/api/pages/{page_id}/contacts")).json()["items"]
    assert len(ana["tags"]) == 50


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_file_over_the_size_cap_is_refused_and_not_kept(
    app: Any, manager: httpx.AsyncClient, page_id: int, db: Database, declared: bool
) -> None:
    settings = app.state.context.settings
    settings.import_max_bytes = 1000
    data = CSV_HEADER + invalid_rows(200)
    assert len(data) > 1000

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 100):
            yield data[i : i + 100]

    answer = await manager.post(
        f"/api/pages/{page_id}/contacts/import",
        content=data if declared else chunks(),
        headers={"content-type": "text/csv"},
    )
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    assert error["field"] == "file" and "PAGECAST_IMPORT_MAX_BYTES" in error["message"]
    assert not list((settings.data_dir / "imports").glob("*"))
    async with db.reading() as session:
        assert list(await session.scalars(select(ContactImport))) == []


async def test_the_upload_is_written_0600_in_a_0700_directory(tmp_path: Path) -> None:
    from starlette.requests import Request

    body = CSV_HEADER + b"1,Ana,,\n"
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", b"text/csv")]}
    from pagecast.import_runner import ImportOptions, ImportRunner

    runner = ImportRunner(Database("sqlite+aiosqlite://"), ImportOptions(tmp_path / "imports"))
    stored = await store_upload(Request(scope, receive), runner.new_upload_path(), max_bytes=100)
    assert stored.path.read_bytes() == body and stored.size == len(body)
    assert stat.S_IMODE(os.stat(stored.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "imports").st_mode) == 0o700


async def test_the_job_counts_created_updated_and_refused_rows_and_is_listed(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    await import_contacts(manager, page_id, CSV_HEADER + b"1,Ana,,\n2,Ben,,\n")
    report = await import_contacts(
        manager, page_id, CSV_HEADER + b"2,Benny,,\n3,Cy,,\nx,Bad,,\n" + invalid_rows(1500, 5)
    )
    assert (report["rows"], report["created"], report["updated"]) == (1503, 1, 1)
    assert report["refused"] == 1501 and len(report["errors"]) == 1000  # the first N listed
    assert report["errors"][0] == {
        "row": 4,
        "column": "psid",
        "reason": "'x' is not a Page-scoped id (digits only, at most 64)",
    }
    listed = (await manager.get("/api/contacts/imports", params={"page_id": page_id})).json()
    assert [(j["id"], j["state"], j["errors"]) for j in listed["items"]] == [
        (report["id"], "completed", None),
        (report["id"] - 1, "completed", None),
    ]


async def test_a_second_import_of_a_page_waits_for_the_first(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    first = await start(manager, page_id, CSV_HEADER + invalid_rows(100_000))
    second = await manager.post(
        f"/api/pages/{page_id}/contacts/import",
        content=CSV_HEADER + b"1,Ana,,\n",
        headers={"content-type": "text/csv"},
    )
    assert second.status_code == 409, second.text
    assert f"import {first['id']}" in second.json()["error"]["message"]


async def test_a_process_that_stops_leaves_its_import_interrupted_with_what_it_wrote(
    app: Any, manager: httpx.AsyncClient, page_id: int
) -> None:
    rows = b"".join(b"%d,P,,\n" % (10**6 + i) for i in range(50_000))
    first = await start(manager, page_id, CSV_HEADER + rows)
    while (report := await job(manager, first["id"]))["created"] == 0:
        assert report["running"], report
        await asyncio.sleep(0.01)
    await app.state.context.close()  # what `pagecast serve` does when it stops
    report = await job(manager, first["id"])
    assert report["state"] == "interrupted", report
    assert 0 < report["created"] < 50_000
    assert "stopped" in report["error"]
    contacts = (await manager.get(f"/api/pages/{page_id}/contacts", params={"limit": 1})).json()
    assert contacts["items"]  # what was written stays
    again = await import_contacts(manager, page_id, CSV_HEADER + rows)  # the Page is free
    assert (again["created"] + report["created"], again["refused"]) == (50_000, 0)


async def test_an_import_whose_process_died_is_reported_interrupted_and_blocks_nothing(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    long_ago = utcnow() - import_jobs.STALE_AFTER - timedelta(seconds=1)
    async with db.transaction() as session:
        dead = await import_jobs.start(
            session, ADMIN_ACTOR, page_id, file_name="a.csv", file_bytes=10, now=long_ago
        )
    report = await job(manager, dead.id)
    assert (report["state"], report["running"]) == ("interrupted", False)
    assert "import the file again" in report["error"]
    again = await import_contacts(manager, page_id, CSV_HEADER + b"1,Ana,,\n")
    assert again["created"] == 1
    async with db.reading() as session:
        stored = await session.get(ContactImport, dead.id)
        assert stored is not None and stored.state is ImportState.INTERRUPTED


async def test_an_upload_abandoned_for_a_day_is_deleted_and_a_fresh_one_kept(
    tmp_path: Path,
) -> None:
    from pagecast.import_runner import ImportOptions, ImportRunner

    runner = ImportRunner(Database("sqlite+aiosqlite://"), ImportOptions(tmp_path))
    old, fresh = tmp_path / "old.csv", tmp_path / "fresh.csv"
    old.write_text("psid\n1\n")
    fresh.write_text("psid\n1\n")
    day_ago = time.time() - 24 * 3600 - 60
    os.utime(old, (day_ago, day_ago))
    runner.new_upload_path()
    assert not old.exists() and fresh.exists()
