"""What cachekit_flask adds to Flask-Caching: async, stampede protection, tags, metrics, signals.

All on real providers: the memory provider, and ``redis-server``/``memcached`` from the
session fixtures; the cross-process stampede test runs real processes against one Redis.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import flask
import flask_caching
import flask_caching.signals
import pytest
from prometheus_client import CollectorRegistry

import cachekit
import cachekit_flask
from cachekit.errors import InvalidArgumentType, UnsupportedOperation
from cachekit.testing.servers import MemcachedServer, RedisServer, free_port

REPO = Path(__file__).resolve().parents[2]


def make(config: dict[str, Any] | None = None, name: str = "features") -> tuple[flask.Flask, Any]:
    app = flask.Flask(name)
    app.config.update(config or {"CACHEKIT_URL": "memory://"})
    return app, cachekit_flask.Cache(app)


# -- async ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_async_view_and_async_memoize_cache_the_result_not_the_coroutine(
    backend: str, request: pytest.FixtureRequest
) -> None:
    config = {"CACHEKIT_URL": "memory://"}
    if backend == "redis":
        url = request.getfixturevalue("redis_server").url
        config = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url, "CACHE_KEY_PREFIX": "async_"}
    app, cache = make(config)
    calls = {"view": 0, "memo": 0}

    @cache.memoize(timeout=60)
    async def slow_square(x: int) -> int:
        calls["memo"] += 1
        await asyncio.sleep(0)
        return x * x

    @app.get("/square/<int:x>")
    @cache.cached(timeout=60)
    async def square(x: int) -> str:
        calls["view"] += 1
        return str(await slow_square(x) + await slow_square(x))

    client = app.test_client()
    assert client.get("/square/3").data == b"18"
    assert client.get("/square/3").data == b"18"
    assert calls == {"view": 1, "memo": 1}
    with app.app_context():
        assert cache.get("view//square/3") == "18"
        key = slow_square.make_cache_key(slow_square.uncached, 3)
        assert cache.get(key) == 9
        cache.delete_memoized(slow_square, 3)
        assert cache.get(key) is None
        assert client.get("/square/3").data == b"18"  # the view is still cached
        cache.clear()
    assert client.get("/square/3").data == b"18"
    assert calls == {"view": 2, "memo": 2}


def test_async_options_forced_update_and_response_filter() -> None:
    app, cache = make()
    calls: list[int] = []

    @cache.memoize(response_filter=lambda rv: rv >= 0)
    async def maybe(x: int) -> int:
        calls.append(x)
        return x

    async def main() -> None:
        assert await maybe(-1) == -1
        assert await maybe(-1) == -1
        assert await maybe(2) == 2
        assert await maybe(2) == 2

    with app.app_context():
        asyncio.run(main())
    assert calls == [-1, -1, 2]


# -- stampede protection ------------------------------------------------------------------------


def test_concurrent_misses_compute_once_in_process() -> None:
    app, cache = make()
    calls: list[int] = []
    barrier = threading.Barrier(8)

    @cache.memoize(timeout=60)
    def report(day: int) -> str:
        calls.append(day)
        time.sleep(0.2)
        return f"report {day}"

    results: list[str] = []

    def worker() -> None:
        with app.app_context():
            barrier.wait()
            results.append(report(1))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["report 1"] * 8
    assert calls == [1]


@pytest.mark.parametrize("config", [{"CACHE_TYPE": "SimpleCache"}, None], ids=["simple", "memory"])
def test_concurrent_requests_each_get_their_own_response(config: dict[str, Any] | None) -> None:
    """Review finding: requests that waited on one computation got the leader's Response
    object, so every request's after-request code (a session cookie) landed on one shared
    response. Each request now gets its own, with its own cookie only."""
    app, cache = make(config, name="own-response")
    app.secret_key = "test"
    gate = threading.Barrier(3)

    @app.before_request
    def remember() -> None:
        flask.session["user"] = flask.request.args["u"]

    @app.route("/page")
    @cache.cached(timeout=60)
    def page() -> flask.Response:
        time.sleep(0.3)  # the other two requests arrive meanwhile and wait
        return flask.make_response("page")

    @app.route("/filtered")
    @cache.cached(timeout=60, response_filter=lambda response: False)  # never stored
    def filtered() -> flask.Response:
        time.sleep(0.3)
        return flask.make_response("filtered")

    for path in ("/page", "/filtered"):
        cookies: dict[str, list[str]] = {}

        def request(user: str, path: str = path, cookies: dict[str, list[str]] = cookies) -> None:
            with app.test_client() as client:
                gate.wait()
                response = client.get(f"{path}?u={user}")
                cookies[user] = response.headers.getlist("Set-Cookie")

        threads = [threading.Thread(target=request, args=(user,)) for user in "abc"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(len(found) for found in cookies.values()) == [1, 1, 1], (path, cookies)
        cache.clear()


def test_a_cached_response_with_its_own_timeout_is_computed_once() -> None:
    """Review finding: waiters of a CachedResponse (stored with its own TTL) each ran the view
    again; the leader now stores it within the flight and the waiters read that copy."""
    app, cache = make({"CACHE_TYPE": "SimpleCache"}, name="cached-response")
    calls: list[int] = []
    gate = threading.Barrier(4)

    @app.route("/cr")
    @cache.cached(timeout=60)
    def cr() -> flask.Response:
        calls.append(1)
        time.sleep(0.3)
        return cachekit_flask.CachedResponse(flask.make_response("body"), 120)

    bodies: list[bytes] = []

    def request() -> None:
        with app.test_client() as client:
            gate.wait()
            bodies.append(client.get("/cr").data)

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert bodies == [b"body"] * 4
    assert calls == [1]


def test_near_cache_hits_are_copies_too(redis_server: RedisServer) -> None:
    """A tiered cache's L1 held the object L2 decoded: every hit was that one Response, and
    each request's session cookie piled up on it for the next requests."""
    from urllib.parse import quote

    l2 = quote(redis_server.url + "?prefix=flask-tiered:", safe="")
    app, cache = make({"CACHEKIT_URL": f"tiered://?l2={l2}"}, name="tiered-copies")
    app.secret_key = "test"

    @app.before_request
    def remember() -> None:
        flask.session["user"] = flask.request.args["u"]

    @app.route("/page")
    @cache.cached(timeout=60)
    def page() -> flask.Response:
        return flask.make_response("page")

    with app.app_context():
        cache.cache.start(timeout=10)  # the subscriber: L1 is used once it is confirmed
    cookies = []
    for user in "abc":
        with app.test_client() as client:
            cookies.append(client.get(f"/page?u={user}").headers.getlist("Set-Cookie"))
    assert [len(found) for found in cookies] == [1, 1, 1], cookies
    assert cache.cache.l1.get_stats().hits >= 1  # served from L1, as copies
    cache.clear()
    cache.cache.close()


@pytest.mark.parametrize("config", [{"CACHE_TYPE": "SimpleCache"}, None], ids=["simple", "memory"])
def test_a_cached_view_calling_one_with_the_same_key_does_not_hang(
    config: dict[str, Any] | None,
) -> None:
    """Review finding: the inner call waited for the outer one, its own caller, forever."""
    app, cache = make(config, name="nested")

    @cache.cached(timeout=60, key_prefix="shared")
    def index() -> str:
        return "index"

    @app.route("/home")
    @cache.cached(timeout=60, key_prefix="shared")
    def home() -> str:
        return index()

    @cache.memoize(timeout=60, args_to_ignore=["tries"])
    def fetch(x: int, tries: int) -> int:
        return x if tries == 0 else fetch(x, tries - 1)

    results: list[Any] = []

    def run() -> None:
        with app.test_client() as client:
            results.append(client.get("/home").data)
        with app.app_context():
            results.append(fetch(7, 3))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "the nested call waited for its own caller"
    assert results == [b"index", 7]


_STAMPEDE_WORKER = textwrap.dedent(
    """
    import sys, time, flask
    import cachekit, cachekit_flask

    url, start_at = sys.argv[1], float(sys.argv[2])
    app = flask.Flask("worker")
    app.config.update(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=url, CACHE_KEY_PREFIX="stamp_")
    cache = cachekit_flask.Cache(app)
    counter = cachekit.create_cache(url, prefix="stampcount:")

    @cache.memoize(timeout=60)
    def expensive(x):
        counter.incr("computations")
        time.sleep(0.5)
        return x * 10

    time.sleep(max(0.0, start_at - time.time()))
    with app.app_context():
        print(expensive(4))
    """
)


def test_concurrent_misses_compute_once_across_processes(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    script = tmp_path / "stampede_worker.py"
    script.write_text(_STAMPEDE_WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), redis_server.url, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=30) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    assert [out.strip() for out, _ in outputs] == ["40"] * 3
    counter = cachekit.create_cache(redis_server.url, prefix="stampcount:")
    assert counter.get("computations") == 1
    counter.clear()


# -- tags -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_tags_on_decorators_invalidate_together(
    backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "redis":
        url = request.getfixturevalue("redis_server").url
        config = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url, "CACHE_KEY_PREFIX": "tags_"}
    else:
        config = {"CACHE_TYPE": "SimpleCache"}
    app, cache = make(config)
    calls: list[str] = []

    @app.get("/products")
    @cache.cached(tags=["catalog"])
    def products() -> str:
        calls.append("view")
        return f"products {len(calls)}"

    @cache.memoize(tags=["catalog", "prices"])
    def price(item: str) -> str:
        calls.append(item)
        return f"{item} {len(calls)}"

    client = app.test_client()
    with app.app_context():
        first_view, first_price = client.get("/products").data, price("tea")
        assert client.get("/products").data == first_view
        assert price("tea") == first_price
        assert cache.invalidate_tags(["prices"]) == 1
        assert price("tea") != first_price
        assert client.get("/products").data == first_view
        assert cache.invalidate_tags(["catalog"]) == 2
        assert client.get("/products").data != first_view
        cache.set("tagged", 1, tags=["other"])
        assert cache.invalidate_tags(["other"]) == 1
        assert cache.get("tagged") is None
        cache.clear()


def test_tags_need_a_distributed_provider(memcached_server: MemcachedServer) -> None:
    app, cache = make(
        {
            "CACHE_TYPE": "MemcachedCache",
            "CACHE_MEMCACHED_SERVERS": [f"{memcached_server.host}:{memcached_server.port}"],
        }
    )

    @cache.memoize(tags=["t"])
    def f(x: int) -> int:
        return x

    with app.app_context():
        cache.set("plain", 1)
        assert cache.get("plain") == 1
        with pytest.raises(UnsupportedOperation, match="tags"):
            f(1)
        with pytest.raises(UnsupportedOperation):
            cache.delete_pattern("*")
        cache.clear()
    with pytest.raises(InvalidArgumentType, match="bare str"):  # a CacheError and a TypeError
        cache.memoize(tags="catalog")
    with pytest.raises(InvalidArgumentType, match="non-empty str"):
        cache.cached(tags=["ok", ""])
    with pytest.raises(InvalidArgumentType):
        cache.cached(tags=5)  # type: ignore[arg-type]


def test_delete_pattern_removes_matching_views() -> None:
    app, cache = make()

    @app.get("/p/<int:n>")
    @cache.cached()
    def page(n: int) -> str:
        return str(n)

    client = app.test_client()
    for n in range(3):
        client.get(f"/p/{n}")
    with app.app_context():
        assert cache.delete_pattern("view//p/*") == 3
        assert cache.get("view//p/1") is None


# -- signals, metrics, stats ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "signals"),
    [
        (flask_caching, flask_caching.signals),
        (cachekit_flask, cachekit_flask),
        # Found by Flask-Caching's own suite: receivers an app connected to
        # flask_caching.signals heard nothing once only its Cache import changed.
        (cachekit_flask, flask_caching.signals),
    ],
    ids=["flask_caching", "cachekit_flask", "cachekit_flask-heard-by-flask_caching.signals"],
)
def test_signals_when_enabled(module: Any, signals: Any) -> None:
    app = flask.Flask("signals")
    app.config.update(CACHE_TYPE="SimpleCache", CACHE_ENABLE_SIGNALS=True)
    cache = module.Cache(app)
    seen: list[tuple[str, str]] = []

    def receiver(name: str) -> Any:
        def receive(sender: Any, **kwargs: Any) -> None:
            assert kwargs["cache"] is cache
            seen.append((name, kwargs["cache_key"]))

        return receive

    receivers = {
        name: receiver(name) for name in ("view_hit", "view_miss", "memo_hit", "memo_miss")
    }
    signals.cache_view_hit.connect(receivers["view_hit"])
    signals.cache_view_miss.connect(receivers["view_miss"])
    signals.cache_memoize_hit.connect(receivers["memo_hit"])
    signals.cache_memoize_miss.connect(receivers["memo_miss"])

    @app.get("/s")
    @cache.cached()
    def view() -> str:
        return "s"

    @cache.memoize()
    def f(x: int) -> int:
        return x

    try:
        client = app.test_client()
        client.get("/s")
        client.get("/s")
        with app.app_context():
            f(1)
            f(1)
    finally:
        signals.cache_view_hit.disconnect(receivers["view_hit"])
        signals.cache_view_miss.disconnect(receivers["view_miss"])
        signals.cache_memoize_hit.disconnect(receivers["memo_hit"])
        signals.cache_memoize_miss.disconnect(receivers["memo_miss"])
    assert [name for name, _ in seen] == ["view_miss", "view_hit", "memo_miss", "memo_hit"]
    assert seen[0][1] == "view//s"


def test_metrics_blueprint_exports_the_apps_caches() -> None:
    registry = CollectorRegistry()
    app = flask.Flask("metrics")
    app.config["CACHEKIT_URL"] = "memory://shop"
    app.register_blueprint(cachekit_flask.metrics_blueprint(registry))
    cache = cachekit_flask.Cache(app)
    with app.app_context():
        cache.set("a", 1)
        cache.get("a")
        cache.get("b")
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert 'cachekit_hits_total{cache="shop",provider="memory"} 1.0' in body
    assert 'cachekit_misses_total{cache="shop",provider="memory"} 1.0' in body


def test_the_core_cache_and_stats_are_reachable() -> None:
    app, cache = make({"CACHEKIT_URL": "memory://core?policy=lfu"})
    with app.app_context():
        assert isinstance(cache.cache, cachekit.Cache)
        assert cache.cache.policy.__class__.__name__.lower().startswith("lfu")
        cache.set("k", 1)
        cache.get("k")
        assert cache.get_stats().hits == 1
        assert cache.inc("n") == 1
        assert cache.dec("n") == 0
    assert app.extensions["cache"][cache] is cache.cache


def test_cache_errors_fall_back_to_the_function_unless_debug() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app, cache = make({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url}, name="down")
    calls: list[int] = []

    @cache.memoize()
    def f(x: int) -> int:
        calls.append(x)
        return x

    with app.app_context():
        assert f(1) == 1
        assert f(1) == 1
        assert calls == [1, 1]
        app.debug = True
        with pytest.raises(cachekit.BackendUnavailable):
            f(1)


def test_a_backend_failing_between_lookup_and_fill_computes_uncached(
    fresh_redis_server: RedisServer,
) -> None:
    """The lookup missed, then Redis went away before the fill (get_or_set's second read, its
    stampede lock): that raised a 500 where Flask-Caching logs and computes the value."""
    config = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": fresh_redis_server.url}
    app, cache = make({**config, "CACHE_ENABLE_SIGNALS": True}, name="window")
    stopped: list[bool] = []

    @app.route("/v")
    @cache.cached(60)
    def view() -> str:
        return "computed"

    @cache.memoize(60)
    def f(x: int) -> int:
        return x * 10

    def outage(sender: Any = None, **extra: Any) -> None:
        fresh_redis_server.stop()  # right after the lookup that missed
        stopped.append(True)

    with cachekit_flask.cache_view_miss.connected_to(outage):
        response = app.test_client().get("/v")
    assert (response.status_code, response.data) == (200, b"computed")
    fresh_redis_server.start()
    with app.app_context(), cachekit_flask.cache_memoize_miss.connected_to(outage):
        assert f(2) == 20
    assert stopped == [True, True]
    fresh_redis_server.start()


def test_ignore_errors_maps_to_fail_open() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    app, cache = make(
        {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url, "CACHE_IGNORE_ERRORS": True},
        name="open",
    )
    app.debug = True  # fail-open is the provider's: nothing even reaches the debug check

    @cache.memoize()
    def f(x: int) -> int:
        return x + 1

    with app.app_context():
        assert cache.get("k") is None
        assert cache.set("k", 1) is True
        assert f(1) == 2
        assert cache.get_stats().extra["fail_open_errors_total"] >= 1


def _migration_app(module: Any, config: dict[str, Any]) -> tuple[flask.Flask, Any, list[str]]:
    app = flask.Flask(f"migrate_{module.__name__}")
    app.config.update(config)
    cache = module.Cache(app)
    calls: list[str] = []

    @app.get("/page")
    @cache.cached()
    def page() -> str:
        calls.append("page")
        return f"page {len(calls)}"

    @cache.memoize()
    def lookup(x: int) -> str:
        calls.append("lookup")
        return f"lookup {len(calls)}"

    client = app.test_client()
    with app.app_context():
        assert client.get("/page").data == b"page 1"
        assert lookup(1) == "lookup 2"
        assert client.get("/page").data == b"page 1"
        assert lookup(1) == "lookup 2"
        cache.set("plain", "x")
    return app, cache, calls


def test_switching_from_flask_caching_on_the_same_redis_keys(redis_server: RedisServer) -> None:
    """Entries Flask-Caching wrote (cachelib's format) read as misses and are overwritten."""
    config = {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": redis_server.url,
        "CACHE_KEY_PREFIX": "migrate_",
    }
    _migration_app(flask_caching, config)
    app, cache, calls = _migration_app(cachekit_flask, config)  # the same keys, cachelib's format
    assert calls == ["page", "lookup"]  # each computed once, then served from its own entries
    with app.app_context():
        assert cache.get("plain") == "x"
        assert cache.get_many("plain", "nope") == ["x", None]
        cache.clear()


# -- memoized hits in one round trip -----------------------------------------------------------


def test_memoized_hit_is_one_redis_command_and_sees_versions_changed_elsewhere(
    redis_server: RedisServer,
) -> None:
    import redis

    url = redis_server.url
    config = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url, "CACHE_KEY_PREFIX": "rt_"}
    app, cache = make(config, "one-round-trip")
    other_app, other = make(config, "another-process")  # a second process on the same Redis
    calls = {"f": 0, "g": 0}

    @cache.memoize(timeout=60)
    def f(x: int) -> int:
        calls["f"] += 1
        return x * 10

    @other.memoize(timeout=60)
    def g(x: int) -> int:  # the same function, as another process's copy of it
        calls["g"] += 1
        return x * 10

    g.__qualname__ = f.__qualname__
    g.uncached.__qualname__ = f.uncached.__qualname__  # type: ignore[attr-defined]
    raw = redis.Redis.from_url(url)

    def commands() -> int:
        return int(raw.info("stats")["total_commands_processed"])

    with app.app_context():
        assert f(1) == 10
        assert f(1) == 10  # learns the version
        before = commands()
        assert f(1) == 10
        assert commands() - before == 2  # one MGET of versions and result, and our INFO
        assert calls["f"] == 1
    with other_app.app_context():
        other.delete_memoized(g)  # replaces the version f's keys carry
    with app.app_context():
        assert f(1) == 10
        assert calls["f"] == 2  # the stale guess was caught: recomputed, not served
        cache.clear()
    raw.close()


def test_a_delete_memoized_from_elsewhere_is_never_undone(redis_server: RedisServer) -> None:
    """Readers racing another process's ``delete_memoized``: once it has returned, no call may
    return a result computed before it (review finding: refreshing the versions' TTL by
    reading and rewriting them undid deletions that landed in between)."""
    config = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_server.url}
    config["CACHE_KEY_PREFIX"] = "undo_"
    app, cache = make(config, "readers")
    other_app, other = make(config, "deleter")
    generation = {"made": 0, "published": 0}

    @cache.memoize(timeout=60)
    def f(x: int) -> int:
        return generation["made"]

    stale: list[tuple[int, int]] = []
    calls = [0]
    stop = time.monotonic() + 2.0

    def reader() -> None:
        with app.app_context():
            while time.monotonic() < stop:
                floor = generation["published"]
                value = f(1)
                calls[0] += 1
                if value < floor:
                    stale.append((value, floor))

    def deleter() -> None:
        with other_app.app_context():
            while time.monotonic() < stop:
                generation["made"] += 1
                other.delete_memoized(f)
                generation["published"] = generation["made"]
                time.sleep(0.002)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    threads.append(threading.Thread(target=deleter))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with app.app_context():
        cache.clear()
    assert calls[0] > 100
    assert stale == []


@pytest.mark.parametrize("view_async", [False, True])
def test_flask_cachings_own_cached_response_sets_the_ttl(view_async: bool) -> None:
    """Found by Flask-Caching's own suite: an app that changed only its ``Cache`` import still
    returns ``flask_caching.CachedResponse``; its timeout was ignored (the decorator's used)."""
    import flask_caching

    app, cache = make({"CACHE_TYPE": "SimpleCache"}, name=f"fc-cached-response-{view_async}")

    def response() -> flask.Response:
        return flask_caching.CachedResponse(flask.make_response("body"), timeout=120)

    if view_async:

        @app.route("/cr")
        @cache.cached(timeout=5)
        async def cr() -> flask.Response:
            return response()

    else:

        @app.route("/cr")
        @cache.cached(timeout=5)
        def cr() -> flask.Response:  # type: ignore[misc]
            return response()

    with app.test_client() as client:
        assert client.get("/cr").data == b"body"
        assert client.get("/cr").data == b"body"
    with app.app_context():
        assert 5 < cache.cache.ttl("view//cr") <= 120


@pytest.mark.parametrize("theirs", [False, True])
def test_a_cached_responses_fractional_timeout_is_kept(theirs: bool) -> None:
    """From a review: ``int()`` made 0.5 into 0 (the decorator's timeout) and 1.9 into 1."""
    import flask_caching

    module: Any = flask_caching if theirs else cachekit_flask
    app, cache = make({"CACHE_TYPE": "SimpleCache"}, name=f"fraction-{theirs}")

    @app.route("/f")
    @cache.cached(timeout=300)
    def f() -> flask.Response:
        return module.CachedResponse(flask.make_response("body"), timeout=1.9)

    with app.test_client() as client:
        assert client.get("/f").data == b"body"
    with app.app_context():
        assert 1 < cache.cache.ttl("view//f") <= 1.9


def test_flask_cachings_cached_response_with_a_bad_timeout_is_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Flask-Caching stores such a response; ours keeps the view up with the decorator's TTL."""
    import flask_caching

    app, cache = make({"CACHE_TYPE": "SimpleCache"}, name="bad-timeout")

    @app.route("/b")
    @cache.cached(timeout=60)
    def b() -> flask.Response:
        return flask_caching.CachedResponse(flask.make_response("body"), timeout=True)

    with app.test_client() as client:
        assert client.get("/b").data == b"body"
    with app.app_context():
        assert 59 < cache.cache.ttl("view//b") <= 60
    assert "is not seconds" in caplog.text
