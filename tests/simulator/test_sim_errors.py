"""Error envelopes, statuses, headers and body validation (docs/graph-errors.md;
docs/simulator.md, "Requests and answers")."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sim_support import PAGE_ID, PSID, add_page, add_user, error_of, send, text_body

COMMON_HEADERS = {
    "content-type": "application/json; charset=UTF-8",
    "cache-control": "private, no-cache, no-store, must-revalidate",
    "pragma": "no-cache",
    "expires": "Sat, 01 Jan 2000 00:00:00 GMT",
    "access-control-allow-origin": "*",
}


@pytest.fixture
async def page(http: httpx.AsyncClient) -> httpx.AsyncClient:
    await add_page(http)
    await add_user(http)
    return http


def _msg(**message: Any) -> dict[str, Any]:
    return {"recipient": {"id": PSID}, "messaging_type": "UPDATE", "message": message}


INVALID = [
    ({"messaging_type": "UPDATE", "message": {"text": "x"}}, None, "recipient is required"),
    (
        {
            "recipient": {"id": PSID, "user_ref": "r"},
            "messaging_type": "UPDATE",
            "message": {"text": "x"},
        },
        None,
        "exactly one of",
    ),
    ({"recipient": {"id": PSID}, "message": {"text": "x"}}, None, "messaging_type"),
    (
        {"recipient": {"id": PSID}, "messaging_type": "PROMO", "message": {"text": "x"}},
        None,
        "messaging_type",
    ),
    (
        {
            "recipient": {"id": PSID},
            "messaging_type": "UPDATE",
            "message": {"text": "x"},
            "sender_action": "typing_on",
        },
        None,
        "Only one of message or sender_action",
    ),
    ({"recipient": {"id": PSID}}, None, "either message or sender_action"),
    (
        {"recipient": {"id": PSID}, "messaging_type": "MESSAGE_TAG", "message": {"text": "x"}},
        None,
        "tag is required",
    ),
    (
        {
            "recipient": {"id": PSID},
            "messaging_type": "MESSAGE_TAG",
            "tag": "ACCOUNT_UPDATE",
            "message": {"text": "x"},
        },
        None,
        "(#100) Invalid parameter",
    ),
    (_msg(), 2018034, "Message cannot be empty"),
    (_msg(metadata="only metadata"), 2018034, "Message cannot be empty"),
    (
        _msg(text="x", attachment={"type": "image", "payload": {"url": "https://a/b"}}),
        None,
        "Only one of text or attachment",
    ),
    (_msg(text="é" * 2001), None, "must be less than or equal to 2000"),
    (_msg(text=5), None, "UTF-8 encoded string"),
    (_msg(text="x", metadata="m" * 1000), None, "metadata"),
    (
        _msg(text="x", quick_replies=[{"content_type": "text", "title": "t", "payload": "p"}] * 14),
        None,
        "at most 13",
    ),
    (_msg(text="x", quick_replies=[{"content_type": "location"}]), None, "content_type"),
    (_msg(text="x", quick_replies=[{"content_type": "text", "title": "t"}]), None, "payload"),
    (_msg(attachment={"type": "sticker", "payload": {}}), None, "attachment][type]"),
    (_msg(attachment={"type": "image", "payload": {}}), None, "exactly one of url"),
    (
        _msg(
            attachment={
                "type": "template",
                "payload": {
                    "template_type": "button",
                    "text": "t",
                    "buttons": [{"type": "postback", "title": "a", "payload": "p"}] * 4,
                },
            }
        ),
        None,
        "1 to 3 buttons",
    ),
    (
        _msg(
            attachment={
                "type": "template",
                "payload": {"template_type": "generic", "elements": [{"title": "t" * 81}]},
            }
        ),
        None,
        "title",
    ),
    (
        _msg(
            attachment={
                "type": "template",
                "payload": {"template_type": "generic", "elements": [{"title": "t"}] * 11},
            }
        ),
        None,
        "1 to 10",
    ),
    ({**_msg(text="x"), "notification_type": "LOUD"}, None, "notification_type"),
    ({**_msg(text="x"), "persona_id": "42"}, None, "persona_id"),
    ({"recipient": {"id": PSID}, "sender_action": "dance"}, None, "sender_action"),
]


@pytest.mark.parametrize(("body", "subcode", "fragment"), INVALID)
async def test_invalid_bodies_are_code_100(
    page: httpx.AsyncClient, body: dict[str, Any], subcode: int | None, fragment: str
) -> None:
    response = await send(page, body)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error.get("error_subcode")) == (100, subcode)
    assert fragment in error["message"]
    assert (await page.get("/__sim/outbox")).json() == {"messages": []}


async def test_valid_rich_messages_pass(page: httpx.AsyncClient) -> None:
    bodies = [
        _msg(
            text="é" * 2000,
            quick_replies=[
                {"content_type": "text", "title": "A very long title indeed", "payload": "P"},
                {"content_type": "user_email"},
            ],
        ),
        _msg(
            attachment={
                "type": "template",
                "payload": {
                    "template_type": "button",
                    "text": "Pick",
                    "buttons": [{"type": "web_url", "url": "https://x.y", "title": "Go"}],
                },
            }
        ),
        _msg(attachment={"type": "template", "payload": {"template_type": "media"}}),
        {**_msg(text="x"), "notification_type": "SILENT_PUSH", "unknown_field": 1},
    ]
    for body in bodies:
        response = await send(page, body)
        assert response.status_code == 200, response.text
    outbox = (await page.get("/__sim/outbox")).json()["messages"]
    assert outbox[0]["message"]["quick_replies"][0]["title"] == "A very long title in"


async def test_form_encoded_body_with_json_values(page: httpx.AsyncClient) -> None:
    response = await page.post(
        "/v25.0/me/messages",
        data={
            "access_token": "EAAG-page-token",
            "messaging_type": "UPDATE",
            "recipient": json.dumps({"id": PSID}),
            "message": '{"text":"hi"}',
        },
    )
    assert response.status_code == 200, response.text


async def test_bearer_token_header_is_accepted(page: httpx.AsyncClient) -> None:
    response = await page.post(
        "/v25.0/me/messages", json=text_body(), headers={"Authorization": "Bearer EAAG-page-token"}
    )
    assert response.status_code == 200, response.text


async def test_retired_tag_was_allowed_before_its_retirement(local: Any) -> None:
    app, client = local
    await add_page(client)
    await add_user(client, last=None)
    await client.post("/__sim/knobs", json={"retired_tags_from": 1.8e9})
    body = text_body(messaging_type="MESSAGE_TAG", tag="ACCOUNT_UPDATE")
    assert (await send(client, body)).status_code == 200
    app.state.clock.advance(1.8e9 - app.state.clock.now())
    assert error_of(await send(client, body))["message"] == "(#100) Invalid parameter"


async def test_common_headers_on_success_and_error(page: httpx.AsyncClient) -> None:
    for response in (await send(page, text_body()), await send(page, text_body(psid="x"))):
        for name, value in COMMON_HEADERS.items():
            assert response.headers[name] == value
        assert response.headers["facebook-api-version"] == "v25.0"
        assert len(response.headers["x-fb-trace-id"]) == 11
        assert response.headers["x-fb-rev"].isdigit()
        assert response.headers["x-fb-debug"]


async def test_each_error_gets_a_fresh_fbtrace_id(page: httpx.AsyncClient) -> None:
    ids = {error_of(await send(page, text_body(psid="x")))["fbtrace_id"] for _ in range(5)}
    assert len(ids) == 5


async def test_expired_version_is_served_as_oldest(page: httpx.AsyncClient) -> None:
    response = await page.get("/v19.0/me", params={"access_token": "EAAG-page-token"})
    assert response.status_code == 200
    assert response.headers["facebook-api-version"] == "v21.0"
    unknown = await page.get("/v99.0/me", params={"access_token": "EAAG-page-token"})
    assert error_of(unknown)["code"] == 2635


@pytest.mark.parametrize(
    ("code", "subcode", "status", "transient"),
    [
        (1, None, 500, True),
        (2, None, 500, True),
        (1200, 2018024, 500, True),
        (613, None, 400, None),
        (80006, None, 400, None),
        (190, 460, 400, None),
        (551, 1545041, 400, None),
        (10, 2018278, 400, None),
    ],
)
async def test_injected_codes_have_the_default_status_map(
    page: httpx.AsyncClient, code: int, subcode: int | None, status: int, transient: bool | None
) -> None:
    response_spec: dict[str, Any] = {"code": code}
    if subcode is not None:
        response_spec["subcode"] = subcode
    await page.post("/__sim/script", json={"match": {"psid": PSID}, "responses": [response_spec]})
    response = await send(page, text_body())
    assert response.status_code == status
    error = error_of(response)
    assert (error["code"], error.get("error_subcode"), error.get("is_transient")) == (
        code,
        subcode,
        transient,
    )


async def test_permission_status_knob(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/knobs", json={"permission_status": 403})
    await page.post("/__sim/app", json={"live": False})
    assert (await send(page, text_body())).status_code == 403


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_raw_5xx_has_an_html_body(page: httpx.AsyncClient, status: int) -> None:
    await page.post(
        "/__sim/script", json={"match": {"path": "messages"}, "responses": [{"http": status}]}
    )
    response = await send(page, text_body())
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<!DOCTYPE html>")


async def test_raw_429_has_an_empty_body(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/script", json={"match": {"psid": PSID}, "responses": [{"http": 429}]})
    response = await send(page, text_body())
    assert (response.status_code, response.content) == (429, b"")
    stats = (await page.get("/__sim/stats")).json()
    assert stats["errors_by_code"] == {"http_429": 1}


async def test_script_times_then_ok(page: httpx.AsyncClient) -> None:
    await page.post(
        "/__sim/script",
        json={
            "match": {"psid": PSID},
            "responses": [{"code": 2, "http": 500, "times": 2}, {"ok": True}, {"code": 1200}],
        },
    )
    statuses = [(await send(page, text_body())).status_code for _ in range(5)]
    assert statuses == [500, 500, 200, 500, 200]
    assert len((await page.get("/__sim/outbox")).json()["messages"]) == 2


async def test_me_answers_id_and_name_and_checks_proof(page: httpx.AsyncClient) -> None:
    response = await page.get(
        "/v25.0/me", params={"access_token": "EAAG-page-token", "fields": "id,name"}
    )
    assert response.json() == {"id": PAGE_ID, "name": "Acme Store"}
    only_id = await page.get(
        "/v25.0/me", params={"access_token": "EAAG-page-token", "fields": "id"}
    )
    assert only_id.json() == {"id": PAGE_ID}
    wrong = await page.get(
        "/v25.0/me", params={"access_token": "EAAG-page-token", "appsecret_proof": "00"}
    )
    assert error_of(wrong)["message"] == "Invalid appsecret_proof provided in the API argument"
    revoked = await page.post(
        "/__sim/tokens/revoke", json={"access_token": "EAAG-page-token", "subcode": 492}
    )
    assert revoked.status_code == 200
    gone = await page.get("/v25.0/me", params={"access_token": "EAAG-page-token"})
    assert (error_of(gone)["code"], error_of(gone)["error_subcode"]) == (190, 492)
