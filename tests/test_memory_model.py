"""The memory provider against a model: hypothesis stateful tests and a many-thread run."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cachekit import MISSING, NotAnInteger
from cachekit.providers.memory import MemoryCache
from cachekit.testing import FakeClock

KEYS = st.sampled_from([f"k{i}" for i in range(12)])
VALUES = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none())
TTLS = st.one_of(st.none(), st.sampled_from([1.0, 5.0, 30.0]))
CAPACITY = 6


class MemoryCacheModel(RuleBasedStateMachine):
    """A bounded cache may forget (evict) keys, but never returns a wrong or expired value.

    The model is a dict of key -> (value, expires_at). Whatever the cache returns must match
    the model; the cache may only hold a subset of the model's live keys, never more than its
    capacity, and its policy must track exactly the keys it holds.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.policy = random.choice(["lru", "lfu", "ttl", "adaptive"])
        self.cache = MemoryCache(max_entries=CAPACITY, policy=self.policy, clock=self.clock)
        self.model: dict[str, tuple[Any, float | None]] = {}

    def live(self, key: str) -> bool:
        item = self.model.get(key)
        return item is not None and (item[1] is None or item[1] > self.clock())

    def expiry(self, ttl: float | None) -> float | None:
        return None if ttl is None else self.clock() + ttl

    @rule(key=KEYS, value=VALUES, ttl=TTLS)
    def set(self, key: str, value: Any, ttl: float | None) -> None:
        self.cache.set(key, value, ttl=ttl)
        self.model[key] = (value, self.expiry(ttl))

    @rule(key=KEYS, value=VALUES, ttl=TTLS)
    def add(self, key: str, value: Any, ttl: float | None) -> None:
        held = self.cache.exists(key)
        added = self.cache.add(key, value, ttl=ttl)
        # Held: add must refuse. Absent (never set, expired or evicted): add must store.
        assert added is not held
        if added:
            self.model[key] = (value, self.expiry(ttl))

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        got = self.cache.get(key, MISSING)
        if got is not MISSING:
            assert self.live(key)
            assert got == self.model[key][0]

    @rule(keys=st.lists(KEYS, max_size=5))
    def get_many(self, keys: list[str]) -> None:
        for key, value in self.cache.get_many(keys).items():
            assert self.live(key)
            assert value == self.model[key][0]

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        deleted = self.cache.delete(key)
        if deleted:
            assert self.live(key)
        self.model.pop(key, None)

    @rule(key=KEYS, delta=st.integers(-3, 3))
    def incr(self, key: str, delta: int) -> None:
        held = self.cache.get(key, MISSING)
        try:
            result = self.cache.incr(key, delta)
        except NotAnInteger:
            assert held is not MISSING
            assert type(held) is not int
            return
        expected = (held if held is not MISSING else 0) + delta
        assert result == expected
        expires = self.model[key][1] if held is not MISSING else None
        self.model[key] = (result, expires)

    @rule(key=KEYS, ttl=TTLS)
    def touch(self, key: str, ttl: float | None) -> None:
        if self.cache.touch(key, ttl=ttl):
            assert self.live(key)
            self.model[key] = (self.model[key][0], self.expiry(ttl))

    @rule(seconds=st.sampled_from([0.5, 2.0, 10.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: len(self.model) > 8)
    @rule()
    def clear(self) -> None:
        self.cache.clear()
        self.model.clear()

    @invariant()
    def bounded_and_consistent(self) -> None:
        stats = self.cache.get_stats()  # also replays the read log into the policy
        assert stats.items <= CAPACITY
        assert len(self.cache.policy) == stats.items
        for key in self.cache.keys():
            assert self.live(key), key
        for key in self.model:
            remaining = self.cache.ttl(key)
            if self.cache.exists(key) and self.model[key][1] is None:
                assert remaining is None


TestMemoryCacheModel = MemoryCacheModel.TestCase
TestMemoryCacheModel.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, database=None
)


@pytest.mark.parametrize("policy", ["lru", "lfu", "ttl", "adaptive"])
def test_many_threads_keep_the_cache_consistent(policy: str) -> None:
    """Eight threads of mixed operations; afterwards counters and structures must agree."""
    clock = FakeClock()
    cache = MemoryCache(max_entries=200, policy=policy, clock=clock)
    threads, ops = 8, 3000
    gets = [0] * threads
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(index: int) -> None:
        rng = random.Random(index)
        try:
            start.wait()
            for _ in range(ops):
                key = f"k{rng.randrange(400)}"
                roll = rng.random()
                if roll < 0.7:
                    gets[index] += 1
                    value = cache.get(key, MISSING)
                    assert value is MISSING or value == key or type(value) is int
                elif roll < 0.9:
                    cache.set(key, key, ttl=rng.choice([None, 5.0]))
                elif roll < 0.95:
                    cache.delete(key)
                elif roll < 0.97:
                    cache.get_many([key, "k1", "k2"])
                    gets[index] += 3
                else:
                    clock.advance(0.5)
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    stats = cache.get_stats()
    assert stats.hits + stats.misses == sum(gets)
    assert stats.items <= 200
    assert len(cache.policy) == stats.items
    assert stats.evictions > 0


def test_incr_from_many_threads_is_exact() -> None:
    cache = MemoryCache(policy="adaptive")
    start = threading.Barrier(6)

    def work() -> None:
        start.wait()
        for _ in range(1000):
            cache.incr("hits")
            cache.decr("misses")

    pool = [threading.Thread(target=work) for _ in range(6)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert cache.get_many(["hits", "misses"]) == {"hits": 6000, "misses": -6000}
