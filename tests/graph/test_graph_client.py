"""Request shapes and response mapping of `GraphClient`, against a loopback stand-in server.

Transport failures (drops, resets, timeouts, keep-alive) are in test_graph_transport.py."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
import pytest
from graph_support import APP_SECRET, TOKEN, graph_error

from pagecast.graph import (
    BatchMessage,
    ErrorKind,
    GraphClient,
    GraphError,
    PageCredentials,
    SendResult,
    appsecret_proof,
    make_http_client,
)


class Recorder:
    """A MockTransport handler that records requests and answers from a list or a function."""

    def __init__(self, *responses: httpx.Response | Callable[[httpx.Request], httpx.Response]):
        self.requests: list[httpx.Request] = []
        self._responses = list(responses)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self._responses.pop(0) if len(self._responses) > 1 else self._responses[0]
        return answer(request) if callable(answer) else answer


def ok(body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.Response(200, json=body, **kwargs)


async def test_send_message_request_shape(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials
) -> None:
    rec = Recorder(ok({"recipient_id": "123", "message_id": "m_abc"}))
    graph = mock_graph(rec)
    message = {
        "text": "Summer sale!",
        "quick_replies": [{"content_type": "text", "title": "Show me", "payload": "C42_SHOW"}],
    }
    result = await graph.send_message(
        creds, psid="123", message=message, metadata="delivery=77", notification_type="SILENT_PUSH"
    )
    assert result == SendResult(recipient_id="123", message_id="m_abc", usage=result.usage)
    (request,) = rec.requests
    assert request.method == "POST" and request.url.path == "/v25.0/me/messages"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(request.url) and "appsecret_proof" not in str(request.url)
    assert json.loads(request.content) == {
        "recipient": {"id": "123"},
        "messaging_type": "UPDATE",
        "message": {**message, "metadata": "delivery=77"},
        "notification_type": "SILENT_PUSH",
    }
    assert "metadata" not in message  # the caller's dict is not modified


async def test_send_attachment_template_and_tag(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials
) -> None:
    rec = Recorder(ok({"recipient_id": "9", "message_id": "m_1", "attachment_id": "185"}))
    graph = mock_graph(rec)
    image = {
        "attachment": {
            "type": "image",
            "payload": {"url": "https://x.y/a.jpg", "is_reusable": True},
        }
    }
    result = await graph.send_message(creds, psid="9", message=image)
    assert result.attachment_id == "185"
    buttons = {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "button",
                "text": "Next?",
                "buttons": [{"type": "postback", "title": "Start", "payload": "START"}],
            },
        }
    }
    await graph.send_message(
        creds, psid="9", message=buttons, messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT"
    )
    body = json.loads(rec.requests[1].content)
    assert (body["messaging_type"], body["tag"], body["message"]) == (
        "MESSAGE_TAG",
        "HUMAN_AGENT",
        buttons,
    )


async def test_sender_action(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials
) -> None:
    rec = Recorder(ok({"recipient_id": "5"}))
    result = await mock_graph(rec).send_sender_action(creds, psid="5", action="typing_on")
    assert (result.recipient_id, result.message_id) == ("5", None)
    assert json.loads(rec.requests[0].content) == {
        "recipient": {"id": "5"},
        "sender_action": "typing_on",
    }


async def test_appsecret_proof_in_query_when_page_has_secret(
    mock_graph: Callable[..., GraphClient], creds_with_secret: PageCredentials
) -> None:
    rec = Recorder(ok({"id": "1234", "name": "Acme Store"}))
    me = await mock_graph(rec).get_me(creds_with_secret)
    assert (me.id, me.name) == ("1234", "Acme Store")
    request = rec.requests[0]
    assert request.url.path == "/v25.0/me"
    assert request.url.params["fields"] == "id,name"
    assert request.url.params["appsecret_proof"] == appsecret_proof(TOKEN, APP_SECRET)
    assert "access_token" not in request.url.params


async def test_get_me_without_id_is_retryable_error(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials
) -> None:
    with pytest.raises(GraphError) as info:
        await mock_graph(Recorder(ok({"name": "x"}))).get_me(creds)
    assert info.value.kind is ErrorKind.RETRY


async def test_profile(mock_graph: Callable[..., GraphClient], creds: PageCredentials) -> None:
    body = {
        "first_name": "Jane",
        "last_name": "Doe",
        "profile_pic": "https://p/x?ext=1&hash=A",
        "id": "65",
    }
    rec = Recorder(ok(body))
    profile = await mock_graph(rec).get_profile(creds, "65")
    assert (profile.id, profile.first_name, profile.last_name) == ("65", "Jane", "Doe")
    assert rec.requests[0].url.path == "/v25.0/65"
    assert rec.requests[0].url.params["fields"] == "first_name,last_name,profile_pic,name"


@pytest.mark.parametrize(
    ("response", "kind", "unavailable"),
    [
        (graph_error(2018218), ErrorKind.BAD_REQUEST, True),
        (graph_error(2018247), ErrorKind.BAD_REQUEST, True),
        (
            graph_error(100, 33, message="Unsupported get request."),
            ErrorKind.RECIPIENT_UNREACHABLE,
            False,
        ),
        (graph_error(80001), ErrorKind.THROTTLE, False),
    ],
)
async def test_profile_errors(
    mock_graph: Callable[..., GraphClient],
    creds: PageCredentials,
    response: httpx.Response,
    kind: ErrorKind,
    unavailable: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pagecast.graph.client")
    with pytest.raises(GraphError) as info:
        await mock_graph(Recorder(response)).get_profile(creds, "65")
    assert info.value.kind is kind and info.value.profile_unavailable is unavailable
    # The log line names the kind the caller gets (an unknown PSID is no Page problem).
    (line,) = [r.getMessage() for r in caplog.records if "GET 65 failed" in r.getMessage()]
    assert f"kind={kind.value} " in line


def _thread(n: int, *, user_last: str | None = "2026-05-01T10:00:00+0000") -> dict[str, Any]:
    messages = [
        {
            "id": f"m_p{n}",
            "message": "hi",
            "from": {"id": "PAGE"},
            "created_time": "2026-05-01T12:00:00+0000",
        }
    ]
    if user_last:
        messages.append(
            {"id": f"m_u{n}", "message": "yo", "from": {"id": f"u{n}"}, "created_time": user_last}
        )
    return {
        "id": f"t_{n}",
        "updated_time": "2026-05-01T12:00:00+0000",
        "participants": {
            "data": [
                {"name": f"U {n}", "email": f"u{n}@facebook.com", "id": f"u{n}"},
                {"name": "Acme", "id": "PAGE"},
            ]
        },
        "messages": {"data": messages},
    }


async def test_conversations_follow_next_dedupe_and_drop_token(
    mock_graph: Callable[..., GraphClient], creds_with_secret: PageCredentials
) -> None:
    next_1 = "https://graph.facebook.com/v25.0/PAGE/conversations?platform=messenger&limit=2&after=C1&access_token=LEAKED"
    next_2 = "https://evil.example/v25.0/PAGE/conversations?platform=messenger&limit=2&after=C2"
    rec = Recorder(
        ok(
            {
                "data": [_thread(1), _thread(2)],
                "paging": {"cursors": {"after": "C1"}, "next": next_1},
            }
        ),
        ok({"data": [_thread(2), _thread(3, user_last=None)], "paging": {"next": next_2}}),
        ok({"data": [_thread(4)], "paging": {"cursors": {"before": "C3"}}}),
    )
    graph = mock_graph(rec)
    threads = [t async for t in graph.iter_conversations(creds_with_secret, "PAGE", limit=2)]
    assert [t.id for t in threads] == ["t_1", "t_2", "t_3", "t_4"]
    assert threads[0].psid == "u1" and threads[0].user is not None and threads[0].user.name == "U 1"
    assert threads[0].last_user_message_at is not None
    assert threads[0].last_user_message_at.isoformat() == "2026-05-01T10:00:00+00:00"
    assert threads[2].last_user_message_at is None
    assert len(rec.requests) == 3
    for request in rec.requests:
        assert (
            request.url.host == "graph.facebook.com"
            and request.url.path == "/v25.0/PAGE/conversations"
        )
        assert request.url.params.get("access_token") is None
        assert request.url.params["appsecret_proof"] == appsecret_proof(TOKEN, APP_SECRET)
    assert [r.url.params.get("after") for r in rec.requests] == [None, "C1", "C2"]
    assert "messages.limit" in rec.requests[0].url.params["fields"]


async def test_conversations_garbage_page_is_retry(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials
) -> None:
    graph = mock_graph(Recorder(ok({"data": "nope"})))
    with pytest.raises(GraphError) as info:
        [t async for t in graph.iter_conversations(creds, "PAGE")]
    assert info.value.kind is ErrorKind.RETRY


def _op(code: int, body: Any, headers: list[dict[str, str]] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"code": code, "body": json.dumps(body)}
    if headers is not None:
        item["headers"] = headers
    return item


async def test_batch_request_shape_and_mixed_results(
    mock_graph: Callable[..., GraphClient], creds_with_secret: PageCredentials
) -> None:
    usage = '{"PAGE":[{"type":"messenger","call_count":3,"total_cputime":1,"total_time":1}]}'
    answer = [
        _op(
            200,
            {"recipient_id": "1", "message_id": "m_1"},
            [{"name": "x-business-use-case-usage", "value": usage}],
        ),
        _op(
            400,
            {
                "error": {
                    "message": "(#551) This person isn't available right now.",
                    "code": 551,
                    "error_subcode": 1545041,
                    "fbtrace_id": "AbC",
                }
            },
        ),
        None,
        _op(
            400,
            {"error": {"message": "(#10) outside window", "code": 10, "error_subcode": 2018278}},
        ),
        _op(503, "<html>"),
        "garbage",
    ]
    rec = Recorder(ok(answer))
    messages = [
        BatchMessage(psid=str(i), message={"text": f"hi {i}"}, metadata=f"d{i}") for i in range(7)
    ]
    results = await mock_graph(rec).send_batch(creds_with_secret, messages)
    assert isinstance(results[0], SendResult) and results[0].message_id == "m_1"
    assert results[0].usage.max_percent == 3
    kinds = [r.kind if isinstance(r, GraphError) else "ok" for r in results]
    assert kinds == [
        "ok",
        ErrorKind.RECIPIENT_UNREACHABLE,
        ErrorKind.AMBIGUOUS,
        ErrorKind.OUTSIDE_WINDOW,
        ErrorKind.RETRY,
        ErrorKind.AMBIGUOUS,
        ErrorKind.AMBIGUOUS,
    ]
    request = rec.requests[0]
    assert request.url.path == "/v25.0/" and request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"  # a batch as a JSON array
    body = json.loads(request.content)
    assert body["include_headers"] is True
    ops = body["batch"]
    assert len(ops) == 7
    proof = appsecret_proof(TOKEN, APP_SECRET)
    assert (
        ops[0]["method"] == "POST"
        and ops[0]["relative_url"] == f"v25.0/me/messages?appsecret_proof={proof}"
    )
    op_body = {k: v[0] for k, v in parse_qs(ops[0]["body"]).items()}
    assert op_body["access_token"] == TOKEN and op_body["messaging_type"] == "UPDATE"
    assert json.loads(op_body["recipient"]) == {"id": "0"}
    assert json.loads(op_body["message"]) == {"text": "hi 0", "metadata": "d0"}


async def test_batch_whole_request_error_raises(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials
) -> None:
    graph = mock_graph(Recorder(graph_error(100, message="too many requests in batch")))
    with pytest.raises(GraphError) as info:
        await graph.send_batch(creds, [BatchMessage(psid="1", message={"text": "x"})] * 51)
    assert info.value.kind is ErrorKind.BAD_REQUEST


async def test_unreadable_2xx_send_is_ambiguous(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials
) -> None:
    graph = mock_graph(Recorder(httpx.Response(200, text="<html>ok</html>")))
    with pytest.raises(GraphError) as info:
        await graph.send_message(creds, psid="1", message={"text": "hi"})
    assert info.value.kind is ErrorKind.AMBIGUOUS


async def test_make_http_client_settings() -> None:
    http = make_http_client(
        "http://127.0.0.1:9", connect_timeout=1.5, read_timeout=12.0, max_connections=300
    )
    async with http:
        assert http.timeout.sock_connect == 1.5 and http.timeout.sock_read == 12.0
        # A free connection within 60 s (plus the connect); the whole request within the
        # connection, a hold and twice the read timeout (aiohttp has no write timeout).
        assert http.timeout.connect == 61.5 and http.timeout.total == 61.5 + 1.0 + 24.0
        assert str(http.base_url) == "http://127.0.0.1:9"
        graph = GraphClient(http, version="v25.0")
        with pytest.raises(GraphError) as info:  # nothing listens on port 9
            await graph.send_message(PageCredentials(TOKEN), psid="1", message={"text": "hi"})
        assert info.value.kind is ErrorKind.RETRY


async def test_subscribe_app_and_list(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials
) -> None:
    rec = Recorder(
        ok({"success": True}),
        ok({"data": [{"id": "APP", "name": "Pagecast", "subscribed_fields": ["messages"]}]}),
    )
    graph = mock_graph(rec)
    assert await graph.subscribe_app(creds, "PAGE", fields=["messages", "message_echoes"])
    apps = await graph.subscribed_apps(creds, "PAGE")
    assert [a["id"] for a in apps] == ["APP"]
    assert (
        rec.requests[0].method == "POST"
        and rec.requests[0].url.path == "/v25.0/PAGE/subscribed_apps"
    )
    assert rec.requests[0].url.params["subscribed_fields"] == "messages,message_echoes"
    assert rec.requests[1].method == "GET"


@pytest.mark.parametrize("odd", ["../me/accounts", "12?fields=id", "a b#c", "x/y"])
async def test_an_id_is_one_path_segment_whatever_it_holds(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials, odd: str
) -> None:
    rec = Recorder(ok({"id": odd, "first_name": "A"}), ok({"data": []}))
    graph = mock_graph(rec)
    await graph.get_profile(creds, odd)
    assert await graph.subscribed_apps(creds, odd) == []
    for request, suffix in zip(rec.requests, ["", "/subscribed_apps"], strict=True):
        assert request.url.raw_path.decode().split("?")[0] == (
            "/v25.0/" + quote(odd, safe="") + suffix
        )


@pytest.mark.parametrize("odd", ["", ".", ".."])
async def test_an_id_a_server_would_resolve_to_another_path_is_refused_before_sending(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials, odd: str
) -> None:
    rec = Recorder(ok({}))
    graph = mock_graph(rec)
    with pytest.raises(GraphError) as info:
        await graph.get_profile(creds, odd)
    assert info.value.kind is ErrorKind.BAD_REQUEST
    with pytest.raises(GraphError):
        await graph.subscribed_apps(creds, odd)
    assert rec.requests == []
