"""The shared contract over the memcached provider: one server, and a ketama pool of three.

memcached counts TTLs in whole seconds on its own clock, so ``advance`` really waits and
``ttl_unit`` is 3 s (an item set with a TTL of ``n`` lives between ``n - 1`` and ``n``
seconds). Those waits run once, on one server; the three-server class runs everything that
does not wait. Every test gets servers of its own: ``items`` in stats is server-wide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cachekit import create_cache
from cachekit.providers.memcached import MemcachedCache
from cachekit.testing.contract import CacheContract, MakeCache
from cachekit.testing.servers import MemcachedServer

#: Added to every wait: memcached's clock ticks once a second, a little late under load.
_SLACK = 0.05


class TestMemcachedContract(CacheContract):
    lists_keys = False
    ttl_unit = 3.0

    @pytest.fixture
    def make_cache(self, fresh_memcached_server: MemcachedServer) -> Iterator[MakeCache]:
        made: list[Any] = []

        def make(**options: Any) -> Any:
            made.append(create_cache(fresh_memcached_server.url, **options))
            return made[-1]

        yield make
        for cache in made:
            cache.close()

    @pytest.fixture
    def advance(self) -> Callable[[float], None]:
        return lambda seconds: time.sleep(seconds + _SLACK)


class TestMemcachedPoolContract(CacheContract):
    lists_keys = False
    ttl_unit = 3.0

    @pytest.fixture
    def make_cache(self, memcached_cluster: list[MemcachedServer]) -> Iterator[MakeCache]:
        servers = [(server.host, server.port) for server in memcached_cluster]
        made: list[MemcachedCache] = []

        def make(**options: Any) -> MemcachedCache:
            made.append(MemcachedCache(servers, prefix="pool:", **options))
            return made[-1]

        yield make
        for cache in made:
            cache.close()

    @pytest.fixture
    def advance(self) -> Callable[[float], None]:
        pytest.skip("TTL waits run once, in TestMemcachedContract (one server)")
