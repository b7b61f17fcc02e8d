"""A forked child's counters start at zero on memcached and tiered caches, breaker and
fail-open counts included (the part of the eleventh review's fork fix left to these files)."""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

import pytest
from test_fork import _fork, _report

import cachekit
from cachekit.testing.servers import MemcachedServer, RedisServer

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


@pytest.mark.parametrize("kind", ["memcached", "tiered"])
def test_a_forked_child_starts_at_zero(
    kind: str, redis_server: RedisServer, memcached_server: MemcachedServer
) -> None:
    if kind == "memcached":
        url = memcached_server.url + "?prefix=s11forkrest&stats_sample_every=1"
    else:
        l2 = urllib.parse.quote(redis_server.url + "?prefix=s11forkrest:", safe="")
        url = f"tiered://?l2={l2}&stats_sample_every=1"
    cache = cachekit.create_cache(url, name=f"s11forkrest-{kind}")
    cache.set("k", 1)
    for _ in range(3):
        cache.get("k")
    cache.get("absent")
    parent = cache.get_stats()
    assert parent.hits == 3

    def child() -> list[Any]:
        stats = cache.get_stats()
        extra = stats.extra
        return [
            stats.hits, stats.misses, stats.sets, stats.get_latency_count,
            extra.get("l1_hits", 0), extra.get("l2_hits", 0),
            stats.started_at > parent.started_at,
        ]  # fmt: skip

    pid, read = _fork(child)
    assert _report(pid, read) == [0, 0, 0, 0, 0, 0, True]
    cache.close()


def test_breaker_and_fail_open_counts_start_at_zero_in_a_child(
    fresh_redis_server: RedisServer,
) -> None:
    cache: Any = cachekit.create_cache(
        fresh_redis_server.url
        + "?fail_open=true&retries=0&socket_timeout=0.5&socket_connect_timeout=0.5"
        + "&breaker_failures=1",
        name="s11forkrest-breaker",
    )
    cache.get("warm")
    fresh_redis_server.kill()
    cache.get("k")
    cache.get("k")
    parent = cache.get_stats().extra
    assert parent["breaker_opened_total"] == 1
    assert parent["fail_open_get_errors_total"] == 2

    def child() -> list[int]:
        extra = cache.get_stats().extra
        return [
            extra["breaker_opened_total"],
            extra["breaker_rejected_total"],
            extra["fail_open_get_errors_total"],
        ]

    pid, read = _fork(child)
    assert _report(pid, read) == [0, 0, 0]
    cache.close()
