"""The gateway's turns inside Rasa: a few at a time, the others served first come, first served."""

from __future__ import annotations

import asyncio

import pytest

from bot.edge.in_flight import NoSlot, Slots


async def _turn(slots: Slots, name: str, entered: list[str], leave: asyncio.Event) -> None:
    async with slots.slot(5):
        entered.append(name)
        await leave.wait()


async def test_at_most_size_inside_and_the_rest_in_arrival_order() -> None:
    slots, entered, leave = Slots(2), [], asyncio.Event()
    tasks = []
    for n in range(6):
        tasks.append(asyncio.create_task(_turn(slots, f"t{n}", entered, leave)))
        await asyncio.sleep(0)  # arrives after the one before
    await asyncio.sleep(0.01)
    assert entered == ["t0", "t1"]
    leave.set()
    await asyncio.gather(*tasks)
    assert entered == [f"t{n}" for n in range(6)]


async def test_a_newcomer_does_not_take_the_slot_freed_for_the_longest_waiting() -> None:
    slots, order = Slots(1), []
    first_leaves = asyncio.Event()

    async def first() -> None:
        async with slots.slot(5):
            order.append("first")
            await first_leaves.wait()

    async def one(name: str) -> None:
        async with slots.slot(5):
            order.append(name)

    holder = asyncio.create_task(first())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(one("waiting"))
    await asyncio.sleep(0.01)
    first_leaves.set()
    await asyncio.sleep(0)  # the slot is freed and handed over; the waiter has not run yet
    newcomer = asyncio.create_task(one("newcomer"))
    await asyncio.gather(holder, waiter, newcomer)
    assert order == ["first", "waiting", "newcomer"]


async def test_a_turn_that_waits_too_long_gets_no_slot_and_takes_none() -> None:
    slots, leave = Slots(1), asyncio.Event()
    holder = asyncio.create_task(_turn(slots, "holder", [], leave))
    await asyncio.sleep(0)
    with pytest.raises(NoSlot):
        async with slots.slot(0.05):
            pytest.fail("entered without a slot")
    leave.set()
    await holder
    async with slots.slot(0.05):  # the slot is back
        pass


@pytest.mark.parametrize("handed_first", [False, True])
async def test_a_cancelled_waiter_leaves_its_place_and_no_slot_is_lost(handed_first: bool) -> None:
    slots, entered, leave = Slots(1), [], asyncio.Event()
    holder = asyncio.create_task(_turn(slots, "holder", entered, leave))
    await asyncio.sleep(0)
    gone = asyncio.create_task(_turn(slots, "gone", entered, leave))
    after = asyncio.create_task(_turn(slots, "after", entered, leave))
    await asyncio.sleep(0.01)
    if handed_first:  # the holder leaves and hands its slot to "gone", which has not run since
        leave.set()
        await asyncio.sleep(0)
    gone.cancel()
    leave.set()
    await asyncio.gather(holder, after, gone, return_exceptions=True)
    # Python 3.10's wait_for lets a waiter already handed its slot go on despite the cancel.
    assert entered in (["holder", "after"], ["holder", "gone", "after"])
    async with slots.slot(0.05):  # the slot came back
        pass


def test_a_pool_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        Slots(0)
