"""The latency sampler and the Prometheus exporter, scraped from real caches."""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.parser import text_string_to_metric_families

import cachekit
import cachekit.metrics
from cachekit.errors import ConfigurationError
from cachekit.metrics import DEFAULT_LATENCY_BOUNDS, LatencySampler
from cachekit.metrics.prometheus import (
    CacheCollector,
    extra_metric_name,
    make_wsgi_app,
    register_cache,
    start_metrics_server,
    unregister_cache,
)
from cachekit.providers.memory import MemoryCache
from cachekit.stats import CacheStats
from cachekit.testing.servers import MemcachedServer, RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]

# -- LatencySampler -------------------------------------------------------------------------------


def test_sampler_buckets_are_cumulative_with_le_semantics() -> None:
    sampler = LatencySampler([0.001, 0.01, 0.1], sample_every=1)
    for seconds in (0.0005, 0.001, 0.005, 0.05, 0.1, 2.0):
        sampler.observe(seconds)
    # 0.001 and 0.1 fall in their own bucket (le), 2.0 only in +Inf.
    assert sampler.buckets() == ((0.001, 2), (0.01, 3), (0.1, 5), (math.inf, 6))
    assert sampler.count == 6
    assert sampler.sum == pytest.approx(2.1565)
    assert sampler.average == pytest.approx(2.1565 / 6)


def test_sampler_starts_empty_and_resets() -> None:
    sampler = LatencySampler()
    assert sampler.average is None
    assert sampler.buckets()[-1] == (math.inf, 0)
    assert len(sampler.buckets()) == len(DEFAULT_LATENCY_BOUNDS) + 1
    assert sampler.bounds == DEFAULT_LATENCY_BOUNDS
    sampler.observe(3e-6)
    sampler.reset()
    assert (sampler.count, sampler.sum, sampler.average) == (0, 0.0, None)
    assert all(count == 0 for _, count in sampler.buckets())


def test_default_bounds_span_a_microsecond_to_a_second() -> None:
    assert DEFAULT_LATENCY_BOUNDS[0] == 1e-6
    assert DEFAULT_LATENCY_BOUNDS[-1] == 1.0
    assert list(DEFAULT_LATENCY_BOUNDS) == sorted(set(DEFAULT_LATENCY_BOUNDS))


@pytest.mark.parametrize(("every", "ticks", "expected"), [(1, 10, 10), (4, 100, 25), (64, 640, 10)])
def test_sampler_mask_selects_one_call_in_sample_every(
    every: int, ticks: int, expected: int
) -> None:
    sampler = LatencySampler(sample_every=every)
    assert sampler.mask == every - 1
    tick = 0
    for _ in range(ticks):  # the provider's hot-path pattern
        n = tick = tick + 1
        if n & sampler.mask == 0:
            sampler.observe(1e-6)
    assert sampler.count == expected


@pytest.mark.parametrize("every", [0, -4, 3, 48, True, 2.0])
def test_sampler_rejects_non_power_of_two(every: Any) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        LatencySampler(sample_every=every)
    assert excinfo.value.key == "sample_every"


@pytest.mark.parametrize("bounds", [[], [0.1, 0.1], [0.2, 0.1], [0.0, 1.0], [1.0, math.inf]])
def test_sampler_rejects_bad_bounds(bounds: list[float]) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        LatencySampler(bounds)
    assert excinfo.value.key == "bounds"


# -- scraping helpers ----------------------------------------------------------------------------


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def scrape(registry: CollectorRegistry) -> dict[str, Metric]:
    """Parse the registry's text exposition, as Prometheus would read it."""
    text = generate_latest(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Metric], sample_name: str, cache: str, **labels: str) -> float | None:
    family_name = sample_name.removesuffix("_total").removesuffix("_bucket")
    family_name = family_name.removesuffix("_sum").removesuffix("_count")
    for sample in families[family_name].samples:
        if (
            sample.name == sample_name
            and sample.labels.get("cache") == cache
            and all(sample.labels.get(k) == v for k, v in labels.items())
        ):
            return sample.value
    return None


def exercised_cache(name: str = "t", **options: Any) -> MemoryCache:
    cache = MemoryCache(name=name, stats_sample_every=1, **options)
    cache.set("a", 1)
    cache.set("b", 2)
    cache.get("a")
    cache.get("a")
    cache.get("zzz")
    cache.delete("b")
    return cache


# -- the collector against MemoryCache ----------------------------------------------------------


def test_scrape_reports_the_cache_counters(registry: CollectorRegistry) -> None:
    cache = exercised_cache(max_entries=2)
    for key in ("c", "d", "e"):  # "a" is left: two of these do not fit
        cache.set(key, key)
    register_cache(cache, registry)
    stats = cache.get_stats()
    families = scrape(registry)

    expected = {
        "cachekit_hits_total": stats.hits,
        "cachekit_misses_total": stats.misses,
        "cachekit_sets_total": stats.sets,
        "cachekit_deletes_total": stats.deletes,
        "cachekit_evictions_total": stats.evictions,
        "cachekit_expirations_total": stats.expirations,
        "cachekit_items": stats.items,
        "cachekit_max_entries": 2,
        "cachekit_hit_ratio": stats.hit_ratio,
        "cachekit_memory_bytes": stats.memory_bytes,
        "cachekit_stats_errors_total": 0,
    }
    assert (stats.hits, stats.misses, stats.sets, stats.deletes) == (2, 1, 5, 1)
    assert stats.evictions == 2
    for sample_name, expected_value in expected.items():
        assert value(families, sample_name, "t", provider="memory") == pytest.approx(
            expected_value
        ), sample_name
    assert families["cachekit_hits"].type == "counter"
    assert families["cachekit_items"].type == "gauge"
    # No memory bound configured: no sample for it.
    assert value(families, "cachekit_memory_limit_bytes", "t") is None
    uptime = value(families, "cachekit_uptime_seconds", "t")
    assert uptime is not None
    assert 0 <= uptime < 60


def test_scrape_reports_the_sampled_latency_histogram(registry: CollectorRegistry) -> None:
    cache = exercised_cache()
    register_cache(cache, registry)
    families = scrape(registry)
    stats = cache.get_stats()

    histogram = families["cachekit_get_latency_seconds"]
    assert histogram.type == "histogram"
    buckets = [
        (sample.labels["le"], sample.value)
        for sample in histogram.samples
        if sample.name.endswith("_bucket")
    ]
    assert len(buckets) == len(DEFAULT_LATENCY_BOUNDS) + 1
    assert buckets[-1] == ("+Inf", 3.0)  # every get() sampled: stats_sample_every=1
    assert [count for _, count in buckets] == sorted(count for _, count in buckets)
    assert [float(le) for le, _ in buckets] == [*DEFAULT_LATENCY_BOUNDS, math.inf]
    assert value(families, "cachekit_get_latency_seconds_count", "t") == 3.0
    assert value(families, "cachekit_get_latency_seconds_sum", "t") == pytest.approx(
        stats.get_latency_sum
    )


def test_several_caches_are_labelled_apart(registry: CollectorRegistry) -> None:
    small = exercised_cache("small", max_memory_bytes=1 << 20)
    other = MemoryCache(name="other")
    register_cache(small, registry)
    register_cache(other, registry)
    families = scrape(registry)
    assert value(families, "cachekit_sets_total", "small") == 2.0
    assert value(families, "cachekit_sets_total", "other") == 0.0
    assert value(families, "cachekit_memory_limit_bytes", "small") == float(1 << 20)
    assert value(families, "cachekit_memory_limit_bytes", "other") is None
    assert value(families, "cachekit_hit_ratio", "other") == 0.0


class ExtrasCache(MemoryCache):
    """A provider that, like the network ones will, reports extra statistics."""

    def get_stats(self) -> CacheStats:
        stats = super().get_stats()
        extra = {
            "Live keys": len(self.keys()),
            "bounded": self.max_entries is not None,
            "mode": "lru",  # not numeric: not exported
            "hits": stats.hits,  # would clash with cachekit_hits: not exported
            "nested": {"a": 1},
        }
        return dataclasses.replace(stats, extra=extra)


def test_numeric_extras_become_gauges(registry: CollectorRegistry) -> None:
    cache = ExtrasCache(name="x")
    cache.set("k1", 1)
    cache.set("k2", 2)
    cache.get("k1")
    register_cache(cache, registry)
    families = scrape(registry)
    assert families["cachekit_live_keys"].type == "gauge"
    assert value(families, "cachekit_live_keys", "x", provider="memory") == 2.0
    assert value(families, "cachekit_bounded", "x") == 1.0
    assert "cachekit_mode" not in families
    assert "cachekit_nested" not in families
    assert families["cachekit_hits"].type == "counter"  # the extra did not take the name
    assert value(families, "cachekit_hits_total", "x") == 1.0


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("breaker_state", "cachekit_breaker_state"),
        ("Nodes-Up", "cachekit_nodes_up"),
        ("p99 µs", "cachekit_p99_s"),
        ("__x__", "cachekit_x"),
        ("!!!", None),
        ("items", None),
        ("hits_total", None),
        ("get_latency_seconds_bucket", None),
    ],
)
def test_extra_metric_names_are_sanitized(key: str, name: str | None) -> None:
    assert extra_metric_name(key) == name


# -- registration -------------------------------------------------------------------------------


def test_registration_holds_caches_weakly(registry: CollectorRegistry) -> None:
    cache = exercised_cache("ephemeral")
    keep = MemoryCache(name="kept")
    collector = register_cache(cache, registry)
    register_cache(keep, registry)
    assert value(scrape(registry), "cachekit_sets_total", "ephemeral") == 2.0

    ref = weakref.ref(cache)
    del cache
    gc.collect()
    assert ref() is None, "registering for metrics must not keep the cache alive"
    families = scrape(registry)
    assert value(families, "cachekit_sets_total", "ephemeral") is None
    assert value(families, "cachekit_sets_total", "kept") == 0.0
    assert collector.caches() == [keep]


def test_one_collector_per_registry(registry: CollectorRegistry) -> None:
    first = register_cache(MemoryCache(name="a"), registry)
    second = register_cache(MemoryCache(name="b"), registry)
    assert first is second
    assert register_cache(MemoryCache(name="c"), CollectorRegistry()) is not first


def test_register_is_idempotent_and_unregister_reports(registry: CollectorRegistry) -> None:
    cache = MemoryCache(name="r")
    collector = register_cache(cache, registry)
    register_cache(cache, registry)
    assert collector.caches() == [cache]
    assert unregister_cache(cache, registry) is True
    assert unregister_cache(cache, registry) is False
    assert unregister_cache(cache, CollectorRegistry()) is False
    assert value(scrape(registry), "cachekit_sets_total", "r") is None


def test_two_live_caches_may_not_share_a_name(registry: CollectorRegistry) -> None:
    first = MemoryCache(name="same")
    register_cache(first, registry)
    with pytest.raises(ConfigurationError, match="same") as excinfo:
        register_cache(MemoryCache(name="same"), registry)
    assert excinfo.value.key == "name"
    # Once the first is gone, the name is free again (the traceback referenced it too).
    del first, excinfo
    gc.collect()
    register_cache(MemoryCache(name="same"), registry)


class BrokenStatsCache(MemoryCache):
    """A provider whose statistics fail, e.g. because its server went away."""

    def get_stats(self) -> CacheStats:
        raise RuntimeError("stats backend unreachable")


def test_failing_get_stats_does_not_break_the_scrape(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    good = exercised_cache("good")
    broken = BrokenStatsCache(name="broken")
    register_cache(broken, registry)
    register_cache(good, registry)
    with caplog.at_level(logging.ERROR, logger="cachekit.metrics.prometheus"):
        families = scrape(registry)
        families = scrape(registry)
    assert value(families, "cachekit_sets_total", "good") == 2.0
    assert value(families, "cachekit_sets_total", "broken") is None
    assert value(families, "cachekit_stats_errors_total", "broken", provider="memory") == 2.0
    assert value(families, "cachekit_stats_errors_total", "good") == 0.0
    assert any(
        "broken" in record.getMessage() and record.exc_info is not None for record in caplog.records
    )


def sample(registry: CollectorRegistry, name: str, cache: str) -> float | None:
    """One sample of the text exposition by its exact name (``_created`` ones included)."""
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for found in family.samples:
            if found.name == name and found.labels.get("cache") == cache:
                return found.value
    return None


def test_reset_stats_is_exported_as_a_counter_reset(registry: CollectorRegistry) -> None:
    cache = exercised_cache("reset")
    register_cache(cache, registry)
    started = cache.get_stats().started_at
    assert sample(registry, "cachekit_hits_total", "reset") == 2.0
    assert sample(registry, "cachekit_hits_created", "reset") == pytest.approx(started)
    assert sample(registry, "cachekit_get_latency_seconds_created", "reset") == pytest.approx(
        started
    )

    time.sleep(0.01)
    cache.reset_stats()
    restarted = cache.get_stats().started_at
    assert restarted > started
    # The counters went down; their _created moved on, so Prometheus reads a reset.
    assert sample(registry, "cachekit_hits_total", "reset") == 0.0
    assert sample(registry, "cachekit_hits_created", "reset") == pytest.approx(restarted)
    assert sample(registry, "cachekit_evictions_created", "reset") == pytest.approx(restarted)
    assert sample(registry, "cachekit_get_latency_seconds_created", "reset") == pytest.approx(
        restarted
    )
    openmetrics = openmetrics_latest(registry).decode()
    assert 'cachekit_hits_created{cache="reset",provider="memory"}' in openmetrics


def test_nested_extras_are_flattened_one_level(
    registry: CollectorRegistry, redis_server: RedisServer
) -> None:
    l2 = urllib.parse.quote(redis_server.url.rsplit("/", 1)[0] + "/9", safe="")
    cache = cachekit.create_cache(f"tiered://?l1=memory%3A%2F%2F&l2={l2}", name="tier-extras")
    try:
        cache.set("a", 1)
        register_cache(cache, registry)
        families = scrape(registry)
        # The tiered cache reports its L2's breaker under extra["l2"].
        assert value(families, "cachekit_l2_breaker_state", "tier-extras") == 0.0
        assert value(families, "cachekit_l2_db_keys", "tier-extras") is not None
        assert value(families, "cachekit_l1_hits_total", "tier-extras") is not None
        assert value(families, "cachekit_l2_items", "tier-extras") == 1.0
    finally:
        cache.close()


def test_a_tiered_cache_whose_l2_is_down_leaves_l2_items_out(registry: CollectorRegistry) -> None:
    """cachekit_l2_items read 0 while L2's server was down, beside cachekit_server_up 0."""
    dead = f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=0.2&retries=0"
    cache = cachekit.create_cache(
        {"url": "tiered://", "l2": dead, "invalidation": "none", "name": "tier-down"}
    )
    try:
        register_cache(cache, registry)
        families = scrape(registry)
        assert value(families, "cachekit_server_up", "tier-down") == 0.0
        assert "cachekit_l2_items" not in families  # the only cache: no family at all
        assert "l2_items" not in cache.get_stats().extra
    finally:
        cache.close()


def test_per_node_extras_stay_out(
    registry: CollectorRegistry, memcached_cluster: list[MemcachedServer]
) -> None:
    nodes = ",".join(f"{server.host}:{server.port}" for server in memcached_cluster)
    cache = cachekit.create_cache(f"memcached://{nodes}", name="mc-extras")
    try:
        register_cache(cache, registry)
        text = generate_latest(registry).decode()
        assert 'cachekit_nodes_up{cache="mc-extras",provider="memcached"} 3.0' in text
        assert str(memcached_cluster[0].port) not in text  # no series per node address
    finally:
        cache.close()


def test_unreadable_redis_server_leaves_its_figures_out(
    registry: CollectorRegistry, fresh_redis_server: RedisServer
) -> None:
    cache = cachekit.create_cache(fresh_redis_server.url + "?socket_timeout=0.5", name="down-redis")
    try:
        cache.set("a", 1)
        cache.get("a")
        register_cache(cache, registry)
        assert sample(registry, "cachekit_server_up", "down-redis") == 1.0
        assert sample(registry, "cachekit_evictions_total", "down-redis") == 0.0
        assert sample(registry, "cachekit_items", "down-redis") == 1.0

        fresh_redis_server.kill()
        for _ in range(6):  # INFO failing, then the breaker open: no read tried at all
            families = scrape(registry)
            assert value(families, "cachekit_server_up", "down-redis") == 0.0
            for name in (
                "cachekit_evictions_total",
                "cachekit_expirations_total",
                "cachekit_items",
                "cachekit_memory_bytes",
            ):
                assert value(families, name, "down-redis") is None, name
            # Client-side counters are still the cache's own: they stay.
            assert value(families, "cachekit_hits_total", "down-redis") == 1.0
    finally:
        cache.close()


def test_memcached_with_a_node_down_leaves_its_server_figures_out(
    registry: CollectorRegistry, memcached_cluster: list[MemcachedServer]
) -> None:
    nodes = ",".join(f"{server.host}:{server.port}" for server in memcached_cluster)
    cache = cachekit.create_cache(f"memcached://{nodes}?timeout=0.5", name="mc-down")
    try:
        register_cache(cache, registry)
        assert sample(registry, "cachekit_server_up", "mc-down") == 1.0
        assert sample(registry, "cachekit_evictions_total", "mc-down") == 0.0
        memcached_cluster[0].kill()
        families = scrape(registry)
        assert value(families, "cachekit_server_up", "mc-down") == 0.0
        # A sum over the answering nodes only would fall, then jump back.
        assert value(families, "cachekit_evictions_total", "mc-down") is None
        assert value(families, "cachekit_memory_bytes", "mc-down") is None
        assert value(families, "cachekit_nodes_up", "mc-down") == 2.0
    finally:
        cache.close()


def test_caches_without_a_server_have_no_server_up(registry: CollectorRegistry) -> None:
    cache = exercised_cache("local")
    register_cache(cache, registry)
    assert sample(registry, "cachekit_server_up", "local") is None
    assert sample(registry, "cachekit_evictions_total", "local") == 0.0


def test_default_registry_is_used_when_none_given() -> None:
    cache = exercised_cache("on-default-registry")
    register_cache(cache)
    try:
        assert value(scrape(REGISTRY), "cachekit_sets_total", "on-default-registry") == 2.0
    finally:
        assert unregister_cache(cache)


def test_collector_describes_its_fixed_families() -> None:
    names = {family.name for family in CacheCollector().describe()}
    assert {"cachekit_hits", "cachekit_items", "cachekit_get_latency_seconds"} <= names
    assert all(not family.samples for family in CacheCollector().describe())


# -- serving ------------------------------------------------------------------------------------


@pytest.fixture
def metrics_server(registry: CollectorRegistry) -> Iterator[int]:
    server, thread = start_metrics_server(0, registry=registry)
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_real_http_scrape(registry: CollectorRegistry, metrics_server: int) -> None:
    cache = exercised_cache("http")
    register_cache(cache, registry)
    url = f"http://127.0.0.1:{metrics_server}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        body = response.read().decode()
    families = {family.name: family for family in text_string_to_metric_families(body)}
    assert value(families, "cachekit_hits_total", "http") == 2.0
    assert value(families, "cachekit_get_latency_seconds_count", "http") == 3.0


def test_wsgi_app_serves_the_registry(registry: CollectorRegistry) -> None:
    cache = exercised_cache("wsgi")  # held here: the registry holds it weakly
    register_cache(cache, registry)
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    body = b"".join(make_wsgi_app(registry)(environ, start_response)).decode()
    assert statuses == ["200 OK"]
    assert 'cachekit_sets_total{cache="wsgi",provider="memory"} 2.0' in body


# -- without prometheus-client ------------------------------------------------------------------

_WITHOUT_PROMETHEUS = textwrap.dedent(
    """
    import sys

    class RefusePrometheus:
        # Behaves as if prometheus-client were not installed.
        def find_spec(self, name, path=None, target=None):
            if name == "prometheus_client" or name.startswith("prometheus_client."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, RefusePrometheus())

    import cachekit
    import cachekit.metrics
    from cachekit.errors import ConfigurationError
    from cachekit.providers.memory import MemoryCache

    cache = MemoryCache(name="core", stats_sample_every=1)
    cache.set("k", 1)
    assert cache.get("k") == 1
    assert cache.get_stats().get_latency_count == 1
    sampler = cachekit.metrics.LatencySampler(sample_every=8)
    sampler.observe(0.5)
    assert sampler.count == 1
    from cachekit.metrics import *  # only the dependency-free names
    assert "prometheus_client" not in sys.modules

    for attempt in ("attribute", "import"):
        try:
            if attempt == "attribute":
                cachekit.metrics.register_cache
            else:
                import cachekit.metrics.prometheus
        except ConfigurationError as exc:
            print(attempt, "->", exc)
        else:
            raise SystemExit(f"{attempt}: no ConfigurationError")
    """
)


def test_core_and_sampler_work_without_prometheus_client() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", _WITHOUT_PROMETHEUS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for attempt, line in zip(("attribute", "import"), lines, strict=True):
        assert line.startswith(f"{attempt} -> ")
        assert "pip install 'cachekit[metrics]'" in line


def test_lazy_attributes() -> None:
    assert cachekit.metrics.register_cache is register_cache
    assert "CacheCollector" in dir(cachekit.metrics)
    with pytest.raises(AttributeError, match="no_such_thing"):
        cachekit.metrics.no_such_thing  # noqa: B018
