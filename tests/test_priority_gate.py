"""The slots of a Page's chunks in a worker go to the most urgent chunk first."""

from __future__ import annotations

import asyncio

from pagecast.priority_gate import PriorityGate

HIGH, NORMAL, LOW = 1, 5, 10


async def _waiter(gate: PriorityGate, priority: int, name: str, order: list[str]) -> None:
    await gate.acquire(priority)
    order.append(name)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_freed_slot_goes_to_the_most_urgent_waiter_then_first_come() -> None:
    gate, order = PriorityGate(1), []
    await gate.acquire(NORMAL)
    tasks = [
        asyncio.create_task(_waiter(gate, priority, name, order))
        for priority, name in [(NORMAL, "n1"), (LOW, "l1"), (HIGH, "h1"), (NORMAL, "n2")]
    ]
    await _settle()
    for holder in (NORMAL, HIGH, NORMAL, NORMAL):  # each holder in turn frees its slot
        gate.release(holder)
        await _settle()
    await asyncio.gather(*tasks)
    assert order == ["h1", "n1", "n2", "l1"]


async def test_no_less_urgent_chunk_takes_a_slot_while_a_more_urgent_one_holds() -> None:
    gate, order = PriorityGate(2), []
    await gate.acquire(NORMAL)  # a chunk of the large campaign, already sending
    urgent = asyncio.create_task(_waiter(gate, HIGH, "urgent", order))
    await _settle()
    assert order == ["urgent"]  # a free slot: the urgent chunk takes it at once
    normal = asyncio.create_task(_waiter(gate, NORMAL, "normal", order))
    gate.release(NORMAL)  # the first chunk is done: one slot free, yet the urgent one holds
    await _settle()
    assert order == ["urgent"]
    gate.release(HIGH)
    await _settle()
    assert order == ["urgent", "normal"]
    await asyncio.gather(urgent, normal)


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    gate, order = PriorityGate(1), []
    await gate.acquire(NORMAL)
    gone = asyncio.create_task(_waiter(gate, HIGH, "gone", order))
    kept = asyncio.create_task(_waiter(gate, NORMAL, "kept", order))
    await _settle()
    gone.cancel()
    await _settle()
    gate.release(NORMAL)
    await _settle()
    assert order == ["kept"] and gone.cancelled()
    await kept
