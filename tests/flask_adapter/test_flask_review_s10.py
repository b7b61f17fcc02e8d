"""Regression tests of the Flask decorators' fill from a review, on real servers:

* a backend outage while a view runs answers 200 (the view's value), never 500: not from the
  stampede lock's release, nor from a single-flight waiter's re-read (``ComputeOwn``);
* an undecodable entry written between lookup and fill is a miss, as at lookup;
* a decorated call counts exactly one lookup, waiters included;
* an async view of a ``Cache`` without ``init_app`` runs uncached, as a sync one does.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import flask
import pytest
import redis

import cachekit_flask
from cachekit.testing.servers import MemcachedServer, RedisServer
from cachekit_flask import CachedResponse, cache_view_miss

WAITERS = 3


def _concurrent_gets(app: flask.Flask, path: str, n: int = WAITERS) -> list[int]:
    barrier = threading.Barrier(n)

    def get(_: int) -> int:
        barrier.wait()
        with app.test_client() as client:
            return client.get(path).status_code

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(get, range(n)))


def _outage_app(config: dict[str, Any], kill: Any) -> tuple[flask.Flask, dict[str, int]]:
    """A view whose value is refused by ``response_filter`` (its waiters compute their own)
    and whose first run takes the backend down while the others wait for it."""
    app = flask.Flask(__name__)
    app.config.update(config)
    cache = cachekit_flask.Cache(app)
    calls = {"n": 0}

    @app.route("/flt")
    @cache.cached(response_filter=lambda rv: False)
    def flt() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(0.4)  # the other requests now wait on this computation
            kill()
        return "page"

    return app, calls


def test_redis_going_down_while_a_view_runs_answers_200(fresh_redis_server: RedisServer) -> None:
    url = fresh_redis_server.url + "?retries=0&socket_connect_timeout=0.5&socket_timeout=0.5"
    app, calls = _outage_app({"CACHEKIT_URL": url}, fresh_redis_server.kill)
    assert _concurrent_gets(app, "/flt") == [200] * WAITERS
    assert calls["n"] == WAITERS


def test_memcached_going_down_while_waiters_wait_answers_200(
    fresh_memcached_server: MemcachedServer,
) -> None:
    config = {
        "CACHE_TYPE": "MemcachedCache",
        "CACHE_MEMCACHED_SERVERS": [f"127.0.0.1:{fresh_memcached_server.port}"],
    }
    app, calls = _outage_app(config, fresh_memcached_server.kill)
    assert _concurrent_gets(app, "/flt") == [200] * WAITERS
    assert calls["n"] == WAITERS


def test_an_undecodable_entry_written_between_lookup_and_fill_is_a_miss(
    redis_server: RedisServer,
) -> None:
    """A Flask-Caching process (cachelib's pickle) writes the view's key right after this
    process's lookup missed: the fill serves the view's value instead of a 500."""
    raw = redis.Redis(host=redis_server.host, port=redis_server.port, db=11)
    raw.flushdb()
    app = flask.Flask(__name__)
    app.config.update(
        CACHE_TYPE="RedisCache",
        CACHE_REDIS_URL=f"redis://{redis_server.host}:{redis_server.port}/11",
        CACHE_ENABLE_SIGNALS=True,
    )
    cache = cachekit_flask.Cache(app)
    calls = {"n": 0}

    @app.route("/page")
    @cache.cached()
    def page() -> str:
        calls["n"] += 1
        return "new page"

    def old_process_writes(sender: Any, cache_key: str, **kwargs: Any) -> None:
        raw.set("flask_cache_" + cache_key, b"!" + pickle.dumps("old page"))

    cache_view_miss.connect(old_process_writes)
    try:
        response = app.test_client().get("/page")
    finally:
        cache_view_miss.disconnect(old_process_writes)
        raw.close()
    assert (response.status_code, response.data, calls["n"]) == (200, b"new page", 1)


@pytest.mark.parametrize("what", ["filtered", "own timeout"])
def test_waiters_count_one_lookup_per_call(redis_server: RedisServer, what: str) -> None:
    """Waiters whose leader's value left the flight as an exception (``ComputeOwn``) re-read
    the key with a counted ``get``: 4 calls counted 7 lookups."""
    app = flask.Flask(__name__)
    app.config.update(CACHEKIT_URL=f"redis://{redis_server.host}:{redis_server.port}/7")
    cache = cachekit_flask.Cache(app)
    with app.app_context():
        cache.clear()

    @app.route("/flt")
    @cache.cached(response_filter=lambda rv: False)
    def flt() -> str:
        time.sleep(0.3)
        return "flt"

    @app.route("/cr")
    @cache.cached()
    def cr() -> Any:
        time.sleep(0.3)
        return CachedResponse(flask.make_response("cr"), 100)

    path = "/flt" if what == "filtered" else "/cr"
    with app.app_context():
        before = cache.get_stats()
    assert _concurrent_gets(app, path, 4) == [200] * 4
    with app.app_context():
        after = cache.get_stats()
    assert (after.hits - before.hits) + (after.misses - before.misses) == 4


def test_async_waiters_count_one_lookup_per_call() -> None:
    app = flask.Flask(__name__)
    app.config.update(CACHEKIT_URL="memory://")
    cache = cachekit_flask.Cache(app)

    @cache.memoize(response_filter=lambda rv: False)
    async def f(x: int) -> int:
        await asyncio.sleep(0.2)
        return x

    async def main() -> int:
        with app.app_context():
            before = cache.get_stats()
            assert await asyncio.gather(*(f(1) for _ in range(4))) == [1] * 4
            after = cache.get_stats()
            return (after.hits - before.hits) + (after.misses - before.misses)

    assert asyncio.run(main()) == 4


def test_an_async_view_without_init_app_runs_uncached_as_a_sync_one() -> None:
    cache = cachekit_flask.Cache()

    @cache.cached()
    def sync_view() -> str:
        return "sync"

    @cache.cached()
    async def async_view() -> str:
        return "async"

    app = flask.Flask(__name__)
    with app.test_request_context("/page"):
        assert sync_view() == "sync"
        assert asyncio.run(async_view()) == "async"


def test_concurrent_async_views_on_memory_run_the_function_once() -> None:
    """Flask runs each async view in an event loop of its own: the single-flight now reaches
    across them, as it does across a sync view's threads."""
    app = flask.Flask(__name__)
    app.config.update(CACHEKIT_URL="memory://")
    cache = cachekit_flask.Cache(app)
    calls = {"n": 0}

    @app.route("/slow")
    @cache.cached()
    async def slow() -> str:
        calls["n"] += 1
        await asyncio.sleep(0.3)
        return "page"

    assert _concurrent_gets(app, "/slow") == [200] * WAITERS
    assert calls["n"] == 1
