"""A write the memory provider refuses as too large leaves no older value readable.

As memcached drops the value it refuses (and cachekit's memcached provider deletes the previous
value of a key its ``set_many`` refuses), and as Django expects of a failed ``set``: before,
``set``/``set_many``/``replace``/``incr`` over ``max_memory_bytes`` raised or reported the key
but ``get`` still answered the old value. The drop is counted as a delete (as memcached's
``set_many`` counts it); an expired entry found on the way is reported as expired.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import flask
import pytest

import cachekit_flask
from cachekit.errors import ValueTooLarge
from cachekit.providers.memory import MemoryCache, RemovalCause

BOUND = 2000
BIG = "x" * 5000  # shallow size over BOUND


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _bounded(**options: Any) -> MemoryCache:
    return MemoryCache(max_memory_bytes=BOUND, **options)


def _gauges(cache: MemoryCache) -> tuple[int, int, int]:
    stats = cache.get_stats()
    return stats.items, stats.memory_bytes, stats.deletes


def test_refused_set_drops_the_previous_value_and_counts_a_delete() -> None:
    cache = _bounded()
    cache.set("other", "kept")
    _, alone, _ = _gauges(cache)
    cache.set("k", "old")
    with pytest.raises(ValueTooLarge):
        cache.set("k", BIG)
    assert cache.get("k", "absent") == "absent"
    assert _gauges(cache) == (1, alone, 1)
    assert cache.get("other") == "kept"


def test_refused_aset_drops_the_previous_value() -> None:
    cache = _bounded()
    cache.set("k", "old")
    with pytest.raises(ValueTooLarge):
        asyncio.run(cache.aset("k", BIG))
    assert not cache.exists("k")


def test_refused_tagged_set_drops_the_previous_value_and_its_tags() -> None:
    cache = _bounded()
    cache.set("k", "old", tags=["t"])
    with pytest.raises(ValueTooLarge):
        cache.set("k", BIG, tags=["t"])
    assert not cache.exists("k")
    assert cache.tagged_keys(["t"]) == []
    assert cache.invalidate_tags(["t"]) == 0


def test_set_many_drops_the_previous_value_of_a_refused_key() -> None:
    cache = _bounded()
    cache.set_many({"k": "old", "j": "old"})
    assert cache.set_many({"k": BIG, "j": "new", "n": "new"}) == ["k"]
    assert cache.get("k", "absent") == "absent"
    assert cache.get_many(["j", "n"]) == {"j": "new", "n": "new"}
    items, memory, deletes = _gauges(cache)
    assert (items, deletes) == (2, 1)
    assert memory == sum(cache.inspect(k).size for k in ("j", "n"))  # type: ignore[union-attr]


def test_aset_many_drops_the_previous_value_of_a_refused_key() -> None:
    cache = _bounded()
    cache.set("k", "old")
    assert asyncio.run(cache.aset_many({"k": BIG})) == ["k"]
    assert not cache.exists("k")


def test_refused_replace_drops_the_value_it_would_have_replaced() -> None:
    cache = _bounded()
    cache.set("k", "old")
    with pytest.raises(ValueTooLarge):
        cache.replace("k", BIG)
    assert not cache.exists("k")
    assert _gauges(cache) == (0, 0, 1)


def test_refused_add_of_a_present_key_leaves_it_as_add_would() -> None:
    cache = _bounded()
    cache.set("k", "old")
    cache.set("r", "old")
    with pytest.raises(ValueTooLarge):
        cache.add("k", BIG)  # an add over a live key stores nothing: nothing to drop
    with pytest.raises(ValueTooLarge):
        cache.replace("r", BIG)
    assert cache.get("k") == "old"
    assert not cache.exists("r")


def test_incr_to_a_value_over_the_bound_drops_the_counter() -> None:
    key = "n" * 1000
    cache = _bounded()
    cache.set(key, 1)
    with pytest.raises(ValueTooLarge):
        cache.incr(key, 1 << 10_000)  # an int of ~1.3 kB: with the key, over the bound
    assert not cache.exists(key)
    assert _gauges(cache) == (0, 0, 1)
    cache.set(key, 1)
    with pytest.raises(ValueTooLarge):
        cache.decr(key, 1 << 10_000)
    assert not cache.exists(key)


def test_incr_refused_after_an_expiry_reports_the_expired_entry() -> None:
    clock, events = Clock(), []
    cache = _bounded(clock=clock, eviction_listener=lambda k, v, c: events.append((k, v, c)))
    key = "n" * 1000
    cache.set(key, 7, ttl=5)
    clock.now += 10
    with pytest.raises(ValueTooLarge):
        cache.incr(key, 1 << 10_000)  # starts from 0: the expired 7 is gone first
    assert events == [(key, 7, RemovalCause.EXPIRED)]
    stats = cache.get_stats()
    assert (stats.items, stats.memory_bytes, stats.expirations, stats.deletes) == (0, 0, 1, 0)


def test_refused_set_over_an_expired_entry_reports_it_expired_not_deleted() -> None:
    clock, events = Clock(), []
    cache = _bounded(clock=clock, eviction_listener=lambda k, v, c: events.append((k, v, c)))
    cache.set("k", "old", ttl=5)
    clock.now += 10
    with pytest.raises(ValueTooLarge):
        cache.set("k", BIG)
    assert events == [("k", "old", RemovalCause.EXPIRED)]
    stats = cache.get_stats()
    assert (stats.items, stats.memory_bytes, stats.expirations, stats.deletes) == (0, 0, 1, 0)


@pytest.mark.parametrize("ttl", [0, -1])
def test_a_non_positive_ttl_removes_the_key_whatever_the_value_size(ttl: int) -> None:
    # It stores nothing, so there is nothing to refuse (memcached and Redis delete without
    # encoding the value): before, the size check raised first and the old value stayed.
    cache = _bounded()
    cache.set_many({"k": "old", "m": "old", "r": "old"})
    cache.set("k", BIG, ttl=ttl)
    assert cache.set_many({"m": BIG}, ttl=ttl) == []
    assert cache.replace("r", BIG, ttl=ttl) is True
    assert cache.add("a", BIG, ttl=ttl) is True  # absent, and nothing stored: as before
    assert cache.keys() == []
    assert cache.get_stats().memory_bytes == 0


def test_flask_memory_cache_drops_the_value_of_a_refused_write() -> None:
    app = flask.Flask("memory_s11")
    app.config["CACHEKIT_URL"] = f"memory://s11?max_memory_bytes={BOUND}"
    cache = cachekit_flask.Cache(app)
    big = os.urandom(5000)  # incompressible: Flask's memory cache pickles (and compresses)
    with app.app_context():
        cache.set("k", "old")
        with pytest.raises(ValueTooLarge):
            cache.set("k", big)
        assert cache.get("k") is None
        cache.set("k", "old")
        assert cache.set_many({"k": big, "j": 1}) == ["j"]  # the keys stored
        assert cache.get("k") is None
