"""Review findings on the Flask config translation: IPv6 Redis hosts and Sentinels, the key a
core error is re-raised under, and the bool words the core accepts.

The IPv6 tests run both extensions against real servers bound to ``::1`` only, so a URL
without brackets (or a fallback to IPv4) cannot pass.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import flask
import pytest
from flask_support import IMPLS

import cachekit_flask
from cachekit.errors import ConfigurationError
from cachekit.testing.servers import RedisSentinel, RedisServer

IPV6_LOOPBACK = "::1"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind((IPV6_LOOPBACK, 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1)")


class _IPv6RedisServer(RedisServer):
    """A ``redis-server`` listening on ``::1`` only (the helpers bind 127.0.0.1)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = IPV6_LOOPBACK


class _IPv6RedisSentinel(RedisSentinel):
    def __init__(self, master: RedisServer, **kwargs: Any) -> None:
        super().__init__(master, **kwargs)
        self.host = IPV6_LOOPBACK


@pytest.fixture(scope="module")
def ipv6_redis(redis_binary: str) -> Iterator[RedisServer]:
    with _IPv6RedisServer(binary=redis_binary) as server:
        yield server


@pytest.fixture(scope="module")
def ipv6_sentinel(ipv6_redis: RedisServer, redis_binary: str) -> Iterator[RedisSentinel]:
    with _IPv6RedisSentinel(ipv6_redis, binary=redis_binary) as sentinel:
        yield sentinel


def _round_trip(impl: str, config: dict[str, Any]) -> None:
    app = flask.Flask(f"ipv6_{impl}")
    app.config.update(config)
    cache: Any = IMPLS[impl](app)
    with app.app_context():
        try:
            assert cache.set("k", {"v": 1})
            assert cache.get("k") == {"v": 1}
        finally:
            cache.clear()


@needs_ipv6
def test_ipv6_redis_host_connects_as_flask_caching_does(impl: str, ipv6_redis: RedisServer) -> None:
    """``CACHE_REDIS_HOST="::1"`` made ``redis://::1:PORT/0``, refused as a bad port (and
    blamed on CACHEKIT_URL, a key the app never set)."""
    config = {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_HOST": IPV6_LOOPBACK,
        "CACHE_REDIS_PORT": ipv6_redis.port,
        "CACHE_KEY_PREFIX": f"ipv6_host_{impl}_",
    }
    _round_trip(impl, config)


@needs_ipv6
def test_ipv6_sentinels_connect_as_flask_caching_does(
    impl: str, ipv6_sentinel: RedisSentinel
) -> None:
    """``CACHE_REDIS_SENTINELS=[("::1", port)]`` failed the same way."""
    config = {
        "CACHE_TYPE": "RedisSentinelCache",
        "CACHE_REDIS_SENTINELS": [(IPV6_LOOPBACK, ipv6_sentinel.port)],
        "CACHE_REDIS_SENTINEL_MASTER": ipv6_sentinel.service,
        "CACHE_KEY_PREFIX": f"ipv6_sentinel_{impl}_",
    }
    _round_trip(impl, config)


def test_ipv6_literals_are_bracketed_in_the_urls() -> None:
    """The URLs themselves, so the translation is checked where ``::1`` cannot be bound."""
    from_config = cachekit_flask.settings.FlaskCacheSettings.from_config
    host = from_config({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_HOST": "fe80::1"})
    assert host.url == "redis://[fe80::1]:6379/0"
    bracketed = from_config({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_HOST": "[::1]"})
    assert bracketed.url == "redis://[::1]:6379/0"  # not bracketed twice
    sentinels = [("::1", 26379), ("sentinel-b", 26380)]
    sentinel = from_config({"CACHE_TYPE": "RedisSentinelCache", "CACHE_REDIS_SENTINELS": sentinels})
    assert sentinel.url == "redis+sentinel://[::1]:26379,sentinel-b:26380/mymaster/0"


@pytest.mark.parametrize(
    ("config", "key"),
    [
        # The reviewer's reproductions.
        ({"CACHE_TYPE": "RedisCache", "CACHE_OPTIONS": {"socket_timout": 5}}, "CACHE_OPTIONS"),
        ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_PORT": 0}, "CACHE_REDIS_PORT"),
        ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_PORT": 70000}, "CACHE_REDIS_PORT"),
        (
            {"CACHE_TYPE": "MemcachedCache", "CACHE_MEMCACHED_SERVERS": ["cache1:11211x"]},
            "CACHE_MEMCACHED_SERVERS",
        ),
        ({"CACHE_TYPE": "SimpleCache", "CACHE_OPTIONS": {"max_entries": "lots"}}, "CACHE_OPTIONS"),
        # An option in a URL's query string belongs to the key that gave the URL.
        (
            {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": "redis://h:1/0?socket_timeout=x"},
            "CACHE_REDIS_URL",
        ),
        ({"CACHEKIT_URL": "redis://h:1/0?retries=many"}, "CACHEKIT_URL"),
        ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_HOST": "a,b"}, "CACHE_REDIS_HOST"),
        # Not read as credentials (it connected to host "b").
        ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_HOST": "a@b"}, "CACHE_REDIS_HOST"),
        (
            {"CACHE_TYPE": "RedisSentinelCache", "CACHE_REDIS_SENTINELS": [("a/b", 26379)]},
            "CACHE_REDIS_SENTINELS",
        ),
        (
            {"CACHE_TYPE": "RedisSentinelCache", "CACHE_REDIS_SENTINELS": [("h", 70000)]},
            "CACHE_REDIS_SENTINELS",
        ),
        (
            {"CACHE_TYPE": "RedisClusterCache", "CACHE_REDIS_CLUSTER": "a:1,b:x"},
            "CACHE_REDIS_CLUSTER",
        ),
        # Still right: the options each key gave.
        ({"CACHE_TYPE": "RedisCache", "CACHEKIT_OPTIONS": {"retries": -1}}, "CACHEKIT_OPTIONS"),
        ({"CACHE_OPTIONS": {"url": "redis://h:1/0"}}, "CACHE_OPTIONS"),
    ],
)
def test_core_errors_name_the_flask_key_that_gave_the_value(
    config: dict[str, Any], key: str
) -> None:
    app = flask.Flask("keys")
    app.config.update(config)
    with pytest.raises(ConfigurationError) as info:
        cachekit_flask.Cache(app)
    assert info.value.key == key
    assert key in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("off", False), ("OFF", False), ("on", True), ("no", False), ("yes", True), (0, False)],
)
def test_bool_keys_take_the_cores_words(value: Any, expected: bool) -> None:
    """``CACHE_IGNORE_ERRORS="off"`` was refused although ``"on"`` was accepted."""
    config = {"CACHE_TYPE": "RedisCache", "CACHE_IGNORE_ERRORS": value}
    settings = cachekit_flask.settings.FlaskCacheSettings.from_config(config)
    assert settings.ignore_errors is expected
    assert settings.options.get("fail_open", False) is expected
    source_check = {"CACHE_SOURCE_CHECK": value}
    assert cachekit_flask.settings.FlaskCacheSettings.from_config(source_check).source_check is (
        expected
    )


@pytest.fixture(scope="module")
def locked_sentinel(redis_binary: str) -> Iterator[RedisSentinel]:
    with (
        RedisServer(binary=redis_binary) as master,
        RedisSentinel(master, binary=redis_binary, password="sentinel-secret") as sentinel,
    ):
        yield sentinel


@pytest.mark.parametrize("impl", ["flask_caching", "cachekit_flask"])
def test_sentinel_password_as_flask_caching_passes_it(
    impl: str, locked_sentinel: RedisSentinel
) -> None:
    """``CACHE_REDIS_SENTINEL_PASSWORD`` authenticates to the sentinels (it was ignored, and
    the first call failed with 'No master found')."""
    config = {
        "CACHE_TYPE": "RedisSentinelCache",
        "CACHE_REDIS_SENTINELS": [(locked_sentinel.host, locked_sentinel.port)],
        "CACHE_REDIS_SENTINEL_MASTER": locked_sentinel.service,
        "CACHE_REDIS_SENTINEL_PASSWORD": "sentinel-secret",
        "CACHE_KEY_PREFIX": f"locked_sentinel_{impl}_",
    }
    _round_trip(impl, config)


def test_a_bad_sentinel_password_names_its_key() -> None:
    app = flask.Flask("bad_sentinel_password")
    app.config.update(CACHE_TYPE="RedisSentinelCache", CACHE_REDIS_SENTINEL_PASSWORD=5)
    with pytest.raises(ConfigurationError) as info:
        cachekit_flask.Cache(app)
    assert info.value.key == "CACHE_REDIS_SENTINEL_PASSWORD"
