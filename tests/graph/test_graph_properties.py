"""Whatever the server answers, the client returns a result or raises `GraphError`, nothing else."""

from __future__ import annotations

import json
from typing import Any

import httpx
from graph_support import TOKEN, LoopbackGraph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pagecast.graph import BatchMessage, GraphClient, GraphError, PageCredentials, make_http_client

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
_error_like = st.fixed_dictionaries(
    {
        "error": st.dictionaries(
            st.sampled_from(
                ["message", "code", "error_subcode", "fbtrace_id", "is_transient", "type"]
            ),
            _json_values | st.integers(min_value=-5, max_value=10**7),
        )
    }
)
_batch_like = st.lists(
    st.none()
    | _json_values
    | st.fixed_dictionaries(
        {
            "code": st.integers(min_value=0, max_value=700) | _json_values,
            "body": st.text(max_size=40)
            | _json_values.map(json.dumps)
            | _error_like.map(json.dumps),
            "headers": st.lists(
                st.dictionaries(st.sampled_from(["name", "value"]), st.text(max_size=30))
            )
            | _json_values,
        }
    ),
    max_size=6,
)
_bodies = (
    st.binary(max_size=200)
    | _json_values.map(lambda v: json.dumps(v).encode())
    | _error_like.map(lambda v: json.dumps(v).encode())
    | _batch_like.map(lambda v: json.dumps(v).encode())
)
_header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
_headers = st.dictionaries(
    st.sampled_from(
        ["x-business-use-case-usage", "x-app-usage", "x-page-usage", "retry-after", "content-type"]
    ),
    _header_values | _json_values.map(json.dumps).filter(lambda s: s.isascii()),
    max_size=4,
)
# A 1xx is never a final answer on the wire, so statuses start at 200.
_responses = st.tuples(st.integers(min_value=200, max_value=599), _headers, _bodies)
# `drop`: the server reads the request and goes away without an answer. Other transport
# failures are in test_graph_transport.py.
_failures = st.sampled_from([None, "drop"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    response=_responses,
    failure=_failures,
    call=st.sampled_from(["send", "batch", "me", "profile", "threads"]),
)
async def test_any_response_gives_result_or_graph_error(
    loopback_graph: LoopbackGraph,
    response: tuple[int, dict[str, str], bytes],
    failure: str | None,
    call: str,
) -> None:
    status, headers, body = response

    def handler(request: httpx.Request) -> httpx.Response:
        if failure is not None:
            raise ConnectionAbortedError(failure)
        return httpx.Response(status, headers=headers, content=body)

    creds = PageCredentials(TOKEN, "secret")
    loopback_graph.handler = handler
    async with make_http_client(loopback_graph.url, connect_timeout=2, read_timeout=5) as http:
        graph = GraphClient(http, version="v25.0")
        try:
            result: Any
            if call == "send":
                result = await graph.send_message(creds, psid="1", message={"text": "hi"})
            elif call == "batch":
                result = await graph.send_batch(
                    creds, [BatchMessage(psid=str(i), message={"text": "hi"}) for i in range(3)]
                )
                assert len(result) == 3
            elif call == "me":
                result = await graph.get_me(creds)
            elif call == "profile":
                result = await graph.get_profile(creds, "1")
            else:
                result = [t async for t in graph.iter_conversations(creds, "PAGE", limit=5)]
        except GraphError as exc:
            assert TOKEN not in str(exc) and TOKEN not in repr(exc)
            assert exc.kind is not None
            # An answer, however odd, is read as one: never taken for a transport failure.
            assert failure is not None or "the request was sent" not in str(exc), exc
        else:
            assert TOKEN not in repr(result)
