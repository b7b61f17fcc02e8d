"""The shared contract over the tiered near cache: memory L1 in front of a real Redis L2.

TTLs live on the server, so ``advance`` really waits and the TTL unit is one second (as for
the Redis provider). The waits of up to 1.5 units stay in every run - they check that an L1 copy
expires with its L2 value; the three that wait two units or more only re-check L2 TTL mechanics
(covered by the Redis contract) and are marked slow.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cachekit import create_cache
from cachekit.providers.tiered import TieredCache
from cachekit.testing.contract import DistributedCacheContract, MakeCache
from cachekit.testing.servers import RedisServer

_names = itertools.count()


class TestTieredContract(DistributedCacheContract):
    ttl_unit = 1.0

    @pytest.fixture
    def make_cache(self, redis_server: RedisServer) -> Iterator[MakeCache]:
        made: list[TieredCache] = []
        prefix = f"tiered-contract{next(_names)}:"

        def make(**options: Any) -> TieredCache:
            cache = create_cache(
                {
                    "url": "tiered://",
                    "l1": "memory://?max_entries=1000",
                    "l2": {"url": redis_server.url, "prefix": prefix},
                    **options,
                }
            )
            assert isinstance(cache, TieredCache)
            made.append(cache)
            # Subscribed before the first call, so every test exercises the L1 too.
            assert cache.start(timeout=5)
            return cache

        yield make
        for cache in made:
            cache.clear()
            cache.close()

    @pytest.fixture
    def advance(self) -> Callable[[float], None]:
        return time.sleep


def _mark_slow(cls: type, names: tuple[str, ...]) -> None:
    for name in names:
        original = getattr(cls, name)

        @functools.wraps(original)
        def slow_test(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            return __original(*args, **kwargs)

        setattr(cls, name, pytest.mark.slow(slow_test))


_mark_slow(TestTieredContract, ("test_touch", "test_none_ttl_never_expires", "test_ttl_types"))
