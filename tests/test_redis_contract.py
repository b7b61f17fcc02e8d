"""The shared contract over the Redis provider, on real servers started by the fixtures.

TTLs cannot be faked on a server, so ``advance`` really waits and the TTL unit is short (Redis
expires with millisecond precision).
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cachekit import create_cache
from cachekit.providers.redis import RedisCache
from cachekit.testing.contract import DistributedCacheContract, MakeCache
from cachekit.testing.servers import RedisSentinel, RedisServer, TLSRedisServer

_names = itertools.count()


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


class _RedisContract(DistributedCacheContract):
    #: What ``create_cache`` must build from ``url`` (the cluster tests expect their subclass).
    cache_type: type[RedisCache] = RedisCache
    ttl_unit = 1.0

    @pytest.fixture
    def url(self) -> str:  # pragma: no cover - always overridden
        raise NotImplementedError

    @pytest.fixture
    def url_options(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def make_cache(self, url: str, url_options: dict[str, Any]) -> Iterator[MakeCache]:
        made: list[RedisCache] = []
        # A fresh namespace per test: tests share one server and must not see each other.
        prefix = f"contract{next(_names)}:"

        def make(**options: Any) -> RedisCache:
            cache = create_cache(url, prefix=prefix, **url_options, **options)
            assert isinstance(cache, self.cache_type)
            made.append(cache)
            return cache

        yield make
        for cache in made:
            cache.clear()
            cache.close()

    @pytest.fixture
    def advance(self) -> Callable[[float], None]:
        return _sleep


class TestRedisContract(_RedisContract):
    @pytest.fixture
    def url(self, redis_server: RedisServer) -> str:
        return redis_server.url


# The other transports run the same contract. Expiry is the server's business and the same over
# every transport, so their tests that wait for a TTL are marked slow (-m "not slow" skips them);
# the TCP class above runs every test in every run.
_WAITING = [
    name
    for name, fn in vars(DistributedCacheContract).items()
    if name.startswith("test_")
    and "advance" in getattr(fn, "__code__", _sleep.__code__).co_varnames
] + [
    name
    for name, fn in vars(DistributedCacheContract.__mro__[1]).items()
    if name.startswith("test_")
    and "advance" in getattr(fn, "__code__", _sleep.__code__).co_varnames
]


def _mark_waiting_slow(cls: type) -> type:
    for name in _WAITING:
        original = getattr(cls, name)

        @functools.wraps(original)
        def slow_test(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            return __original(*args, **kwargs)

        setattr(cls, name, pytest.mark.slow(slow_test))
    return cls


@_mark_waiting_slow
class TestRedisUnixSocketContract(_RedisContract):
    @pytest.fixture
    def url(self, redis_unix_server: str) -> str:
        return redis_unix_server


@_mark_waiting_slow
class TestRedisTLSContract(_RedisContract):
    @pytest.fixture
    def url(self, redis_tls_server: TLSRedisServer) -> str:
        return redis_tls_server.url

    @pytest.fixture
    def url_options(self, redis_tls_server: TLSRedisServer) -> dict[str, Any]:
        return {"ssl_ca_certs": str(redis_tls_server.ca_certs)}


@_mark_waiting_slow
class TestRedisSentinelContract(_RedisContract):
    @pytest.fixture
    def url(self, redis_sentinel: RedisSentinel) -> str:
        return redis_sentinel.url
