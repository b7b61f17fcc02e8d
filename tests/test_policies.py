"""Eviction policies: exact orders on small cases, the adaptive policy's mechanics, invariants.

Policies are driven through their hooks directly (as :class:`Driver` does, the way the memory
provider calls them) and through a real :class:`MemoryCache`; time is a fake clock.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachekit.policies import (
    POLICIES,
    AdaptivePolicy,
    EvictionPolicy,
    FrequencySketch,
    LFUPolicy,
    LRUPolicy,
    TTLPolicy,
)
from cachekit.policies import adaptive as adaptive_module
from cachekit.policies import lfu as lfu_module
from cachekit.policies import sketch as sketch_module
from cachekit.policies import ttl as ttl_module
from cachekit.providers.memory import MemoryCache
from cachekit.registry import policy_registry
from cachekit.sentinels import MISSING


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Driver:
    """A demand-filled cache of ``bound`` entries that only does policy bookkeeping."""

    def __init__(self, policy: EvictionPolicy, bound: int) -> None:
        self.policy = policy
        self.bound = bound
        self.live: set[str] = set()
        self.evicted: list[str] = []
        self.hits = 0

    def access(self, key: str) -> bool:
        if key in self.live:
            self.hits += 1
            self.policy.on_hit(key)
            return True
        self.policy.on_miss(key)
        self.insert(key)
        return False

    def insert(self, key: str, expires_at: float | None = None) -> None:
        self.live.add(key)
        self.policy.on_insert(key, expires_at)
        while len(self.live) > self.bound:
            victim = self.policy.evict()
            assert victim in self.live
            self.live.remove(victim)
            self.evicted.append(victim)

    def run(self, keys: Iterable[str]) -> float:
        requests = 0
        for key in keys:
            requests += 1
            self.access(key)
        return self.hits / requests


def drain(policy: EvictionPolicy) -> list[str]:
    return [policy.evict() for _ in range(len(policy))]


def fill(policy: EvictionPolicy, keys: str) -> None:
    for key in keys:
        policy.on_insert(key, None)


# -- common ---------------------------------------------------------------------------------------


def test_policies_are_registered_under_their_names() -> None:
    assert sorted(POLICIES) == ["adaptive", "lfu", "lru", "ttl"]
    for name, cls in POLICIES.items():
        assert cls.name == name
        assert policy_registry.get(name) is cls


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_len_clear_and_empty_evict(name: str) -> None:
    policy = POLICIES[name](4)
    fill(policy, "abc")
    policy.on_remove("b")
    assert len(policy) == 2
    policy.clear()
    assert len(policy) == 0
    with pytest.raises(KeyError):
        policy.evict()
    fill(policy, "xy")
    assert sorted(drain(policy)) == ["x", "y"]


@pytest.mark.parametrize(
    ("name", "evicted"),
    [
        ("lru", ["c", "a"]),  # recency order after the reads: c, a, b
        ("lfu", ["c", "d"]),  # c was never read; then d, the newest, has the lowest count
        ("adaptive", ["c", "d"]),  # each window candidate (seen once) loses to a (seen 3 times)
    ],
)
def test_eviction_order_through_memory_cache(name: str, evicted: list[str]) -> None:
    cache = MemoryCache(max_entries=3, policy=name)
    for key in "abc":
        cache.set(key, key)
    cache.get("a")
    cache.get("a")
    cache.get("b")
    cache.set("d", "d")
    assert sorted(cache.keys()) == sorted({"a", "b", "c", "d"} - {evicted[0]})
    cache.set("e", "e")
    assert sorted(cache.keys()) == sorted({"a", "b", "c", "d", "e"} - set(evicted))
    assert len(cache.policy) == len(cache) == 3


def test_ttl_order_through_memory_cache() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=3, policy="ttl", clock=clock)
    cache.set("a", 1, ttl=30)
    cache.set("b", 2, ttl=10)
    cache.set("c", 3, ttl=None)
    cache.set("d", 4, ttl=20)  # evicts b, the soonest to expire
    assert sorted(cache.keys()) == ["a", "c", "d"]
    cache.touch("a", ttl=5)  # a now expires first
    cache.set("e", 5, ttl=None)
    assert sorted(cache.keys()) == ["c", "d", "e"]
    cache.set("f", 6, ttl=None)  # d is the last expiring entry
    cache.get("c")
    cache.set("g", 7, ttl=None)  # only non-expiring left: LRU, and c was just read
    assert sorted(cache.keys()) == ["c", "f", "g"]


# -- LRU ------------------------------------------------------------------------------------------


def test_lru_order() -> None:
    policy = LRUPolicy(3)
    fill(policy, "abc")
    policy.on_hit("a")
    policy.on_update("b", None)
    assert drain(policy) == ["c", "a", "b"]


# -- LFU ------------------------------------------------------------------------------------------


def test_lfu_evicts_least_frequent_then_least_recent() -> None:
    policy = LFUPolicy(10)
    fill(policy, "abcde")
    for key in "abab":
        policy.on_hit(key)  # a: 3, b: 3
    policy.on_hit("d")  # d: 2
    policy.on_update("c", None)  # c: 2, read after d
    # count 1: e; count 2: d then c (LRU first); count 3: a then b.
    assert [policy.count(k) for k in "abcde"] == [3, 3, 2, 2, 1]
    assert drain(policy) == ["e", "d", "c", "a", "b"]


def test_lfu_remove_keeps_buckets_linked() -> None:
    policy = LFUPolicy(10)
    fill(policy, "abc")
    policy.on_hit("b")
    policy.on_hit("c")
    policy.on_hit("c")
    policy.on_remove("b")  # the middle bucket (count 2) empties
    policy.on_remove("a")  # the head bucket empties
    policy.on_insert("d", None)
    policy.on_hit("d")  # d moves into a fresh count-2 bucket before c's count-3 one
    assert drain(policy) == ["d", "c"]


def test_lfu_aging_halves_counts_so_old_popularity_decays() -> None:
    policy = LFUPolicy(3)  # counts halve every 10 x 3 = 30 accesses
    assert lfu_module.AGING_PERIOD_FACTOR == 10
    policy.on_insert("old", None)
    for _ in range(28):
        policy.on_hit("old")  # 29 accesses
    policy.on_insert("new", None)  # access 30: halving
    assert (policy.count("old"), policy.count("new")) == (14, 1)
    policy.on_insert("busy", None)
    for _ in range(29):
        policy.on_hit("busy")  # access 60: halving
    assert (policy.count("old"), policy.count("new"), policy.count("busy")) == (7, 1, 15)
    for _ in range(10):
        policy.on_hit("new")
    # Without aging old (29 accesses) would outlive new (11); it has not been read for a while.
    assert drain(policy) == ["old", "new", "busy"]


def test_lfu_aging_keeps_recency_order_within_merged_counts() -> None:
    policy = LFUPolicy(1)  # halving every 10 accesses
    fill(policy, "ab")
    policy.on_hit("b")  # b: 2
    policy.on_hit("a")  # a: 2, most recent
    policy.on_hit("a")  # a: 3
    for key in "cdefg":
        policy.on_insert(key, None)  # access 10 halves: a 1, b 1, c..g 1 (floor of 1)
    assert {policy.count(k) for k in "abcdefg"} == {1}
    assert drain(policy) == ["b", "a", "c", "d", "e", "f", "g"]


def test_lfu_unknown_capacity_ages_by_size() -> None:
    policy = LFUPolicy(None)
    period = lfu_module.AGING_PERIOD_FACTOR * lfu_module.MIN_AGING_ENTRIES
    policy.on_insert("k", None)
    for _ in range(period - 2):
        policy.on_hit("k")
    assert policy.count("k") == period - 1
    policy.on_hit("k")
    assert policy.count("k") == period // 2


# -- TTL ------------------------------------------------------------------------------------------


def test_ttl_evicts_soonest_expiry_then_non_expiring_in_lru_order() -> None:
    policy = TTLPolicy(10)
    policy.on_insert("a", 30.0)
    policy.on_insert("b", None)
    policy.on_insert("c", 10.0)
    policy.on_insert("d", 20.0)
    policy.on_insert("e", None)
    policy.on_insert("f", 10.0)  # same expiry as c: write order breaks the tie
    policy.on_hit("b")  # b becomes the most recent non-expiring entry
    policy.on_hit("c")  # a hit does not change an expiring entry's place
    assert drain(policy) == ["c", "f", "d", "a", "e", "b"]


def test_ttl_update_moves_entries_between_expiry_and_forever() -> None:
    policy = TTLPolicy(10)
    policy.on_insert("a", 30.0)
    policy.on_insert("b", 20.0)
    policy.on_insert("c", None)
    policy.on_insert("d", None)
    policy.on_update("a", 5.0)  # sooner
    policy.on_update("b", 20.0)  # unchanged: keeps its place
    policy.on_update("c", 1.0)  # forever -> expiring
    policy.on_update("a", None)  # expiring -> forever, most recent
    policy.on_update("d", None)  # forever, touched: most recent
    policy.on_remove("b")
    assert len(policy) == 3
    assert drain(policy) == ["c", "a", "d"]


def test_ttl_heap_is_rebuilt_when_stale_nodes_pile_up() -> None:
    policy = TTLPolicy(10)
    policy.on_insert("a", 1.0)
    policy.on_insert("b", 2.0)
    for i in range(ttl_module.HEAP_SLACK * 3):
        policy.on_update("a", 100.0 + i)
    assert len(policy._heap) <= ttl_module.HEAP_SLACK_FACTOR * 2 + ttl_module.HEAP_SLACK + 1
    assert drain(policy) == ["b", "a"]


# -- the frequency sketch -------------------------------------------------------------------------


def test_sketch_counts_saturates_and_halves() -> None:
    sketch = FrequencySketch(100)
    assert sketch.sample_size == sketch_module.SAMPLE_FACTOR * 100
    for _ in range(5):
        sketch.increment("a")
    sketch.increment("b")
    assert (sketch.frequency("a"), sketch.frequency("b"), sketch.frequency("z")) == (5, 1, 0)
    for _ in range(30):
        sketch.increment("a")
    assert sketch.frequency("a") == sketch_module.MAX_COUNT
    sketch.halve()
    assert (sketch.frequency("a"), sketch.frequency("b")) == (7, 0)
    sketch.clear()
    assert sketch.frequency("a") == 0


def test_sketch_halves_itself_after_a_sample() -> None:
    # A wide table (so the 20 keys cannot collide, whatever PYTHONHASHSEED) with a short sample.
    sketch = FrequencySketch(1000)
    sketch.sample_size = 20
    for _ in range(10):
        sketch.increment("hot")
    for i in range(9):
        sketch.increment(f"cold{i}")
    assert sketch.frequency("hot") == 10
    sketch.increment("cold9")  # the 20th increment: everything halves
    assert sketch.frequency("hot") == 5
    for i in range(10):  # 10 more (the count restarts from half a sample): halves again
        sketch.increment(f"again{i}")
    assert sketch.frequency("hot") == 2


def test_sketch_only_grows() -> None:
    sketch = FrequencySketch(10)
    sketch.increment("a")
    sketch.ensure_capacity(5)
    assert (sketch.capacity, sketch.frequency("a")) == (10, 1)
    sketch.ensure_capacity(1000)
    assert (sketch.capacity, sketch.frequency("a"), sketch.sample_size) == (1000, 0, 10_000)


# -- adaptive: segments and admission -------------------------------------------------------------


def test_adaptive_new_keys_enter_the_window_and_overflow_to_probation() -> None:
    policy = AdaptivePolicy(100)  # window 1, main 99 (protected up to 79)
    assert policy.window_size == 1
    fill(policy, "abc")
    assert policy.segments() == (["c"], ["a", "b"], [])
    policy.on_hit("a")  # a probation hit promotes to protected
    policy.on_hit("c")  # a window hit stays in the window
    assert policy.segments() == (["c"], ["b"], ["a"])
    policy.on_hit("a")
    policy.on_remove("c")
    policy.on_remove("a")
    policy.on_remove("b")
    assert policy.segments() == ([], [], [])


def test_adaptive_protected_overflow_is_demoted_to_probation() -> None:
    policy = AdaptivePolicy(10)  # window 1, main 9, protected 7
    keys = [f"k{i}" for i in range(10)]
    fill(policy, keys)
    for key in keys[:9]:
        policy.on_hit(key)  # k0..k8 promoted; protected keeps 7
    window, probation, protected = policy.segments()
    assert window == ["k9"]
    assert probation == ["k0", "k1"]  # demoted LRU-first to probation's tail
    assert protected == keys[2:9]


def test_adaptive_admission_rejects_a_one_hit_wonder_against_a_frequent_victim() -> None:
    policy = AdaptivePolicy(10)
    driver = Driver(policy, 10)
    for _ in range(5):
        policy.on_miss("hot")  # requested (and missed) often before being cached
    driver.insert("hot")
    for i in range(9):
        driver.access(f"k{i}")
    assert policy.segments()[1][0] == "hot"  # the next victim
    driver.access("wonder")  # k8 leaves the window as candidate, seen once
    assert driver.evicted == ["k8"]
    assert "hot" in driver.live


def test_adaptive_admission_admits_a_candidate_more_frequent_than_the_victim() -> None:
    policy = AdaptivePolicy(10)
    driver = Driver(policy, 10)
    for i in range(10):
        driver.access(f"k{i}")  # window: k9; probation: k0..k8
    for _ in range(3):
        policy.on_miss("k9")  # k9 becomes the most frequent
    driver.access("new")  # candidate k9 beats victim k0
    assert driver.evicted == ["k0"]


def test_adaptive_just_written_key_survives_its_insert() -> None:
    policy = AdaptivePolicy(2)
    driver = Driver(policy, 2)
    for key in ("a", "b"):
        for _ in range(10):
            policy.on_miss(key)
        driver.insert(key)
    for i in range(20):
        driver.insert(f"cold{i}")
        assert f"cold{i}" in driver.live


def test_adaptive_candidate_removed_before_eviction() -> None:
    policy = AdaptivePolicy(3)
    fill(policy, "abcd")  # d in window, candidate c moved to probation
    policy.on_remove("c")
    assert policy.evict() == "a"  # no contest: probation's LRU entry
    policy.on_hit("b")  # b promoted to protected
    policy.on_insert("e", None)  # candidate d
    policy.on_hit("d")  # d promoted before evict() runs
    assert policy.evict() == "b"  # probation is empty: protected's LRU


# -- adaptive: window sizing ----------------------------------------------------------------------


def recency_stream(n: int, reuse_after: int) -> list[str]:
    """Each key read twice, ``reuse_after`` new keys apart (the corda trace's shape)."""
    stream: list[str] = []
    for i in range(n):
        stream.append(f"r{i}")
        if i >= reuse_after:
            stream.append(f"r{i - reuse_after}")
    return stream


def frequency_stream(n: int, hot: int, seed: int = 7) -> list[str]:
    """Half reads of a small hot set, half one-hit wonders."""
    rng = random.Random(seed)
    return [f"h{rng.randrange(hot)}" if rng.random() < 0.5 else f"u{i}" for i in range(n)]


def test_adaptive_window_grows_on_a_recency_stream() -> None:
    policy = AdaptivePolicy(100)
    hit_ratio = Driver(policy, 100).run(recency_stream(20_000, reuse_after=40))
    lru_ratio = Driver(LRUPolicy(100), 100).run(recency_stream(20_000, reuse_after=40))
    assert policy.window_size > 40
    assert lru_ratio == pytest.approx(0.5, abs=0.01)
    assert hit_ratio > lru_ratio - 0.005


def test_adaptive_window_shrinks_on_a_frequency_stream() -> None:
    policy = AdaptivePolicy(100)
    driver = Driver(policy, 100)
    driver.run(recency_stream(5_000, reuse_after=40))
    grown = policy.window_size
    driver.hits = 0
    hit_ratio = driver.run(frequency_stream(20_000, hot=80))
    lru_ratio = Driver(LRUPolicy(100), 100).run(frequency_stream(20_000, hot=80))
    assert policy.window_size < grown / 2
    assert hit_ratio > lru_ratio + 0.05


def test_adaptive_ghosts_hold_half_the_capacity_each() -> None:
    policy = AdaptivePolicy(20)
    Driver(policy, 20).run(f"u{i}" for i in range(1000))
    assert len(policy._window_ghost) <= 10
    assert len(policy._main_ghost) <= 10


def test_adaptive_clear_keeps_learned_window() -> None:
    policy = AdaptivePolicy(100)
    Driver(policy, 100).run(recency_stream(5_000, reuse_after=40))
    window = policy.window_size
    policy.clear()
    assert len(policy) == 0
    assert policy.window_size == window


# -- adaptive: unknown capacity -------------------------------------------------------------------


def test_adaptive_unknown_capacity_sizes_at_first_eviction() -> None:
    policy = AdaptivePolicy(None)
    driver = Driver(policy, 300)
    for i in range(300):
        driver.access(f"k{i}")
    assert policy.sized_for == 0
    assert policy.segments()[0] == [f"k{i}" for i in range(300)]  # an LRU until sized
    driver.access("k300")
    assert policy.sized_for == 301
    assert policy.window_size == 3
    assert len(policy.segments()[0]) == 3


def test_adaptive_unknown_capacity_resizes_when_the_count_moves() -> None:
    policy = AdaptivePolicy(None)
    driver = Driver(policy, 200)
    driver.run(frequency_stream(3_000, hot=150))
    assert policy.sized_for == 201
    driver.run(frequency_stream(1_000, hot=150, seed=8))  # a small drift does not re-size
    assert policy.sized_for == 201
    driver.bound = 400  # e.g. smaller values now fit the memory bound
    driver.run(frequency_stream(5_000, hot=300))
    assert 380 <= policy.sized_for <= 401
    assert len(policy) == len(driver.live) == 400
    driver.bound = 100
    driver.run(frequency_stream(2_000, hot=50))
    assert 100 <= policy.sized_for <= 101
    assert len(policy._window_ghost) <= 50
    assert len(policy._main_ghost) <= 50


def test_adaptive_unknown_capacity_hit_ratio_matches_known_capacity() -> None:
    stream = frequency_stream(20_000, hot=150) + recency_stream(5_000, reuse_after=30)
    known = Driver(AdaptivePolicy(100), 100).run(stream)
    unknown = Driver(AdaptivePolicy(None), 100).run(stream)
    assert unknown == pytest.approx(known, abs=0.02)


def test_adaptive_constants_are_caffeines_where_it_has_one() -> None:
    assert adaptive_module.WINDOW_INITIAL_RATIO == 0.01
    assert adaptive_module.PROTECTED_RATIO == 0.80
    assert sketch_module.DEPTH == 4
    assert sketch_module.SAMPLE_FACTOR == 10


# -- invariants -----------------------------------------------------------------------------------

_KEYS = st.sampled_from([f"k{i}" for i in range(12)])
_OPS = st.lists(
    st.tuples(
        st.sampled_from(["get", "set", "delete", "evict"]),
        _KEYS,
        st.one_of(st.none(), st.floats(min_value=0, max_value=100)),
    ),
    max_size=200,
)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(POLICIES))
@pytest.mark.parametrize("capacity", [1, 3, None])
@settings(max_examples=60, deadline=None)
@given(ops=_OPS)
def test_policy_tracks_exactly_the_live_keys(
    name: str, capacity: int | None, ops: list[tuple[str, str, float | None]]
) -> None:
    policy = POLICIES[name](capacity)
    bound = capacity or 4
    live: set[str] = set()
    for op, key, expires_at in ops:
        if op == "get":
            if key in live:
                policy.on_hit(key)
            else:
                policy.on_miss(key)
        elif op == "set":
            if key in live:
                policy.on_update(key, expires_at)
            else:
                live.add(key)
                policy.on_insert(key, expires_at)
                while len(live) > bound:
                    victim = policy.evict()
                    assert victim in live
                    live.remove(victim)
        elif op == "delete":
            if key in live:
                policy.on_remove(key)
                live.remove(key)
        elif live:  # an eviction forced by a memory bound
            victim = policy.evict()
            assert victim in live
            live.remove(victim)
        assert len(policy) == len(live)
    assert sorted(drain(policy)) == sorted(live)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(POLICIES))
@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["get", "set", "delete", "touch", "tick"]),
            _KEYS,
            st.sampled_from([None, 1, 5, 50]),
        ),
        max_size=120,
    )
)
def test_memory_cache_and_policy_agree(name: str, ops: list[tuple[str, str, int | None]]) -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=4, policy=name, clock=clock)
    for op, key, ttl in ops:
        if op == "get":
            cache.get(key, MISSING)
        elif op == "set":
            cache.set(key, op, ttl=ttl)
        elif op == "delete":
            cache.delete(key)
        elif op == "touch":
            cache.touch(key, ttl=ttl)
        else:
            clock.now += 2
        assert len(cache.policy) == len(cache) <= 4
    cache.set("last", 0)  # a write replays buffered reads into the policy
    assert len(cache.policy) == len(cache)
