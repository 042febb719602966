"""Facebook Login in the simulator (docs/simulator.md, "Facebook Login"): the dialog, the token
endpoint and what a user token sees, over a real socket, with every refusal."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from sim_support import APP_SECRET, PAGE_ID, TOKEN, add_page, add_user, error_of, send, text_body

APP_ID = "1517776481860111"
USER_TOKEN = "EAAU-short-user-token"
REDIRECT = "http://127.0.0.1:9/pages/connect/callback"
SCOPES = "pages_messaging,pages_manage_metadata,pages_read_engagement,pages_show_list"
GRANTED = [
    "public_profile",
    "pages_messaging",
    "pages_manage_metadata",
    "pages_read_engagement",
    "pages_show_list",
]
OTHER_PAGE, OTHER_TOKEN = "2234567890123456", "EAAG-other-page"
THIRD_PAGE, THIRD_TOKEN = "3234567890123456", "EAAG-third-page"


async def consent(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await http.post("/__sim/oauth", json={"user_token": USER_TOKEN, **body})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def dialog(http: httpx.AsyncClient, **params: str) -> httpx.Response:
    query = {
        "client_id": APP_ID,
        "redirect_uri": REDIRECT,
        "state": "st-42",
        "scope": SCOPES,
        "response_type": "code",
        **params,
    }
    return await http.get("/v25.0/dialog/oauth", params={k: v for k, v in query.items() if v})


def sent_back(response: httpx.Response, redirect_uri: str = REDIRECT) -> dict[str, str]:
    """The query of the dialog's redirect, after checking it goes back to `redirect_uri`."""
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    target = urlsplit(redirect_uri)
    assert (location.scheme, location.netloc, location.path) == (
        target.scheme,
        target.netloc,
        target.path,
    )
    assert location.fragment == "_=_"
    return dict(parse_qsl(location.query))


async def new_code(http: httpx.AsyncClient, **params: str) -> str:
    back = sent_back(await dialog(http, **params), params.get("redirect_uri", REDIRECT))
    assert back["state"] == "st-42"
    return back["code"]


async def exchange(http: httpx.AsyncClient, given: str, **params: str) -> httpx.Response:
    query = {
        "client_id": APP_ID,
        "redirect_uri": REDIRECT,
        "client_secret": APP_SECRET,
        "code": given,
        **params,
    }
    return await http.get("/v25.0/oauth/access_token", params={k: v for k, v in query.items() if v})


async def long_lived(http: httpx.AsyncClient, token: str, **params: str) -> httpx.Response:
    query = {
        "grant_type": "fb_exchange_token",
        "client_id": APP_ID,
        "client_secret": APP_SECRET,
        "fb_exchange_token": token,
        **params,
    }
    return await http.get("/v25.0/oauth/access_token", params=query)


async def logged_in(http: httpx.AsyncClient, **consent_body: Any) -> str:
    """Consent, run the dialog and exchange its code: the user token."""
    await consent(http, **consent_body)
    response = await exchange(http, await new_code(http))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def get(http: httpx.AsyncClient, path: str, token: str, **params: str) -> httpx.Response:
    return await http.get(f"/v25.0/{path}", params={"access_token": token, **params})


# --------------------------------------------------------------------------- the dialog


async def test_the_dialog_consents_and_sends_a_code_and_the_state_back(
    http: httpx.AsyncClient,
) -> None:
    await add_page(http)
    await consent(http)
    response = await dialog(http)
    back = sent_back(response)
    assert set(back) == {"code", "state"} and back["state"] == "st-42"
    assert back["code"].startswith("AQ") and len(back["code"]) > 100
    # Graph's versionless path works too, and a redirect_uri with a query keeps it.
    with_query = "http://127.0.0.1:9/cb?next=%2Fpages"
    response = await http.get(
        "/dialog/oauth",
        params={"client_id": APP_ID, "redirect_uri": with_query, "state": "s"},
    )
    back = sent_back(response, with_query)
    assert back["next"] == "/pages" and back["state"] == "s" and "code" in back


async def test_a_cancelled_dialog_sends_access_denied_back(http: httpx.AsyncClient) -> None:
    await add_page(http)
    await consent(http, decline=["*"])
    back = sent_back(await dialog(http))
    assert back == {
        "error": "access_denied",
        "error_code": "200",
        "error_description": "Permissions error",
        "error_reason": "user_denied",
        "state": "st-42",
    }


@pytest.mark.parametrize(
    ("params", "title"),
    [
        ({"client_id": "999"}, "Invalid App ID"),
        ({"client_id": ""}, "Invalid App ID"),
        ({"redirect_uri": ""}, "URL Blocked"),
        ({"redirect_uri": "/relative/callback"}, "URL Blocked"),
        ({"redirect_uri": "javascript:alert(1)"}, "URL Blocked"),
        ({"response_type": "token"}, "Unsupported response_type"),
    ],
)
async def test_a_dialog_it_cannot_send_back_shows_facebooks_error_page(
    http: httpx.AsyncClient, params: dict[str, str], title: str
) -> None:
    await consent(http)
    response = await dialog(http, **params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert f"<title>{title}</title>" in response.text
    assert "location" not in response.headers


async def test_the_dialog_needs_someone_to_consent(http: httpx.AsyncClient) -> None:
    response = await dialog(http)
    assert response.status_code == 400
    assert "POST /__sim/oauth" in response.text
    await consent(http)
    assert (await dialog(http)).status_code == 302
    await http.post("/__sim/reset")  # reset forgets who consents
    assert (await dialog(http)).status_code == 400


# --------------------------------------------------------------------------- the code exchange


async def test_a_code_is_exchanged_for_a_short_lived_user_token(http: httpx.AsyncClient) -> None:
    await add_page(http)
    await consent(http)
    response = await exchange(http, await new_code(http))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "access_token": USER_TOKEN,
        "token_type": "bearer",
        "expires_in": 3600,
    }
    granted = (await get(http, "me/permissions", USER_TOKEN)).json()
    assert granted == {"data": [{"permission": p, "status": "granted"} for p in GRANTED]}


async def test_a_code_is_single_use(http: httpx.AsyncClient) -> None:
    await add_page(http)
    await consent(http)
    code = await new_code(http)
    assert (await exchange(http, code)).status_code == 200
    again = await exchange(http, code)
    assert again.status_code == 400
    error = error_of(again)
    assert (error["code"], error["error_subcode"], error["type"]) == (100, 36009, "OAuthException")
    assert error["message"] == "This authorization code has been used."
    assert '"invalid_code"' in again.headers["www-authenticate"]


async def test_a_code_expires_after_ten_minutes_of_sim_time(http: httpx.AsyncClient) -> None:
    await add_page(http)
    await consent(http)
    kept, late = await new_code(http), await new_code(http)
    await http.post("/__sim/clock/advance", json={"seconds": 599})
    assert (await exchange(http, kept)).status_code == 200
    await http.post("/__sim/clock/advance", json={"seconds": 1})
    error = error_of(await exchange(http, late))
    assert (error["code"], error["error_subcode"]) == (100, 36007)
    assert error["message"] == "This authorization code has expired."


async def test_the_redirect_uri_must_be_the_dialogs(http: httpx.AsyncClient) -> None:
    await add_page(http)
    await consent(http)
    code = await new_code(http)
    for other in (REDIRECT + "/", "", "http://127.0.0.1:9/elsewhere"):
        error = error_of(await exchange(http, code, redirect_uri=other))
        assert (error["code"], error["error_subcode"]) == (100, 36008)
        assert "redirect_uri is identical" in error["message"]
    assert (await exchange(http, code)).status_code == 200  # a refused exchange used nothing


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ({"code": "AQ-never-given"}, 100, "Invalid verification code format."),
        ({"code": ""}, 100, "Missing authorization code"),
        ({"client_secret": "wrong"}, 1, "Error validating client secret."),
        ({"client_secret": ""}, 1, "Error validating client secret."),
        ({"client_id": "999"}, 101, "Error validating application. Invalid application ID."),
        ({"client_id": ""}, 101, "Missing client_id parameter."),
        ({"grant_type": "password"}, 100, "Invalid grant_type: 'password'."),
    ],
)
async def test_the_token_endpoint_refuses_as_facebook_does(
    http: httpx.AsyncClient, params: dict[str, str], code: int, message: str
) -> None:
    await add_page(http)
    await consent(http)
    good = await new_code(http)
    response = await exchange(http, good, **params)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == code and error["message"].startswith(message)
    assert "error_subcode" not in error
    assert error.get("is_transient", False) is False
    assert (await exchange(http, good)).status_code == 200  # the code is still unused


async def test_an_app_without_a_secret_exchanges_nothing(http: httpx.AsyncClient) -> None:
    await add_page(http)
    await consent(http)
    code = await new_code(http)
    await http.post("/__sim/app", json={"app_secret": None})
    error = error_of(await exchange(http, code))
    assert (error["code"], error["message"]) == (1, "Error validating client secret.")


async def test_client_credentials_give_the_app_token(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/v25.0/oauth/access_token",
        params={
            "client_id": APP_ID,
            "client_secret": APP_SECRET,
            "grant_type": "client_credentials",
        },
    )
    app_token = response.json()["access_token"]
    assert app_token == f"{APP_ID}|{APP_SECRET}"
    me = await get(http, "me", app_token)
    assert me.json()["id"] == APP_ID


# --------------------------------------------------------------------------- long-lived tokens


async def test_a_short_lived_token_is_exchanged_for_a_long_lived_one(
    http: httpx.AsyncClient,
) -> None:
    await add_page(http)
    short = await logged_in(http, user_id="777")
    now = (await http.get("/__sim/clock")).json()["now"]
    response = await long_lived(http, short)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["token_type"] == "bearer" and answer["expires_in"] == 60 * 86400
    long = answer["access_token"]
    assert long != short and long.startswith("EAAL")
    info = (await get(http, "debug_token", f"{APP_ID}|{APP_SECRET}", input_token=long)).json()[
        "data"
    ]
    assert (info["type"], info["is_valid"], info["user_id"]) == ("USER", True, "777")
    assert info["expires_at"] == int(now + 60 * 86400)
    assert info["scopes"] == GRANTED
    # The short-lived token ends after its hour; the long-lived one goes on.
    await http.post("/__sim/clock/advance", json={"seconds": 3601})
    assert error_of(await get(http, "me", short))["error_subcode"] == 463
    assert (await get(http, "me/accounts", long)).status_code == 200


async def test_the_long_lived_exchange_refuses_bad_tokens(http: httpx.AsyncClient) -> None:
    await add_page(http)
    short = await logged_in(http)
    assert error_of(await long_lived(http, "EAAU-unknown"))["code"] == 190
    assert error_of(await long_lived(http, TOKEN))["code"] == 100  # a Page token
    assert error_of(await long_lived(http, short, client_secret="wrong"))["code"] == 1
    await http.post("/__sim/tokens/revoke", json={"access_token": short, "subcode": 460})
    revoked = error_of(await long_lived(http, short))
    assert (revoked["code"], revoked["error_subcode"]) == (190, 460)
    short = await logged_in(http)  # a new login gives the token again
    await http.post("/__sim/clock/advance", json={"seconds": 3601})
    expired = error_of(await long_lived(http, short))
    assert (expired["code"], expired["error_subcode"]) == (190, 463)


# --------------------------------------------------------------------------- what a token sees


async def test_a_declined_permission_is_declined_everywhere(http: httpx.AsyncClient) -> None:
    await add_page(http)
    await add_user(http)
    token = await logged_in(http, decline=["pages_messaging"])
    permissions = (await get(http, "me/permissions", token)).json()["data"]
    assert {"permission": "pages_messaging", "status": "declined"} in permissions
    assert [p["permission"] for p in permissions if p["status"] == "granted"] == [
        g for g in GRANTED if g != "pages_messaging"
    ]
    info = (await get(http, "debug_token", token, input_token=token)).json()["data"]
    assert "pages_messaging" not in info["scopes"]
    # The Page token this person gets carries only what they granted: it cannot send.
    page = (await get(http, "me/accounts", token)).json()["data"][0]
    assert page["id"] == PAGE_ID and page["access_token"] != TOKEN
    refused = error_of(await send(http, text_body(), token=page["access_token"]))
    assert refused["code"] == 200
    assert (await send(http, text_body(), token=TOKEN)).status_code == 200


async def test_accounts_list_the_chosen_pages_with_tokens_that_send(
    http: httpx.AsyncClient,
) -> None:
    await add_page(http)
    await add_page(http, OTHER_PAGE, OTHER_TOKEN, name="Other Shop")
    await add_user(http)
    token = await logged_in(http, pages=[PAGE_ID])
    data = (await get(http, "me/accounts", token)).json()["data"]
    assert [(p["id"], p["name"], p["access_token"]) for p in data] == [
        (PAGE_ID, "Acme Store", TOKEN)
    ]
    assert "MESSAGING" in data[0]["tasks"]
    assert (await send(http, text_body(), token=data[0]["access_token"])).status_code == 200
    # Without "pages": every Page the simulator has.
    everyone = await logged_in(http)
    ids = [p["id"] for p in (await get(http, "me/accounts", everyone)).json()["data"]]
    assert ids == [PAGE_ID, OTHER_PAGE]


async def test_accounts_page_through_cursors(http: httpx.AsyncClient) -> None:
    for page_id, token in ((PAGE_ID, TOKEN), (OTHER_PAGE, OTHER_TOKEN), (THIRD_PAGE, THIRD_TOKEN)):
        await add_page(http, page_id, token)
    token = await logged_in(http)
    first = (await get(http, "me/accounts", token, limit="2")).json()
    assert [p["id"] for p in first["data"]] == [PAGE_ID, OTHER_PAGE]
    assert "previous" not in first["paging"]
    second = (await http.get(first["paging"]["next"])).json()  # absolute, with its token
    assert [p["id"] for p in second["data"]] == [THIRD_PAGE]
    assert "next" not in second["paging"]
    back = (await http.get(second["paging"]["previous"])).json()
    assert [p["id"] for p in back["data"]] == [PAGE_ID, OTHER_PAGE]
    bad = await get(http, "me/accounts", token, after="not-a-cursor")
    assert error_of(bad)["code"] == 100


async def test_without_pages_show_list_accounts_is_empty(http: httpx.AsyncClient) -> None:
    await add_page(http)
    token = await logged_in(http, decline=["pages_show_list"])
    assert (await get(http, "me/accounts", token)).json() == {"data": []}


async def test_permissions_and_accounts_need_a_user_token(http: httpx.AsyncClient) -> None:
    await add_page(http)
    for edge in ("permissions", "accounts"):
        error = error_of(await get(http, f"me/{edge}", TOKEN))
        assert error["code"] == 100
        assert f"({edge}) on node type (Page)" in error["message"]


async def test_debug_token_names_the_pages_of_each_permission(http: httpx.AsyncClient) -> None:
    await add_page(http)
    await add_page(http, OTHER_PAGE, OTHER_TOKEN)
    token = await logged_in(http, user_id="4242")
    app_token = f"{APP_ID}|{APP_SECRET}"
    info = (await get(http, "debug_token", app_token, input_token=token)).json()["data"]
    assert (info["app_id"], info["type"], info["user_id"]) == (APP_ID, "USER", "4242")
    granular = {g["scope"]: g.get("target_ids") for g in info["granular_scopes"]}
    assert granular["pages_messaging"] == [PAGE_ID, OTHER_PAGE]
    assert "public_profile" not in granular
    page_info = (await get(http, "debug_token", app_token, input_token=TOKEN)).json()["data"]
    assert {g["scope"]: g["target_ids"] for g in page_info["granular_scopes"]} == {
        s: [PAGE_ID] for s in GRANTED[1:]
    }


# --------------------------------------------------------------------------- control plane


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({}, 400, '"user_token"'),
        ({"user_token": ""}, 400, '"user_token"'),
        ({"user_token": "U", "decline": "pages_messaging"}, 400, '"decline"'),
        ({"user_token": "U", "decline": [1]}, 400, '"decline"'),
        ({"user_token": "U", "user_id": True}, 400, '"user_id"'),
        ({"user_token": "U", "pages": "1"}, 400, '"pages"'),
        ({"user_token": "U", "pages": ["404404"]}, 404, "POST /__sim/pages"),
        ({"user_token": "U", "scopes": []}, 400, "'scopes'"),
    ],
)
async def test_choosing_who_consents_refuses_bad_bodies(
    http: httpx.AsyncClient, body: dict[str, Any], status: int, says: str
) -> None:
    response = await http.post("/__sim/oauth", json=body)
    assert response.status_code == status
    assert says in response.json()["error"]
    assert (await dialog(http)).status_code == 400  # nobody was chosen


async def test_the_control_plane_answers_the_consent_and_the_app(
    http: httpx.AsyncClient,
) -> None:
    await add_page(http)
    answer = await consent(http, decline=["pages_messaging"], pages=[int(PAGE_ID)])
    assert answer == {
        "user_token": USER_TOKEN,
        "user_id": "10000000000001",
        "decline": ["pages_messaging"],
        "pages": [PAGE_ID],
    }
    assert (await http.get("/__sim/app")).json()["app_id"] == APP_ID
