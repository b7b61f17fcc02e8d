"""The contract's composite defaults, exercised by a provider that implements only primitives.

``DictCache`` is a real (if naive) provider, the smallest a third party could write: it proves
that ``Cache``'s default ``exists``/``get_many``/``set_many``/``delete_many``/``decr`` and the
default async twins satisfy the shared contract on their own. Besides the primitives it has
``_peek``, the uncounted read that ``exists`` and ``inspect`` build on (without it they would
count as lookups), and it cannot list its keys (``lists_keys = False``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from cachekit import DEFAULT, MISSING, Cache, CacheStats, NotAnInteger
from cachekit.interfaces import check_key
from cachekit.testing import FakeClock
from cachekit.testing.contract import CacheContract, MakeCache
from cachekit.ttl import TTLArg, check_default_ttl, resolve_ttl


class DictCache(Cache):
    provider_name = "dict"

    def __init__(self, *, clock: Callable[[], float], default_ttl: float | None = None) -> None:
        super().__init__(name="dict")
        self.clock = clock
        self.default_ttl = check_default_ttl(default_ttl)
        self.data: dict[str, tuple[Any, float | None]] = {}
        self.lock = threading.Lock()
        self.hits = self.misses = self.sets = self.deletes = 0

    def _live(self, key: str) -> tuple[Any, float | None] | None:
        item = self.data.get(check_key(key))
        if item is not None and item[1] is not None and item[1] <= self.clock():
            del self.data[key]
            return None
        return item

    def _expiry(self, ttl: TTLArg) -> float | bool | None:
        seconds = resolve_ttl(ttl, self.default_ttl)
        if seconds is None:
            return None
        return False if seconds <= 0 else self.clock() + seconds

    def _peek(self, key: str) -> Any:
        with self.lock:
            item = self._live(key)
            return MISSING if item is None else item[0]

    def get(self, key: str, default: Any = None) -> Any:
        with self.lock:
            item = self._live(key)
            if item is None:
                self.misses += 1
                return default
            self.hits += 1
            return item[0]

    def set(self, key: str, value: Any, ttl: TTLArg = DEFAULT) -> None:
        key = check_key(key)
        expires = self._expiry(ttl)
        with self.lock:
            if expires is False:
                self.data.pop(key, None)
                return
            self.data[key] = (value, expires)  # type: ignore[assignment]
            self.sets += 1

    def add(self, key: str, value: Any, ttl: TTLArg = DEFAULT) -> bool:
        key = check_key(key)
        expires = self._expiry(ttl)
        with self.lock:
            if self._live(key) is not None:
                return False
            if expires is not False:
                self.data[key] = (value, expires)  # type: ignore[assignment]
            return True

    def delete(self, key: str) -> bool:
        with self.lock:
            found = self._live(key) is not None
            self.data.pop(key, None)
            self.deletes += found
            return found

    def touch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        expires = self._expiry(ttl)
        with self.lock:
            item = self._live(key)
            if item is None:
                return False
            if expires is False:
                del self.data[key]
            else:
                self.data[key] = (item[0], expires)  # type: ignore[assignment]
            return True

    def ttl(self, key: str) -> float | None:
        with self.lock:
            item = self._live(key)
            if item is None:
                return 0.0
            return None if item[1] is None else item[1] - self.clock()

    def incr(self, key: str, delta: int = 1) -> int:
        with self.lock:
            item = self._live(key)
            if item is None:
                item = (0, self._expiry(DEFAULT) or None)  # type: ignore[assignment]
            assert item is not None
            if type(item[0]) is not int:
                raise NotAnInteger(key)
            self.data[key] = (item[0] + delta, item[1])
            return item[0] + delta  # type: ignore[no-any-return]

    def clear(self) -> None:
        with self.lock:
            self.data.clear()

    def get_stats(self) -> CacheStats:
        return CacheStats(
            name=self.name, provider=self.provider_name, items=len(self.data), hits=self.hits,
            misses=self.misses, sets=self.sets, deletes=self.deletes, evictions=0,
            expirations=0, memory_bytes=0, memory_limit=None, max_entries=None,
            avg_get_seconds=None, started_at=0.0, uptime=0.0,
        )  # fmt: skip


class TestDictCacheContract(CacheContract):
    lists_keys = False  # the base class's scan_keys: UnsupportedOperation
    replaces = False  # the base class's replace: UnsupportedOperation

    @pytest.fixture
    def make_cache(self, clock: FakeClock) -> MakeCache:
        return lambda **options: DictCache(clock=clock, **options)

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Callable[[float], None]:
        return clock.advance
