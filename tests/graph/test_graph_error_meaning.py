"""What a Graph error means beyond its kind, decided once in graph/errors.py: the per-second
613, a revoked token, and how a code is written for people."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from graph_support import graph_error

from pagecast.graph import (
    GraphClient,
    GraphError,
    PageCredentials,
    code_text,
    is_per_second_limit,
    revokes_token,
)

_REGAIN = (
    '{"1234567890":[{"type":"messenger","call_count":100,"total_cputime":4,'
    '"total_time":6,"estimated_time_to_regain_access":3}]}'
)


@pytest.mark.parametrize(
    ("code", "subcode", "regain", "expected"),
    [
        (613, None, 0.0, True),  # over the Page's rate this second
        (613, None, 180.0, False),  # a spent budget: the usage header says when it comes back
        (613, 2018338, 0.0, False),  # the spam warning
        (4, None, 0.0, False),
        (80006, None, 0.0, False),
        (None, None, 0.0, False),
    ],
)
def test_per_second_limit(
    code: int | None, subcode: int | None, regain: float, expected: bool
) -> None:
    assert is_per_second_limit(code, subcode, regain) is expected


@pytest.mark.parametrize(
    ("code", "expected"), [(190, True), (10, False), (200, False), (613, False), (None, False)]
)
def test_revokes_token(code: int | None, expected: bool) -> None:
    assert revokes_token(code) is expected


@pytest.mark.parametrize(
    ("code", "subcode", "text"),
    [(613, 2018338, "613/2018338"), (190, None, "190"), (100, 33, "100/33"), (None, None, "None")],
)
def test_code_text(code: int | None, subcode: int | None, text: str) -> None:
    assert code_text(code, subcode) == text


@pytest.mark.parametrize(
    ("response", "per_second", "revoked", "text"),
    [
        (lambda: graph_error(613), True, False, "613"),
        (
            lambda: graph_error(613, headers={"X-Business-Use-Case-Usage": _REGAIN}),
            False,
            False,
            "613",
        ),
        (lambda: graph_error(613, 2018338), False, False, "613/2018338"),
        (lambda: graph_error(190, 460), False, True, "190/460"),
        (lambda: graph_error(10, 1893063), False, False, "10/1893063"),
    ],
)
async def test_an_answered_error_carries_its_meaning(
    mock_graph: Callable[..., GraphClient],
    creds: PageCredentials,
    response: Callable[[], object],
    per_second: bool,
    revoked: bool,
    text: str,
) -> None:
    graph = mock_graph(lambda request: response())
    with pytest.raises(GraphError) as info:
        await graph.send_message(creds, psid="1", message={"text": "hi"})
    assert info.value.per_second_limit is per_second
    assert info.value.revokes_token is revoked
    assert info.value.code_text == text
    assert f"Graph error {text} (" in info.value.message
