"""Review and test before sending (issue 19): a campaign's review (eligible now, excluded by
reason, rate, expected duration, the message for a real person), testers of a Page, and test
sends through the real Graph client to the simulator, refused in words for anyone who is not
a reachable tester of the campaign's Page, recorded in the audit trail and nowhere else."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select

from factories import ADMIN_ACTOR, SIM_TOKEN, app_client, create_user, sim_page
from pagecast import tester_sends
from pagecast.db import Database
from pagecast.models import AuditLog, Delivery, MessagingType, Page, PageStatus, Role, utcnow
from pagecast.ratelimit import PageLimiter
from pagecast.services import pacing, review
from pagecast.settings import Settings
from pagecast.web.app import create_app

PAGE = "1001"


@pytest.fixture
async def manager(api: Any) -> httpx.AsyncClient:
    return await api(Role.MANAGER)


@pytest.fixture
async def page_id(api: Any, sim: httpx.AsyncClient) -> int:
    """A Page connected through the simulator (the test sends go there), 4 messages a second."""
    await sim_page(sim, page_id=PAGE)
    admin = await api(Role.ADMIN)
    connected = await admin.post("/api/pages", json={"access_token": SIM_TOKEN, "send_rate": 4})
    assert connected.status_code == 201, connected.text
    return int(connected.json()["id"])


def hours_ago(hours: float) -> str:
    return (utcnow() - timedelta(hours=hours)).isoformat()


async def person(
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    page: int,
    psid: str,
    *,
    in_sim: bool = True,
    **fields: Any,
) -> int:
    """A contact of the Page (and, `in_sim`, a person the simulator's Page can message)."""
    if in_sim:
        body = {"page_id": PAGE, "psid": psid, "first_name": fields.get("first_name", "P")}
        added = await sim.post("/__sim/users", json=[body | {"last_user_action": "now"}])
        assert added.status_code in (200, 201), added.text
    created = await manager.post(f"/api/pages/{page}/contacts", json={"psid": psid} | fields)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def draft(manager: httpx.AsyncClient, page: int, **overrides: Any) -> int:
    body = {"name": "Launch", "page_id": page, "content": {"text": "Hi {{first_name|there}}!"}}
    created = await manager.post("/api/campaigns", json=body | overrides)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def outbox(sim: httpx.AsyncClient) -> list[dict[str, Any]]:
    return (await sim.get("/__sim/outbox", params={"page_id": PAGE})).json()["messages"]


async def recorded_tests(db: Database, campaign_id: int) -> list[dict[str, Any]]:
    """The campaign's `campaign.test_sent` audit entries' details."""
    async with db.transaction() as session:
        rows = await session.scalars(
            select(AuditLog.details).where(
                AuditLog.object_id == campaign_id, AuditLog.action == "campaign.test_sent"
            )
        )
        return [dict(d or {}) for d in rows]


# ------------------------------------------------------------------------------ review


async def test_review_counts_the_eligible_and_the_excluded_and_says_how_long_it_takes(
    manager: httpx.AsyncClient, sim: httpx.AsyncClient, page_id: int
) -> None:
    for i in range(5):
        name = "Ana" if i == 0 else f"P{i}"
        await person(
            manager, sim, page_id, str(100 + i), first_name=name, last_inbound_at=hours_ago(1)
        )
    await person(manager, sim, page_id, "200", last_inbound_at=hours_ago(1), opted_out=True)
    await person(manager, sim, page_id, "201", last_inbound_at=hours_ago(30))
    await person(manager, sim, page_id, "202")
    await person(manager, sim, page_id, "203", last_inbound_at=hours_ago(1), unreachable=True)
    campaign_id = await draft(manager, page_id)
    answer = await manager.get(f"/api/campaigns/{campaign_id}/review")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["total"] == 9 and body["eligible"] == 5
    assert body["excluded"] == {
        "opted_out": 1,
        "unreachable": 1,
        "window_unknown": 1,
        "outside_window": 1,
        "frequency_cap": 0,
    }
    assert body["excluded_words"] == [
        "1 opted out",
        "1 unreachable",
        "1 with no known message to the Page",
        "1 outside the 24-hour messaging window",
    ]
    # 5 people at the Page's 4 a second: 2 seconds.
    assert body["rate"] == 4 and body["expected_seconds"] == 2
    assert body["expected_duration"] == "about 2 seconds"
    assert body["page"] == {"id": page_id, "name": "Acme Store", "status": "active"}
    assert body["audience_rules"].startswith("Everyone who messaged Acme Store; of them, only")
    assert body["sample"]["contact"]["first_name"] == "Ana"
    assert body["sample"]["message"] == {"text": "Hi Ana!"}
    # The campaign's own rate, within the Page's, is the rate the review counts with.
    await manager.patch(f"/api/campaigns/{campaign_id}", json={"send_rate": 1})
    slower = (await manager.get(f"/api/campaigns/{campaign_id}/review")).json()
    assert slower["rate"] == 1 and slower["expected_seconds"] == 5


async def test_review_of_an_unknown_campaign_is_a_404(manager: httpx.AsyncClient) -> None:
    answer = await manager.get("/api/campaigns/999999/review")
    assert answer.status_code == 404 and "Campaign 999999 does not exist" in answer.text


@pytest.mark.parametrize(
    ("target", "messaging_type", "said"),
    [
        ({"type": "all"}, MessagingType.UPDATE, "Everyone who messaged Acme"),
        (
            {"type": "tags", "include": ["vip", "gold"], "exclude": ["churned"]},
            MessagingType.UPDATE,
            'Contacts of Acme tagged "vip" or "gold", except those tagged "churned"',
        ),
        (
            {"type": "contacts", "ids": [1, 2, 3]},
            MessagingType.RESPONSE,
            "3 chosen contacts of Acme",
        ),
    ],
)
def test_audience_rules_in_words(
    target: dict[str, Any], messaging_type: MessagingType, said: str
) -> None:
    words = review.audience_words(target, messaging_type, "Acme")
    assert words.startswith(said + "; of them, only those who messaged the Page within the 24-hour")
    assert words.endswith(f"({messaging_type.value}).")
    tagged = review.audience_words(target, MessagingType.MESSAGE_TAG, "Acme")
    assert "within the 7-day messaging window" in tagged


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0, "nothing to send"),
        (1, "about 1 second"),
        (45, "about 45 seconds"),
        (61, "about 2 minutes"),
        (3600, "about 1 hour"),
        (7500, "about 2 hours 5 minutes"),
    ],
)
def test_durations_in_words(seconds: int, said: str) -> None:
    assert review.duration_words(seconds) == said


# ------------------------------------------------------------------------------ testers


async def test_a_contact_becomes_a_tester_and_is_listed_among_its_pages_testers(
    manager: httpx.AsyncClient, sim: httpx.AsyncClient, page_id: int
) -> None:
    ana = await person(manager, sim, page_id, "100", in_sim=False)
    await person(manager, sim, page_id, "101", in_sim=False)
    assert (await manager.get(f"/api/contacts/{ana}")).json()["is_tester"] is False
    marked = await manager.patch(f"/api/contacts/{ana}", json={"is_tester": True})
    assert marked.status_code == 200 and marked.json()["is_tester"] is True
    listed = await manager.get(f"/api/pages/{page_id}/contacts", params={"is_tester": "true"})
    assert [c["id"] for c in listed.json()["items"]] == [ana]
    others = await manager.get(f"/api/pages/{page_id}/contacts", params={"is_tester": "false"})
    assert [c["psid"] for c in others.json()["items"]] == ["101"]
    unmarked = await manager.patch(f"/api/contacts/{ana}", json={"is_tester": False})
    assert unmarked.json()["is_tester"] is False


@pytest.mark.parametrize("value", [None, "yes please", 3])
async def test_is_tester_must_be_a_boolean(
    manager: httpx.AsyncClient, sim: httpx.AsyncClient, page_id: int, value: Any
) -> None:
    ana = await person(manager, sim, page_id, "100", in_sim=False)
    answer = await manager.patch(f"/api/contacts/{ana}", json={"is_tester": value})
    assert answer.status_code == 422 and "is_tester" in answer.text, answer.text
    assert (await manager.get(f"/api/contacts/{ana}")).json()["is_tester"] is False


# ------------------------------------------------------------------------------ test sends


async def counts_and_deliveries(
    manager: httpx.AsyncClient, db: Database, campaign_id: int
) -> tuple[dict[str, int], int]:
    counts = (await manager.get(f"/api/campaigns/{campaign_id}")).json()["counts"]
    async with db.transaction() as session:
        rows = await session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.campaign_id == campaign_id)
        )
    return counts, int(rows or 0)


@pytest.mark.parametrize("status", ["draft", "scheduled"])
async def test_a_test_reaches_exactly_that_tester_with_their_message_and_counts_nothing(
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    page_id: int,
    db: Database,
    redis_url: str,
    status: str,
) -> None:
    ana = await person(
        manager, sim, page_id, "100", first_name="Ana", last_inbound_at=hours_ago(1), is_tester=True
    )
    await person(manager, sim, page_id, "101", first_name="Ben", last_inbound_at=hours_ago(1))
    extra: dict[str, Any] = {}
    if status == "scheduled":
        extra["scheduled_at"] = (utcnow() + timedelta(days=1)).isoformat()
    campaign_id = await draft(manager, page_id, **extra)
    if status == "scheduled":
        armed = await manager.post(f"/api/campaigns/{campaign_id}/schedule")
        assert armed.status_code == 200 and armed.json()["status"] == "scheduled", armed.text
    before = await counts_and_deliveries(manager, db, campaign_id)
    answer = await manager.post(f"/api/campaigns/{campaign_id}/test", json={"contact_ids": [ana]})
    assert answer.status_code == 200, answer.text
    [result] = answer.json()["results"]
    sent = await outbox(sim)
    assert len(sent) == 1  # that message, to that person, and nothing else
    assert sent[0]["psid"] == "100" and sent[0]["message"] == {"text": "Hi Ana!"}
    assert sent[0]["metadata"] is None  # an echo of it matches no delivery
    assert result == {"contact_id": ana, "status": "sent", "message_id": sent[0]["mid"]}
    assert await counts_and_deliveries(manager, db, campaign_id) == before
    assert before[1] == 0
    assert await recorded_tests(db, campaign_id) == [{"results": [result]}]
    assert (await manager.get(f"/api/campaigns/{campaign_id}")).json()["status"] == status


async def test_a_test_is_refused_for_anyone_who_is_not_a_reachable_tester_of_the_page(
    manager: httpx.AsyncClient, sim: httpx.AsyncClient, page_id: int, db: Database, api: Any
) -> None:
    inside = hours_ago(1)
    not_tester = await person(manager, sim, page_id, "100", last_inbound_at=inside)
    outside = await person(
        manager, sim, page_id, "101", last_inbound_at=hours_ago(30), is_tester=True
    )
    unknown_window = await person(manager, sim, page_id, "102", is_tester=True)
    opted_out = await person(
        manager, sim, page_id, "103", last_inbound_at=inside, is_tester=True, opted_out=True
    )
    unreachable = await person(
        manager, sim, page_id, "104", last_inbound_at=inside, is_tester=True, unreachable=True
    )
    await sim_page(sim, page_id="2002", name="Other Page", token="EAAGpagetoken2002")
    admin = await api(Role.ADMIN, email="other-admin@example.com")
    other_page = await admin.post("/api/pages", json={"access_token": "EAAGpagetoken2002"})
    assert other_page.status_code == 201, other_page.text
    elsewhere = await person(
        manager,
        sim,
        other_page.json()["id"],
        "105",
        in_sim=False,
        last_inbound_at=inside,
        is_tester=True,
    )
    campaign_id = await draft(manager, page_id, messaging_type="RESPONSE")
    asked = [not_tester, outside, unknown_window, opted_out, unreachable, elsewhere, 999999]
    answer = await manager.post(f"/api/campaigns/{campaign_id}/test", json={"contact_ids": asked})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["contact_id"] for r in results] == asked
    assert {r["status"] for r in results} == {"refused"}
    reasons = [r["reason"] for r in results]
    assert reasons[0].startswith(f"Contact {not_tester} is not a tester of Acme Store.")
    assert reasons[1] == (
        f"Contact {outside} is outside the 24-hour messaging window for a RESPONSE message: "
        "Facebook would refuse it. Ask them to message the Page, then test again."
    )
    assert "(no message of theirs is known)" in reasons[2]
    assert reasons[3] == f"Contact {opted_out} opted out: nothing is sent to them."
    assert reasons[4].startswith(f"Contact {unreachable} is unreachable")
    assert reasons[5].startswith(f"Contact {elsewhere} is a contact of another Page")
    assert reasons[6] == "Contact 999999 does not exist."
    assert await outbox(sim) == []
    assert await recorded_tests(db, campaign_id) == [{"results": results}]


async def test_a_graph_refusal_is_a_failed_result_in_words(
    manager: httpx.AsyncClient, sim: httpx.AsyncClient, page_id: int
) -> None:
    ana = await person(manager, sim, page_id, "100", last_inbound_at=hours_ago(1), is_tester=True)
    blocked = await sim.post(
        "/__sim/users/status", json={"page_id": PAGE, "psid": "100", "status": "blocked"}
    )
    assert blocked.status_code == 200, blocked.text
    campaign_id = await draft(manager, page_id)
    answer = await manager.post(f"/api/campaigns/{campaign_id}/test", json={"contact_ids": [ana]})
    [result] = answer.json()["results"]
    assert result["status"] == "failed" and result["contact_id"] == ana
    assert result["reason"].startswith("Facebook says this person cannot be messaged (")
    assert await outbox(sim) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"contact_ids": []}, "contact_ids"),
        ({"contact_ids": list(range(1, 52))}, "contact_ids"),
        ({"contact_ids": [0]}, "contact_ids"),
        ({}, "contact_ids"),
    ],
)
async def test_a_test_without_proper_contact_ids_is_a_422_naming_the_field(
    manager: httpx.AsyncClient, page_id: int, db: Database, body: dict[str, Any], field: str
) -> None:
    campaign_id = await draft(manager, page_id)
    answer = await manager.post(f"/api/campaigns/{campaign_id}/test", json=body)
    assert answer.status_code == 422 and field in answer.text, answer.text
    assert await recorded_tests(db, campaign_id) == []


async def test_a_test_of_a_cancelled_campaign_is_refused_and_records_nothing(
    manager: httpx.AsyncClient, sim: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    ana = await person(manager, sim, page_id, "100", last_inbound_at=hours_ago(1), is_tester=True)
    campaign_id = await draft(manager, page_id)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/cancel")).status_code == 200
    answer = await manager.post(f"/api/campaigns/{campaign_id}/test", json={"contact_ids": [ana]})
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_state" and error["field"] == "status"
    assert "is cancelled; a test send is only allowed when it is draft" in error["message"]
    assert await outbox(sim) == [] and await recorded_tests(db, campaign_id) == []


async def test_a_viewer_may_not_send_a_test(
    api: Any, manager: httpx.AsyncClient, sim: httpx.AsyncClient, page_id: int
) -> None:
    ana = await person(manager, sim, page_id, "100", last_inbound_at=hours_ago(1), is_tester=True)
    campaign_id = await draft(manager, page_id)
    viewer = await api(Role.VIEWER)
    answer = await viewer.post(f"/api/campaigns/{campaign_id}/test", json={"contact_ids": [ana]})
    assert answer.status_code == 403
    assert await outbox(sim) == []


async def test_a_test_through_a_page_that_is_not_active_is_refused_before_any_send(
    manager: httpx.AsyncClient, sim: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    ana = await person(manager, sim, page_id, "100", last_inbound_at=hours_ago(1), is_tester=True)
    campaign_id = await draft(manager, page_id)
    async with db.transaction() as session:
        page = await session.get(Page, page_id)
        assert page is not None
        page.status, page.status_reason = PageStatus.TOKEN_INVALID, "token revoked"
    answer = await manager.post(f"/api/campaigns/{campaign_id}/test", json={"contact_ids": [ana]})
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["field"] == "page_id" and "is token_invalid: token revoked" in error["message"]
    assert await outbox(sim) == [] and await recorded_tests(db, campaign_id) == []


async def test_a_test_waits_for_the_pages_limiter_and_gives_up_when_it_is_taken_for_long(
    manager: httpx.AsyncClient, sim: httpx.AsyncClient, page_id: int, db: Database, redis_url: str
) -> None:
    ana = await person(manager, sim, page_id, "100", last_inbound_at=hours_ago(1), is_tester=True)
    campaign_id = await draft(manager, page_id)
    redis = aioredis.Redis.from_url(redis_url)
    try:
        await PageLimiter(redis).throttle(page_id, 60, "Facebook said 613")
        answer = await manager.post(
            f"/api/campaigns/{campaign_id}/test", json={"contact_ids": [ana]}
        )
    finally:
        await redis.aclose()
    [result] = answer.json()["results"]
    assert result["status"] == "failed"
    assert result["reason"].startswith("The Page's send rate is taken for the next 60 s")
    assert await outbox(sim) == []


# ------------------------------------------------------------------------------ the limiter


async def set_page_rate(db: Database, page_id: int, rate: float) -> None:
    async with db.transaction() as session:
        page = await session.get(Page, page_id)
        assert page is not None
        page.send_rate = rate


async def test_a_test_takes_its_slot_at_the_pages_rate_with_its_613_cut(
    manager: httpx.AsyncClient, sim: httpx.AsyncClient, page_id: int, redis_url: str
) -> None:
    ana = await person(manager, sim, page_id, "100", last_inbound_at=hours_ago(1), is_tester=True)
    campaign_id = await draft(
        manager, page_id, send_rate=1
    )  # the campaign's rate is not the Page's
    redis = aioredis.Redis.from_url(redis_url)
    limiter = PageLimiter(redis)
    try:
        sent = await manager.post(f"/api/campaigns/{campaign_id}/test", json={"contact_ids": [ana]})
        assert sent.json()["results"][0]["status"] == "sent", sent.text
        assert (await limiter.state(page_id))["rate"] == 4.0  # the Page's 4/s
        await limiter.slow_down(page_id, 4.0)  # a worker saw a 613: 70 % for every sender
        await limiter.clear_throttle(page_id)
        again = await manager.post(
            f"/api/campaigns/{campaign_id}/test", json={"contact_ids": [ana]}
        )
        assert again.json()["results"][0]["status"] == "sent", again.text
        assert (await limiter.state(page_id))["rate"] == pytest.approx(2.8)
    finally:
        await redis.aclose()


async def test_a_request_waits_for_the_limiter_once_not_once_per_tester(
    app: Any, manager: httpx.AsyncClient, sim: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    people = [
        await person(
            manager, sim, page_id, str(100 + i), last_inbound_at=hours_ago(1), is_tester=True
        )
        for i in range(3)
    ]
    campaign_id = await draft(manager, page_id)
    await set_page_rate(db, page_id, 1)  # one a second: the 2nd waits ~1 s, the 3rd ~2 s
    results = await tester_sends.send_tests(
        app.state.context, ADMIN_ACTOR, campaign_id, people, max_wait=1.5
    )
    assert [r.status for r in results] == ["sent", "sent", "failed"]
    assert (results[2].reason or "").startswith("The Page's send rate is taken for the next 1 s")
    assert len(await outbox(sim)) == 2


@pytest.fixture
async def no_scripts_url(redis_url: str) -> Any:
    """The test Redis as a user who may not run scripts: PING answers, the limiter fails."""
    if not redis_url.startswith("redis://"):
        pytest.skip("needs a Redis server with ACLs (not the embedded one)")
    name = f"pagecast-test-{uuid.uuid4().hex[:8]}"
    admin = aioredis.Redis.from_url(redis_url)
    await admin.execute_command(
        "ACL", "SETUSER", name, "on", ">pw", "~*", "&*", "+@all", "-@scripting"
    )
    try:
        yield redis_url.replace("redis://", f"redis://{name}:pw@", 1)
    finally:
        await admin.execute_command("ACL", "DELUSER", name)
        await admin.aclose()


async def test_redis_failing_under_the_limiter_fails_the_rest_and_is_audited(
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    page_id: int,
    db: Database,
    settings: Settings,
    no_scripts_url: str,
) -> None:
    ana = await person(manager, sim, page_id, "100", last_inbound_at=hours_ago(1), is_tester=True)
    ben = await person(manager, sim, page_id, "101", last_inbound_at=hours_ago(1), is_tester=True)
    campaign_id = await draft(manager, page_id)
    other = create_app(settings.model_copy(update={"redis_url": no_scripts_url}), database=db)
    try:
        async with app_client(other, await manager_token(db)) as client:
            answer = await client.post(
                f"/api/campaigns/{campaign_id}/test", json={"contact_ids": [ana, ben]}
            )
    finally:
        await other.state.context.close()
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["failed", "failed"]
    assert results[0]["reason"].startswith("Redis (the Page's send limiter) stopped answering")
    assert await outbox(sim) == []
    assert await recorded_tests(db, campaign_id) == [{"results": results}]


async def manager_token(db: Database) -> str:
    _, raw = await create_user(db, Role.MANAGER, email=f"m-{uuid.uuid4().hex[:6]}@example.com")
    return str(raw)


async def test_a_test_cancelled_mid_send_is_audited_with_what_happened_so_far(
    app: Any, manager: httpx.AsyncClient, sim: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    ana = await person(manager, sim, page_id, "100", last_inbound_at=hours_ago(1), is_tester=True)
    ben = await person(manager, sim, page_id, "101", last_inbound_at=hours_ago(1), is_tester=True)
    campaign_id = await draft(manager, page_id)
    await sim.post("/__sim/latency", json={"ms": "3000"})  # Graph has it; the answer is late
    try:
        task = asyncio.create_task(
            tester_sends.send_tests(app.state.context, ADMIN_ACTOR, campaign_id, [ana, ben])
        )
        while not await outbox(sim):  # Ana's message reached Facebook; its answer has not
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await sim.post("/__sim/latency", json={"ms": "0"})
    assert await recorded_tests(db, campaign_id) == [
        {
            "results": [
                {
                    "contact_id": ana,
                    "status": "failed",
                    "reason": "The request ended while this test was being sent; it may or "
                    "may not have arrived.",
                }
            ]
        }
    ]


@pytest.mark.parametrize(("code", "throttled_at_most", "cap"), [(613, 1.0, 2.8), (4, 60.0, None)])
async def test_a_throttling_answer_to_a_test_slows_the_page_down_as_a_workers_would(
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    page_id: int,
    redis_url: str,
    code: int,
    throttled_at_most: float,
    cap: float | None,
) -> None:
    ana = await person(manager, sim, page_id, "100", last_inbound_at=hours_ago(1), is_tester=True)
    await sim.post("/__sim/script", json={"match": {"psid": "100"}, "responses": [{"code": code}]})
    campaign_id = await draft(manager, page_id)
    answer = await manager.post(f"/api/campaigns/{campaign_id}/test", json={"contact_ids": [ana]})
    [result] = answer.json()["results"]
    assert result["status"] == "failed"
    assert result["reason"].startswith("Facebook is rate-limiting the Page")
    redis = aioredis.Redis.from_url(redis_url)
    try:
        limiter = PageLimiter(redis)
        state = await limiter.state(page_id)
        assert 0 < state["throttled_for"] <= throttled_at_most
        assert state["reason"] == f"Graph error {code}"
        assert await limiter.capped(page_id, 4.0) == pytest.approx(cap or 4.0)
    finally:
        await redis.aclose()


async def test_the_reviews_duration_counts_with_the_rate_the_limiter_allows(
    manager: httpx.AsyncClient, sim: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    for i in range(3):
        await person(manager, sim, page_id, str(100 + i), last_inbound_at=hours_ago(1))
    campaign_id = await draft(manager, page_id)
    await set_page_rate(db, page_id, 1.5)  # its one-second window holds 1: 1 a second
    body = (await manager.get(f"/api/campaigns/{campaign_id}/review")).json()
    assert body["rate"] == 1.5 and body["expected_seconds"] == 3
    assert pacing.sendable_rate(1.5) == 1 and pacing.sendable_rate(0.5) == 0.5
    assert pacing.sendable_rate(4.5) == 4


async def test_a_test_of_a_sequence_sends_each_message_in_order_to_the_tester(
    manager: httpx.AsyncClient, sim: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    ana = await person(
        manager, sim, page_id, "100", first_name="Ana", last_inbound_at=hours_ago(1), is_tester=True
    )
    image = {"attachment": {"type": "image", "url": "https://example.com/cake.png"}}
    body = {
        "name": "Launch",
        "page_id": page_id,
        "messages": [image, {"text": "Hi {{first_name}}!"}],
        "send_rate": 1,
    }
    created = await manager.post("/api/campaigns", json=body)
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    answer = await manager.post(f"/api/campaigns/{campaign_id}/test", json={"contact_ids": [ana]})
    assert answer.status_code == 200, answer.text
    [result] = answer.json()["results"]
    sent = await outbox(sim)
    assert [m["psid"] for m in sent] == ["100", "100"]
    assert sent[0]["message"]["attachment"]["type"] == "image"
    assert sent[1]["message"] == {"text": "Hi Ana!"}
    assert result == {"contact_id": ana, "status": "sent", "message_id": sent[1]["mid"]}
    assert (await counts_and_deliveries(manager, db, campaign_id))[1] == 0
    review_body = (await manager.get(f"/api/campaigns/{campaign_id}/review")).json()
    assert [m.get("text") for m in review_body["sample"]["messages"]] == [None, "Hi Ana!"]
    assert review_body["sample"]["message"] == review_body["sample"]["messages"][0]
    # one person, two Send calls: twice the time of one message at the Page's rate
    single = await draft(manager, page_id, send_rate=1)
    one = (await manager.get(f"/api/campaigns/{single}/review")).json()
    assert (review_body["rate"], one["rate"]) == (1, 1)
    assert (review_body["expected_seconds"], one["expected_seconds"]) == (2, 1)
