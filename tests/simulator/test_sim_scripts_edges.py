"""Scripted faults on the other write endpoints: uploads, personas and `subscribed_apps`
(only scripts; the seeded fault probabilities stay on Send calls and Pages-API reads)."""

from __future__ import annotations

import json

import httpx
import pytest
from sim_support import PAGE_ID, TOKEN, add_page, error_of

UPLOAD = {
    "attachment": {"type": "image", "payload": {"url": "https://cdn.example/a.png"}},
}


@pytest.fixture
async def page(http: httpx.AsyncClient) -> httpx.AsyncClient:
    await add_page(http)
    return http


async def script(http: httpx.AsyncClient, path: str, *responses: dict) -> None:
    body = {"match": {"path": path}, "responses": list(responses)}
    assert (await http.post("/__sim/script", json=body)).status_code == 200


async def upload(http: httpx.AsyncClient) -> httpx.Response:
    return await http.post(
        "/v25.0/me/message_attachments",
        params={"access_token": TOKEN},
        json={"message": UPLOAD},
    )


async def test_upload_fails_as_scripted_then_succeeds(page: httpx.AsyncClient) -> None:
    await script(page, "message_attachments", {"code": 2, "http": 500})
    failed = await upload(page)
    assert failed.status_code == 500 and error_of(failed)["code"] == 2
    assert (await upload(page)).status_code == 200


async def test_upload_timeout_after_commit_drops_the_answer(page: httpx.AsyncClient) -> None:
    await script(page, "message_attachments", {"timeout": "after"})
    with pytest.raises(httpx.RemoteProtocolError):
        await upload(page)
    calls = (await page.get("/__sim/calls", params={"limit": 1})).json()["calls"]
    assert calls[0]["dropped"] == "after"


async def test_persona_creation_and_listing_follow_scripts(page: httpx.AsyncClient) -> None:
    await script(page, "personas", {"code": 1, "http": 500}, {"http": 503})
    url = f"/v25.0/{PAGE_ID}/personas"
    created = await page.post(url, params={"access_token": TOKEN}, json={"name": "Ann"})
    assert created.status_code == 500 and error_of(created)["code"] == 1
    listed = await page.get(url, params={"access_token": TOKEN})
    assert listed.status_code == 503 and listed.headers["content-type"].startswith("text/html")
    assert (await page.get(url, params={"access_token": TOKEN})).json() == {"data": []}


async def test_subscribed_apps_follow_scripts_after_validation(page: httpx.AsyncClient) -> None:
    await script(page, "subscribed_apps", {"code": 613})
    url = f"/v25.0/{PAGE_ID}/subscribed_apps"
    invalid = await page.post(url, params={"access_token": TOKEN}, json={})
    assert error_of(invalid)["code"] == 100  # a real check wins over the script
    scripted = await page.post(
        url, params={"access_token": TOKEN}, json={"subscribed_fields": "messages"}
    )
    assert error_of(scripted)["code"] == 613
    listed = await page.get(url, params={"access_token": TOKEN})
    fields = listed.json()["data"][0]["subscribed_fields"]
    assert "message_echoes" in fields  # the scripted POST changed nothing


async def test_fault_probabilities_leave_these_endpoints_alone(page: httpx.AsyncClient) -> None:
    assert (await page.post("/__sim/faults", json={"p_5xx": 1.0})).status_code == 200
    assert (await upload(page)).status_code == 200
    url = f"/v25.0/{PAGE_ID}/subscribed_apps"
    response = await page.get(url, params={"access_token": TOKEN})
    assert response.status_code == 200 and json.loads(response.text)["data"]
