"""The null provider: stores nothing, checks everything, answers as cachelib's NullCache does.

It cannot run the shared contract (nothing round-trips by design); these tests pin each answer
instead, and compare the ones the two contracts share with cachelib's ``NullCache``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import cachelib
import pytest

from cachekit import DEFAULT, MISSING, create_cache
from cachekit.errors import (
    ConfigurationError,
    InvalidArgument,
    InvalidArgumentType,
    InvalidKey,
    NotAnInteger,
)
from cachekit.providers.null import NullCache
from cachekit.registry import provider_registry


@pytest.fixture
def cache() -> NullCache:
    return NullCache(name="off")


def test_reads_always_miss(cache: NullCache) -> None:
    cache.set("k", 1, ttl=None)
    assert cache.get("k") is None
    assert cache.get("k", "fallback") == "fallback"
    assert cache.get("k", MISSING) is MISSING
    assert not cache.exists("k")
    assert "k" not in cache
    assert cache.ttl("k") == 0.0
    assert cache.get_many(["k", "j"]) == {}
    assert cache.inspect("k") is None
    assert cache.scan_keys() == ("", [])


def test_writes_are_accepted_and_forgotten(cache: NullCache) -> None:
    assert cache.set("k", 1) is None
    assert cache.add("k", 1) is True
    assert cache.add("k", 2) is True  # still absent: nothing was stored
    assert cache.replace("k", 3) is False  # never present
    assert cache.set_many({"a": 1, "b": 2}, ttl=30, tags=["t"]) == []
    assert cache.incr("n", 5) == 5
    assert cache.incr("n", 5) == 5  # counts from 0 each time
    assert cache.decr("n", 2) == -2


def test_get_or_set_runs_the_factory_every_time(cache: NullCache) -> None:
    calls: list[int] = []

    def factory() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get_or_set("k", factory) == 1
    assert cache.get_or_set("k", factory, tags=["t"]) == 2
    assert cache.get_or_set("k", "plain") == "plain"


def test_removals_find_nothing(cache: NullCache) -> None:
    cache.set("k", 1)
    assert cache.delete("k") is False
    assert cache.delete_many(["k", "j"]) == 0
    assert cache.touch("k", ttl=10) is False
    assert cache.delete_pattern("k*") == 0
    assert cache.invalidate_tags(["t"]) == 0
    cache.clear()


@pytest.mark.parametrize("key", ["", None, 42, b"bytes"], ids=repr)
def test_bad_keys_are_refused_as_everywhere(cache: NullCache, key: Any) -> None:
    for call in (
        lambda: cache.get(key),
        lambda: cache.set(key, 1),
        lambda: cache.add(key, 1),
        lambda: cache.replace(key, 1),
        lambda: cache.delete(key),
        lambda: cache.exists(key),
        lambda: cache.touch(key),
        lambda: cache.ttl(key),
        lambda: cache.incr(key),
        lambda: cache.inspect(key),
        lambda: cache.get_many([key]),
        lambda: cache.set_many({key: 1}),
        lambda: cache.delete_many([key]),
    ):
        with pytest.raises(InvalidKey):
            call()


def test_other_bad_arguments_are_refused_as_everywhere(cache: NullCache) -> None:
    with pytest.raises(TypeError):
        cache.set("k", 1, ttl="10")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cache.set("k", 1, tags="bare")
    with pytest.raises(TypeError):
        cache.invalidate_tags("bare")
    with pytest.raises(NotAnInteger):
        cache.incr("k", 1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidKey):
        cache.delete_pattern("")
    with pytest.raises(InvalidArgument):
        cache.scan_keys(count=0)
    cache.set("k", 1, ttl=timedelta(seconds=5))


def test_stats_count_every_lookup_as_a_miss(cache: NullCache) -> None:
    cache.set("k", 1)
    cache.get("k")
    cache.get_many(["a", "b"])
    cache.get_or_set("c", 3)
    stats = cache.get_stats()
    assert (stats.name, stats.provider, stats.items) == ("off", "null", 0)
    assert (stats.hits, stats.misses, stats.sets) == (0, 4, 2)
    assert stats.hit_ratio == 0.0


def test_async_twins(cache: NullCache) -> None:
    async def scenario() -> list[Any]:
        await cache.aset("k", 1, tags=["t"])
        return [
            await cache.aget("k", "d"),
            await cache.aadd("k", 1),
            await cache.aincr("n", 3),
            await cache.aget_or_set("k", lambda: 7),
            await cache.ainvalidate_tags(["t"]),
        ]

    assert asyncio.run(scenario()) == ["d", True, 3, 7, 0]


def test_created_from_urls() -> None:
    assert provider_registry.get("null") is NullCache
    named = create_cache("null://sessions?default_ttl=60")
    assert isinstance(named, NullCache)
    assert (named.name, named.default_ttl) == ("sessions", 60.0)
    assert create_cache("null://").name == "default"


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("null://host:11211", "url"),
        ("null:///some/path", "url"),
        ("null://?default_ttl=0", "default_ttl"),
        ("null://?max_entries=5", "max_entries"),
    ],
)
def test_bad_urls_name_the_key(url: str, key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_cache(url)
    assert info.value.key == key


def test_answers_match_cachelib_null_cache_where_the_contracts_meet(cache: NullCache) -> None:
    """cachelib answers Flask-Caching's API; where it means the same thing, the answers agree.

    (``delete``: cachelib's True means "absent now", cachekit's False means "nothing removed".)
    """
    reference = cachelib.NullCache()
    assert reference.get("k") is cache.get("k") is None
    assert reference.has("k") is cache.exists("k") is False
    assert reference.add("k", 1) is cache.add("k", 1) is True
    assert reference.inc("n", 4) == cache.incr("n", 4) == 4
    assert reference.dec("n", 4) == cache.decr("n", 4) == -4
    stored = reference.set_many({"a": 1, "b": 2})
    refused = cache.set_many({"a": 1, "b": 2})
    assert stored == ["a", "b"]
    assert refused == []  # the same fact: every key accepted
    assert reference.get_many("a", "b") == [None, None]
    assert cache.get_many(["a", "b"]) == {}


def test_single_flight_waiters_never_share_a_mutable_value_nothing_stored(
    cache: NullCache,
) -> None:
    """Nothing is stored, so a waiter cannot read a copy back: it got the leader's own object
    (a Flask response whose after-request hooks every waiting request then changed, so each
    collected the other users' cookies). A mutable value is computed per caller now."""
    import threading
    import time

    made: list[dict[str, int]] = []

    def factory() -> dict[str, int]:
        deadline = time.monotonic() + 10
        while not made and cache._single_flight.waiters("k") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.001)  # the leader holds on until both others wait on it
        made.append({"n": len(made)})
        return made[-1]

    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get_or_set("k", factory)))]
    threads[0].start()
    while cache._single_flight.in_flight() == 0:
        time.sleep(0.001)
    threads += [threading.Thread(target=lambda: got.append(cache.get_or_set("k", factory)))]
    threads += [threading.Thread(target=lambda: got.append(cache.get_or_set("k", factory)))]
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 3
    assert len({id(value) for value in got}) == 3  # each caller its own object
    assert len(made) == 3


def test_async_get_or_set_counts_one_miss_as_the_sync_one_does() -> None:
    """The base _apeek reads through aget, so aget_or_set counted its re-read as a second miss."""
    sync, asynchronous = NullCache(), NullCache()
    assert sync.get_or_set("k", lambda: 1) == 1
    assert asyncio.run(asynchronous.aget_or_set("k", lambda: 1)) == 1
    assert sync.get_stats().misses == asynchronous.get_stats().misses == 1


@pytest.mark.parametrize(("ttl", "tags"), [("x", ()), (True, ()), (DEFAULT, [1])])
def test_an_empty_set_many_still_checks_its_ttl_and_tags(ttl: Any, tags: Any) -> None:
    cache = NullCache()
    with pytest.raises((InvalidArgumentType, InvalidArgument)):
        cache.set_many({}, ttl, tags=tags)
    with pytest.raises((InvalidArgumentType, InvalidArgument)):
        asyncio.run(cache.aset_many({}, ttl, tags=tags))
