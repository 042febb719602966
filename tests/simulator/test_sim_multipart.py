"""Multipart bodies (docs/simulator.md, "Requests and answers"): Send API and batch fields as JSON-encoded strings, and files
(`filedata`) for the Attachment Upload API, a Send call and a batch operation."""

from __future__ import annotations

import json

import httpx
import pytest
from sim_support import PSID, TOKEN, add_page, add_user, error_of

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # binary, with CR LF inside


@pytest.fixture
async def page(http: httpx.AsyncClient) -> httpx.AsyncClient:
    await add_page(http)
    await add_user(http)
    return http


async def outbox(http: httpx.AsyncClient) -> list[dict]:
    return (await http.get("/__sim/outbox")).json()["messages"]


async def test_send_api_takes_multipart_fields_as_json_strings(page: httpx.AsyncClient) -> None:
    fields = {
        "access_token": TOKEN,
        "recipient": json.dumps({"id": PSID}),
        "messaging_type": "UPDATE",
        "message": json.dumps({"text": "Grüße 👋", "metadata": "c=1"}),
    }
    response = await page.post("/v25.0/me/messages", data=fields, files={"unused": b""})
    assert response.request.headers["content-type"].startswith("multipart/form-data")
    assert response.status_code == 200, response.text
    assert response.json()["recipient_id"] == PSID
    [entry] = await outbox(page)
    assert entry["message"] == {"text": "Grüße 👋", "metadata": "c=1"}


async def test_multipart_validation_errors_are_graphs(page: httpx.AsyncClient) -> None:
    fields = {"access_token": TOKEN, "recipient": json.dumps({"id": PSID})}
    response = await page.post("/v25.0/me/messages", data=fields, files={"unused": b""})
    assert response.status_code == 400
    assert error_of(response)["code"] == 100


async def test_upload_api_takes_the_file_as_filedata(page: httpx.AsyncClient) -> None:
    message = {"attachment": {"type": "image", "payload": {"is_reusable": True}}}
    response = await page.post(
        "/v25.0/me/message_attachments",
        data={"access_token": TOKEN, "message": json.dumps(message)},
        files={"filedata": ("promo.png", PNG, "image/png")},
    )
    assert response.status_code == 200, response.text
    attachment_id = response.json()["attachment_id"]
    body = {
        "recipient": {"id": PSID},
        "messaging_type": "UPDATE",
        "message": {"attachment": {"type": "image", "payload": {"attachment_id": attachment_id}}},
    }
    sent = await page.post("/v25.0/me/messages", params={"access_token": TOKEN}, json=body)
    assert sent.status_code == 200, sent.text


async def test_uploaded_file_over_the_image_limit_is_2018109(page: httpx.AsyncClient) -> None:
    message = {"attachment": {"type": "image", "payload": {"is_reusable": True}}}
    big = b"\0" * (8 * 1024 * 1024 + 1)
    response = await page.post(
        "/v25.0/me/message_attachments",
        data={"access_token": TOKEN, "message": json.dumps(message)},
        files={"filedata": ("big.png", big, "image/png")},
    )
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["error_subcode"]) == (100, 2018109)
    as_file = {"attachment": {"type": "file", "payload": {"is_reusable": True}}}
    response = await page.post(
        "/v25.0/me/message_attachments",
        data={"access_token": TOKEN, "message": json.dumps(as_file)},
        files={"filedata": ("big.bin", big, "application/octet-stream")},
    )
    assert response.status_code == 200  # files may be 25 MB


async def test_send_with_filedata_and_reusable_gives_an_attachment_id(
    page: httpx.AsyncClient,
) -> None:
    message = {"attachment": {"type": "image", "payload": {"is_reusable": True}}}
    response = await page.post(
        "/v25.0/me/messages",
        data={
            "access_token": TOKEN,
            "recipient": json.dumps({"id": PSID}),
            "messaging_type": "UPDATE",
            "message": json.dumps(message),
        },
        files={"filedata": ("promo.png", PNG, "image/png")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["attachment_id"].isdigit()
    # a url next to filedata is two sources: refused
    message["attachment"]["payload"]["url"] = "https://cdn.example/a.png"
    response = await page.post(
        "/v25.0/me/messages",
        data={
            "access_token": TOKEN,
            "recipient": json.dumps({"id": PSID}),
            "messaging_type": "UPDATE",
            "message": json.dumps(message),
        },
        files={"filedata": ("promo.png", PNG, "image/png")},
    )
    assert error_of(response)["code"] == 100


async def test_batch_as_multipart_with_an_attached_file(page: httpx.AsyncClient) -> None:
    upload = {"attachment": {"type": "image", "payload": {"is_reusable": True}}}
    ops = [
        {
            "method": "POST",
            "relative_url": "me/messages",
            "body": "recipient=" + json.dumps({"id": PSID}) + "&messaging_type=UPDATE"
            "&message=" + json.dumps({"text": "hello"}),
        },
        {
            "method": "POST",
            "relative_url": "me/message_attachments",
            "body": "message=" + json.dumps(upload),
            "attached_files": "file1",
        },
    ]
    response = await page.post(
        "/v25.0/",
        data={"access_token": TOKEN, "batch": json.dumps(ops), "include_headers": "false"},
        files={"file1": ("promo.png", PNG, "image/png")},
    )
    assert response.status_code == 200, response.text
    results = response.json()
    assert [r["code"] for r in results] == [200, 200]
    assert "attachment_id" in json.loads(results[1]["body"])
    assert [m["message"] for m in await outbox(page)] == [{"text": "hello"}]


async def test_multipart_without_a_boundary_is_an_empty_body(page: httpx.AsyncClient) -> None:
    response = await page.post(
        "/v25.0/me/messages",
        params={"access_token": TOKEN},
        content=b"recipient=x",
        headers={"content-type": "multipart/form-data"},
    )
    assert error_of(response)["code"] == 100
    assert "recipient" in error_of(response)["message"]
