"""The Send pipeline's check order (docs/simulator.md, "Send pipeline"): for each step, its error wins over every later one."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest
from sim_support import (
    APP_SECRET,
    PAGE_ID,
    PSID,
    TOKEN,
    add_page,
    add_user,
    error_of,
    send,
    text_body,
)

INVALID_BODY = {"recipient": {"id": "nobody"}, "messaging_type": "UPDATE", "message": {}}


def proof(token: str = TOKEN, secret: str = APP_SECRET) -> str:
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
async def page(http: httpx.AsyncClient) -> httpx.AsyncClient:
    await add_page(http)
    await add_user(http)
    return http


async def test_step1_missing_token_wins_over_everything(page: httpx.AsyncClient) -> None:
    response = await send(page, INVALID_BODY, token=None, page="999")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == 104
    assert error["message"] == "An access token is required to request this resource."
    assert "invalid_token" in response.headers["www-authenticate"]


async def test_step2_unknown_token_is_190_without_subcode(page: httpx.AsyncClient) -> None:
    response = await send(page, INVALID_BODY, token="garbage", appsecret_proof="bad")
    error = error_of(response)
    assert (error["code"], error.get("error_subcode")) == (190, None)
    assert error["message"] == "Invalid OAuth access token - Cannot parse access token"


async def test_step2_revoked_token_carries_its_subcode(page: httpx.AsyncClient) -> None:
    revoked = await page.post("/__sim/tokens/revoke", json={"access_token": TOKEN, "subcode": 460})
    assert revoked.status_code == 200
    error = error_of(await send(page, INVALID_BODY, appsecret_proof="bad"))
    assert (error["code"], error["error_subcode"]) == (190, 460)
    assert "changed their password" in error["message"]


async def test_step2_expired_token_is_463(page: httpx.AsyncClient) -> None:
    now = (await page.get("/__sim/clock")).json()["now"]
    await page.post(
        "/__sim/tokens", json={"access_token": "old", "page_id": PAGE_ID, "expires_at": now - 60}
    )
    error = error_of(await send(page, text_body(), token="old"))
    assert (error["code"], error["error_subcode"]) == (190, 463)
    assert error["message"].startswith("Error validating access token: Session has expired on")


async def test_step3_required_proof_missing(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/app", json={"require_appsecret_proof": True})
    response = await send(page, INVALID_BODY, page="999")
    error = error_of(response)
    assert error == {
        **error,
        "code": 100,
        "type": "GraphMethodException",
        "message": "API calls from the server require an appsecret_proof argument",
    }
    ok = await send(page, text_body(), appsecret_proof=proof())
    assert ok.status_code == 200, ok.text


async def test_step3_wrong_proof_fails_even_when_not_required(page: httpx.AsyncClient) -> None:
    error = error_of(await send(page, INVALID_BODY, page="999", appsecret_proof="0" * 64))
    assert error["message"] == "Invalid appsecret_proof provided in the API argument"
    assert error["type"] == "GraphMethodException"


async def test_step3_page_secret_overrides_app_secret(http: httpx.AsyncClient) -> None:
    await add_page(http, app_secret="page-secret")
    await add_user(http)
    assert (await send(http, text_body(), appsecret_proof=proof())).status_code == 400
    ok = await send(http, text_body(), appsecret_proof=proof(secret="page-secret"))
    assert ok.status_code == 200


async def test_step4_other_page_id_is_100_33(page: httpx.AsyncClient) -> None:
    await page.post(
        "/__sim/tokens", json={"access_token": "no-scope", "page_id": PAGE_ID, "scopes": []}
    )
    error = error_of(await send(page, INVALID_BODY, token="no-scope", page="999"))
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert "Object with ID '999' does not exist" in error["message"]
    assert (await send(page, text_body(), page=PAGE_ID)).status_code == 200


async def test_step5_missing_permission_wins_over_restriction(page: httpx.AsyncClient) -> None:
    await page.post(
        "/__sim/tokens",
        json={"access_token": "no-scope", "page_id": PAGE_ID, "scopes": ["pages_show_list"]},
    )
    await page.post("/__sim/pages/restrict", json={"page_id": PAGE_ID, "restriction": "368"})
    response = await send(page, INVALID_BODY, token="no-scope")
    assert error_of(response)["code"] == 200
    assert "insufficient_scope" in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("restriction", "code", "subcode"),
    [("368", 368, 1390008), ("1893063", 10, 1893063), ("2022", 2022, None)],
)
async def test_step6_restriction_wins_over_rate_limit_and_body(
    page: httpx.AsyncClient, restriction: str, code: int, subcode: int | None
) -> None:
    await page.post("/__sim/limits", json={"page_id": PAGE_ID, "engaged_users": 0})
    await page.post("/__sim/pages/restrict", json={"page_id": PAGE_ID, "restriction": restriction})
    error = error_of(await send(page, INVALID_BODY))
    assert (error["code"], error.get("error_subcode")) == (code, subcode)
    if code == 368:
        assert error["error_user_title"] == "You can't use this feature right now"


async def test_step7_rate_limit_wins_over_body_validation(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/limits", json={"page_id": PAGE_ID, "per_second_text": 1})
    assert (await send(page, text_body())).status_code == 200
    error = error_of(await send(page, INVALID_BODY))
    assert error["code"] == 613


async def test_step8_body_validation_wins_over_app_access(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/app", json={"live": False})
    error = error_of(await send(page, INVALID_BODY))
    assert (error["code"], error["error_subcode"]) == (100, 2018034)


async def test_step9_app_not_live_wins_over_unknown_recipient(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/app", json={"live": False})
    error = error_of(await send(page, text_body(psid="nobody")))
    assert (error["code"], error["error_subcode"]) == (200, 2018028)
    await add_user(page, psid="tester", role_on_app=True)
    assert (await send(page, text_body(psid="tester"))).status_code == 200


async def test_step10_unknown_psid_wins_over_window(page: httpx.AsyncClient) -> None:
    error = error_of(await send(page, text_body(psid="nobody")))
    assert error == {
        **error,
        "code": 100,
        "error_subcode": 2018001,
        "message": "(#100) No matching user found",
    }


@pytest.mark.parametrize(
    ("status", "code", "subcode"), [("blocked", 551, 1545041), ("unavailable", 10, 2018108)]
)
async def test_step10_unreachable_people_win_over_window(
    http: httpx.AsyncClient, status: str, code: int, subcode: int
) -> None:
    await add_page(http)
    await add_user(http, last=None, status=status)
    error = error_of(await send(http, text_body()))
    assert (error["code"], error["error_subcode"]) == (code, subcode)
    if code == 551:
        assert error["error_user_msg"] == "This person isn't available right now."


async def test_step11_outside_window_is_10_2018278(http: httpx.AsyncClient) -> None:
    await add_page(http)
    await add_user(http, last="2026-01-01T00:00:00+00:00")
    error = error_of(await send(http, text_body()))
    assert (error["code"], error["error_subcode"]) == (10, 2018278)
    typing = await send(http, {"recipient": {"id": PSID}, "sender_action": "typing_on"})
    assert typing.json() == {"recipient_id": PSID}


async def test_step11_window_closes_after_24_hours(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/clock/advance", json={"seconds": 86399})
    assert (await send(page, text_body())).status_code == 200
    await page.post("/__sim/clock/advance", json={"seconds": 1})
    assert error_of(await send(page, text_body()))["error_subcode"] == 2018278


async def test_step11_human_agent_needs_the_feature(page: httpx.AsyncClient) -> None:
    body = text_body(messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
    error = error_of(await send(page, body))
    assert (error["code"], error.get("error_subcode")) == (10, None)
    await page.post("/__sim/app", json={"human_agent": True})
    await page.post("/__sim/clock/advance", json={"seconds": 3 * 86400})
    assert (await send(page, body)).status_code == 200
    await page.post("/__sim/clock/advance", json={"seconds": 4 * 86400})
    assert error_of(await send(page, body))["error_subcode"] == 2018278


async def test_step12_attachment_fetch_failures(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/knobs", json={"attachment_fail_urls": ["broken.example"]})
    media = {
        "recipient": {"id": PSID},
        "messaging_type": "UPDATE",
        "message": {
            "attachment": {"type": "image", "payload": {"url": "https://broken.example/a.jpg"}}
        },
    }
    assert error_of(await send(page, media))["error_subcode"] == 2018008
    media["message"]["attachment"]["payload"] = {"attachment_id": "404"}
    assert error_of(await send(page, media))["error_subcode"] == 2018074


async def test_step12_reusable_attachment_expires_after_90_days(page: httpx.AsyncClient) -> None:
    media = {
        "recipient": {"id": PSID},
        "messaging_type": "UPDATE",
        "message": {
            "attachment": {
                "type": "image",
                "payload": {"url": "https://cdn.example/a.jpg", "is_reusable": True},
            }
        },
    }
    first = (await send(page, media)).json()
    assert set(first) == {"recipient_id", "message_id", "attachment_id"}
    media["message"]["attachment"]["payload"] = {"attachment_id": first["attachment_id"]}
    assert (await send(page, media)).status_code == 200
    await page.post("/__sim/clock/advance", json={"seconds": 91 * 86400})
    await page.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": "hi"})
    assert error_of(await send(page, media))["error_subcode"] == 2018074


async def test_step13_script_fires_only_after_all_checks(http: httpx.AsyncClient) -> None:
    await add_page(http)
    await add_user(http, last=None)
    await http.post(
        "/__sim/script", json={"match": {"psid": PSID}, "responses": [{"code": 2, "http": 500}]}
    )
    assert error_of(await send(http, text_body()))["error_subcode"] == 2018278
    await http.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": "hi"})
    response = await send(http, text_body())
    assert response.status_code == 500
    error = error_of(response)
    assert (error["code"], error["is_transient"]) == (2, True)
    assert (await send(http, text_body())).status_code == 200


async def test_step14_success_shapes(page: httpx.AsyncClient) -> None:
    body = (await send(page, text_body())).json()
    assert set(body) == {"recipient_id", "message_id"}
    assert body["recipient_id"] == PSID
    assert body["message_id"].startswith("m_") and len(body["message_id"]) == 88
    by_ref = await send(
        page,
        {"recipient": {"user_ref": "ref-1"}, "messaging_type": "UPDATE", "message": {"text": "hi"}},
    )
    assert set(by_ref.json()) == {"message_id"}
    outbox = (await page.get("/__sim/outbox", params={"psid": PSID})).json()["messages"]
    assert [m["mid"] for m in outbox] == [body["message_id"]]
    assert outbox[0]["messaging_type"] == "UPDATE"
    assert outbox[0]["dropped_after_commit"] is False
