"""The shared cache contract, end to end over GrpcCache and a real gRPC server.

Each test gets fresh namespaces on one module-wide server, backed by memory caches whose clock
is the test's FakeClock, so TTL tests move time instead of sleeping. GrpcCache is a
DistributedCache, so the pattern and tag tests run too (``InvalidateTags``/``DeletePattern``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from grpc_helpers import ThreadedServer

from cachekit import create_cache
from cachekit.grpc.client import GrpcCache
from cachekit.interfaces import DistributedCache
from cachekit.providers.memory import MemoryCache
from cachekit.testing import FakeClock
from cachekit.testing.contract import DistributedCacheContract, MakeCache

_names = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer({}) as running:
        yield running


def test_grpc_cache_is_a_distributed_cache() -> None:
    assert issubclass(GrpcCache, DistributedCache)


class TestGrpcContract(DistributedCacheContract):
    lists_tagged_keys = False  # the protocol has no call for it

    @pytest.fixture
    def make_cache(self, server: ThreadedServer, clock: FakeClock) -> Iterator[MakeCache]:
        made: list[GrpcCache] = []

        def make(default_ttl: Any = None, **options: Any) -> GrpcCache:
            name = f"contract{next(_names)}"
            server.server.namespaces.add(name, MemoryCache(name=name, clock=clock))
            cache = create_cache(
                f"grpc://{server.target}/{name}", default_ttl=default_ttl, **options
            )
            assert isinstance(cache, GrpcCache)
            made.append(cache)
            return cache

        yield make
        for cache in made:
            cache.close()
            server.server.namespaces.delete(cache.namespace)

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Callable[[float], None]:
        return clock.advance
