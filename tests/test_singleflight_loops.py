"""Review finding: the async single-flight coalesced only callers on one event loop.

Flask runs each async view in an event loop of its own, so concurrent async requests for one
missing key each ran the function (no in-process stampede protection on ``memory://``). A key
in flight on another loop is now waited for, without blocking the waiting loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

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


# -- second reading: no lock around the computation's start, a stopped leader loop ---------------


def test_the_computation_starts_with_the_flight_lock_released() -> None:
    """The task was created under the flight's lock: with an eager task factory (3.12+) the
    computation ran inside create_task, and a nested call for another key blocked the thread
    on that lock for good. Any task factory sees the lock's state at creation."""
    flight = AsyncSingleFlight()
    held: list[bool] = []

    async def main() -> str:
        loop = asyncio.get_running_loop()

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            held.append(flight._lock.locked())
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(factory)

        async def compute() -> str:
            return "v"

        return str(await flight.do("k", compute))

    assert asyncio.run(main()) == "v"
    assert held
    assert not any(held)


@pytest.mark.skipif(
    not hasattr(asyncio, "eager_task_factory"), reason="asyncio.eager_task_factory is 3.12+"
)
def test_an_eager_computation_may_call_the_flight_again() -> None:
    cache = create_cache("memory://eager")

    async def main() -> str:
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]

        async def page() -> str:
            helper = await cache.aget_or_set("helper", lambda: "helper")
            return f"page+{helper}"

        return str(await cache.aget_or_set("page", page))

    done: list[str] = []
    thread = threading.Thread(target=lambda: done.append(asyncio.run(main())), daemon=True)
    thread.start()
    thread.join(5)
    assert done == ["page+helper"], "the nested call hung on the flight's lock"


def test_a_waiter_stops_waiting_when_the_leaders_loop_stops() -> None:
    """A waiter on another loop sat out the whole bound (10 s) when the leader's loop stopped
    with the computation unfinished (a caller's wait_for gave up, then the loop closed)."""
    cache = create_cache("memory://stopped-leader")
    leading = threading.Event()

    async def slow() -> str:
        leading.set()
        await asyncio.sleep(30)
        return "late"

    def leader() -> None:
        loop = asyncio.new_event_loop()

        async def main() -> None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(cache.aget_or_set("k", slow), 0.5)

        loop.run_until_complete(main())
        loop.close()  # the shielded computation never finishes

    thread = threading.Thread(target=leader)
    thread.start()
    assert leading.wait(5)

    async def waiter() -> tuple[str, float]:
        started = time.monotonic()
        value = await cache.aget_or_set("k", lambda: "own")
        return value, time.monotonic() - started

    value, waited = asyncio.run(waiter())
    thread.join(5)
    assert value == "own"
    assert waited < 3.0, waited  # the bound is 10 s; the leader's loop stopped at ~0.5 s
    assert cache._async_single_flight._running == {}
