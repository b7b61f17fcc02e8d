"""Fixtures of the Django backend tests: where each backend's server is, and a factory of
backends built the way Django builds them (``backend_cls(LOCATION, params)``).

The servers are the session-scoped ones of ``tests/conftest.py``. Backends with the same
configuration share one core cache per process (as ``LocMemCache`` shares data by name), so
every factory clears what it built when the test ends, and Redis-backed caches use a prefix of
their own so the rest of the suite's keys are never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from django.core.cache.backends.base import BaseCache

from cachekit.testing.servers import MemcachedServer, RedisCluster, RedisServer
from cachekit_django.shared import close_shared

#: Prefix (core namespace) of every Redis-backed cache these tests build.
REDIS_PREFIX = "django-tests:"

MakeBackend = Callable[..., BaseCache]


@pytest.fixture(scope="session")
def redis_location(redis_server: RedisServer) -> str:
    """Django's RedisCache LOCATION form: ``redis://127.0.0.1:PORT/0``."""
    return redis_server.url


@pytest.fixture(scope="session")
def memcached_location(memcached_server: MemcachedServer) -> str:
    """Django's PyMemcacheCache LOCATION form: ``127.0.0.1:PORT``."""
    return f"{memcached_server.host}:{memcached_server.port}"


@pytest.fixture(scope="session")
def cluster_location(redis_cluster: RedisCluster) -> str:
    """Startup nodes ``h:p,h:p,...`` of the session's Redis Cluster."""
    return ",".join(f"{node.host}:{node.port}" for node in redis_cluster.nodes)


@pytest.fixture(scope="session")
def tiered_location(redis_server: RedisServer) -> Iterator[str]:
    """A near cache: memory L1 over the session's Redis (pub/sub invalidation). Its shared core
    is closed before the server stops, so its subscriber thread does not outlive it."""
    l1 = quote("memory://?max_entries=1000", safe="")
    l2 = quote(f"{redis_server.url}?prefix={REDIS_PREFIX}tiered:", safe="")
    location = f"tiered://?l1={l1}&l2={l2}&l1_ttl=5"
    yield location
    close_shared(location)


@pytest.fixture
def backend_factory() -> Iterator[Callable[..., MakeBackend]]:
    """``backend_factory(cls, location, **base)`` gives ``make(**params)``, which builds
    ``cls(location, {**base, **params})`` (``OPTIONS`` merged over ``base``'s) as Django does;
    every backend built is cleared when the test ends."""
    made: list[BaseCache] = []

    def factory(cls: type[BaseCache], location: Any, **base: Any) -> MakeBackend:
        def make(**params: Any) -> BaseCache:
            merged = {**base, **params}
            merged["OPTIONS"] = {**base.get("OPTIONS", {}), **params.get("OPTIONS", {})}
            backend = cls(params.pop("LOCATION", location), merged)
            made.append(backend)
            return backend

        return make

    yield factory
    for backend in made:
        backend.clear()
        backend.close()


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    return REDIS_PREFIX
