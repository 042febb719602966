"""Usage header parsing (docs/graph-api.md, "Usage headers"): shapes, case, garbage, and usage on successes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from pagecast.graph import GraphClient, PageCredentials, Usage

BUC = (
    '{"1234567890123456":[{"type":"messenger","call_count":12,"total_cputime":3,'
    '"total_time":5,"estimated_time_to_regain_access":0}]}'
)


def test_business_use_case_header() -> None:
    usage = Usage.from_headers({"X-Business-Use-Case-Usage": BUC})
    (entry,) = usage.entries
    assert (entry.source, entry.object_id, entry.type) == (
        "business",
        "1234567890123456",
        "messenger",
    )
    assert (entry.call_count, entry.total_time, entry.total_cputime) == (12, 5, 3)
    assert usage.max_percent == 12 and usage.regain_seconds == 0 and usage.present


def test_throttled_buc_regain_is_minutes_times_sixty() -> None:
    header = (
        '{"1":[{"type":"messenger","call_count":100,"total_cputime":7,"total_time":9,'
        '"estimated_time_to_regain_access":17}],'
        '"2":[{"type":"pages","call_count":40,"total_cputime":1,"total_time":1,'
        '"estimated_time_to_regain_access":3}]}'
    )
    usage = Usage.from_headers({"x-business-use-case-usage": header})
    assert usage.regain_seconds == 17 * 60 and usage.max_percent == 100
    assert [e.type for e in usage.for_object("2")] == ["pages"]


def test_app_and_legacy_page_usage_above_100_percent() -> None:
    usage = Usage.from_headers(
        {
            "X-App-Usage": '{"call_count":28,"total_time":25,"total_cputime":25}',
            "X-Page-Usage": '{"call_count":855,"total_cputime":202,"total_time":911}',
        }
    )
    assert sorted(e.source for e in usage.entries) == ["app", "page"]
    assert usage.max_percent == 911


def test_header_names_are_case_insensitive_in_httpx_headers() -> None:
    headers = httpx.Headers({"X-BUSINESS-USE-CASE-USAGE": BUC})
    assert Usage.from_headers(headers).max_percent == 12


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "[]",
        "null",
        '{"1": 5}',
        '{"1": [1, "x", null]}',
        '{"1":[{"type":3}]}',
        '{"call_count": "NaN"}',
        "{" * 5000,
    ],
)
def test_garbage_headers_never_raise(raw: str) -> None:
    usage = Usage.from_headers(
        {"x-business-use-case-usage": raw, "x-app-usage": raw, "x-page-usage": raw}
    )
    assert usage.max_percent >= 0 and usage.regain_seconds >= 0


def test_absent_headers_give_empty_usage() -> None:
    usage = Usage.from_headers({})
    assert not usage.present and usage.max_percent == 0 and usage.regain_seconds == 0


async def test_successful_send_carries_usage(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials
) -> None:
    high = BUC.replace('"call_count":12', '"call_count":93')
    graph = mock_graph(
        lambda request: httpx.Response(
            200,
            json={"recipient_id": "1", "message_id": "m_1"},
            headers={"x-business-use-case-usage": high},
        )
    )
    result = await graph.send_message(creds, psid="1", message={"text": "hi"})
    assert result.usage.max_percent == 93 and result.usage.max_percent >= 90
