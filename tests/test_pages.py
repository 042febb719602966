"""Pages: connecting checks the token with the Graph API (the simulator), and the token stays secret."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from factories import connected_page, sim_page, table_counts
from pagecast.db import Database
from pagecast.models import Role
from pagecast.security import Vault

TOKEN = "EAAGpagetoken1001"


async def test_connect_asks_graph_who_owns_the_token(api: Any, sim: httpx.AsyncClient) -> None:
    await sim_page(sim)
    admin = await api(Role.ADMIN)
    response = await admin.post("/api/pages", json={"access_token": TOKEN})
    assert response.status_code == 201, response.text
    page = response.json()
    assert (page["fb_page_id"], page["name"], page["status"]) == ("1001", "Acme Store", "active")
    assert page["send_rate"] == 40.0
    calls = (await sim.get("/__sim/calls")).json()
    calls = calls["calls"] if isinstance(calls, dict) else calls
    assert any("/me" in call["path"] for call in calls)


async def test_token_never_appears_in_responses_logs_or_audit(
    api: Any, sim: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await sim_page(sim, app_secret="appsecret-xyz")
    admin = await api(Role.ADMIN)
    created = await admin.post(
        "/api/pages", json={"access_token": TOKEN, "app_secret": "appsecret-xyz"}
    )
    assert created.status_code == 201, created.text
    page_id = created.json()["id"]
    answers = [
        created.text,
        (await admin.get("/api/pages")).text,
        (await admin.get(f"/api/pages/{page_id}")).text,
        (await admin.patch(f"/api/pages/{page_id}", json={"access_token": TOKEN})).text,
        (await admin.get("/api/audit")).text,
    ]
    async with db.transaction() as session:
        stored = (
            await session.execute(
                text("SELECT access_token_encrypted, app_secret_encrypted FROM pages")
            )
        ).one()
        audit_rows = str(list(await session.execute(text("SELECT details FROM audit_log"))))
    for secret in (TOKEN, "appsecret-xyz"):
        assert all(secret not in answer for answer in answers)
        assert secret not in caplog.text
        assert secret not in audit_rows
        assert secret not in stored[0] and secret not in stored[1]


async def test_token_is_encrypted_at_rest_and_readable_with_the_key(
    db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    assert page.access_token_encrypted != "token-1001"
    assert vault.decrypt(page.access_token_encrypted) == "token-1001"


async def test_appsecret_proof_is_sent_when_the_page_has_an_app_secret(
    api: Any, sim: httpx.AsyncClient
) -> None:
    await sim_page(sim, app_secret="s3cret")
    admin = await api(Role.ADMIN)
    wrong = await admin.post(
        "/api/pages", json={"access_token": TOKEN, "app_secret": "not-the-secret"}
    )
    assert wrong.status_code == 502
    assert wrong.json()["error"]["field"] == "access_token"
    assert "appsecret_proof" in wrong.json()["error"]["message"]
    right = await admin.post("/api/pages", json={"access_token": TOKEN, "app_secret": "s3cret"})
    assert right.status_code == 201, right.text
    assert right.json()["has_app_secret"] is True


async def test_invalid_token_is_refused_and_nothing_is_stored(
    api: Any, sim: httpx.AsyncClient, db: Database
) -> None:
    admin = await api(Role.ADMIN)
    before = await table_counts(db)
    response = await admin.post("/api/pages", json={"access_token": "EAAGnot-a-real-token"})
    assert response.status_code == 502
    body = response.json()["error"]
    assert body["field"] == "access_token" and "190" in body["message"]
    assert "EAAGnot-a-real-token" not in response.text
    assert await table_counts(db) == before


async def test_revoked_token_is_refused(api: Any, sim: httpx.AsyncClient) -> None:
    await sim_page(sim)
    await sim.post("/__sim/tokens/revoke", json={"access_token": TOKEN, "subcode": 460})
    admin = await api(Role.ADMIN)
    response = await admin.post("/api/pages", json={"access_token": TOKEN})
    assert response.status_code == 502
    assert "460" in response.json()["error"]["message"]


async def test_connecting_the_same_page_twice_is_a_conflict(
    api: Any, sim: httpx.AsyncClient
) -> None:
    await sim_page(sim)
    admin = await api(Role.ADMIN)
    assert (await admin.post("/api/pages", json={"access_token": TOKEN})).status_code == 201
    again = await admin.post("/api/pages", json={"access_token": TOKEN})
    assert again.status_code == 409
    assert "already connected" in again.json()["error"]["message"]


async def test_patch_changes_name_and_send_rate(api: Any, db: Database, vault: Vault) -> None:
    page = await connected_page(db, vault)
    admin = await api(Role.ADMIN)
    response = await admin.patch(f"/api/pages/{page.id}", json={"name": "Renamed", "send_rate": 80})
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["send_rate"]) == ("Renamed", 80.0)
    too_fast = await admin.patch(f"/api/pages/{page.id}", json={"send_rate": 301})
    assert too_fast.status_code == 422 and too_fast.json()["error"]["field"] == "send_rate"


async def test_patch_with_another_pages_token_is_refused(api: Any, sim: httpx.AsyncClient) -> None:
    await sim_page(sim)
    await sim_page(sim, page_id="2002", name="Other Page", token="EAAGother2002")
    admin = await api(Role.ADMIN)
    page = (await admin.post("/api/pages", json={"access_token": TOKEN})).json()
    response = await admin.patch(f"/api/pages/{page['id']}", json={"access_token": "EAAGother2002"})
    assert response.status_code == 422
    assert "Other Page" in response.json()["error"]["message"]


async def test_delete_forgets_a_page_without_campaigns(
    api: Any, db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    admin = await api(Role.ADMIN)
    assert (await admin.delete(f"/api/pages/{page.id}")).status_code == 204
    assert (await admin.get(f"/api/pages/{page.id}")).status_code == 404


async def test_delete_disconnects_a_page_with_campaign_history(
    api: Any, db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    admin = await api(Role.ADMIN)
    created = await admin.post(
        "/api/campaigns", json={"name": "c", "page_id": page.id, "content": {"text": "hi"}}
    )
    assert created.status_code == 201
    response = await admin.delete(f"/api/pages/{page.id}")
    assert response.status_code == 200
    assert response.json()["status"] == "disconnected"
