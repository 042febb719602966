"""Outbound webhook endpoints in the API (issue 22): admins only, the secret shown once and
stored encrypted, validation naming the field, every change in the audit log, the delivery
log with cursor paging, "send again" and the test ping."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from factories import table_counts
from pagecast.db import Database
from pagecast.errors import InvalidInput
from pagecast.models import AuditLog, OutboundDelivery, Role, WebhookEndpoint
from pagecast.services import outbound_events, webhook_endpoints

RECEIVER = "https://hooks.example.com/pagecast"


async def _create(admin: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body = {"url": RECEIVER, "events": ["campaign.started", "campaign.completed"]} | overrides
    response = await admin.post("/api/webhooks", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"  # no cached copy of the secret
    return dict(response.json())


async def test_created_endpoint_answers_its_secret_once_and_stores_it_encrypted(
    api: Any, db: Database
) -> None:
    admin = await api(Role.ADMIN)
    made = await _create(
        admin, description="CRM", events=["campaign.completed", "campaign.started"]
    )
    secret = made["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    assert made["events"] == ["campaign.started", "campaign.completed"]  # known order
    assert made["enabled"] is True and made["description"] == "CRM"
    listed = (await admin.get("/api/webhooks")).json()["items"]
    shown = (await admin.get(f"/api/webhooks/{made['id']}")).json()
    patched = (await admin.patch(f"/api/webhooks/{made['id']}", json={"description": "x"})).json()
    for body in (listed, shown, patched):
        assert secret not in str(body) and "secret" not in str(body)
    async with db.transaction() as session:
        stored = list(await session.scalars(text("SELECT secret_encrypted FROM webhook_endpoints")))
        audit = list(await session.scalars(select(AuditLog).order_by(AuditLog.id)))
    assert stored and secret not in stored[0]
    assert [a.action for a in audit if a.object_type == "webhook"] == [
        "webhook.created",
        "webhook.updated",
    ]
    assert all(secret not in str(a.details) for a in audit)


async def test_rotating_the_secret_shows_the_new_one_once(api: Any, db: Database) -> None:
    admin = await api(Role.ADMIN)
    made = await _create(admin)
    rotated = await admin.post(f"/api/webhooks/{made['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"  # no cached copy of the secret
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != made["secret"]
    assert new not in (await admin.get(f"/api/webhooks/{made['id']}")).text
    async with db.transaction() as session:
        actions = list(await session.scalars(select(AuditLog.action)))
    assert "webhook.secret_rotated" in actions


async def test_bad_input_names_the_field_and_changes_nothing(api: Any, db: Database) -> None:
    admin = await api(Role.ADMIN)
    made = await _create(admin)
    before = await table_counts(db)
    cases = [
        ({"url": "ftp://example.com/x", "events": ["campaign.started"]}, "url", "http"),
        ({"url": "https://", "events": ["campaign.started"]}, "url", ""),
        ({"url": "https://a.example:0/x", "events": ["campaign.started"]}, "url", "1 to 65535"),
        ({"url": RECEIVER, "events": []}, "events", "campaign.started"),
        ({"url": RECEIVER, "events": ["campaign.exploded"]}, "events", "import.completed"),
        ({"url": RECEIVER, "events": ["webhook.ping"]}, "events", "campaign.progress"),
        ({"url": RECEIVER}, "events", "required"),
        ({"events": ["campaign.started"]}, "url", "required"),
        ({"url": RECEIVER, "events": ["campaign.started"], "secret": "mine"}, "secret", "known"),
    ]
    for body, field, words in cases:
        response = await admin.post("/api/webhooks", json=body)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert error["field"].startswith(field), (body, error)
        assert words in error["message"] or words in str(error.get("details")), (body, error)
    for patch, field in (
        ({"events": []}, "events"),
        ({"url": "not a url"}, "url"),
        ({"enabled": None}, "enabled"),
        ({"enabled": "yes"}, "enabled"),  # JSON's true and false only
        ({"enabled": 1}, "enabled"),
        ({"url": None}, "url"),
    ):
        response = await admin.patch(f"/api/webhooks/{made['id']}", json=patch)
        assert response.status_code == 422, (patch, response.text)
        assert response.json()["error"]["field"].startswith(field)
    for cursor in ("abc", "-1", "0", "%C2%B2", "%EF%BC%91", "9" * 20):  # "²", a fullwidth "1"
        bad_cursor = await admin.get(f"/api/webhooks/{made['id']}/deliveries?cursor={cursor}")
        assert bad_cursor.status_code == 422, (cursor, bad_cursor.text)
        assert bad_cursor.json()["error"]["field"] == "cursor"
    assert (await admin.get("/api/webhooks/999")).status_code == 404
    assert await table_counts(db) == before


async def test_managers_and_viewers_are_refused(api: Any) -> None:
    admin = await api(Role.ADMIN)
    made = await _create(admin)
    for role in (Role.MANAGER, Role.VIEWER):
        caller = await api(role)
        for method, path in (
            ("GET", "/api/webhooks"),
            ("GET", f"/api/webhooks/{made['id']}"),
            ("POST", f"/api/webhooks/{made['id']}/ping"),
            ("GET", f"/api/webhooks/{made['id']}/deliveries"),
        ):
            response = await caller.request(method, path)
            assert response.status_code == 403, (role, path, response.text)
            assert "admin" in response.json()["error"]["message"]
        refused = await caller.post("/api/webhooks", json={"url": RECEIVER, "events": ["x"]})
        assert refused.status_code == 403


async def test_disabling_and_enabling_again_clears_the_failing_state(
    api: Any, db: Database
) -> None:
    admin = await api(Role.ADMIN)
    made = await _create(admin)
    async with db.transaction() as session:
        endpoint = await session.get(WebhookEndpoint, made["id"])
        assert endpoint is not None
        endpoint.failing_since = endpoint.created_at
    off = (await admin.patch(f"/api/webhooks/{made['id']}", json={"enabled": False})).json()
    assert off["enabled"] is False and off["disabled_reason"].startswith("Turned off by")
    assert off["failing_since"] is not None
    refused = await admin.post(f"/api/webhooks/{made['id']}/ping")
    assert refused.status_code == 409 and "turn it on" in refused.json()["error"]["message"]
    on = (await admin.patch(f"/api/webhooks/{made['id']}", json={"enabled": True})).json()
    assert on["enabled"] is True
    assert on["failing_since"] is None and on["disabled_reason"] is None


async def test_ping_and_redeliver_queue_a_delivery_for_this_endpoint_only(
    api: Any, db: Database
) -> None:
    admin = await api(Role.ADMIN)
    one = await _create(admin)
    other = await _create(admin, url="https://other.example.com/hook")
    ping = await admin.post(f"/api/webhooks/{one['id']}/ping")
    assert ping.status_code == 202, ping.text
    item = ping.json()
    assert item["event"]["type"] == "webhook.ping" and item["status"] == "pending"
    assert item["event"]["id"].startswith("evt_") and item["next_attempt_at"] is not None
    assert (await admin.get(f"/api/webhooks/{other['id']}/deliveries")).json()["items"] == []
    async with db.transaction() as session:
        delivery = await session.get(OutboundDelivery, item["id"])
        assert delivery is not None
        delivery.status, delivery.attempts, delivery.next_attempt_at = "failed", 9, None
    again = await admin.post(f"/api/webhooks/{one['id']}/deliveries/{item['id']}/redeliver")
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "pending" and again.json()["attempts"] == 9
    wrong = await admin.post(f"/api/webhooks/{other['id']}/deliveries/{item['id']}/redeliver")
    assert wrong.status_code == 404 and wrong.json()["error"]["field"] == "delivery_id"
    async with db.transaction() as session:
        actions = list(await session.scalars(select(AuditLog.action).order_by(AuditLog.id)))
    assert actions[-2:] == ["webhook.pinged", "webhook.redelivered"]


async def test_the_delivery_log_is_newest_first_in_cursor_pages(api: Any, db: Database) -> None:
    admin = await api(Role.ADMIN)
    made = await _create(admin, events=["contact.opted_out"])
    async with db.transaction() as session:
        for n in range(5):
            await outbound_events.emit(session, "contact.opted_out", {"n": n})
    first = (await admin.get(f"/api/webhooks/{made['id']}/deliveries?limit=2")).json()
    assert [i["event"]["type"] for i in first["items"]] == ["contact.opted_out"] * 2
    ids = [i["id"] for i in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = (
            await admin.get(f"/api/webhooks/{made['id']}/deliveries?limit=2&cursor={cursor}")
        ).json()
        ids += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert ids == sorted(ids, reverse=True) and len(ids) == 5
    delivered = await admin.get(f"/api/webhooks/{made['id']}/deliveries?status=delivered")
    assert delivered.json() == {"items": [], "next_cursor": None}


async def test_deleting_an_endpoint_removes_its_deliveries(api: Any, db: Database) -> None:
    admin = await api(Role.ADMIN)
    made = await _create(admin)
    await admin.post(f"/api/webhooks/{made['id']}/ping")
    assert (await admin.delete(f"/api/webhooks/{made['id']}")).status_code == 204
    assert (await admin.get(f"/api/webhooks/{made['id']}")).status_code == 404
    async with db.transaction() as session:
        left = list(await session.scalars(select(OutboundDelivery)))
        actions = list(await session.scalars(select(AuditLog.action)))
    assert left == [] and "webhook.deleted" in actions


async def test_a_cursor_of_odd_digits_is_a_clear_error_not_a_crash(api: Any, db: Database) -> None:
    """The dashboard passes `?cursor=` to the service without the API's length limit."""
    made = await _create(await api(Role.ADMIN))
    async with db.transaction() as session:
        for cursor in ("\u00b2", "\u0661", "\uff11", "9" * 5000, " 1"):
            with pytest.raises(InvalidInput, match="cursor"):
                await webhook_endpoints.delivery_log(session, made["id"], cursor=cursor)
