"""Gaps in the metrics found by the eleventh review: get latency of the file provider, counters
a forked child inherited from its parent, and stampede-lock releases that failed uncounted.

Real directories, real servers and real forks; children report through a pipe.
"""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from test_fork import _fork, _report
from test_metrics import scrape, value

import cachekit
from cachekit.errors import BackendUnavailable, ConfigurationError
from cachekit.interfaces import Cache
from cachekit.metrics.prometheus import register_cache
from cachekit.providers.filesystem import FileCache
from cachekit.providers.memory import MemoryCache
from cachekit.providers.redis import RedisCache
from cachekit.stats import CacheStats
from cachekit.testing.servers import RedisServer

# -- 1. the file provider times its gets; the null provider has nothing to time ----------------


def _sampled(cache: Cache) -> int:
    stats = cache.get_stats()
    assert stats.get_latency_buckets, f"{stats.provider}: no latency histogram"
    bound, total = stats.get_latency_buckets[-1]
    assert bound == math.inf
    assert total == stats.get_latency_count
    return total


def test_file_cache_times_every_get_with_a_sample_period_of_one(tmp_path: Path) -> None:
    cache = cachekit.create_cache(f"file://{tmp_path}?stats_sample_every=1", name="file-lat")
    cache.set("k", b"v")
    for _ in range(5):
        assert cache.get("k") == b"v"
    assert cache.get("absent", "d") == "d"  # a miss is a get too
    assert asyncio.run(cache.aget("k")) == b"v"
    stats = cache.get_stats()
    assert _sampled(cache) == 7
    assert stats.avg_get_seconds is not None
    assert 0 < stats.avg_get_seconds < 1.0  # a file read takes more than nothing
    assert stats.get_latency_sum == pytest.approx(stats.avg_get_seconds * 7)
    assert (stats.hits, stats.misses) == (6, 1)  # timing did not change the counting

    registry = CollectorRegistry()
    register_cache(cache, registry)
    families = scrape(registry)
    assert value(families, "cachekit_get_latency_seconds_count", "file-lat") == 7.0


def test_file_cache_times_one_get_in_sample_every(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, name="file-lat4", stats_sample_every=4)
    cache.set("k", 1)
    for _ in range(8):
        cache.get("k")
    assert _sampled(cache) == 2
    cache.get("k")
    assert _sampled(cache) == 2  # the 9th is not sampled


def test_file_cache_samples_64_by_default(tmp_path: Path) -> None:
    cache = FileCache(tmp_path)
    for _ in range(64):
        cache.get("absent")
    assert _sampled(cache) == 1


@pytest.mark.parametrize("bad", ["3", "0", "131072", "x"])
def test_file_cache_refuses_a_bad_sample_period_by_its_name(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        cachekit.create_cache(f"file://{tmp_path}?stats_sample_every={bad}")
    assert info.value.key == "stats_sample_every"


@pytest.mark.parametrize("bad", [3, 0, True, "64"])
def test_file_cache_constructor_refuses_a_bad_sample_period(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        FileCache(tmp_path, stats_sample_every=bad)  # type: ignore[arg-type]
    assert info.value.key == "stats_sample_every"


def test_null_cache_reports_no_latency_rather_than_a_made_up_one() -> None:
    cache = cachekit.create_cache("null://null-lat")
    for _ in range(128):
        cache.get("k")
    stats = cache.get_stats()
    assert stats.misses == 128
    assert stats.avg_get_seconds is None
    assert stats.get_latency_buckets == ()
    registry = CollectorRegistry()
    register_cache(cache, registry)
    families = scrape(registry)
    assert value(families, "cachekit_get_latency_seconds_count", "null-lat") is None


# -- 3. a stampede lock whose release failed is counted ------------------------------------------

FAST = {"retries": 0, "socket_connect_timeout": 0.5, "socket_timeout": 0.5}
UNLOCK_ERRORS = "stampede_unlock_errors_total"


def _redis(server: RedisServer, name: str, **options: Any) -> RedisCache:
    return RedisCache(server.url, name=name, **{**FAST, **options})


def test_the_release_failure_counter_is_there_at_zero_and_exported_as_a_counter(
    redis_server: RedisServer,
) -> None:
    cache = _redis(redis_server, "unlock-zero")
    try:
        assert cache.get_or_set("unlock-zero-k", lambda: 1) == 1  # a release that worked
        assert cache.get_stats().extra[UNLOCK_ERRORS] == 0
        registry = CollectorRegistry()
        register_cache(cache, registry)
        families = scrape(registry)
        assert families["cachekit_stampede_unlock_errors"].type == "counter"
        assert value(families, "cachekit_stampede_unlock_errors_total", "unlock-zero") == 0.0
    finally:
        cache.close()


@pytest.mark.parametrize("fail_open", [True, False])
def test_a_release_lost_to_an_outage_between_fill_and_release_is_counted(
    fresh_redis_server: RedisServer, fail_open: bool
) -> None:
    cache = _redis(fresh_redis_server, f"unlock-{fail_open}", fail_open=fail_open)
    try:
        assert cache.get("warm") is None  # connected before the outage

        def factory() -> str:
            fresh_redis_server.kill()  # the server goes away while the lock is held
            return "computed"

        if fail_open:
            assert cache.get_or_set("k", factory) == "computed"
        else:
            with pytest.raises(BackendUnavailable):  # the store's error, not the release's
                cache.get_or_set("k", factory)
        stats = cache.get_stats()
        assert stats.extra[UNLOCK_ERRORS] == 1
        assert stats.server_read_error is not None
    finally:
        cache.close()


def test_an_async_release_lost_to_an_outage_is_counted(fresh_redis_server: RedisServer) -> None:
    cache = _redis(fresh_redis_server, "unlock-async", fail_open=True)

    async def scenario() -> Any:
        assert await cache.aget("warm") is None

        async def factory() -> str:
            fresh_redis_server.kill()
            return "computed"

        return await cache.aget_or_set("k", factory)

    try:
        assert asyncio.run(scenario()) == "computed"
        assert cache.get_stats().extra[UNLOCK_ERRORS] == 1
    finally:
        cache.close()


def test_no_release_is_counted_for_a_lock_that_failing_open_never_took() -> None:
    """Review finding: a lock ``SET NX`` failing open answered True, so get_or_set "released"
    a lock it never held and counted that release as lost (and as a fail-open unlock)."""
    from cachekit.testing.servers import free_port

    cache = _redis_at(f"redis://127.0.0.1:{free_port()}/0", "unlock-never-taken")

    async def twice() -> list[Any]:
        return [await cache.aget_or_set(f"a{i}", lambda: "v") for i in range(2)]

    try:
        assert [cache.get_or_set(f"k{i}", lambda: "v") for i in range(3)] == ["v"] * 3
        assert asyncio.run(twice()) == ["v", "v"]
        extra = cache.get_stats().extra
        assert extra["fail_open_lock_errors_total"] == 5
        assert extra[UNLOCK_ERRORS] == 0
        assert extra.get("fail_open_unlock_errors_total", 0) == 0
    finally:
        cache.close()


def _redis_at(url: str, name: str) -> RedisCache:
    return RedisCache(url, name=name, **{**FAST, "fail_open": True})


# -- 2. a forked child's counters are its own ------------------------------------------------------

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _fork_url(kind: str, redis_server: RedisServer, tmp_path: Path) -> str:
    return {
        "memory": "memory://?stats_sample_every=1",
        "redis": redis_server.url + "?prefix=s11fork:&stats_sample_every=1",
        "file": f"file://{tmp_path}?stats_sample_every=1",
        "null": "null://",
    }[kind]


def _counts(cache: Cache) -> dict[str, Any]:
    stats = cache.get_stats()
    return {
        "hits": stats.hits,
        "misses": stats.misses,
        "sets": stats.sets,
        "items": stats.items,
        "sampled": stats.get_latency_count,
        "started_at": stats.started_at,
    }


@needs_fork
@pytest.mark.parametrize("kind", ["memory", "redis", "file", "null"])
def test_a_forked_child_starts_its_counters_at_zero(
    kind: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    cache = cachekit.create_cache(_fork_url(kind, redis_server, tmp_path), name=f"s11fork-{kind}")
    cache.clear()
    for i in range(3):
        cache.set(f"k{i}", i)
    for _ in range(4):
        cache.get("k0")
    cache.get("absent")
    parent = _counts(cache)
    assert parent["sets"] == 3  # the parent has counts to inherit
    assert parent["misses"] >= 1

    def child() -> dict[str, Any]:
        at_fork = _counts(cache)
        cache.get("k1")
        cache.set("c", 1)
        return {"at_fork": at_fork, "after": _counts(cache)}

    pid, read = _fork(child)
    report = _report(pid, read)
    at_fork, after = report["at_fork"], report["after"]
    assert (at_fork["hits"], at_fork["misses"], at_fork["sets"], at_fork["sampled"]) == (0, 0, 0, 0)
    assert at_fork["started_at"] > parent["started_at"]  # a fresh _created
    assert at_fork["items"] == parent["items"]  # the inherited store is still described
    if kind == "null":
        assert (after["misses"], after["sets"]) == (1, 1)
    else:
        assert (after["hits"], after["sets"], after["sampled"]) == (1, 1, 1)
    # The parent's own counters are untouched by the child.
    now = _counts(cache)
    assert (now["hits"], now["misses"], now["sets"]) == (
        parent["hits"],
        parent["misses"],
        parent["sets"],
    )
    cache.close()


@needs_fork
def test_a_forked_child_exports_its_own_counts_with_a_fresh_created() -> None:
    cache = cachekit.create_cache("memory://", name="s11fork-scrape")
    cache.set("k", 1)
    for _ in range(5):
        cache.get("k")
    registry = CollectorRegistry()
    register_cache(cache, registry)
    parent = scrape(registry)
    assert value(parent, "cachekit_hits_total", "s11fork-scrape") == 5.0

    def child() -> list[float | None]:
        families = scrape(registry)
        return [
            value(families, "cachekit_hits_total", "s11fork-scrape"),
            value(families, "cachekit_hits_created", "s11fork-scrape"),
            value(families, "cachekit_items", "s11fork-scrape"),
        ]

    pid, read = _fork(child)
    hits, created, items = _report(pid, read)
    assert hits == 0.0
    parent_created = value(parent, "cachekit_hits_created", "s11fork-scrape")
    assert created is not None
    assert parent_created is not None
    assert created > parent_created
    assert items == 1.0


class _BrokenStats(MemoryCache):
    def get_stats(self) -> CacheStats:
        raise RuntimeError("stats unavailable")


@needs_fork
def test_a_forked_child_does_not_inherit_the_scrape_failure_count() -> None:
    cache = _BrokenStats(name="s11fork-broken")
    registry = CollectorRegistry()
    register_cache(cache, registry)
    for _ in range(2):
        families = scrape(registry)
    assert value(families, "cachekit_stats_errors_total", "s11fork-broken") == 2.0

    def child() -> float | None:
        return value(scrape(registry), "cachekit_stats_errors_total", "s11fork-broken")

    pid, read = _fork(child)
    assert _report(pid, read) == 1.0  # the child's one failed scrape, not 3


# -- the file provider's get_or_set lock: a release that fails is counted, never raised ----------


def _break_lock_file(cache: FileCache, key: str) -> None:
    """Make removing ``key``'s lock file fail (as root, permissions would not): a directory
    where the file was. Its flock, on the open file, goes when the holder closes it anyway."""
    path = cache._files.key_lock(key).path
    os.unlink(path)
    os.mkdir(path)


@pytest.mark.parametrize("fail_open", [False, True])
def test_file_lock_release_that_fails_neither_replaces_the_value_nor_goes_uncounted(
    tmp_path: Path, fail_open: bool
) -> None:
    cache = FileCache(tmp_path, name=f"s11-file-unlock-{fail_open}", fail_open=fail_open)
    assert cache.get_stats().extra[UNLOCK_ERRORS] == 0

    def factory() -> str:
        _break_lock_file(cache, "k")
        return "computed"

    assert cache.get_or_set("k", factory) == "computed"
    assert cache.get("k") == "computed"  # stored before the release
    extra = cache.get_stats().extra
    assert extra[UNLOCK_ERRORS] == 1
    assert extra.get("fail_open_unlock_errors_total", 0) == (1 if fail_open else 0)

    async def afactory() -> str:
        _break_lock_file(cache, "k2")
        return "computed2"

    assert asyncio.run(cache.aget_or_set("k2", afactory)) == "computed2"
    assert cache.get_stats().extra[UNLOCK_ERRORS] == 2
