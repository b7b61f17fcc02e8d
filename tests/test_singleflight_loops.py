"""Review finding: the async single-flight coalesced only callers on one event loop.

Flask runs each async view in an event loop of its own, so concurrent async requests for one
missing key each ran the function (no in-process stampede protection on ``memory://``). A key
in flight on another loop is now waited for, without blocking the waiting loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from cachekit import create_cache
from cachekit.singleflight import AsyncSingleFlight

LOOPS = 3


def _in_loops(main: Callable[[], Coroutine[Any, Any, Any]], n: int = LOOPS) -> list[Any]:
    """``asyncio.run(main())`` in ``n`` threads at once (one event loop each)."""
    barrier = threading.Barrier(n)
    results: list[Any] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(asyncio.run(main()))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_aget_or_set_runs_the_factory_once_across_event_loops() -> None:
    cache = create_cache("memory://")
    calls: list[int] = []
    ticks: list[int] = []

    async def factory() -> str:
        calls.append(1)
        await asyncio.sleep(0.3)
        return "v"

    async def main() -> str:
        async def tick() -> None:  # the waiting loop is not blocked
            for _ in range(5):
                await asyncio.sleep(0.02)
                ticks.append(1)

        ticker = asyncio.ensure_future(tick())
        value = await cache.aget_or_set("k", factory)
        await ticker
        return str(value)

    assert _in_loops(main) == ["v"] * LOOPS
    assert len(calls) == 1
    assert len(ticks) == 5 * LOOPS


def test_the_leaders_exception_is_raised_on_every_loop() -> None:
    flight = AsyncSingleFlight()
    calls: list[int] = []

    async def fail() -> str:
        calls.append(1)
        await asyncio.sleep(0.3)
        raise ValueError("the leader's")

    async def main() -> Any:
        return await flight.do("k", fail)

    results = _in_loops(main)
    assert len(calls) == 1
    assert [type(r) for r in results] == [ValueError] * LOOPS
    assert len({id(r) for r in results}) == LOOPS  # each its own copy


def test_a_waiter_on_another_loop_computes_when_the_computation_is_cancelled() -> None:
    flight = AsyncSingleFlight()
    started = threading.Event()

    async def slow() -> str:
        started.set()
        await asyncio.sleep(5)
        return "never"

    async def leader() -> None:  # its request goes away: asyncio.run cancels the computation
        computing = asyncio.ensure_future(flight.do("k", slow))
        await asyncio.sleep(0.3)
        assert not computing.done()

    async def fresh() -> str:
        return "own"

    async def waiter() -> str:
        return str(await flight.do("k", fresh))

    thread = threading.Thread(target=lambda: asyncio.run(leader()))
    thread.start()
    assert started.wait(5)
    begun = time.monotonic()
    assert asyncio.run(waiter()) == "own"
    assert time.monotonic() - begun < 3
    thread.join(5)


def test_a_key_left_by_a_loop_that_stopped_is_not_waited_for() -> None:
    flight = AsyncSingleFlight()
    stalled = asyncio.new_event_loop()

    async def never() -> str:
        await asyncio.sleep(60)
        return "never"

    async def start() -> None:
        computing = asyncio.ensure_future(flight.do("k", never))
        await asyncio.sleep(0.01)
        assert not computing.done()

    stalled.run_until_complete(start())  # the loop stops with the computation in flight

    async def fresh() -> str:
        return "own"

    begun = time.monotonic()
    assert asyncio.run(flight.do("k", fresh)) == "own"
    assert time.monotonic() - begun < 1
    for task in asyncio.all_tasks(stalled):
        task.cancel()
    stalled.run_until_complete(asyncio.sleep(0))
    stalled.close()
