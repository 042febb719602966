"""Every row of the code table (docs/graph-errors.md) -> `ErrorKind`, parsed from a real envelope via MockTransport."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from graph_support import graph_error

from pagecast.graph import ErrorKind, GraphClient, GraphError, PageCredentials, classify

R = ErrorKind.RETRY
T = ErrorKind.THROTTLE
S = ErrorKind.STOP_PAGE
U = ErrorKind.RECIPIENT_UNREACHABLE
W = ErrorKind.OUTSIDE_WINDOW
B = ErrorKind.BAD_REQUEST

APPSECRET_MISSING = "API calls from the server require an appsecret_proof argument"
APPSECRET_INVALID = "Invalid appsecret_proof provided in the API argument"

# (code, subcode, message, HTTP status, expected kind): one line per row of docs/graph-errors.md.
TABLE: list[tuple[int, int | None, str, int, ErrorKind]] = [
    (1, None, "An unknown error has occurred.", 500, R),
    (1, 99, "An unknown error occurred", 500, R),
    (1, 1357046, "Received Invalid JSON reply.", 500, R),
    (2, None, "An unexpected error has occurred. Please retry your request later.", 500, R),
    (2, 2018344, "(privacy terms)", 400, B),
    (4, None, "(#4) Application request limit reached", 400, T),
    (4, 2018022, "(#4) too many phone sends", 400, T),
    (4, 2018354, "(#4) minimum delay between marketing messages", 400, W),
    (9, 2018352, "(#9) too many actions", 400, W),
    (10, None, "(#10) Application does not have permission for this action", 400, S),
    (10, 2018278, "(#10) This message is sent outside of allowed window.", 400, W),
    (10, 2018065, "(#10) This message is sent outside of allowed window. ...", 400, W),
    (10, 2018108, "This person isn't available right now", 400, U),
    (10, 1893015, "(#10) user stopped notifications", 400, U),
    (10, 2018336, "(#10) thread restriction", 400, W),
    (10, 1893063, "You are temporarily restricted from sending messages", 400, S),
    (10, 1404170, "(#10) listed without detail", 400, S),
    (10, 2534022, "(#10) outside allowed window (IG)", 400, W),
    (17, None, "(#17) User request limit reached", 400, T),
    (32, None, "(#32) Page request limit reached", 400, T),
    (100, None, "(#100) Invalid parameter", 400, B),
    (100, None, APPSECRET_MISSING, 400, S),
    (100, None, APPSECRET_INVALID, 400, S),
    (100, 33, "(#100) Unsupported post request. Object with ID '1' does not exist", 400, S),
    (100, 2018001, "(#100) No matching user found", 400, U),
    (100, 2018008, "(#100) Failed to fetch the file from the url", 400, B),
    (100, 2018014, "(#100) state error", 400, B),
    (100, 2018032, "(#100) Invalid data", 400, B),
    (100, 2018034, "Message cannot be empty, must provide valid attachment or text", 400, B),
    (100, 2018047, "(#100) upload attachment failure", 400, R),
    (100, 2018074, "(#100) invalid attachment id", 400, B),
    (100, 2018109, "Attachment size exceeds allowable limit", 400, B),
    (100, 2018164, "(#100) incorrect app id", 400, S),
    (100, 2018294, "(#100) video upload timed out", 400, R),
    (100, 2018320, "(#100) product template error", 400, B),
    (100, 2018328, "(#100) product template error", 400, B),
    (104, None, "An access token is required to request this resource.", 400, S),
    (190, None, "Invalid OAuth access token - Cannot parse access token", 400, S),
    (190, 458, "Error validating access token: The user has not authorized application", 400, S),
    (190, 459, "user checkpointed", 400, S),
    (190, 460, "Error validating access token: The session has been invalidated", 400, S),
    (190, 463, "Error validating access token: Session has expired", 400, S),
    (190, 464, "unconfirmed user", 400, S),
    (190, 467, "invalid access token", 400, S),
    (190, 492, "invalid session", 400, S),
    (200, None, "(#200) Requires pages_messaging permission to manage the object", 403, S),
    (200, 2018028, "(#200) Cannot message users who are not admins, developers or testers", 400, S),
    (200, 1545041, "This person isn't available right now.", 400, U),
    (200, 2018021, "(#200) phone matching terms", 400, B),
    (200, 2018027, "(#200) permission for this feature", 400, S),
    (230, None, "(#230) Permissions disallow message to user", 400, U),
    (341, None, "(#341) Application limit reached", 400, T),
    (368, 1390008, "(#368) The action attempted has been deemed abusive", 400, S),
    (368, 1346003, "(#368) The action attempted has been deemed abusive", 400, S),
    (551, None, "(#551) This person isn't available right now.", 400, U),
    (551, 1545041, "(#551) This person isn't available right now.", 400, U),
    (613, None, "(#613) Calls to this api have exceeded the rate limit.", 400, T),
    (613, 1893016, "(#613) rate limit", 400, T),
    (613, 1996, "(#613) inconsistent request volume", 400, T),
    (613, 2018338, "Warning! ... could be considered bothersome or abusive", 400, T),
    (613, 2534040, "(#613) IG rate limit", 400, T),
    (1200, None, "(#1200) Temporary send message failure. Please try again later", 500, R),
    (1200, 2018024, "(#1200) Temporary send message failure. Please try again later", 400, R),
    (2022, None, "(#2022) commerce messages disabled", 400, S),
    (2500, None, "Unknown path components", 400, B),
    (80001, None, "(#80001) There have been too many calls to this Page account.", 400, T),
    (80004, None, "(#80004) There have been too many calls to this ad-account.", 400, T),
    (
        80006,
        None,
        "(#80006) There have been too many messenger api calls to this Page account.",
        400,
        T,
    ),
    (2018218, None, "(no profile)", 400, B),
    (2018247, None, "(insufficient permission for profile)", 400, B),
    (2018300, None, "(another app controls the thread)", 400, W),
    (2018321, None, "(automated Q&A flow controls the chat)", 400, W),
    (10303, None, "(account linking)", 400, B),
    (9000001, None, "(target deleted)", 400, U),
    (100, 2018316, "(#100) undocumented subcode", 400, B),
    (10, 2022003, "(#10) undocumented subcode", 400, S),
    (555555, None, "unknown code", 400, B),
]


@pytest.mark.parametrize(("code", "subcode", "message", "status", "kind"), TABLE)
def test_classify_table_row(
    code: int, subcode: int | None, message: str, status: int, kind: ErrorKind
) -> None:
    assert classify(code, subcode, message=message, http_status=status) is kind


@pytest.mark.parametrize(("code", "subcode", "message", "status", "kind"), TABLE)
async def test_send_raises_classified_graph_error(
    mock_graph: Callable[..., GraphClient],
    creds: PageCredentials,
    code: int,
    subcode: int | None,
    message: str,
    status: int,
    kind: ErrorKind,
) -> None:
    graph = mock_graph(lambda request: graph_error(code, subcode, message=message, status=status))
    with pytest.raises(GraphError) as info:
        await graph.send_message(creds, psid="123", message={"text": "hi"})
    error = info.value
    assert (error.kind, error.code, error.subcode) == (kind, code, subcode)
    assert (error.status, error.fbtrace_id, error.graph_message) == (status, "AbCdEf12345", message)
    assert str(code) in str(error) and "AbCdEf12345" in str(error)
    assert (error.regain_seconds is not None) == (kind is ErrorKind.THROTTLE)


def test_unknown_code_with_is_transient_is_retry() -> None:
    assert classify(424242, None, is_transient=True) is ErrorKind.RETRY


@pytest.mark.parametrize(
    ("status", "kind"),
    [(500, R), (502, R), (503, R), (504, R), (429, T), (400, B), (404, B), (401, B)],
)
async def test_raw_status_without_graph_body(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials, status: int, kind: ErrorKind
) -> None:
    graph = mock_graph(lambda request: httpx.Response(status, text="<html>Bad Gateway</html>"))
    with pytest.raises(GraphError) as info:
        await graph.send_message(creds, psid="1", message={"text": "hi"})
    assert info.value.kind is kind and info.value.status == status and info.value.code is None


async def test_raw_429_uses_retry_after(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials
) -> None:
    graph = mock_graph(lambda request: httpx.Response(429, headers={"Retry-After": "7"}))
    with pytest.raises(GraphError) as info:
        await graph.get_me(creds)
    assert info.value.kind is T and info.value.regain_seconds == 7.0


async def test_throttle_regain_from_usage_header_minutes(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials
) -> None:
    header = (
        '{"1234567890":[{"type":"messenger","call_count":100,"total_cputime":4,'
        '"total_time":6,"estimated_time_to_regain_access":17}]}'
    )
    graph = mock_graph(
        lambda request: graph_error(80006, headers={"X-Business-Use-Case-Usage": header})
    )
    with pytest.raises(GraphError) as info:
        await graph.send_message(creds, psid="1", message={"text": "hi"})
    assert info.value.kind is T and info.value.regain_seconds == 17 * 60
    assert info.value.usage.max_percent == 100


async def test_throttle_without_header_gets_default(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials
) -> None:
    graph = mock_graph(lambda request: graph_error(613))
    with pytest.raises(GraphError) as info:
        await graph.send_message(creds, psid="1", message={"text": "hi"})
    assert info.value.regain_seconds == 60.0 and not info.value.usage.present


async def test_spam_warning_flag(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials
) -> None:
    graph = mock_graph(lambda request: graph_error(613, 2018338))
    with pytest.raises(GraphError) as info:
        await graph.send_message(creds, psid="1", message={"text": "hi"})
    assert info.value.spam_warning and info.value.kind is T


async def test_error_body_with_http_200_is_still_an_error(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials
) -> None:
    graph = mock_graph(lambda request: graph_error(551, status=200))
    with pytest.raises(GraphError) as info:
        await graph.send_message(creds, psid="1", message={"text": "hi"})
    assert info.value.kind is U


async def test_graph_error_pickles(
    mock_graph: Callable[..., GraphClient], creds: PageCredentials
) -> None:
    import pickle

    graph = mock_graph(lambda request: graph_error(190, 460))
    with pytest.raises(GraphError) as info:
        await graph.get_me(creds)
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.kind, copy.code, copy.subcode, str(copy)) == (S, 190, 460, str(info.value))
