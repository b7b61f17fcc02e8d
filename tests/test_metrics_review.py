"""Regressions from a review of the metrics: real caches and servers, no mocks."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import cachekit
from cachekit.policies.lfu import LFUPolicy
from cachekit.providers.memcached import MemcachedCache
from cachekit.providers.memory import MemoryCache
from cachekit.providers.redis import RedisCache
from cachekit.resilience import BreakerState
from cachekit.testing.servers import MemcachedServer, RedisServer

flask = pytest.importorskip("flask")


# -- Flask /metrics with two caches of the same name -------------------------------------------


def _scrape_hits(client: Any) -> dict[tuple[str, str], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.data[:300]
    hits: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(response.data.decode()):
        if family.name == "cachekit_hits":
            for sample in family.samples:
                if sample.name == "cachekit_hits_total":
                    hits[sample.labels["cache"], sample.labels["provider"]] = sample.value
    return hits


def test_flask_metrics_exports_two_caches_of_the_same_name() -> None:
    """Two ``Cache(app)`` (views and memoize, Flask-Caching's pattern) are both named
    ``flask``: the scrape answered 500 (register_cache refused the second)."""
    from cachekit_flask import Cache, metrics_blueprint

    app = flask.Flask("two_caches")
    app.config["CACHE_TYPE"] = "SimpleCache"
    views = Cache(app)
    memo = Cache(app, config={"CACHE_TYPE": "SimpleCache"})
    app.register_blueprint(metrics_blueprint(CollectorRegistry()))
    with app.app_context():
        views.set("a", 1)
        views.get("a")
        memo.set("b", 2)
        memo.get("b")
        memo.get("b")
    client = app.test_client()
    hits = _scrape_hits(client)
    assert sorted(hits.values()) == [1.0, 2.0]  # both caches, under distinct labels
    assert len(hits) == 2
    assert _scrape_hits(client) == hits  # stable across scrapes


def test_flask_metrics_app_factory_run_twice_in_one_process() -> None:
    """An app factory run twice registers two ``flask`` caches in the process-wide registry
    (tests, or two apps): the second app's scrape answered 500."""
    from cachekit_flask import Cache, metrics_blueprint

    registry = CollectorRegistry()

    def create_app() -> tuple[Any, Any]:
        app = flask.Flask("shop")
        app.config["CACHE_TYPE"] = "SimpleCache"
        cache = Cache(app)
        app.register_blueprint(metrics_blueprint(registry))
        return app, cache

    first, _ = create_app()
    assert first.test_client().get("/metrics").status_code == 200
    second, cache = create_app()
    with second.app_context():
        cache.set("k", 1)
        cache.get("k")
    hits = _scrape_hits(second.test_client())
    assert 1.0 in hits.values()
    assert len(hits) == 2
    assert first.test_client().get("/metrics").status_code == 200


# -- memcached: a thread's counts dropped while get_stats() holds the stats lock ---------------


class _DropOnIter(list):  # type: ignore[type-arg]
    """A thread's counters list which, read by ``_totals``, drops the test's own references to
    the thread's ``_Counts``: the list ``_totals`` iterates then holds the last one."""

    def __init__(self, values: list[int], held: list[Any]) -> None:
        super().__init__(values)
        self.held = held

    def __iter__(self) -> Any:
        self.held.clear()
        return super().__iter__()


def test_memcached_stats_read_survives_a_thread_counts_dying_under_the_lock(
    memcached_server: MemcachedServer,
) -> None:
    cache = cachekit.create_cache(memcached_server.url)
    assert isinstance(cache, MemcachedCache)
    done = threading.Event()
    try:
        cache.set("k", 1)
        held: list[Any] = []

        def work() -> None:
            cache.get("k")
            owner = cache._stats_local.c  # this thread's counts, kept past its end
            owner.n = _DropOnIter(owner.n, held)
            held.append(owner)

        for _ in range(3):  # three dead threads' counts: at least two are not the last listed
            thread = threading.Thread(target=work)
            thread.start()
            thread.join()
        assert len(held) == 3
        result: list[Any] = []

        def read() -> None:
            result.append(cache.get_stats())
            done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert done.wait(5), "get_stats() deadlocked on the stats lock"
        assert result[0].hits >= 3
        assert cache.get_stats().hits == result[0].hits
    finally:
        if done.is_set():
            cache.close()


# -- memory: the sampled get's timing must not include replaying other calls' hits -------------


class _SlowHitLFU(LFUPolicy):
    def on_hit(self, key: str) -> None:
        time.sleep(0.004)
        super().on_hit(key)


def test_memory_sampled_get_latency_excludes_the_log_replay() -> None:
    cache = MemoryCache(policy=_SlowHitLFU(1000), stats_sample_every=16)
    cache.set("k", 1)
    cache.reset_stats()
    for _ in range(16 * 3):  # 15 logged hits, then a sampled one, three times
        assert cache.get("k") == 1
    stats = cache.get_stats()
    assert stats.get_latency_count == 3
    assert stats.hits == 48
    # Each sampled call does one 4 ms hook itself; the replay of 15 logged hits is 60 ms more.
    assert stats.avg_get_seconds is not None
    assert stats.avg_get_seconds < 0.030, stats.avg_get_seconds


# -- redis: get_stats() with the breaker open is not a refused call ----------------------------


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_redis_get_stats_with_the_breaker_open_counts_no_rejection(
    fresh_redis_server: RedisServer, twin: str
) -> None:
    cache = RedisCache(
        fresh_redis_server.url,
        retries=0,
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        fail_open=True,
        breaker_failures=1,
        breaker_recovery=60,
    )
    read = cache.get_stats if twin == "sync" else lambda: asyncio.run(cache.aget_stats())
    try:
        cache.set("k", 1)
        fresh_redis_server.kill()
        assert cache.get("k") is None  # fails open, opens the breaker
        assert cache.breaker.state is BreakerState.OPEN
        before = cache.breaker.rejected_count
        for _ in range(3):
            stats = read()
            assert "breaker is open" in stats.extra["server_error"]
        assert cache.breaker.rejected_count == before
        assert cache.get("k") is None  # a refused call still counts
        assert cache.breaker.rejected_count == before + 1
    finally:
        cache.close()


# -- Flask decorators: one counted lookup per decorated call ------------------------------------


def _flask_app(config: dict[str, Any]) -> tuple[Any, Any, Any]:
    from cachekit_flask import Cache
    from cachekit_flask.cli import app_caches

    app = flask.Flask("counting")
    app.config.update(config)
    cache = Cache(app)
    ((_, core),) = app_caches(app)
    return app, cache, core


def _delta(core: Any, call: Any) -> tuple[int, int, int]:
    before = core.get_stats()
    call()
    after = core.get_stats()
    return (after.hits - before.hits, after.misses - before.misses, after.sets - before.sets)


@pytest.fixture(params=["memory", "redis"])
def counting_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "memory":
        return {"CACHE_TYPE": "SimpleCache"}
    server = request.getfixturevalue("redis_server")
    return {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": server.url.rsplit("/", 1)[0] + "/5"}


def test_flask_cached_view_counts_one_miss_per_miss(counting_config: dict[str, Any]) -> None:
    app, cache, core = _flask_app(counting_config)
    cache.clear()

    @app.route("/page")
    @cache.cached(timeout=60)
    def page() -> str:
        return "body"

    client = app.test_client()
    assert _delta(core, lambda: client.get("/page")) == (0, 1, 1)
    assert _delta(core, lambda: client.get("/page")) == (1, 0, 0)


def test_flask_memoize_on_memory_counts_the_result_lookup_only() -> None:
    app, cache, core = _flask_app({"CACHE_TYPE": "SimpleCache"})
    calls: list[int] = []

    @cache.memoize(timeout=60)
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    with app.app_context():
        hits, misses, _sets = _delta(core, lambda: double(2))
        assert (hits, misses) == (0, 1)  # the version key is created (a set), not counted read
        assert _delta(core, lambda: double(2)) == (1, 0, 0)
        assert _delta(core, lambda: double(3)) == (0, 1, 1)
    assert calls == [2, 3]


def test_flask_cached_async_view_counts_one_miss_per_miss(
    counting_config: dict[str, Any],
) -> None:
    pytest.importorskip("asgiref")
    app, cache, core = _flask_app(counting_config)
    cache.clear()

    @app.route("/apage")
    @cache.cached(timeout=60)
    async def apage() -> str:
        return "body"

    client = app.test_client()
    assert _delta(core, lambda: client.get("/apage")) == (0, 1, 1)
    assert _delta(core, lambda: client.get("/apage")) == (1, 0, 0)
