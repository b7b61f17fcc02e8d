"""Regression tests of the memory provider and the contract's composites.

Each test states the correct behaviour for a defect found in review (and fixed): races between a
lock-free preamble and a critical section, expiry bookkeeping, input validation. Races are made
deterministic by wrapping the provider's lock so that a "concurrent" operation runs exactly
between two steps of the operation under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from cachekit import MISSING, ConfigurationError, NotAnInteger, ValueTooLarge, create_cache
from cachekit.providers.memory import MemoryCache, RemovalCause
from cachekit.sizing import deep_sizer
from cachekit.testing import FakeClock


class HookLock:
    """Wraps a cache's lock; runs ``hook`` just before the ``nth`` acquisition (1-based).

    The hook runs without the lock held, exactly where another thread could run a whole
    operation: between the caller's unlocked preamble and its critical section.
    """

    def __init__(self, real: Any, hook: Callable[[], None], nth: int = 1) -> None:
        self.real = real
        self.hook: Callable[[], None] | None = hook
        self.countdown = nth

    def _fire(self) -> None:
        self.countdown -= 1
        if self.countdown == 0 and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()

    def __enter__(self) -> Any:
        self._fire()
        return self.real.__enter__()

    def __exit__(self, *exc: object) -> Any:
        return self.real.__exit__(*exc)

    # The write path takes the lock inline (acquire/release) rather than with ``with``.
    def acquire(self, blocking: bool = True) -> bool:
        self._fire()
        return bool(self.real.acquire(blocking))

    def release(self) -> None:
        self.real.release()

    @property
    def lock(self) -> Any:
        return self.real.lock


# -- 1. tag index drift: the plain write path decides "no tags anywhere" before the lock ---------


def test_untagged_set_racing_a_tagged_set_still_clears_the_tags() -> None:
    cache = MemoryCache()
    # Thread B: set("x", 1) with no tags checks _plain (True), then thread A's tagged set of the
    # same key runs to completion before B takes the lock.
    cache._lock = HookLock(cache._lock, lambda: cache.set("x", 0, tags=["t"]))
    cache.set("x", 1)
    # B's write is the last one and carries no tags: the contract says it replaced them.
    assert cache.invalidate_tags(["t"]) == 0
    assert cache.get("x") == 1


# -- 2. expiry heap grows without bound when no node is due --------------------------------------


def test_expiry_heap_stays_bounded_when_nothing_is_due() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock, max_entries=None)
    for i in range(5000):
        cache.set("same", i, ttl=3600)
    # One live entry; the module promises a rebuild past 2 x live + 1024 nodes.
    assert len(cache._expiry_heap) <= 2 * len(cache) + 1024


def test_expiry_heap_stays_bounded_under_repeated_touch() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock, max_entries=None)
    cache.set("session", 1, ttl=3600)
    for _ in range(5000):
        cache.touch("session", ttl=3600)
    assert len(cache._expiry_heap) <= 2 * len(cache) + 1024


# -- 3. NaN TTLs are accepted (and poison the expiry heap) ---------------------------------------


@pytest.mark.parametrize("op", ["set", "add", "touch", "set_many"])
def test_nan_ttl_is_rejected(op: str) -> None:
    cache = MemoryCache()
    cache.set("k", 1)
    nan = float("nan")
    call = {
        "set": lambda: cache.set("k", 2, ttl=nan),
        "add": lambda: cache.add("new", 2, ttl=nan),
        "touch": lambda: cache.touch("k", ttl=nan),
        "set_many": lambda: cache.set_many({"k": 2}, ttl=nan),
    }[op]
    with pytest.raises((TypeError, ValueError)):
        call()


def test_nan_default_ttl_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        MemoryCache(default_ttl=float("nan"))


def test_one_nan_ttl_does_not_stop_the_sweeper() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock, max_entries=None)
    with contextlib.suppress(TypeError, ValueError):  # rejecting it is the fix
        cache.set("poison", 1, ttl=float("nan"))
    for i in range(20):
        cache.set(f"k{i}", i, ttl=1)
    clock.advance(10)
    for i in range(20):
        cache.set(f"w{i}", i)
    assert cache.get_stats().expirations >= 20


# -- 4. incr bypasses the ValueTooLarge check: returns a value it silently did not store --------


def test_incr_of_a_counter_over_the_memory_bound_raises_value_too_large() -> None:
    cache = MemoryCache(max_memory_bytes=300)
    key = "k" * 100  # key + int + entry overhead > 300 accounted bytes
    with pytest.raises(ValueTooLarge):
        cache.set(key, 1)
    with pytest.raises(ValueTooLarge):
        cache.incr(key)


# -- 5. a memory bound that is silently not enforced --------------------------------------------


def test_memory_bound_with_sizer_none_is_enforced_or_refused() -> None:
    try:
        cache = MemoryCache(max_memory_bytes=10_000, sizer=None)
    except ConfigurationError:
        return
    for i in range(1000):
        cache.set(f"k{i}", "x" * 100)
    assert cache.get_stats().memory_bytes <= 10_000


def test_dict_config_accepts_a_sizer_callable_as_the_readme_says() -> None:
    cache = create_cache(
        {"url": "memory://", "max_memory_bytes": 10, "sizer": lambda key, value: len(value)}
    )
    cache.set("a", "12345")
    cache.set("b", "123456")
    assert cache.get_stats().memory_bytes <= 10


# -- 6. URL parsing: options silently dropped or misread -----------------------------------------


def test_url_query_values_may_contain_a_slash() -> None:
    cache = create_cache("memory://?name=team/pages&max_entries=5")
    assert cache.name == "team/pages"
    assert isinstance(cache, MemoryCache)
    assert cache.max_entries == 5


def test_memory_url_path_is_not_silently_ignored() -> None:
    try:
        cache = create_cache("memory:///sessions")
    except ConfigurationError:
        return
    assert cache.name == "sessions"


# -- 7. tags given as a bare str are split into characters ---------------------------------------


@pytest.mark.parametrize("op", ["set", "add", "set_many", "get_or_set"])
def test_tags_as_a_bare_str_are_refused(op: str) -> None:
    cache = MemoryCache()
    call = {
        "set": lambda: cache.set("k", 1, tags="catalog"),
        "add": lambda: cache.add("k", 1, tags="catalog"),
        "set_many": lambda: cache.set_many({"k": 1}, tags="catalog"),
        "get_or_set": lambda: cache.get_or_set("k", lambda: 1, tags="catalog"),
    }[op]
    with pytest.raises(TypeError):
        call()


# -- 8. get_or_set overwrites a value written while its factory ran ------------------------------


def test_get_or_set_does_not_overwrite_a_concurrent_set() -> None:
    cache = MemoryCache()

    def slow_factory() -> str:
        # Meanwhile, another thread writes through a fresher value.
        cache.set("user:1", "fresh")
        return "stale"

    cache.get_or_set("user:1", slow_factory)
    assert cache.get("user:1") == "fresh"


def test_aget_or_set_does_not_overwrite_a_concurrent_set() -> None:
    cache = MemoryCache()

    async def slow_factory() -> str:
        await cache.aset("user:1", "fresh")
        return "stale"

    asyncio.run(cache.aget_or_set("user:1", slow_factory))
    assert cache.get("user:1") == "fresh"


# -- 9. async single-flight: the leader's cancellation is delivered to innocent waiters ----------


def test_async_waiter_survives_the_leaders_cancellation() -> None:
    cache = MemoryCache()
    calls: list[int] = []

    async def scenario() -> Any:
        gate = asyncio.Event()

        async def factory() -> str:
            calls.append(1)
            await gate.wait()
            return "v"

        leader = asyncio.create_task(cache.aget_or_set("k", factory))
        await asyncio.sleep(0)  # leader is inside the factory
        waiter = asyncio.create_task(cache.aget_or_set("k", factory))
        await asyncio.sleep(0)  # waiter is waiting on the leader's future
        leader.cancel()  # e.g. the leader's HTTP client disconnected
        await asyncio.sleep(0)
        gate.set()
        return await asyncio.wait_for(waiter, 2)

    assert asyncio.run(scenario()) == "v"


def test_async_get_or_set_rejects_a_coroutine_object() -> None:
    cache = MemoryCache()

    async def fetch() -> int:
        return 1

    async def scenario() -> None:
        coro = fetch()
        try:
            with pytest.raises(TypeError):
                await cache.aget_or_set("k", coro)  # a coroutine, not a coroutine function
        finally:
            coro.close()
        assert cache.get("k", MISSING) is MISSING

    asyncio.run(scenario())


# -- 10. get_or_set counts extra lookups, inflating or deflating hit_ratio -----------------------


def test_get_or_set_with_a_plain_value_counts_one_miss_and_no_hit() -> None:
    cache = MemoryCache()
    assert cache.get_or_set("k", 1) == 1
    stats = cache.get_stats()
    assert (stats.hits, stats.misses) == (0, 1)


def test_aget_or_set_counts_lookups_like_get_or_set() -> None:
    cache = MemoryCache()
    asyncio.run(cache.aget_or_set("k", lambda: 1))
    stats = cache.get_stats()
    assert (stats.hits, stats.misses) == (0, 1)


# -- 11. removals of expired entries: counters, listener and tags disagree -----------------------


def test_every_expiry_removal_is_counted_and_reported_to_the_listener() -> None:
    clock = FakeClock()
    events: list[tuple[str, RemovalCause]] = []
    cache = MemoryCache(
        clock=clock, eviction_listener=lambda key, value, cause: events.append((key, cause))
    )
    for key in ("a", "b", "c"):
        cache.set(key, 1, ttl=1, tags=["t"])
    clock.advance(5)
    assert cache.delete("a") is False
    assert cache.delete_many(["b"]) == 0
    assert cache.invalidate_tags(["t"]) == 0
    stats = cache.get_stats()
    expired = sorted(k for k, cause in events if cause is RemovalCause.EXPIRED)
    assert stats.expirations == 3
    assert expired == ["a", "b", "c"]


def test_incr_after_expiry_starts_a_fresh_untagged_counter() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    cache.set("n", 5, ttl=1, tags=["t"])
    clock.advance(5)
    assert cache.incr("n") == 1
    assert cache.invalidate_tags(["t"]) == 0  # the dead entry's tag must not carry over
    assert cache.get("n") == 1


# -- 12. invalidate_tags deletes a value re-written without the tag ------------------------------


def test_invalidate_tags_does_not_delete_a_key_rewritten_without_the_tag() -> None:
    cache = MemoryCache()
    cache.set("a", 1, tags=["t"])
    # "a" is rewritten untagged by another thread just before invalidate_tags takes the lock:
    # it must then neither be deleted nor counted.
    cache._lock = HookLock(cache._lock, lambda: cache.set("a", 2), nth=1)
    assert cache.invalidate_tags(["t"]) == 0
    assert cache.get("a") == 2


# -- 13. set_many: one oversized value drops the whole batch instead of being reported -----------


def test_set_many_reports_an_oversized_key_and_stores_the_rest() -> None:
    cache = MemoryCache(max_memory_bytes=2000)
    assert cache.set_many({"ok": 1, "big": "x" * 5000}) == ["big"]
    assert cache.get("ok") == 1
    assert cache.get("big", MISSING) is MISSING


# -- 14. small input checks ---------------------------------------------------------------------


def test_decr_rejects_a_bool_delta_like_incr() -> None:
    cache = MemoryCache()
    with pytest.raises(NotAnInteger):
        cache.incr("n", True)
    with pytest.raises(NotAnInteger):
        cache.decr("n", True)


def test_get_or_set_validates_the_ttl_on_a_hit_too() -> None:
    cache = MemoryCache()
    cache.set("k", 1)
    with pytest.raises(TypeError):
        cache.get_or_set("k", lambda: 2, ttl="300")


def test_get_or_set_rejects_a_bad_ttl_before_running_the_factory() -> None:
    cache = MemoryCache()
    calls: list[int] = []
    with pytest.raises(TypeError):
        cache.get_or_set("k", lambda: calls.append(1), ttl="300")
    assert calls == []


def test_constructor_rejects_non_callable_listener_and_clock() -> None:
    with pytest.raises(ConfigurationError):
        MemoryCache(eviction_listener="log")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        MemoryCache(clock=5)  # type: ignore[arg-type]


def test_deep_sizer_does_not_walk_modules() -> None:
    # A value that merely references a module must not be charged for the whole module graph.
    assert deep_sizer("k", {"codec": json}) < 50_000


# -- 15. single-flight: a waiter must get the leader's error as its own exception ----------------


def test_single_flight_waiters_do_not_share_one_exception_object() -> None:
    cache = MemoryCache()
    release = threading.Event()
    caught: list[BaseException] = []

    def factory() -> int:
        release.wait(5)
        raise LookupError("boom")

    def work() -> None:
        try:
            cache.get_or_set("k", factory)
        except LookupError as exc:
            caught.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(5000):
        if cache._single_flight.waiters("k") == 1:
            break
        threading.Event().wait(0.001)
    release.set()
    for t in threads:
        t.join(5)
    assert len(caught) == 2
    # Re-raising one object from several threads mutates its __traceback__/__context__
    # concurrently; each waiter should raise its own exception chained to the leader's.
    assert caught[0] is not caught[1]


def test_stats_count_no_expired_entry_after_writes_stop() -> None:
    """items counted expired entries until later writes swept them, 32 at a time."""
    clock = FakeClock()
    removed: list[tuple[str, RemovalCause]] = []
    cache = MemoryCache(
        clock=clock,
        max_entries=None,
        eviction_listener=lambda key, value, cause: removed.append((key, cause)),
    )
    for i in range(100):
        cache.set(f"short{i}", i, ttl=5)
    cache.set("forever", 1)
    clock.advance(10)
    stats = cache.get_stats()
    assert stats.items == 1
    assert stats.expirations == 100
    assert len(removed) == 100
    assert {cause for _, cause in removed} == {RemovalCause.EXPIRED}
    assert cache.get("forever") == 1
