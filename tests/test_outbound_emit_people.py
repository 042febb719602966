"""Issue 22, `contact.opted_out` and `import.completed`: one event per contact that opted out
(an opt-out keyword in a signed webhook, the contacts API, a bulk action) and one per
import that ended, with their data; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

import test_webhooks
from factories import ADMIN_ACTOR, connected_page, import_contacts
from pagecast.db import Database
from pagecast.models import Contact, OutboundDelivery, Role, utcnow
from pagecast.security import Vault
from pagecast.services import contact_bulk, import_jobs
from test_outbound_emit_campaigns import add_endpoint, events
from test_webhooks import PAGE, envelope, inbound, post

hook_settings = test_webhooks.hook_settings
inline_app = test_webhooks.inline_app
hook = test_webhooks.hook

__all__ = ["hook", "hook_settings", "inline_app"]  # fixtures used here


@pytest.fixture
async def manager(api: Any) -> httpx.AsyncClient:
    return await api(Role.MANAGER)


async def opted_out(db: Database) -> list[dict[str, Any]]:
    return [d for _, _, d in await events(db, prefix="contact.opted_out")]


async def test_an_opt_out_keyword_is_one_event_per_change(
    hook: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault, fb_page_id=PAGE)
    for text, mid in (("STOP", "m1"), ("stop", "m2"), ("START", "m3"), ("UNSUBSCRIBE", "m4")):
        assert (await post(hook, envelope(inbound("7001", text, mid)))).status_code == 200
    async with db.transaction() as session:
        contact = await session.scalar(select(Contact).where(Contact.psid == "7001"))
    assert contact is not None and contact.opted_out_at is not None
    found = await opted_out(db)
    # STOP opted out; a second STOP changed nothing; START opted in; UNSUBSCRIBE out again.
    assert [(d["contact_id"], d["psid"], d["page_id"], d["source"]) for d in found] == [
        (contact.id, "7001", page.id, "keyword"),
        (contact.id, "7001", page.id, "keyword"),
    ]
    assert found[1]["opted_out_at"] == contact.opted_out_at.isoformat()


async def test_a_person_opting_a_contact_out_through_the_api(
    manager: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    made = await manager.post(
        f"/api/pages/{page.id}/contacts", json={"psid": "11", "opted_out": True}
    )
    assert made.status_code == 201, made.text
    other = (await manager.post(f"/api/pages/{page.id}/contacts", json={"psid": "12"})).json()
    url = f"/api/contacts/{other['id']}"
    for body in ({"first_name": "Ana"}, {"opted_out": True}, {"opted_out": True}):
        assert (await manager.patch(url, json=body)).status_code == 200
    assert (await manager.patch(url, json={"opted_out": False})).status_code == 200
    assert (await manager.patch(url, json={"opted_out": True})).status_code == 200
    found = await opted_out(db)
    assert [(d["contact_id"], d["psid"], d["source"]) for d in found] == [
        (made.json()["id"], "11", "person"),
        (other["id"], "12", "person"),
        (other["id"], "12", "person"),
    ]


async def test_a_bulk_opt_out_is_one_event_per_contact_it_changed(
    manager: httpx.AsyncClient, db: Database, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = await connected_page(db, vault)
    endpoint = await add_endpoint(db, ["contact.opted_out"])
    report = await import_contacts(
        manager, page.id, b"psid,tags\n" + b"".join(b"%d,quiet\n" % i for i in range(1, 11))
    )
    assert report["created"] == 10
    ids = [c["id"] for c in (await manager.get(f"/api/pages/{page.id}/contacts")).json()["items"]]
    first = min(ids)
    patched = await manager.patch(f"/api/contacts/{first}", json={"opted_out": True})
    assert patched.status_code == 200
    monkeypatch.setattr(contact_bulk, "BATCH", 4)  # several batches, none skipped or repeated
    body = {"action": "opt_out", "filter": {"tags_any": ["quiet"]}}
    url = f"/api/pages/{page.id}/contacts/bulk"
    assert (await manager.post(url, json=body)).json() == {"changed": 9}
    assert (await manager.post(url, json=body)).json() == {"changed": 0}
    found = await opted_out(db)
    assert [d["source"] for d in found] == ["person"] + ["bulk"] * 9
    assert [d["contact_id"] for d in found] == sorted(ids)
    assert {d["page_id"] for d in found} == {page.id}
    async with db.transaction() as session:
        owed = list(await session.scalars(select(OutboundDelivery.endpoint_id)))
    assert owed == [endpoint] * 10


async def test_an_import_that_ends_emits_its_counts_once(
    manager: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    report = await import_contacts(manager, page.id, b"psid,first_name\n1,Ana\n2,Bo\nx,Bad\n")
    again = await import_contacts(manager, page.id, b"psid,first_name\n1,Ana\n")
    found = await events(db, prefix="import.")
    assert [(t, c) for t, c, _ in found] == [("import.completed", None)] * 2
    assert found[0][2] == {
        "import_id": report["id"],
        "page_id": page.id,
        "file_name": found[0][2]["file_name"],
        "state": "completed",
        "rows": 3,
        "created": 2,
        "updated": 0,
        "refused": 1,
        "error": None,
    }
    assert (found[1][2]["import_id"], found[1][2]["updated"]) == (again["id"], 1)


async def test_an_import_whose_process_died_ends_interrupted_with_one_event(
    manager: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    long_ago = utcnow() - import_jobs.STALE_AFTER - timedelta(seconds=1)
    async with db.transaction() as session:
        dead = await import_jobs.start(
            session, ADMIN_ACTOR, page.id, file_name="a.csv", file_bytes=10, now=long_ago
        )
    await import_contacts(manager, page.id, b"psid\n1\n")  # its start finds the dead one
    await import_contacts(manager, page.id, b"psid\n2\n")
    found = [(d["import_id"], d["state"]) for _, _, d in await events(db, prefix="import.")]
    assert found[0] == (dead.id, "interrupted")
    assert [state for _, state in found] == ["interrupted", "completed", "completed"]
