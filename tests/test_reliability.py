"""Reliability of the sending engine with workers as real processes.

The campaign is started through the API in-process; `pagecast worker` runs as subprocesses
against the same PostgreSQL, Redis and Graph simulator (nothing in the sending path is
mocked). They are killed, terminated and restarted, Redis is restarted under them, the
simulator's per-second limit is set below the Page's rate, and the simulator's outbox (what
"Facebook" accepted) is compared with the database: exactly one message per eligible
contact, no PSID twice, every delivery in a final state.

Several processes write at once, which needs PostgreSQL (docs/sending.md, "Many workers"):
those tests are marked `postgresql` and run on that backend only; the Redis-less web app
test runs on both.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from factories import SECRET_KEY, create_user, import_contacts, postgresql_only
from pagecast.db import Database
from pagecast.models import Campaign, Contact, Delivery, DeliveryStatus, Role, utcnow
from pagecast.settings import Settings
from processes import CountingListener, RedisServer, WebProcess, WorkerProcess, clean_env

pytestmark = [pytest.mark.slow]

PAGE = "1001"
TOKEN = "EAAGreliability1001"
FINAL = {
    DeliveryStatus.SENT,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.READ,
    DeliveryStatus.FAILED,
    DeliveryStatus.SKIPPED,
    DeliveryStatus.CANCELLED,
    DeliveryStatus.EXPIRED,
}
MULTI_PROCESS = "several processes write at once: PostgreSQL only (docs/sending.md)"
APP_SECRET = "reliability-app-secret"
VERIFY_TOKEN = "reliability-verify-token"
# An unknown delivery waits `GRACE` seconds for its echo (600 in production: docs/webhooks.md).
GRACE = 20
# Dead workers are seen within seconds and the sweep runs every second.
RECONCILING = {
    "PAGECAST_WORKER_HEARTBEAT_TTL": "3",
    "PAGECAST_SWEEP_SECONDS": "1",
    "PAGECAST_WEBHOOK_RETRY_SECONDS": "2",
    "PAGECAST_UNKNOWN_GRACE": str(GRACE),
}


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def postgres(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip(MULTI_PROCESS)
    return database_url


def _app_settings(settings: Settings, redis: str) -> Settings:
    return settings.model_copy(
        update={"redis_url": redis, "retry_base_seconds": 0.05, "unknown_grace": GRACE}
    )


class Env:
    """The app (in-process) and the worker processes of one test, on one Redis."""

    def __init__(
        self, settings: Settings, db: Database, tmp: Path, sim_url: str, redis: str
    ) -> None:
        from pagecast.web.app import create_app

        self.settings = _app_settings(settings, redis)
        self.db, self.tmp, self.sim_url, self.redis = db, tmp, sim_url, redis
        self.app = create_app(self.settings, database=db)
        self.workers: list[WorkerProcess] = []
        self.api: httpx.AsyncClient | None = None

    async def login(self) -> httpx.AsyncClient:
        _, raw = await create_user(self.db, Role.ADMIN, email=f"admin{id(self)}@example.com")
        self.api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://pagecast.test",
            headers={"Authorization": f"Bearer {raw}"},
            timeout=30,
        )
        return self.api

    def worker_env(self, **extra: str) -> dict[str, str]:
        data = self.tmp / "worker-data"
        data.mkdir(exist_ok=True)
        assert self.settings.database_url is not None
        return clean_env(
            {
                "PAGECAST_DATABASE_URL": self.settings.database_url,
                "PAGECAST_REDIS_URL": self.redis,
                "PAGECAST_GRAPH_API_URL": self.sim_url,
                "PAGECAST_SECRET_KEY": SECRET_KEY,
                "PAGECAST_DATA_DIR": str(data),
                "PAGECAST_RETRY_BASE_SECONDS": "0.05",
                "PAGECAST_RETRY_CAP_SECONDS": "0.5",
                "PAGECAST_GRAPH_READ_TIMEOUT": "5",
                "PAGECAST_SHUTDOWN_GRACE_SECONDS": "10",
                "PAGECAST_UNKNOWN_GRACE": str(GRACE),
                **extra,
            }
        )

    def web(self) -> WebProcess:
        """Start `pagecast web` (it receives the simulator's webhooks; workers process them)."""
        process = WebProcess(
            self.tmp,
            self.worker_env(
                PAGECAST_APP_SECRET=APP_SECRET,
                PAGECAST_WEBHOOK_VERIFY_TOKEN=VERIFY_TOKEN,
                PAGECAST_UNKNOWN_GRACE=str(GRACE),
            ),
        )
        self.workers.append(process)
        return process.start()

    def worker(self, **extra: str) -> WorkerProcess:
        """Start a worker process (stopped at teardown whatever happens)."""
        process = WorkerProcess(self.tmp, self.worker_env(**extra))
        self.workers.append(process)
        return process.start()

    async def close(self) -> None:
        for process in self.workers:
            process.stop()
        if self.api is not None:
            await self.api.aclose()
        await self.app.state.context.close()


@pytest.fixture
async def env_factory(
    settings: Settings, db: Database, tmp_path: Path, simulator: Any, redis_url: str
) -> AsyncIterator[Callable[..., Env]]:
    made: list[Env] = []

    def make(redis: str | None = None) -> Env:
        env = Env(settings, db, tmp_path, simulator.url, redis or redis_url)
        made.append(env)
        return env

    try:
        yield make
    finally:
        for env in made:
            await env.close()


@pytest.fixture
async def env(env_factory: Callable[..., Env]) -> Env:
    made = env_factory()
    await made.login()
    return made


# ------------------------------------------------------------------ helpers


async def setup_page(
    env: Env, sim: httpx.AsyncClient, *, send_rate: float, page_id: str = PAGE
) -> int:
    token = f"EAAGreliability{page_id}"
    created = await sim.post(
        "/__sim/pages", json={"page_id": page_id, "name": f"Page {page_id}", "access_token": token}
    )
    assert created.status_code in (200, 201), created.text
    assert env.api is not None
    response = await env.api.post(
        "/api/pages", json={"access_token": token, "send_rate": send_rate}
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def add_people(
    env: Env,
    sim: httpx.AsyncClient,
    page_db_id: int,
    count: int,
    *,
    start: int = 0,
    hours_ago: float = 1,
    page_id: str = PAGE,
) -> list[str]:
    """`count` people who messaged the Page `hours_ago` (inside the 24 h window by default)."""
    psids = [f"{page_id}{100_000 + i}" for i in range(start, start + count)]
    people = [
        {
            "page_id": page_id,
            "psid": p,
            "first_name": "P",
            "last_name": "X",
            "last_user_action": "now",
        }
        for p in psids
    ]
    for i in range(0, len(people), 10_000):
        added = await sim.post("/__sim/users", json=people[i : i + 10_000])
        assert added.status_code in (200, 201), added.text
    inbound = (utcnow() - timedelta(hours=hours_ago)).isoformat()
    csv = "psid,first_name,last_inbound_at\n" + "".join(f"{p},P{p},{inbound}\n" for p in psids)
    assert env.api is not None
    report = await import_contacts(env.api, page_db_id, csv.encode())
    assert report["imported"] == count, report
    return psids


async def start_campaign(env: Env, page_db_id: int, **overrides: Any) -> int:
    assert env.api is not None
    body = {
        "name": "Reliability",
        "page_id": page_db_id,
        "content": {"text": "Hi {{first_name|there}}"},
    } | overrides
    created = await env.api.post("/api/campaigns", json=body)
    assert created.status_code == 201, created.text
    campaign_id = int(created.json()["id"])
    started = await env.api.post(f"/api/campaigns/{campaign_id}/start")
    assert started.status_code == 202, started.text
    return campaign_id


async def campaign(env: Env, campaign_id: int) -> dict[str, Any]:
    assert env.api is not None
    response = await env.api.get(f"/api/campaigns/{campaign_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def wait_until_done(
    env: Env, campaign_id: int, timeout: float, workers: list[WorkerProcess] | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = await campaign(env, campaign_id)
        if body["status"] == "completed":
            return body
        for worker in workers or []:
            assert worker.alive(), f"worker died:\n{worker.log()[-3000:]}"
        assert time.monotonic() < deadline, (
            f"campaign {campaign_id} still {body['status']} after {timeout} s: {body['counts']}"
        )
        await asyncio.sleep(0.25)


async def outbox(sim: httpx.AsyncClient, page_id: str = PAGE) -> list[dict[str, Any]]:
    response = await sim.get("/__sim/outbox", params={"page_id": page_id})
    return list(response.json()["messages"])


async def statuses(db: Database, campaign_id: int) -> Counter[DeliveryStatus]:
    async with db.transaction() as session:
        rows = await session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Delivery.status)
        )
        return Counter({status: count for status, count in rows})


async def sent_psids(
    db: Database, campaign_id: int, status: DeliveryStatus = DeliveryStatus.SENT
) -> list[str]:
    """PSIDs of the campaign's deliveries in `status` (sent by default)."""
    async with db.transaction() as session:
        return list(
            await session.scalars(
                select(Contact.psid)
                .join(Delivery, Delivery.contact_id == Contact.id)
                .where(Delivery.campaign_id == campaign_id, Delivery.status == status)
            )
        )


async def failure_reasons(db: Database, campaign_id: int) -> list[tuple[Any, ...]]:
    """(status, error kind, code, reason) of every delivery not sent, delivered or read."""
    async with db.transaction() as session:
        rows = await session.execute(
            select(
                Delivery.status, Delivery.error_kind, Delivery.error_code, Delivery.error_message
            )
            .where(
                Delivery.campaign_id == campaign_id,
                Delivery.status.not_in(
                    [
                        DeliveryStatus.SENT,
                        DeliveryStatus.DELIVERED,
                        DeliveryStatus.READ,
                        DeliveryStatus.SKIPPED,
                    ]
                ),
            )
            .limit(20)
        )
        return [tuple(row) for row in rows]


async def counters(db: Database, campaign_id: int) -> dict[str, int]:
    async with db.transaction() as session:
        row = await session.get(Campaign, campaign_id)
        assert row is not None
        return {s.value: getattr(row, f"n_{s.value}") for s in DeliveryStatus}


async def assert_exactly_once(
    env: Env, sim: httpx.AsyncClient, campaign_id: int, eligible: list[str]
) -> None:
    """The outbox holds one message per eligible contact; the database agrees with it."""
    messages = await outbox(sim)
    psids = [m["psid"] for m in messages]
    twice = [p for p, n in Counter(psids).items() if n > 1]
    assert not twice, f"{len(twice)} PSIDs got the message more than once, e.g. {twice[:5]}"
    assert set(psids) == set(eligible), (
        f"{len(set(eligible) - set(psids))} eligible contacts got nothing; "
        f"{len(set(psids) - set(eligible))} unexpected"
    )
    by_status = await statuses(env.db, campaign_id)
    assert by_status[DeliveryStatus.SENT] == len(messages)
    assert sorted(await sent_psids(env.db, campaign_id)) == sorted(psids)
    assert set(by_status) <= FINAL, f"deliveries not final: {by_status}"
    stored = await counters(env.db, campaign_id)
    assert stored == {s.value: by_status.get(s, 0) for s in DeliveryStatus}, (stored, by_status)


# ------------------------------------------------------------------ 1. throughput


@postgresql_only
@pytest.mark.timeout(400)  # 5,000 sends at 300/s with echoes: about 30 s here, more under load
async def test_5000_contacts_two_worker_processes_exactly_once(
    postgres: str, env: Env, sim: httpx.AsyncClient
) -> None:
    # As in production: `pagecast web` receives the webhooks, so a send whose answer was lost
    # (a timeout on a loaded machine) is settled by its echo instead of failing `ambiguous`.
    web = env.web()
    await point_webhooks(sim, web.url)
    await sim.post("/__sim/knobs", json={"p_delivered": 0.0, "p_read": 0.0})
    page = await setup_page(env, sim, send_rate=300)
    eligible = await add_people(env, sim, page, 5_000)
    await add_people(env, sim, page, 50, start=9_000, hours_ago=30)  # outside the window
    workers = [env.worker(**RECONCILING), env.worker(**RECONCILING)]
    began = time.monotonic()
    campaign_id = await start_campaign(env, page)
    done = await wait_until_done(env, campaign_id, timeout=240, workers=workers)
    elapsed = time.monotonic() - began
    assert done["counts"]["sent"] == 5_000 and done["counts"]["skipped"] == 50, (
        done["counts"],
        await failure_reasons(env.db, campaign_id),
    )
    await assert_exactly_once(env, sim, campaign_id, eligible)
    for worker in workers:  # both processes took a share
        assert "chunk" in worker.log() and "done (sent" in worker.log(), worker.log()[-2000:]
    # 300/s is the Page's ceiling: 5,000 sends cannot take less than about 16 s.
    assert elapsed > 5_000 / 300 * 0.9


async def test_worker_runs_on_uvloop_or_on_asyncio_when_told(
    env: Env, sim: httpx.AsyncClient
) -> None:
    # Every other test's workers run on uvloop (the default where it is installed); the
    # escape hatch, PAGECAST_EVENT_LOOP=asyncio, must send just as well.
    page = await setup_page(env, sim, send_rate=100)
    eligible = await add_people(env, sim, page, 150)
    plain = env.worker(PAGECAST_EVENT_LOOP="asyncio")
    assert "event loop: asyncio" in plain.log(), plain.log()
    campaign_id = await start_campaign(env, page)
    done = await wait_until_done(env, campaign_id, timeout=60, workers=[plain])
    assert done["counts"]["sent"] == 150, done["counts"]
    await assert_exactly_once(env, sim, campaign_id, eligible)
    default = env.worker()
    assert "event loop: uvloop" in default.log(), default.log()


# ------------------------------------------------------------------ 2. SIGTERM


@postgresql_only
async def test_sigterm_mid_send_exits_cleanly_and_loses_nothing(
    postgres: str, env: Env, sim: httpx.AsyncClient
) -> None:
    page = await setup_page(env, sim, send_rate=20)
    eligible = await add_people(env, sim, page, 200)
    first = env.worker()
    campaign_id = await start_campaign(env, page)
    deadline = time.monotonic() + 30
    while len(await outbox(sim)) < 40:
        assert time.monotonic() < deadline and first.alive(), first.log()[-3000:]
        await asyncio.sleep(0.05)
    mid = await statuses(env.db, campaign_id)
    assert mid[DeliveryStatus.SENDING] > 0, mid  # it really was in the middle of a send
    terminated = time.monotonic()
    first.signal(signal.SIGTERM)
    code = first.wait(timeout=15)
    took = time.monotonic() - terminated
    assert code == 0, first.log()[-3000:]
    assert took < 10, f"took {took:.1f} s, the grace period is 10 s"
    assert "stopping: finishing in-flight sends" in first.log()
    assert " shut down" in first.log()
    after = await statuses(env.db, campaign_id)
    assert after[DeliveryStatus.SENDING] == 0, after
    assert after[DeliveryStatus.PENDING] > 0, after  # the rest went back, not lost
    assert after[DeliveryStatus.SENT] == len(await outbox(sim))
    assert (await counters(env.db, campaign_id))["sending"] == 0
    second = env.worker()
    await wait_until_done(env, campaign_id, timeout=60, workers=[second])
    await assert_exactly_once(env, sim, campaign_id, eligible)


# ------------------------------------------------------------------ 6. no Redis


@pytest.fixture
def listener() -> Iterator[CountingListener]:
    counting = CountingListener()
    try:
        yield counting
    finally:
        counting.close()


async def test_web_app_without_redis_connects_only_to_start(
    env_factory: Callable[..., Env],
    sim: httpx.AsyncClient,
    listener: CountingListener,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Runs on both backends: no worker here."""
    port = listener.port
    env = env_factory(redis=f"redis://127.0.0.1:{port}/0")
    api = await env.login()
    page = await setup_page(env, sim, send_rate=40)
    await add_people(env, sim, page, 3)
    created = await api.post(
        "/api/campaigns", json={"name": "No Redis", "page_id": page, "content": {"text": "Hi"}}
    )
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    assert (await api.get("/api/campaigns")).status_code == 200
    assert (await api.get(f"/api/campaigns/{campaign_id}")).status_code == 200
    patched = await api.patch(f"/api/campaigns/{campaign_id}", json={"name": "Renamed"})
    assert patched.status_code == 200 and patched.json()["name"] == "Renamed", patched.text
    listed = (await api.get("/api/campaigns")).json()["items"]
    assert [c["name"] for c in listed] == ["Renamed"]
    await asyncio.sleep(0.3)  # let the listener's accept loop see any late connection
    assert listener.accepted == 0, "the web app connected to Redis without needing it"
    listener.close()  # now the port is closed: connections are refused

    caplog.set_level(logging.WARNING)
    for _ in range(3):
        started = await api.post(f"/api/campaigns/{campaign_id}/start")
        assert started.status_code == 503, started.text
        message = started.json()["error"]["message"]
        assert message.startswith(f"Redis at 127.0.0.1:{port} is unreachable ("), message
        assert message.endswith("). Start Redis, or unset REDIS_URL to use the embedded one."), (
            message
        )
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) <= 1, [r.getMessage() for r in warnings]
    body = await campaign(env, campaign_id)
    assert body["status"] == "draft" and body["counts"]["total"] == 0


# ------------------------------------------------------------------ 3. SIGKILL


async def stuck_sending(db: Database, campaign_id: int) -> list[tuple[str, str | None]]:
    """(psid, claimed_by) of the deliveries still in `sending`."""
    async with db.transaction() as session:
        rows = await session.execute(
            select(Contact.psid, Delivery.claimed_by)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.SENDING)
        )
        return [(psid, claimed_by) for psid, claimed_by in rows]


def claimed_by_pid(claimed_by: str | None) -> int | None:
    """Worker ids are `host:pid:random`."""
    try:
        return int((claimed_by or "").split(":")[1])
    except (IndexError, ValueError):
        return None


async def point_webhooks(sim: httpx.AsyncClient, web_url: str) -> None:
    """The simulator signs and posts every webhook event to `pagecast web` at `web_url`."""
    response = await sim.post(
        "/__sim/webhook",
        json={
            "url": f"{web_url}/webhooks/messenger",
            "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN,
            "enabled": True,
        },
    )
    assert response.status_code == 200, response.text
    # Like Meta, the simulator gathers the events of a moment into one POST (up to 50). A POST
    # that fails is retried on Meta's schedule compressed like the grace period (600 s → GRACE):
    # unscaled, a POST that failed twice under load came back after 30 s, past GRACE.
    scale = GRACE / 600
    backoff = [round(s * scale, 3) for s in (0.0, 5.0, 30.0, 120.0, 600.0, 900.0)]
    knobs = await sim.post("/__sim/knobs", json={"batch_window_ms": 100, "retry_backoff": backoff})
    assert knobs.status_code == 200, knobs.text


async def failed_webhook_posts(sim: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The simulator's webhook POSTs that Pagecast did not acknowledge (status, attempt)."""
    log = (await sim.get("/__sim/webhook", params={"log": 100_000})).json()["log"]
    return [entry for entry in log if not entry["ok"]][:20]


async def wait_for_sent(
    env: Env, campaign_id: int, at_least: int, worker: WorkerProcess, timeout: float = 180
) -> None:
    deadline = time.monotonic() + timeout
    while (await counters(env.db, campaign_id))["sent"] < at_least:
        assert time.monotonic() < deadline and worker.alive(), worker.log()[-3000:]
        await asyncio.sleep(0.05)


KILL_CONTACTS = 20_000


async def kill_three_times(env: Env, sim: httpx.AsyncClient, page: int) -> int:
    """A 20,000-contact campaign on two workers while the simulator drops 1 % of connections
    after committing the message, and one worker is SIGKILLed three times and restarted. Returns the campaign
    id once it is completed (nothing pending, in flight or unknown)."""
    faults = await sim.post("/__sim/faults", json={"p_timeout_after": 0.01})
    assert faults.status_code == 200, faults.text
    knobs = await sim.post("/__sim/knobs", json={"p_delivered": 0.0, "p_read": 0.0})
    assert knobs.status_code == 200, knobs.text
    steady = env.worker(**RECONCILING)  # production runs several; this one is never killed
    worker = env.worker(**RECONCILING)
    campaign_id = await start_campaign(env, page)
    killed = 0
    for step in (1, 2, 3):
        await wait_for_sent(env, campaign_id, KILL_CONTACTS * step // 5, worker)
        worker.kill()
        killed += 1
        worker = env.worker(**RECONCILING)
    await wait_until_done(env, campaign_id, timeout=240, workers=[steady, worker])
    assert killed == 3
    return campaign_id


@postgresql_only
@pytest.mark.timeout(900)  # 20,000 sends through kills: about 2–3 minutes here, more under load
async def test_sigkill_three_times_and_dropped_connections_exactly_once_with_echoes(
    postgres: str, env: Env, sim: httpx.AsyncClient
) -> None:
    """The test that defines exactly-once: every eligible contact has exactly one message in
    the simulator's outbox, no delivery is left `unknown`, and the database agrees."""
    web = env.web()
    await point_webhooks(sim, web.url)
    page = await setup_page(env, sim, send_rate=300)
    eligible = await add_people(env, sim, page, KILL_CONTACTS)
    campaign_id = await kill_three_times(env, sim, page)
    dropped = [m for m in await outbox(sim) if m["dropped_after_commit"]]
    assert len(dropped) > 50, len(dropped)  # the faults did happen
    by_status = await statuses(env.db, campaign_id)
    assert by_status[DeliveryStatus.UNKNOWN] == 0 and by_status[DeliveryStatus.FAILED] == 0, (
        by_status,
        await failure_reasons(env.db, campaign_id),
        await failed_webhook_posts(sim),
        web.log()[-3000:],
    )
    await assert_exactly_once(env, sim, campaign_id, eligible)
    assert web.alive(), web.log()[-3000:]


@postgresql_only
@pytest.mark.timeout(900)
async def test_sigkill_three_times_and_dropped_connections_without_webhooks_never_twice(
    postgres: str, env: Env, sim: httpx.AsyncClient
) -> None:
    """Without echoes nothing can be proven: no PSID twice, and every delivery whose outcome
    was lost ends `failed` with reason `ambiguous` (never resent blindly)."""
    page = await setup_page(env, sim, send_rate=300)
    eligible = await add_people(env, sim, page, KILL_CONTACTS)
    campaign_id = await kill_three_times(env, sim, page)
    psids = [m["psid"] for m in await outbox(sim)]
    twice = [p for p, n in Counter(psids).items() if n > 1]
    assert not twice, f"sent twice: {twice[:10]}"
    by_status = await statuses(env.db, campaign_id)
    assert by_status[DeliveryStatus.UNKNOWN] == 0, by_status
    sent = set(await sent_psids(env.db, campaign_id))
    failed = set(await sent_psids(env.db, campaign_id, DeliveryStatus.FAILED))
    assert failed, "nothing was ambiguous: the faults did not happen"
    reasons = {(r[0], r[1]) for r in await failure_reasons(env.db, campaign_id)}
    assert reasons == {(DeliveryStatus.FAILED, "ambiguous")}, reasons
    assert sent <= set(psids), "a delivery marked sent never reached the Graph API"
    assert set(psids) <= sent | failed  # what arrived unrecorded is among the ambiguous ones
    assert sent | failed == set(eligible) and not sent & failed
    stored = await counters(env.db, campaign_id)  # the O(1) counters agree with the rows
    assert stored == {s.value: by_status.get(s, 0) for s in DeliveryStatus}, (stored, by_status)


@postgresql_only
async def test_campaign_completes_after_a_worker_is_killed(
    postgres: str, env: Env, sim: httpx.AsyncClient
) -> None:
    """docs/design.md invariant 4: after a worker is killed, every delivery still ends in a final
    state: the sweep turns `sending` of a dead worker (no heartbeat) into `unknown`, never
    resent blindly; with no echo to prove anything they fail `ambiguous` after the grace."""
    page = await setup_page(env, sim, send_rate=100)
    eligible = await add_people(env, sim, page, 400)
    fast = RECONCILING | {"PAGECAST_UNKNOWN_GRACE": "1"}
    worker = env.worker(**fast)
    campaign_id = await start_campaign(env, page)
    await wait_for_sent(env, campaign_id, 100, worker)
    worker.kill()
    assert await stuck_sending(env.db, campaign_id), "the kill left nothing in flight"
    worker = env.worker(**fast)
    await wait_until_done(env, campaign_id, timeout=30, workers=[worker])
    by_status = await statuses(env.db, campaign_id)
    assert set(by_status) <= FINAL, by_status
    assert by_status[DeliveryStatus.FAILED] > 0, by_status
    psids = [m["psid"] for m in await outbox(sim)]
    assert len(psids) == len(set(psids)), "a message was sent twice"
    sent = set(await sent_psids(env.db, campaign_id))
    failed = set(await sent_psids(env.db, campaign_id, DeliveryStatus.FAILED))
    assert sent <= set(psids) <= sent | failed
    assert sent | failed == set(eligible)


# ------------------------------------------------------------------ 4. Graph per-second limit


@postgresql_only
async def test_graph_per_second_limit_below_the_page_rate_is_honoured(
    postgres: str, env: Env, sim: httpx.AsyncClient
) -> None:
    page = await setup_page(env, sim, send_rate=50)
    limited = await sim.post("/__sim/limits", json={"page_id": PAGE, "per_second_text": 20})
    assert limited.status_code == 200, limited.text
    eligible = await add_people(env, sim, page, 300)
    workers = [env.worker(), env.worker()]
    campaign_id = await start_campaign(env, page)
    done = await wait_until_done(env, campaign_id, timeout=60, workers=workers)
    assert done["counts"]["sent"] == 300 and done["counts"]["failed"] == 0, done["counts"]
    await assert_exactly_once(env, sim, campaign_id, eligible)
    calls = (await sim.get("/__sim/calls", params={"page_id": PAGE, "limit": 100_000})).json()
    sends = [c for c in calls["calls"] if c["path"].endswith("/messages")]
    throttled = [c for c in sends if c["code"] == 613]
    assert throttled, "the simulator never throttled: the test did not test anything"
    assert len(throttled) < 0.1 * 300, f"{len(throttled)} calls answered 613"
    assert any("rate lowered" in w.log() for w in workers)


# ------------------------------------------------------------------ 5. Redis restart


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (never the machine's shared one), AOF on."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@postgresql_only
async def test_redis_restart_mid_campaign_loses_nothing(
    postgres: str,
    private_redis: RedisServer,  # set up first, so torn down after the workers
    env_factory: Callable[..., Env],
    sim: httpx.AsyncClient,
) -> None:
    env = env_factory(redis=private_redis.url)
    await env.login()
    page = await setup_page(env, sim, send_rate=100)
    eligible = await add_people(env, sim, page, 1_500)
    workers = [env.worker(), env.worker()]
    campaign_id = await start_campaign(env, page)
    await wait_for_sent(env, campaign_id, 300, workers[0])
    private_redis.stop()  # SIGTERM: the AOF is flushed, then the server is gone
    await asyncio.sleep(3)
    down = await counters(env.db, campaign_id)
    private_redis.start()
    done = await wait_until_done(env, campaign_id, timeout=240, workers=workers)
    assert down["sent"] < 1_500, "Redis went away after the campaign had finished"
    assert done["counts"]["sent"] == 1_500
    await assert_exactly_once(env, sim, campaign_id, eligible)


@postgresql_only
async def test_embedded_redis_restart_mid_campaign_loses_nothing(
    postgres: str,
    tmp_path: Path,
    env_factory: Callable[..., Env],
    sim: httpx.AsyncClient,
) -> None:
    """The default, embedded Redis (AOF on): stopped and started again on the same data dir."""
    from pagecast.embedded_redis import EmbeddedRedis

    embedded = EmbeddedRedis(tmp_path / "embedded")
    url = await embedded.start()
    workers: list[Any] = []
    try:
        env = env_factory(redis=url)
        await env.login()
        page = await setup_page(env, sim, send_rate=100)
        eligible = await add_people(env, sim, page, 1_000)
        workers += [env.worker(), env.worker()]
        campaign_id = await start_campaign(env, page)
        await wait_for_sent(env, campaign_id, 200, workers[0])
        await embedded.stop()  # SHUTDOWN: the AOF is written, the socket is gone
        await asyncio.sleep(3)
        down = await counters(env.db, campaign_id)
        restarted = EmbeddedRedis(tmp_path / "embedded")
        assert await restarted.start() == url
        embedded = restarted
        done = await wait_until_done(env, campaign_id, timeout=240, workers=workers)
        assert down["sent"] < 1_000, "Redis went away after the campaign had finished"
        assert done["counts"]["sent"] == 1_000
        await assert_exactly_once(env, sim, campaign_id, eligible)
    finally:
        for worker in workers:  # before their Redis goes away for good
            worker.kill()
        await embedded.stop()
