"""Flask-Caching's configuration keys mapped onto cachekit providers, and their errors.

Every bad value fails in ``init_app`` with a ``ConfigurationError`` whose ``key`` is the Flask
config key, never on the first cached call.
"""

from __future__ import annotations

import hashlib
from typing import Any

import flask
import pytest

import cachekit_flask
from cachekit.errors import ConfigurationError
from cachekit.providers.memcached import MemcachedCache
from cachekit.providers.memory import MemoryCache
from cachekit.providers.redis import RedisCache
from cachekit.providers.redis_cluster import RedisClusterCache
from cachekit.testing.servers import MemcachedServer, RedisSentinel, RedisServer


def build(**config: Any) -> tuple[flask.Flask, cachekit_flask.Cache]:
    app = flask.Flask("config")
    app.config.update(config)
    return app, cachekit_flask.Cache(app)


def test_default_is_a_simplecache_like_memory_cache() -> None:
    app, cache = build()
    core = cache.cache
    assert isinstance(core, MemoryCache)
    assert core.max_entries == 500  # CACHE_THRESHOLD's default
    assert core.default_ttl == 300  # CACHE_DEFAULT_TIMEOUT's default
    with app.app_context():
        value = {"mutable": [1]}
        cache.set("v", value)
        value["mutable"].append(2)
        assert cache.get("v") == {"mutable": [1]}  # pickled, as Flask-Caching's SimpleCache


def test_simplecache_threshold_and_timeouts() -> None:
    app, cache = build(CACHE_TYPE="SimpleCache", CACHE_THRESHOLD=3, CACHE_DEFAULT_TIMEOUT=0)
    core = cache.cache
    assert isinstance(core, MemoryCache)
    assert core.default_ttl is None  # 0: never expires
    with app.app_context():
        for n in range(5):
            cache.set(f"k{n}", n)
        assert len(core.keys()) == 3
        cache.set("short", 1, timeout=30)
        assert 0 < core.ttl("short") <= 30
        cache.set("forever", 1, timeout=0)
        assert core.ttl("forever") is None


def test_negative_timeouts_store_nothing_as_simplecache_does() -> None:
    """Review finding: they were kept forever; cachelib's SimpleCache expires them at once."""
    app, cache = build(CACHE_TYPE="SimpleCache")
    calls: list[int] = []

    @cache.cached(timeout=-1, key_prefix="neg")
    def view() -> str:
        calls.append(1)
        return "v"

    with app.test_request_context("/"):
        cache.set("k", 1)
        cache.set("k", 2, timeout=-1)  # also removes the old value
        assert cache.get("k") is None
        assert not cache.has("k")
        assert [view(), view()] == ["v", "v"]
    assert calls == [1, 1]
    with pytest.raises(ConfigurationError, match=r"CACHE_DEFAULT_TIMEOUT|default_ttl"):
        build(CACHE_TYPE="SimpleCache", CACHE_DEFAULT_TIMEOUT=-1)


@pytest.mark.parametrize("cache_type", ["RedisCache", "redis", "flask_caching.backends.RedisCache"])
def test_redis_from_url_with_prefix(redis_server: RedisServer, cache_type: str) -> None:
    app, cache = build(
        CACHE_TYPE=cache_type,
        CACHE_REDIS_URL=redis_server.url,
        CACHE_KEY_PREFIX="cfg_",
        CACHE_DEFAULT_TIMEOUT=120,
    )
    core = cache.cache
    assert isinstance(core, RedisCache)
    assert core.prefix == "cfg_"
    assert core.default_ttl == 120
    with app.app_context():
        cache.set("k", "v")
        assert 0 < core.ttl("k") <= 120
        raw = core._sync().get("cfg_k")  # the provider's own key layout: prefix + key
        assert raw is not None
        cache.clear()


def test_redis_from_host_port_db_password(redis_binary: str) -> None:
    with RedisServer({"requirepass": "s3cr:t"}, binary=redis_binary) as server:
        app, cache = build(
            CACHE_TYPE="RedisCache",
            CACHE_REDIS_HOST=server.host,
            CACHE_REDIS_PORT=server.port,
            CACHE_REDIS_DB=2,
            CACHE_REDIS_PASSWORD="s3cr:t",
        )
        with app.app_context():
            cache.set("k", 1)
            assert cache.get("k") == 1
        cache.cache.close()


@pytest.mark.parametrize(("path", "db"), [("", 3), ("/", 3), ("/5", 5), ("?db=6", 6)])
def test_redis_url_without_a_db_takes_cache_redis_db(
    redis_server: RedisServer, path: str, db: int
) -> None:
    """Found by Flask-Caching's own tests: it calls ``redis.from_url(url, db=CACHE_REDIS_DB)``,
    so the URL's database wins and ``CACHE_REDIS_DB`` fills in a missing one."""
    import redis

    url = f"redis://{redis_server.host}:{redis_server.port}{path}"
    app, cache = build(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=url, CACHE_REDIS_DB=3)
    with app.app_context():
        cache.set("dbk", 1)
    raw = redis.Redis(host=redis_server.host, port=redis_server.port, db=db)
    assert raw.exists("flask_cache_dbk") == 1
    raw.delete("flask_cache_dbk")
    cache.cache.close()


def test_cache_redis_db_fills_a_unix_url_without_one() -> None:
    from cachekit_flask.settings import _names_db, _with_db

    assert not _names_db("unix:///run/redis.sock")
    assert _with_db("unix:///run/redis.sock", 2) == "unix:///run/redis.sock?db=2"
    assert _names_db("unix:///run/redis.sock?db=1")


def test_a_redis_client_as_host_keeps_tls_ipv6_and_refuses_sentinel() -> None:
    """Review findings: a client's TLS settings were dropped, an IPv6 host made a bad URL, and
    a Sentinel-managed client silently became localhost."""
    import ssl

    import redis
    import redis.sentinel

    client = redis.Redis(host="h", port=6380, ssl=True, ssl_ca_certs="/ca.pem",
                         ssl_cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
    settings = cachekit_flask.settings.FlaskCacheSettings.from_config(
        {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_HOST": client}
    )
    assert settings.url == "rediss://h:6380/0"
    assert settings.options["ssl_ca_certs"] == "/ca.pem"
    assert settings.options["ssl_cert_reqs"] == "required"
    six = redis.Redis(host="::1", port=6379, db=2)
    config = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_HOST": six}
    assert cachekit_flask.settings.FlaskCacheSettings.from_config(config).url == (
        "redis://[::1]:6379/2"
    )
    managed = redis.sentinel.Sentinel([("127.0.0.1", 1)]).master_for("mymaster")
    with pytest.raises(ConfigurationError, match="RedisSentinelCache"):
        build(CACHE_TYPE="RedisCache", CACHE_REDIS_HOST=managed)


def test_redis_host_may_be_a_redis_client(redis_binary: str) -> None:
    """Flask-Caching 2.5 documents ``CACHE_REDIS_HOST=redis.Redis(...)``: its connection
    settings are used (cachekit builds its own client)."""
    import redis

    with RedisServer({"requirepass": "pw"}, binary=redis_binary) as server:
        client = redis.Redis(host=server.host, port=server.port, db=4, password="pw")
        app, cache = build(CACHE_TYPE="RedisCache", CACHE_REDIS_HOST=client)
        with app.app_context():
            cache.set("k", 1)
            assert cache.get("k") == 1
        assert client.exists("flask_cache_k") == 1
        cache.cache.close()
    with pytest.raises(ConfigurationError, match="CACHE_REDIS_HOST") as info:
        build(CACHE_TYPE="RedisCache", CACHE_REDIS_HOST=object())
    assert info.value.key == "CACHE_REDIS_HOST"


@pytest.mark.parametrize(("cache_type", "warns"), [("NullCache", True), ("null", False)])
def test_null_warning_as_flask_caching_gives_it(cache_type: str, warns: bool) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build(CACHE_TYPE=cache_type)
    assert any("NullCache" in str(w.message) for w in caught) is warns


def test_packages_are_typed() -> None:
    """Found by Flask-Caching's tests: mypy skipped ``cachekit_flask`` (no ``py.typed``)."""
    from importlib.resources import files

    assert files("cachekit_flask").joinpath("py.typed").is_file()
    assert files("cachekit_django").joinpath("py.typed").is_file()


def test_redis_sentinel(redis_sentinel: RedisSentinel) -> None:
    app, cache = build(
        CACHE_TYPE="RedisSentinelCache",
        CACHE_REDIS_SENTINELS=[(redis_sentinel.host, redis_sentinel.port)],
        CACHE_REDIS_SENTINEL_MASTER="mymaster",
    )
    with app.app_context():
        cache.set("s", "sentinel")
        assert cache.get("s") == "sentinel"
        cache.clear()


def test_redis_cluster_url_is_built() -> None:
    _, cache = build(CACHE_TYPE="RedisClusterCache", CACHE_REDIS_CLUSTER="127.0.0.1:7000,h2:7001")
    assert isinstance(cache.cache, RedisClusterCache)  # built, not connected


def test_memcached_servers(memcached_server: MemcachedServer) -> None:
    address = f"{memcached_server.host}:{memcached_server.port}"
    app, cache = build(
        CACHE_TYPE="MemcachedCache", CACHE_MEMCACHED_SERVERS=[address], CACHE_KEY_PREFIX="mc_"
    )
    assert isinstance(cache.cache, MemcachedCache)
    with app.app_context():
        cache.set("k", {"x": 1})
        assert cache.get("k") == {"x": 1}
        assert cache.get_many("k", "nope") == [{"x": 1}, None]
        cache.clear()


def test_cachekit_url_and_options_reach_the_provider() -> None:
    _, cache = build(
        CACHE_TYPE="RedisCache",  # CACHEKIT_URL wins
        CACHEKIT_URL="memory://pages?policy=lfu",
        CACHEKIT_OPTIONS={"max_entries": 42},
    )
    core = cache.cache
    assert isinstance(core, MemoryCache)
    assert core.name == "pages"
    assert core.max_entries == 42
    assert core.default_ttl is None  # the URL's own default unless CACHE_DEFAULT_TIMEOUT is set


def test_config_argument_overrides_app_config() -> None:
    app = flask.Flask("override")
    app.config["CACHE_THRESHOLD"] = 10
    cache = cachekit_flask.Cache(config={"CACHE_THRESHOLD": 20})
    cache.init_app(app, config={"CACHE_THRESHOLD": 30})
    assert cache.cache.max_entries == 30  # type: ignore[attr-defined]


def test_hash_method_and_source_check_become_defaults() -> None:
    app, cache = build(CACHE_HASH_METHOD=hashlib.md5, CACHE_SOURCE_CHECK=True)
    assert cache.hash_method is hashlib.md5
    assert cache.source_check is True

    @cache.memoize()
    def f(x: int) -> int:
        return x

    with app.app_context():
        f(1)
        key = f.make_cache_key(f.uncached, 1)
        assert cache.get(key) == 1


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"CACHE_TYPE": "FileSystemCache"}, "CACHE_DIR"),  # no CACHE_DIR given
        ({"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": ""}, "CACHE_DIR"),
        (
            {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": "/tmp/x", "CACHE_THRESHOLD": -1},
            "CACHE_THRESHOLD",
        ),
        (
            {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": "/tmp/x", "CACHE_OPTIONS": {"mode": 9}},
            "CACHE_OPTIONS",
        ),
        (
            {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": "/tmp/x", "CACHE_FILE_HASH_METHOD": 1},
            "CACHE_FILE_HASH_METHOD",
        ),
        ({"CACHE_TYPE": "UWSGICache"}, "CACHE_TYPE"),
        ({"CACHE_TYPE": "Bogus"}, "CACHE_TYPE"),
        ({"CACHE_TYPE": 3}, "CACHE_TYPE"),
        ({"CACHE_DEFAULT_TIMEOUT": "soon"}, "CACHE_DEFAULT_TIMEOUT"),
        ({"CACHE_DEFAULT_TIMEOUT": [1]}, "CACHE_DEFAULT_TIMEOUT"),
        ({"CACHE_THRESHOLD": 0}, "CACHE_THRESHOLD"),
        ({"CACHE_THRESHOLD": "many"}, "CACHE_THRESHOLD"),
        ({"CACHE_HASH_METHOD": "sha256"}, "CACHE_HASH_METHOD"),
        ({"CACHE_IGNORE_ERRORS": "maybe"}, "CACHE_IGNORE_ERRORS"),
        ({"CACHE_SOURCE_CHECK": 2}, "CACHE_SOURCE_CHECK"),
        ({"CACHE_ENABLE_SIGNALS": "x"}, "CACHE_ENABLE_SIGNALS"),
        ({"CACHE_ARGS": ["x"]}, "CACHE_ARGS"),
        ({"CACHE_SERIALIZER": object()}, "CACHE_SERIALIZER"),
        ({"CACHE_SERIALIZER": "yaml"}, "CACHE_SERIALIZER"),
        ({"CACHE_OPTIONS": "x"}, "CACHE_OPTIONS"),
        ({"CACHEKIT_OPTIONS": {"max_entriez": 1}}, "CACHEKIT_OPTIONS"),
        ({"CACHEKIT_OPTIONS": {"policy": "fifo"}}, "CACHEKIT_OPTIONS"),
        ({"CACHEKIT_URL": "nothing"}, "CACHEKIT_URL"),
        ({"CACHEKIT_URL": "bogus://x"}, "CACHEKIT_URL"),
        ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": "localhost"}, "CACHE_REDIS_URL"),
        ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_PORT": "x"}, "CACHE_REDIS_PORT"),
        ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_DB": -1}, "CACHE_REDIS_DB"),
        ({"CACHE_TYPE": "RedisCache", "CACHE_KEY_PREFIX": ""}, "CACHE_KEY_PREFIX"),
        (
            {"CACHE_TYPE": "RedisSentinelCache", "CACHE_REDIS_SENTINELS": [1]},
            "CACHE_REDIS_SENTINELS",
        ),
        ({"CACHE_TYPE": "RedisClusterCache"}, "CACHE_REDIS_CLUSTER"),
        (
            {"CACHE_TYPE": "MemcachedCache", "CACHE_MEMCACHED_SERVERS": [1]},
            "CACHE_MEMCACHED_SERVERS",
        ),
        (
            {"CACHE_TYPE": "MemcachedCache", "CACHE_MEMCACHED_USERNAME": "u"},
            "CACHE_MEMCACHED_USERNAME",
        ),
        ({"CACHE_TYPE": "SASLMemcachedCache"}, "CACHE_TYPE"),
    ],
)
def test_bad_config_fails_in_init_app_naming_the_key(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        build(**config)
    assert info.value.key == key
    assert key in str(info.value) or key.lower() in str(info.value).lower()


def test_bad_decorator_timeout_fails_at_decoration() -> None:
    _, cache = build()
    with pytest.raises(ConfigurationError):
        cache.cached(timeout="soon")
    with pytest.raises(ConfigurationError):
        cache.memoize(timeout=[1])


def test_use_before_init_app_is_a_clear_error() -> None:
    cache = cachekit_flask.Cache()
    with pytest.raises(RuntimeError, match="init_app"):
        cache.get("k")


def test_use_in_an_app_it_was_not_initialised_on_is_a_clear_error() -> None:
    # Another app's cache would serve that app's data: refused, as Flask-Caching (KeyError).
    app, cache = build(CACHE_TYPE="SimpleCache")
    other = flask.Flask("other")
    with app.app_context():
        cache.set("k", "app's")
    with other.app_context(), pytest.raises(RuntimeError, match=r"'other'.*init_app"):
        cache.get("k")
    with app.app_context():
        assert cache.get("k") == "app's"
    assert cache.get("k") == "app's"  # no app context: the app initialised last
