"""The shared contract over the memory provider: every policy, with and without a serializer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cachekit import create_cache
from cachekit.providers.memory import MemoryCache
from cachekit.testing import FakeClock
from cachekit.testing.contract import DistributedCacheContract, MakeCache


class TestMemoryContract(DistributedCacheContract):
    @pytest.fixture(params=["lru", "lfu", "ttl", "adaptive"])
    def make_cache(self, request: pytest.FixtureRequest, clock: FakeClock) -> MakeCache:
        def make(**options: Any) -> MemoryCache:
            return MemoryCache(policy=request.param, clock=clock, **options)

        return make

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Callable[[float], None]:
        return clock.advance


class TestMemoryWithSerializerContract(DistributedCacheContract):
    """Stored as encoded bytes (independent copies, exact memory accounting)."""

    @pytest.fixture(params=["pickle", "json"])
    def make_cache(self, request: pytest.FixtureRequest, clock: FakeClock) -> MakeCache:
        def make(**options: Any) -> MemoryCache:
            return MemoryCache(
                serializer=request.param, clock=clock, max_memory_bytes=1 << 20, **options
            )

        return make

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Callable[[float], None]:
        return clock.advance

    @pytest.mark.parametrize(
        "value",
        ["text", 0, -17, 3.5, True, None, [1, "two"], {"nested": {"a": [1]}}],
        ids=repr,
    )
    def test_round_trip(self, cache: Any, value: Any) -> None:
        # JSON cannot carry bytes; every codec round-trips these.
        super().test_round_trip(cache, value)


class TestCreateCacheContract(DistributedCacheContract):
    """The same contract through the URL factory, as users build caches."""

    @pytest.fixture
    def make_cache(self, clock: FakeClock) -> MakeCache:
        def make(**options: Any) -> Any:
            return create_cache("memory://contract?max_entries=1000", clock=clock, **options)

        return make

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Callable[[float], None]:
        return clock.advance
