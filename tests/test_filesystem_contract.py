"""The shared contract over the file-system provider: a fresh directory per cache."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cachekit import create_cache
from cachekit.providers.filesystem import FileCache
from cachekit.testing import FakeClock
from cachekit.testing.contract import DistributedCacheContract, MakeCache


def _fresh_dirs(tmp_path: Path) -> Callable[[], Path]:
    """Each ``make_cache()`` gets a directory of its own: the contract wants empty caches."""
    counter = itertools.count()
    return lambda: tmp_path / f"cache{next(counter)}"


class TestFileContract(DistributedCacheContract):
    @pytest.fixture(params=["pickle", "msgpack"])
    def make_cache(
        self, request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
    ) -> MakeCache:
        fresh = _fresh_dirs(tmp_path)

        def make(**options: Any) -> FileCache:
            return FileCache(fresh(), serializer=request.param, clock=clock, **options)

        return make

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Callable[[float], None]:
        return clock.advance


class TestFileSmallBoundContract(DistributedCacheContract):
    """Bounded just above what the contract writes at once: pruning runs, nothing live is lost
    before the bound is reached."""

    @pytest.fixture
    def make_cache(self, clock: FakeClock, tmp_path: Path) -> MakeCache:
        fresh = _fresh_dirs(tmp_path)

        def make(**options: Any) -> FileCache:
            return FileCache(fresh(), max_entries=130, clock=clock, **options)

        return make

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Callable[[float], None]:
        return clock.advance


class TestCreateFileCacheContract(DistributedCacheContract):
    """The same contract through the URL factory, as users build caches."""

    @pytest.fixture
    def make_cache(self, clock: FakeClock, tmp_path: Path) -> MakeCache:
        fresh = _fresh_dirs(tmp_path)

        def make(**options: Any) -> Any:
            return create_cache(f"file://{fresh()}?max_entries=1000", clock=clock, **options)

        return make

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Callable[[float], None]:
        return clock.advance
