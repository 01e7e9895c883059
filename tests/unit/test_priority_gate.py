"""A family's gate: one take draws at a time, and DX work goes before any normal take waiting."""

from __future__ import annotations

import asyncio

from streams.gate import PriorityGate


async def test_dx_work_waiting_goes_before_normal_work_waiting_once_the_take_in_flight_ends() -> None:
    gate, order = PriorityGate(), []
    in_flight = asyncio.Event()

    async def take(name: str, dx: bool, hold: asyncio.Event | None = None) -> None:
        async with gate.turn(dx):
            order.append(f"{name} starts")
            if hold:
                in_flight.set()
                await hold.wait()
            order.append(f"{name} ends")

    release = asyncio.Event()
    first = asyncio.create_task(take("normal-1", False, release))
    await in_flight.wait()
    # while normal-1 draws, more normal work arrives, then DX work
    later = [asyncio.create_task(take(f"normal-{i}", False)) for i in (2, 3)]
    await asyncio.sleep(0)
    dx = asyncio.create_task(take("dx", True))
    await asyncio.sleep(0)
    assert order == ["normal-1 starts"]  # nothing starts beside the take in flight
    release.set()
    await asyncio.gather(first, dx, *later)
    assert order[:4] == ["normal-1 starts", "normal-1 ends", "dx starts", "dx ends"]
    assert sorted(order[4:]) == ["normal-2 ends", "normal-2 starts", "normal-3 ends", "normal-3 starts"]


async def test_normal_work_goes_on_when_no_dx_work_waits() -> None:
    gate, order = PriorityGate(), []

    async def take(name: str) -> None:
        async with gate.turn(False):
            order.append(name)
            await asyncio.sleep(0)

    await asyncio.gather(*(take(f"normal-{i}") for i in range(3)))
    assert sorted(order) == ["normal-0", "normal-1", "normal-2"]
