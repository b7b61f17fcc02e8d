"""Review finding: a single-flight waiter waited for the leader with no bound.

A computation that hands a call of its own key to another thread (a cached view running a
same-key helper in a worker thread) or to a task started outside it is not recognised as
re-entry (the context variable does not reach them), so the nested call waited on the
computation, and the computation on the nested call: forever. A waiter now waits at most
``singleflight.WAIT_TIMEOUT`` (10 s by default) and then computes on its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Any

import pytest

from cachekit import create_cache, singleflight
from cachekit.singleflight import AsyncSingleFlight, SingleFlight


@pytest.fixture(autouse=True)
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(singleflight, "WAIT_TIMEOUT", 0.3, raising=False)


def test_a_sync_waiter_computes_alone_once_its_wait_expires() -> None:
    flight = SingleFlight()
    results: list[Any] = []

    def lead() -> str:
        got: list[Any] = []
        worker = threading.Thread(
            target=lambda: got.append(flight.do("k", lambda: "waiter-led", lambda: "alone")),
            daemon=True,
        )
        worker.start()
        worker.join(8)
        return "lead+" + (got[0] if got else "<hung>")

    runner = threading.Thread(target=lambda: results.append(flight.do("k", lead)), daemon=True)
    runner.start()
    runner.join(10)
    assert results == ["lead+alone"]
    assert flight.in_flight() == 0


def test_a_sync_waiter_still_takes_a_leader_that_finishes_in_time() -> None:
    flight = SingleFlight()
    calls: list[int] = []
    started = threading.Event()

    def slow() -> str:
        calls.append(1)
        started.set()
        time.sleep(0.1)  # within the bound
        return "v"

    leader = threading.Thread(target=lambda: flight.do("k", slow))
    leader.start()
    started.wait(5)
    assert flight.do("k", lambda: "other", lambda: "alone") == "v"
    leader.join(5)
    assert calls == [1]


def test_get_or_set_in_a_worker_thread_of_its_own_computation_does_not_hang() -> None:
    cache = create_cache("memory://singleflight-review")
    results: list[Any] = []

    def outer() -> str:
        got: list[Any] = []
        worker = threading.Thread(
            target=lambda: got.append(cache.get_or_set("page", lambda: "inner")), daemon=True
        )
        worker.start()
        worker.join(8)
        return "outer+" + (str(got[0]) if got else "<hung>")

    runner = threading.Thread(
        target=lambda: results.append(cache.get_or_set("page", outer)), daemon=True
    )
    runner.start()
    runner.join(10)
    assert results == ["inner"]  # the core's get_or_set: the value stored first wins (add)
    cache.close()


def test_an_async_waiter_outside_the_computation_computes_alone_once_its_wait_expires() -> None:
    flight = AsyncSingleFlight()

    async def alone() -> str:
        return "alone"

    async def waiter_led() -> str:
        return "waiter-led"

    async def lead() -> str:
        # A task started in a context of its own (a worker task, a queue consumer): not re-entry.
        nested = asyncio.get_running_loop().create_task(
            flight.do("k", waiter_led, alone), context=contextvars.Context()
        )
        try:
            return "lead+" + await asyncio.wait_for(nested, 8)
        except TimeoutError:
            return "lead+<hung>"

    async def main() -> Any:
        return await asyncio.wait_for(flight.do("k", lead), 10)

    assert asyncio.run(main()) == "lead+alone"


def test_an_async_waiter_still_takes_a_leader_that_finishes_in_time() -> None:
    flight = AsyncSingleFlight()
    calls: list[int] = []

    async def slow() -> str:
        calls.append(1)
        await asyncio.sleep(0.1)
        return "v"

    async def other() -> str:
        return "other"

    async def main() -> list[Any]:
        return list(await asyncio.gather(flight.do("k", slow), flight.do("k", other, other)))

    assert asyncio.run(main()) == ["v", "v"]
    assert calls == [1]
