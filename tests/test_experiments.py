"""A/B variants and experiments (issue 20): the API's `variants` and `experiment` and their
refusals, the assignment by a seeded hash in the snapshot's SQL (the same on SQLite and
PostgreSQL, and the same as its definition in Python), and the engine end to end: the test
cohort gets its variants, the holdout nothing, the rest the winner, nobody two messages.

The engine runs in-process (API start → real Redis → worker → the Graph simulator through
the real client); time moves by the worker's injected clock (test_sending.AheadClock).
Reads are written on the deliveries as receipts would write them (the app under test is
in-process, so the simulator's webhooks cannot reach it).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, update

import test_sending
from factories import connected_page
from pagecast.context import AppContext
from pagecast.db import Database
from pagecast.models import Campaign, Contact, Delivery, DeliveryStatus, Role, utcnow
from pagecast.security import Vault
from pagecast.services import abstats, deliveries, snapshot_insert, snapshots, variants
from pagecast.settings import Settings
from pagecast.worker import build
from pagecast.worker.sweep import sweep
from test_sending import (
    AheadClock,
    RunningWorker,
    add_people,
    deliveries_by_psid,
    outbox,
    setup_page,
    wait_for,
)

sending_settings = test_sending.sending_settings
engine_app = test_sending.engine_app
admin = test_sending.admin
manager = test_sending.manager

A = {"text": "Hi {{first_name|there}}, 10% off"}
B = {"text": "Hi {{first_name|there}}, free shipping today"}
TWO = [{"key": "A", "content": A, "weight": 1}, {"key": "B", "content": B, "weight": 1}]
EXPERIMENT = {
    "test_percent": 20,
    "holdout_percent": 10,
    "winner_metric": "read_rate",
    "decide_after_seconds": 3600,
    "auto_winner": True,
}


def variant_of(message: dict[str, Any]) -> str:
    text = message["message"]["text"]
    return "B" if "free shipping" in text else "A" if "10% off" in text else "?"


# ------------------------------------------------------------------ the API


async def test_variants_and_experiment_are_saved_and_read_back(
    api: Any, db: Database, vault: Vault
) -> None:
    manager = await api(Role.MANAGER)
    page = await connected_page(db, vault)
    created = await manager.post(
        "/api/campaigns",
        json={"name": "AB", "page_id": page.id, "variants": TWO, "experiment": EXPERIMENT},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["variants"] == TWO and body["content"] == A
    assert body["experiment"] == EXPERIMENT | {"confidence": 0.95}
    read = (await manager.get(f"/api/campaigns/{body['id']}")).json()
    experiment = read["experiment"]
    assert experiment["status"] == "testing" and experiment["winner"] is None
    assert set(experiment["variants"]) == {"A", "B"}
    assert experiment["variants"]["A"]["sent"] == 0
    assert experiment["holdout"]["size"] == 0
    renamed = await manager.patch(f"/api/campaigns/{body['id']}", json={"name": "AB 2"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["variants"] == TWO
    copy = await manager.post(f"/api/campaigns/{body['id']}/duplicate")
    assert copy.status_code == 201 and copy.json()["variants"] == TWO
    # Variants without an experiment: every person gets one by weight.
    plain = await manager.post(
        "/api/campaigns", json={"name": "Split", "page_id": page.id, "variants": TWO}
    )
    assert plain.status_code == 201, plain.text
    assert plain.json()["experiment"] is None


async def test_patch_changes_variants_of_a_draft_and_a_single_message_ends_the_test(
    api: Any, db: Database, vault: Vault
) -> None:
    manager = await api(Role.MANAGER)
    page = await connected_page(db, vault)
    created = await manager.post(
        "/api/campaigns",
        json={"name": "AB", "page_id": page.id, "variants": TWO, "experiment": EXPERIMENT},
    )
    campaign_id = created.json()["id"]
    three = [*TWO, {"key": "C", "content": {"text": "Last chance"}, "weight": 2}]
    patched = await manager.patch(f"/api/campaigns/{campaign_id}", json={"variants": three})
    assert patched.status_code == 200, patched.text
    assert (
        patched.json()["variants"] == three and patched.json()["experiment"]["test_percent"] == 20
    )
    bad = await manager.patch(
        f"/api/campaigns/{campaign_id}", json={"experiment": EXPERIMENT | {"holdout_percent": 90}}
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "experiment.test_percent"
    one = await manager.patch(f"/api/campaigns/{campaign_id}", json={"content": A})
    assert one.status_code == 200, one.text
    assert one.json()["variants"] is None and one.json()["experiment"] is None
    assert one.json()["content"] == A


def _variants(count: int) -> list[dict[str, Any]]:
    return [{"key": k, "content": {"text": f"v{k}"}} for k in "ABCDEF"[:count]]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"variants": _variants(1)}, "variants", "2 to 5"),
        ({"variants": [*_variants(5), {"key": "A", "content": A}]}, "variants", "2 to 5"),
        ({"variants": [TWO[0], TWO[0]]}, "variants[1].key", "used twice"),
        ({"variants": [TWO[0], {"key": "Z", "content": B}]}, "variants[1].key", ""),
        ({"variants": [TWO[0], {"key": "B", "content": B, "weight": 0}]}, "variants[1].weight", ""),
        (
            {"variants": [TWO[0], {"key": "B", "content": {"text": "Hi {{city}}"}}]},
            "variants[1].content.text",
            "{{city}}",
        ),
        (
            {"variants": [TWO[0], {"key": "B", "content": {"text": "x" * 2001}}]},
            "variants[1].content.text",
            "",
        ),
        ({"variants": [TWO[0], {"key": "B"}]}, "variants[1].content", "required"),
        ({"content": A, "variants": TWO}, "content", "give only one"),
        ({"content": A, "experiment": EXPERIMENT}, "experiment", "needs variants"),
        (
            {"variants": TWO, "experiment": EXPERIMENT | {"test_percent": 95}},
            "experiment.test_percent",
            "more than 100",
        ),
        (
            {"variants": TWO, "experiment": EXPERIMENT | {"winner_metric": "open_rate"}},
            "experiment.winner_metric",
            "",
        ),
        (
            {"variants": TWO, "experiment": EXPERIMENT | {"decide_after_seconds": 5}},
            "experiment.decide_after_seconds",
            "",
        ),
        ({"variants": "AB"}, "variants", ""),
    ],
    ids=[
        "one",
        "six",
        "same-key",
        "bad-key",
        "zero-weight",
        "unknown-placeholder",
        "too-long",
        "no-content",
        "with-content",
        "experiment-alone",
        "over-100",
        "bad-metric",
        "too-soon",
        "not-a-list",
    ],
)
async def test_bad_variants_are_refused_naming_the_field_and_save_nothing(
    api: Any, db: Database, vault: Vault, body: dict[str, Any], field: str, words: str
) -> None:
    manager = await api(Role.MANAGER)
    page = await connected_page(db, vault)
    if "content" not in body and "variants" not in body:
        body = body | {"content": A}
    answer = await manager.post("/api/campaigns", json={"name": "Bad", "page_id": page.id} | body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"].startswith(field) and words in error["message"], error
    assert (await manager.get("/api/campaigns")).json()["items"] == []


async def test_picking_a_winner_is_refused_in_words_when_it_cannot_be(
    api: Any, db: Database, vault: Vault
) -> None:
    manager = await api(Role.MANAGER)
    page = await connected_page(db, vault)
    one = await manager.post(
        "/api/campaigns", json={"name": "One", "page_id": page.id, "content": A}
    )
    ab = await manager.post(
        "/api/campaigns",
        json={"name": "AB", "page_id": page.id, "variants": TWO, "experiment": EXPERIMENT},
    )
    cases = [
        (one.json()["id"], {"key": "A"}, 409, "not an experiment"),
        (ab.json()["id"], {"key": "C"}, 422, "not a variant"),
        (ab.json()["id"], {"key": ""}, 422, ""),
        (ab.json()["id"], {}, 422, "required"),
        (ab.json()["id"], {"key": "A"}, 409, "has started"),  # a draft
        (999_999, {"key": "A"}, 404, "does not exist"),
    ]
    for campaign_id, body, status, words in cases:
        answer = await manager.post(f"/api/campaigns/{campaign_id}/winner", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert words in answer.json()["error"]["message"], answer.text


# ------------------------------------------------------------------ the assignment

_P = 2_147_483_647


def _hash(contact_id: int, salt: int) -> int:
    """services/variants._hash, written again in Python: the SQL must compute this."""
    h = (contact_id * 48_271 + salt) % _P
    h = (h * h + salt) % _P
    return (h * 16_807 + contact_id) % _P


def expected(
    contact_id: int, seed: int, weights: dict[str, int], cut: tuple[int, int] | None
) -> str | None:
    point = _hash(contact_id, (seed * 31 + 7_919) % _P) % sum(weights.values())
    edge, pick = 0, ""
    for key, weight in weights.items():
        edge += weight
        if point < edge:
            pick = key
            break
    if cut is None:
        return pick
    bucket = _hash(contact_id, seed % _P) % 10_000
    return None if bucket < cut[0] else pick if bucket < cut[1] else variants.WAITING


async def _people(db: Database, page_id: int, count: int) -> None:
    async with db.transaction() as session:
        await session.execute(
            insert(Contact),
            [
                {"page_id": page_id, "psid": f"9{i:06d}", "last_inbound_at": utcnow()}
                for i in range(count)
            ],
        )


async def _snapshot(db: Database, campaign: Campaign) -> dict[int, tuple[str | None, str | None]]:
    async with db.transaction() as session:
        session.add(campaign)
        await session.flush()
        await snapshot_insert.snapshot(session, campaign, utcnow())
        rows = await session.execute(
            select(Delivery.contact_id, Delivery.variant, Delivery.reason).where(
                Delivery.campaign_id == campaign.id
            )
        )
        return {contact_id: (variant, reason) for contact_id, variant, reason in rows}


def _campaign(page_id: int, seed: int, weights: dict[str, int], experiment: Any = None) -> Campaign:
    return Campaign(
        name="hash",
        page_id=page_id,
        content=A,
        audience={"type": "all"},
        variants=[{"key": k, "content": A, "weight": w} for k, w in weights.items()],
        experiment=experiment,
        variant_seed=seed,
    )


async def test_the_assignment_is_the_seeded_hash_on_either_backend(
    db: Database, vault: Vault
) -> None:
    """The snapshot's SQL gives each person what the hash's definition gives (so SQLite and
    PostgreSQL agree), the shares follow the weights and the cut, a second snapshot of the
    same seed gives everyone the same place, and another seed another one."""
    page = await connected_page(db, vault)
    await _people(db, page.id, 4000)
    weights = {"A": 1, "B": 3}
    seed = 123_456_789
    got = await _snapshot(db, _campaign(page.id, seed, weights))
    assert len(got) == 4000
    assert all(v == expected(cid, seed, weights, None) for cid, (v, _) in got.items())
    shares = Counter(v for v, _ in got.values())
    assert 900 <= shares["A"] <= 1100 and shares["A"] + shares["B"] == 4000, shares
    again = await _snapshot(db, _campaign(page.id, seed, weights))
    assert again == got
    other = await _snapshot(db, _campaign(page.id, 987_654_321, weights))
    assert sum(other[c][0] != got[c][0] for c in got) > 1000  # a new seed, a new draw
    # An experiment: 10 % holdout (skipped, reason holdout), 20 % test, 70 % waiting.
    cut = {"test_percent": 20, "holdout_percent": 10}
    split = await _snapshot(db, _campaign(page.id, seed, {"A": 1, "B": 1}, cut))
    assert all(
        v == expected(cid, seed, {"A": 1, "B": 1}, (1000, 3000)) for cid, (v, _) in split.items()
    )
    kinds = Counter(
        "holdout" if r == variants.HOLDOUT else "rest" if v == variants.WAITING else "test"
        for v, r in split.values()
    )
    assert 320 <= kinds["holdout"] <= 480 and 680 <= kinds["test"] <= 920, kinds
    assert all((v is None) == (r == variants.HOLDOUT) for v, r in split.values())


async def test_a_snapshot_in_slices_assigns_as_one_statement_would(
    db: Database, vault: Vault
) -> None:
    """A large audience is snapshotted in slices (services/snapshots.py): each slice's
    INSERT … SELECT carries the same assignment."""
    page = await connected_page(db, vault)
    await _people(db, page.id, snapshots.SNAPSHOT_FIRST + 700)
    seed, weights = 42, {"A": 2, "B": 1, "C": 1}
    cut = {"test_percent": 30, "holdout_percent": 5}
    campaign = _campaign(page.id, seed, weights, cut)
    campaign.started_at = utcnow()
    async with db.transaction() as session:
        session.add(campaign)
        await session.flush()
        _, rest = await snapshots.first_slice(session, campaign, utcnow(), [])
    assert rest is not None
    async with db.transaction() as session:
        after = await snapshots.insert_slice(session, campaign.id, after=rest.after, upto=rest.upto)
    assert after >= rest.upto
    async with db.transaction() as session:
        rows = list(
            await session.execute(
                select(Delivery.contact_id, Delivery.variant).where(
                    Delivery.campaign_id == campaign.id
                )
            )
        )
    assert len(rows) == snapshots.SNAPSHOT_FIRST + 700
    assert all(v == expected(cid, seed, weights, (500, 3500)) for cid, v in rows)


def test_the_statistics_match_known_values() -> None:
    # Wilson 95 % for 10 of 100: 0.0552 to 0.1744 (Wilson 1927; Newcombe 1998, table I).
    low, high = abstats.wilson(10, 100) or (0, 0)
    assert round(low, 4) == 0.0552 and round(high, 4) == 0.1744
    assert abstats.wilson(0, 0) is None
    assert abstats.wilson(0, 10) == (pytest.approx(0.0, abs=1e-9), pytest.approx(0.2775, abs=1e-4))
    # No success or every one: the bound is exactly 0 or 1 (an API answer showed 6.9e-18).
    assert [abstats.wilson(0, 47)[0], abstats.wilson(43, 43)[1]] == [0.0, 1.0]  # type: ignore[index]
    # 60/100 against 45/100: z = 2.12, p = 0.034 (pooled two-proportion z-test).
    test = abstats.compare(60, 100, 45, 100)
    assert round(test.z, 2) == 2.12 and round(test.p_value, 3) == 0.034 and test.significant
    assert not abstats.compare(60, 100, 45, 100, confidence=0.99).significant
    assert not abstats.compare(0, 10, 0, 10).significant
    assert not abstats.compare(1, 0, 0, 10).significant


# ------------------------------------------------------------------ the engine


async def _read_all(db: Database, campaign_id: int, key: str, every: int) -> None:
    """Mark every `every`-th sent delivery of variant `key` read, as receipts would (the
    counters move with the rows)."""
    async with db.transaction() as session:
        ids = list(
            await session.scalars(
                select(Delivery.id)
                .where(
                    Delivery.campaign_id == campaign_id,
                    Delivery.variant == key,
                    Delivery.status == DeliveryStatus.SENT,
                )
                .order_by(Delivery.id)
            )
        )[::every]
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(status=DeliveryStatus.READ, read_at=utcnow(), delivered_at=utcnow())
        )
        await deliveries.shift(
            session, campaign_id, {DeliveryStatus.SENT: -len(ids), DeliveryStatus.READ: len(ids)}
        )


async def _sweep_at(settings: Settings, db: Database, ahead: timedelta) -> None:
    ctx = AppContext(settings, database=db)
    try:
        await sweep(build(ctx, clock=AheadClock(ahead)).env)
    finally:
        await ctx.close()


async def _test_phase(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    settings: Settings,
    db: Database,
    people: int,
) -> tuple[int, list[str], dict[str, Delivery]]:
    """An experiment started and its test cohort sent; the rest waits (still `sending`)."""
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, manager, page_id, people)
    created = await manager.post(
        "/api/campaigns",
        json={"name": "AB", "page_id": page_id, "variants": TWO, "experiment": EXPERIMENT},
    )
    assert created.status_code == 201, created.text
    campaign_id = int(created.json()["id"])
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    rows = await deliveries_by_psid(db, campaign_id)
    test = [p for p, d in rows.items() if d.variant in ("A", "B")]
    async with RunningWorker(settings, db):
        await test_sending.until(
            lambda: _sent_count(sim, len(test)), timeout=30, what="the test cohort sent"
        )
    body = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    assert body["status"] == "sending" and body["experiment"]["status"] == "testing"
    return campaign_id, psids, rows


async def _sent_count(sim: httpx.AsyncClient, count: int) -> bool:
    return len(await outbox(sim)) >= count


def _check_once(messages: list[dict[str, Any]], rows: dict[str, Delivery]) -> Counter[str]:
    """Nobody got two messages, the holdout none, each person the variant stored for them."""
    psids = Counter(m["psid"] for m in messages)
    assert max(psids.values()) == 1, [p for p, n in psids.items() if n > 1][:5]
    held = {p for p, d in rows.items() if d.reason == variants.HOLDOUT}
    assert held and not held & set(psids)
    return Counter(variant_of(m) for m in messages)


async def test_b_reads_more_so_the_rest_gets_b_and_the_holdout_nothing(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    """The issue's test: 20 % test cohort, 10 % holdout; B is read far more; after the test
    time the worker's sweep decides B (significant), the rest gets B, nobody two messages."""
    campaign_id, _, rows = await _test_phase(admin, manager, sim, sending_settings, db, 400)
    first = await outbox(sim)
    test = {p for p, d in rows.items() if d.variant in ("A", "B")}
    assert {m["psid"] for m in first} == test  # the rest waits for the winner
    for message in first:
        assert variant_of(message) == rows[message["psid"]].variant
    await _read_all(db, campaign_id, "B", every=1)
    await _read_all(db, campaign_id, "A", every=10)
    await _sweep_at(sending_settings, db, timedelta(minutes=59))  # too early: still testing
    early = (await manager.get(f"/api/campaigns/{campaign_id}")).json()["experiment"]
    assert early["status"] == "testing" and early["winner"] is None
    await _sweep_at(sending_settings, db, timedelta(hours=1, seconds=5))
    decided = (await manager.get(f"/api/campaigns/{campaign_id}")).json()["experiment"]
    assert decided["winner"] == "B" and decided["status"] == "sending_winner", decided
    assert "B leads A" in decided["reason"] and "significant at 95 %" in decided["reason"]
    async with RunningWorker(sending_settings, db):
        done = await wait_for(manager, campaign_id, {"completed"})
    after = await deliveries_by_psid(db, campaign_id)
    got = _check_once(await outbox(sim), after)
    rest = [p for p, d in rows.items() if d.variant == variants.WAITING]
    assert got["A"] == sum(1 for d in rows.values() if d.variant == "A")
    assert got["B"] == sum(1 for d in rows.values() if d.variant == "B") + len(rest)
    assert all(after[p].variant == "B" for p in rest)
    assert all(after[p].variant == rows[p].variant for p in test)  # the test kept its own
    experiment = done["experiment"]
    assert experiment["status"] == "done"
    b = experiment["variants"]["B"]
    assert b["sent"] == got["B"] and b["rates"]["read_rate"]["low"] is not None
    holdout = experiment["holdout"]
    assert holdout["size"] == sum(1 for d in rows.values() if d.reason == variants.HOLDOUT)
    assert set(holdout["lift"]) == {"A", "B"}


async def test_no_significant_difference_waits_for_a_person_to_pick(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    campaign_id, _, rows = await _test_phase(admin, manager, sim, sending_settings, db, 200)
    await _sweep_at(sending_settings, db, timedelta(hours=2))
    body = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    experiment = body["experiment"]
    assert experiment["status"] == "deciding" and experiment["winner"] is None
    # Nobody read anything: too little data for the test (no significant difference either).
    assert "Not enough data yet" in experiment["reason"] and "pick a winner" in experiment["reason"]
    assert body["status"] == "sending"  # the rest still waits
    picked = await manager.post(f"/api/campaigns/{campaign_id}/winner", json={"key": "A"})
    assert picked.status_code == 200, picked.text
    again = await manager.post(f"/api/campaigns/{campaign_id}/winner", json={"key": "B"})
    assert again.status_code == 409 and "already decided" in again.text
    async with RunningWorker(sending_settings, db):
        done = await wait_for(manager, campaign_id, {"completed"})
    got = _check_once(await outbox(sim), await deliveries_by_psid(db, campaign_id))
    rest = sum(1 for d in rows.values() if d.variant == variants.WAITING)
    assert got["A"] == sum(1 for d in rows.values() if d.variant == "A") + rest
    assert (
        done["experiment"]["winner"] == "A" and done["experiment"]["reason"] == "A picked by hand."
    )


async def test_a_split_without_experiment_sends_everyone_their_variant(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, manager, page_id, 60)
    created = await manager.post(
        "/api/campaigns", json={"name": "Split", "page_id": page_id, "variants": TWO}
    )
    campaign_id = int(created.json()["id"])
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    async with RunningWorker(sending_settings, db):
        done = await wait_for(manager, campaign_id, {"completed"})
    rows = await deliveries_by_psid(db, campaign_id)
    messages = await outbox(sim)
    assert sorted(m["psid"] for m in messages) == sorted(psids)
    assert all(variant_of(m) == rows[m["psid"]].variant for m in messages)
    assert {d.variant for d in rows.values()} == {"A", "B"}
    counts = done["experiment"]["variants"]
    assert counts["A"]["sent"] + counts["B"]["sent"] == 60
