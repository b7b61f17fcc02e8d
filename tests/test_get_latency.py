"""Sampled ``get`` latency of the network providers, and counter-like extras exported as counters.

Real servers; the histogram is read back through ``get_stats()`` and a Prometheus scrape.
"""

from __future__ import annotations

import asyncio
import math
import urllib.parse
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

import cachekit
from cachekit.errors import ConfigurationError
from cachekit.interfaces import Cache
from cachekit.testing.servers import MemcachedServer, RedisServer

pytest.importorskip("prometheus_client")

from test_metrics import scrape, value

from cachekit.metrics.prometheus import extra_is_counter, register_cache

PROVIDERS = ("redis", "memcached", "tiered")


def _url(kind: str, redis_server: RedisServer, memcached_server: MemcachedServer) -> str:
    if kind == "redis":
        return redis_server.url
    if kind == "memcached":
        return memcached_server.url
    l2 = urllib.parse.quote(redis_server.url, safe="")
    return f"tiered://?l1=memory%3A%2F%2F&l2={l2}"


@pytest.fixture(params=PROVIDERS)
def make(
    request: pytest.FixtureRequest, redis_server: RedisServer, memcached_server: MemcachedServer
) -> Iterator[type[object]]:
    made: list[Cache] = []
    base = _url(request.param, redis_server, memcached_server)

    def build(name: str, **options: object) -> Cache:
        cache = cachekit.create_cache(base, name=f"{name}-{request.param}", **options)
        made.append(cache)
        cache.clear()
        return cache

    yield build  # type: ignore[misc]
    for cache in made:
        cache.close()


def _histogram_total(cache: Cache) -> int:
    stats = cache.get_stats()
    assert stats.get_latency_buckets, "no histogram"
    bound, total = stats.get_latency_buckets[-1]
    assert bound == math.inf
    assert total == stats.get_latency_count
    return total


def test_every_get_is_timed_with_a_sample_period_of_one(make: object) -> None:
    cache = make("lat1", stats_sample_every=1)  # type: ignore[operator]
    cache.set("k", b"v")
    for _ in range(10):
        assert cache.get("k") == b"v"
    assert cache.get("absent") is None  # a miss is a get too
    stats = cache.get_stats()
    assert _histogram_total(cache) == 11
    assert stats.avg_get_seconds is not None
    # A loopback round trip (or an L1 hit) takes more than nothing and far less than a second.
    assert 0 < stats.avg_get_seconds < 1.0
    assert stats.get_latency_sum == pytest.approx(stats.avg_get_seconds * 11)


def test_one_get_in_sample_every_is_timed(make: object) -> None:
    cache = make("lat4", stats_sample_every=4)  # type: ignore[operator]
    cache.set("k", 1)
    for _ in range(16):
        cache.get("k")
    assert _histogram_total(cache) == 4


def test_async_gets_are_timed(make: object) -> None:
    cache = make("alat", stats_sample_every=1)  # type: ignore[operator]

    async def run() -> None:
        await cache.aset("k", 5)
        for _ in range(5):
            assert await cache.aget("k") == 5
        assert await cache.aget("absent", "d") == "d"

    asyncio.run(run())
    assert _histogram_total(cache) == 6


def test_a_failing_get_is_timed_too(fresh_redis_server: RedisServer) -> None:
    cache = cachekit.create_cache(
        fresh_redis_server.url
        + "?socket_timeout=0.5&retries=0&fail_open=true&stats_sample_every=1",
        name="lat-down",
    )
    try:
        cache.set("k", 1)
        fresh_redis_server.kill()
        assert cache.get("k", "fallback") == "fallback"  # fail-open: a miss
        assert _histogram_total(cache) == 1
    finally:
        cache.close()


@pytest.mark.parametrize("bad", ["3", "0", "131072"])
def test_a_bad_sample_period_names_the_option(redis_server: RedisServer, bad: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        cachekit.create_cache(f"{redis_server.url}?stats_sample_every={bad}")
    assert info.value.key == "stats_sample_every"


def test_the_histogram_is_scraped_and_reset(
    redis_server: RedisServer, memcached_server: MemcachedServer
) -> None:
    registry = CollectorRegistry()
    cache = cachekit.create_cache(redis_server.url + "?stats_sample_every=1", name="lat-scrape")
    try:
        cache.set("k", 1)
        for _ in range(3):
            cache.get("k")
        register_cache(cache, registry)
        families = scrape(registry)
        count = value(families, "cachekit_get_latency_seconds_count", "lat-scrape")
        assert count == 3.0
        cache.reset_stats()
        assert cache.get_stats().get_latency_count == 0
    finally:
        cache.close()


# -- counts in ``extra`` are counters ------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "counter"),
    [
        ("breaker_opened_total", True),
        ("fail_open_get_errors_total", True),
        ("l1_hits", True),
        ("l2_breaker_rejected_total", True),
        ("breaker_state", False),
        ("nodes_up", False),
        ("l1_items", False),
        ("l2_items", False),
    ],
)
def test_extra_kinds(key: str, counter: bool) -> None:
    assert extra_is_counter(key) is counter


def test_breaker_and_tiered_counts_are_exported_as_counters(redis_server: RedisServer) -> None:
    registry = CollectorRegistry()
    l2 = urllib.parse.quote(redis_server.url, safe="")
    tiered = cachekit.create_cache(f"tiered://?l1=memory%3A%2F%2F&l2={l2}", name="tier-kinds")
    redis = cachekit.create_cache(redis_server.url, name="redis-kinds")
    try:
        tiered.set("a", 1)
        tiered.get("a")
        redis.get("a")
        register_cache(tiered, registry)
        register_cache(redis, registry)
        families = scrape(registry)
        assert families["cachekit_breaker_opened"].type == "counter"
        assert value(families, "cachekit_breaker_opened_total", "redis-kinds") == 0.0
        assert families["cachekit_breaker_state"].type == "gauge"
        assert families["cachekit_l1_hits"].type == "counter"
        assert value(families, "cachekit_l1_hits_total", "tier-kinds") is not None
        assert families["cachekit_l2_breaker_opened"].type == "counter"
        assert families["cachekit_l1_items"].type == "gauge"
    finally:
        tiered.close()
        redis.close()
