"""Memory-provider behaviour beyond the shared contract: bounds, sweeping, listeners, stats."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

from cachekit import ConfigurationError, ValueTooLarge, create_cache
from cachekit.policies.base import EvictionPolicy
from cachekit.policies.lru import LRUPolicy
from cachekit.providers.memory import DEFAULT_MAX_ENTRIES, MemoryCache, RemovalCause
from cachekit.sizing import ENTRY_OVERHEAD, deep_sizer, shallow_sizer
from cachekit.testing import FakeClock


def policy_len(cache: MemoryCache) -> int:
    cache.get_stats()  # replays the lock-free read log
    return len(cache.policy)


# -- bounds ------------------------------------------------------------------------------------


def test_bounded_by_default() -> None:
    cache = MemoryCache()
    assert cache.max_entries == DEFAULT_MAX_ENTRIES
    for i in range(DEFAULT_MAX_ENTRIES + 50):
        cache.set(f"k{i}", i)
    assert len(cache) == DEFAULT_MAX_ENTRIES
    assert cache.get_stats().evictions == 50


def test_unbounded_only_when_asked() -> None:
    cache = MemoryCache(max_entries=None)
    for i in range(DEFAULT_MAX_ENTRIES + 50):
        cache.set(f"k{i}", i)
    assert len(cache) == DEFAULT_MAX_ENTRIES + 50
    assert create_cache("memory://?max_entries=none").max_entries is None  # type: ignore[attr-defined]


def test_memory_bound_alone_lifts_the_default_entry_bound() -> None:
    cache = MemoryCache(max_memory_bytes=1 << 20)
    assert cache.max_entries is None


def test_lru_eviction_order_through_the_provider() -> None:
    cache = MemoryCache(max_entries=3)
    for key in "abc":
        cache.set(key, key)
    cache.get("a")  # a is now the most recent: b is the LRU
    cache.set("d", "d")
    assert sorted(cache.keys()) == ["a", "c", "d"]
    cache.set("c", "c2")  # an overwrite is an access too
    cache.set("e", "e")
    assert sorted(cache.keys()) == ["c", "d", "e"]


def test_reads_logged_lock_free_are_replayed_in_order_before_a_write() -> None:
    cache = MemoryCache(max_entries=3)
    for key in "abc":
        cache.set(key, key)
    for key in "cab":  # recency now c < a < b
        cache.get(key)
    cache.set("d", 1)
    assert "c" not in cache.keys()
    assert policy_len(cache) == len(cache) == 3


def test_reads_of_keys_deleted_before_the_replay_are_skipped() -> None:
    cache = MemoryCache(max_entries=3)
    cache.set("a", 1)
    cache.get("a")
    cache.delete("a")
    cache.set("b", 2)
    assert policy_len(cache) == 1
    assert cache.get_stats().hits == 1


def test_memory_bound_evicts_and_accounts() -> None:
    cache = MemoryCache(max_memory_bytes=4096, serializer="pickle", max_entries=None)
    payload = "x" * 500
    for i in range(20):
        cache.set(f"k{i}", payload)
    stats = cache.get_stats()
    assert stats.memory_bytes <= 4096
    assert stats.evictions > 0
    assert stats.memory_limit == 4096
    before = stats.memory_bytes
    kept = cache.keys()[0]
    cache.delete(kept)
    assert cache.get_stats().memory_bytes < before


def test_value_larger_than_the_memory_bound_raises() -> None:
    cache = MemoryCache(max_memory_bytes=1024, serializer="pickle")
    big = os.urandom(5000)  # incompressible: the serializer compresses large values
    with pytest.raises(ValueTooLarge, match="max_memory_bytes=1024"):
        cache.set("big", big)
    with pytest.raises(ValueTooLarge):
        cache.add("big", big)
    assert cache.set_many({"ok": 1, "big": big}) == ["big"]
    assert not cache.exists("big")
    assert cache.get("ok") == 1


def test_memory_accounting_tracks_overwrites_exactly() -> None:
    cache = MemoryCache(max_memory_bytes=1 << 20, serializer="pickle")
    cache.set("k", "a" * 100)
    first = cache.get_stats().memory_bytes
    cache.set("k", "a" * 1000)
    assert cache.get_stats().memory_bytes == first + 900
    cache.clear()
    assert cache.get_stats().memory_bytes == 0


def test_memory_is_estimated_when_not_accounted() -> None:
    cache = MemoryCache(max_entries=None)
    assert cache.get_stats().memory_bytes == 0
    for i in range(3000):
        cache.set(f"key-{i:05d}", "v" * 10)
    estimate = cache.get_stats().memory_bytes
    exact = sum(shallow_sizer(f"key-{i:05d}", "v" * 10) for i in range(3000))
    assert estimate == pytest.approx(exact, rel=0.01)


def test_sizers() -> None:
    nested = {"a": [1, 2, {"b": "c" * 100}]}
    assert shallow_sizer("k", nested) > ENTRY_OVERHEAD
    assert deep_sizer("k", nested) > shallow_sizer("k", nested) + 100

    class Obj:
        def __init__(self) -> None:
            self.payload = "p" * 1000

    assert deep_sizer("k", Obj()) > 1000
    shared = "s" * 1000
    assert deep_sizer("k", [shared, shared]) < deep_sizer("k", [shared, "t" * 1000])


def test_custom_sizer_callable() -> None:
    cache = MemoryCache(max_memory_bytes=10, sizer=lambda key, value: len(value))
    cache.set("a", "12345")
    cache.set("b", "12345")
    cache.set("c", "123")
    assert sorted(cache.keys()) == ["b", "c"]


# -- expiry -------------------------------------------------------------------------------------


def test_writes_sweep_expired_entries_nobody_reads() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock, max_entries=None)
    for i in range(10):
        cache.set(f"old{i}", i, ttl=5)
    clock.advance(10)
    cache.set("new", 1)
    assert len(cache) == 1
    assert cache.get_stats().expirations == 10


def test_expiry_heap_is_rebuilt_when_stale_nodes_pile_up() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock, max_entries=None)
    for i in range(20_000):
        cache.set("same", i, ttl=100_000 - i)  # earlier each time: a node per write, none due
        cache.touch("other", ttl=50)
    assert len(cache._expiry_heap) <= 2 * len(cache) + 1024 + 1
    assert cache.get("same") == 19_999
    assert cache.ttl("same") == 100_000 - 19_999


def test_eviction_listener_receives_evictions_and_expirations() -> None:
    clock = FakeClock()
    events: list[tuple[str, Any, RemovalCause]] = []
    cache = MemoryCache(max_entries=2, clock=clock, eviction_listener=lambda *e: events.append(e))
    cache.set("a", 1)
    cache.set("b", 2, ttl=1)
    cache.set("c", 3)
    assert events == [("a", 1, RemovalCause.EVICTED)]
    clock.advance(2)
    assert cache.get("b") is None
    assert events[-1] == ("b", 2, RemovalCause.EXPIRED)
    cache.set("d", 4, ttl=1)
    clock.advance(2)
    assert cache.get_many(["d"]) == {}
    assert events[-1] == ("d", 4, RemovalCause.EXPIRED)


def test_listener_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken(key: str, value: Any, cause: RemovalCause) -> None:
        raise RuntimeError("listener bug")

    cache = MemoryCache(max_entries=1, eviction_listener=broken, name="noisy")
    cache.set("a", 1)
    with caplog.at_level(logging.ERROR, logger="cachekit.providers.memory"):
        cache.set("b", 2)
    assert cache.get("b") == 2
    assert "eviction listener of cache 'noisy' raised" in caplog.text


def test_expired_keys_are_not_listed() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    cache.set("a", 1, ttl=1)
    cache.set("b", 2)
    clock.advance(2)
    assert cache.keys() == ["b"]
    assert len(cache) == 2  # held until swept or read


# -- values ---------------------------------------------------------------------------------------


def test_values_are_references_without_a_serializer() -> None:
    cache = MemoryCache()
    value = {"a": [1]}
    cache.set("k", value)
    assert cache.get("k") is value


def test_serializer_gives_independent_copies() -> None:
    cache = MemoryCache(serializer="pickle")
    value = {"a": [1]}
    cache.set("k", value)
    got = cache.get("k")
    got["a"].append(2)
    assert cache.get("k") == {"a": [1]}
    assert cache.get_many(["k"]) == {"k": {"a": [1]}}


def test_incr_with_a_serializer() -> None:
    cache = MemoryCache(serializer="json", max_memory_bytes=1 << 16)
    cache.set("n", 5)
    assert cache.incr("n", 2) == 7
    assert cache.get("n") == 7


def test_incr_rejects_a_non_int_delta() -> None:
    cache = MemoryCache()
    with pytest.raises(TypeError):
        cache.incr("n", 1.5)  # type: ignore[arg-type]


def test_incr_keeps_tags() -> None:
    cache = MemoryCache()
    cache.set("n", 1, tags=["counters"])
    cache.incr("n")
    assert cache.invalidate_tags(["counters"]) == 1


# -- stats ----------------------------------------------------------------------------------------


def test_get_latency_is_sampled() -> None:
    cache = MemoryCache(stats_sample_every=4)
    cache.set("k", 1)
    for _ in range(40):
        cache.get("k")
    stats = cache.get_stats()
    assert stats.get_latency_count == 10
    assert stats.avg_get_seconds is not None
    assert stats.avg_get_seconds > 0
    assert stats.get_latency_buckets[-1] == (float("inf"), 10)
    assert stats.hits == 40


def test_stats_sample_rate_must_be_a_power_of_two() -> None:
    with pytest.raises(ConfigurationError) as info:
        MemoryCache(stats_sample_every=48)
    assert info.value.key == "stats_sample_every"


def test_reset_stats_keeps_data() -> None:
    cache = MemoryCache()
    cache.set("k", 1)
    cache.get("k")
    cache.reset_stats()
    stats = cache.get_stats()
    assert (stats.hits, stats.sets, stats.items) == (0, 0, 1)


def test_stats_as_dict_is_json_friendly() -> None:
    import json

    cache = MemoryCache(name="web", stats_sample_every=1)
    cache.set("k", 1)
    cache.get("k")
    data = cache.get_stats().as_dict()
    assert data["name"] == "web"
    assert data["hit_ratio"] == 1.0
    assert data["get_latency_buckets"][-1][0] == "+Inf"
    json.dumps(data)


def test_hit_ratio_before_any_lookup() -> None:
    assert MemoryCache().get_stats().hit_ratio == 0.0


# -- construction --------------------------------------------------------------------------------


def test_policy_instance_and_errors() -> None:
    policy = LRUPolicy(5)
    cache = MemoryCache(policy=policy, max_entries=5)
    assert cache.policy is policy
    with pytest.raises(ConfigurationError) as info:
        MemoryCache(policy=object())  # type: ignore[arg-type]
    assert info.value.key == "policy"
    with pytest.raises(ConfigurationError, match="accepted: adaptive, lfu, lru, ttl"):
        MemoryCache(policy="mru")


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"max_entries": 0}, "max_entries"),
        ({"max_entries": "10"}, "max_entries"),
        ({"max_memory_bytes": -1}, "max_memory_bytes"),
        ({"default_ttl": 0}, "default_ttl"),
        ({"default_ttl": "soon"}, "default_ttl"),
        ({"sizer": "exact"}, "sizer"),
        ({"serializer": "yaml"}, "serializer"),
    ],
)
def test_bad_constructor_arguments_name_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        MemoryCache(**options)
    assert info.value.key == key


def test_custom_policy_subclass_is_driven_through_the_hooks() -> None:
    class FIFO(EvictionPolicy):
        name = "fifo"

        def __init__(self, capacity: int | None) -> None:
            super().__init__(capacity)
            self.order: list[str] = []
            self.misses = 0

        def on_insert(self, key: str, expires_at: float | None) -> None:
            self.order.append(key)

        def on_update(self, key: str, expires_at: float | None) -> None:
            pass

        def on_hit(self, key: str) -> None:
            pass

        def on_miss(self, key: str) -> None:
            self.misses += 1

        def on_remove(self, key: str) -> None:
            self.order.remove(key)

        def evict(self) -> str:
            return self.order.pop(0)

        def clear(self) -> None:
            self.order.clear()

        def __len__(self) -> int:
            return len(self.order)

    policy = FIFO(2)
    cache = MemoryCache(policy=policy, max_entries=2)
    cache.set("a", 1)
    cache.set("b", 2)
    cache.get("a")
    cache.get("zz")
    cache.set("c", 3)
    assert sorted(cache.keys()) == ["b", "c"]
    assert policy.misses == 1
    cache.clear()
    assert len(policy) == 0


def test_repr_and_context_manager() -> None:
    with MemoryCache(name="ctx") as cache:
        cache.set("k", 1)
        assert "ctx" in repr(cache)


def test_rewrites_with_a_later_expiry_push_no_heap_node_and_are_swept_at_the_real_expiry() -> None:
    clock = FakeClock()
    events: list[tuple[str, Any, RemovalCause]] = []
    cache = MemoryCache(clock=clock, eviction_listener=lambda *event: events.append(event))
    cache.set("k", 1, ttl=10)
    for step in range(1, 6):  # each rewrite moves the expiry later: no new node
        clock.advance(1)
        cache.set("k", step + 1, ttl=10)
    assert len(cache._expiry_heap) == 1
    clock.advance(6)  # t=11: past the first expiry (10), before the real one (15)
    cache.set("other", 0)  # a write sweeps what is due
    assert cache.get("k") == 6
    assert events == []
    assert len(cache._expiry_heap) == 1  # rescheduled at 15
    clock.advance(5)  # t=16
    cache.set("other", 0)
    assert events == [("k", 6, RemovalCause.EXPIRED)]
    assert len(cache) == 1
    cache.set("s", 1, ttl=10)
    cache.set("s", 1, ttl=2)  # an earlier expiry pushes its own node
    clock.advance(3)
    cache.set("other", 0)
    assert ("s", 1, RemovalCause.EXPIRED) in events


def test_a_write_that_compacts_the_heap_keeps_its_own_node() -> None:
    """Review finding: compaction ran before the entry was stored and dropped its node."""
    from cachekit.providers.memory import _HEAP_SLACK

    clock = FakeClock()
    cache = MemoryCache(clock=clock, max_entries=None)
    n = 0
    while len(cache._expiry_heap) + 1 <= 2 * len(cache) + _HEAP_SLACK:  # stale nodes pile up
        cache.set(f"tmp{n}", 1, ttl=1000)
        cache.delete(f"tmp{n}")
        n += 1
    cache.set("victim", "v", ttl=5)  # this push compacts the heap
    assert any(key == "victim" for _, key in cache._expiry_heap)
    clock.advance(10)
    cache.set("other", 1, ttl=1000)  # a write sweeps what is due
    assert "victim" not in cache._data


def test_evict_takes_the_policys_next_victims() -> None:
    removed: list[tuple[str, RemovalCause]] = []
    cache = MemoryCache(eviction_listener=lambda k, v, cause: removed.append((k, cause)))
    for i in range(5):
        cache.set(f"k{i}", i)
    cache.get("k0")  # recently used: the LRU policy keeps it
    assert cache.evict(2) == 2
    assert sorted(cache.keys()) == ["k0", "k3", "k4"]
    assert removed == [("k1", RemovalCause.EVICTED), ("k2", RemovalCause.EVICTED)]
    assert cache.get_stats().evictions == 2
    assert cache.evict(10) == 3  # no more than it holds
    assert cache.keys() == []
    assert cache.evict(0) == 0
    from cachekit.errors import InvalidArgument

    with pytest.raises(InvalidArgument):
        cache.evict(-1)
