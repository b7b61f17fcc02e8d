"""Gaps in the metrics found by the eleventh review: get latency of the file provider, counters
a forked child inherited from its parent, and stampede-lock releases that failed uncounted.

Real directories, real servers and real forks; children report through a pipe.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from test_metrics import scrape, value

import cachekit
from cachekit.errors import ConfigurationError
from cachekit.interfaces import Cache
from cachekit.metrics.prometheus import register_cache
from cachekit.providers.filesystem import FileCache

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
