"""The null provider: a cache that accepts everything and stores nothing.

It exists for the reason Flask-Caching's ``NullCache`` and Django's ``DummyCache`` do: an app
(or its test suite) can run with caching switched off without changing a line of code, while
every call is still checked as a real provider would check it (keys, TTLs, tags, ``incr``
deltas), so code that works here does not break when a real provider is configured.

Each answer is what a cache that has just forgotten everything must give, which is also what
cachelib's ``NullCache`` gives wherever the cachekit contract lets it:

* reads miss: ``get`` returns the default, ``exists`` is False, ``ttl`` is ``0.0``,
  ``get_many`` is ``{}``, ``inspect`` is ``None``, ``scan_keys`` lists nothing;
* writes are accepted: ``set`` stores nothing, ``set_many`` refuses no key (NullCache reports
  every key as set), ``add`` returns True since the key was absent (as NullCache);
* ``incr(key, delta)`` returns ``delta``, counting from the 0 a missing key starts at
  (NullCache's ``inc``); nothing is kept, so the next call returns ``delta`` again;
* removals find nothing: ``delete`` and ``touch`` return False, ``delete_many``,
  ``delete_pattern`` and ``invalidate_tags`` return 0. cachelib's ``NullCache.delete`` returns
  True ("absent after the call"); the cachekit contract reports whether a value was removed,
  as Django's ``DummyCache`` does, and none ever is.

It cannot pass the shared contract suite (nothing round-trips, by design); its own tests are
``tests/test_null_provider.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from ..config import Option, ParsedURL, named_options, parse_options, seconds_option, text_option
from ..entry import EntryInfo
from ..errors import NotAnInteger
from ..glob import compile_glob
from ..interfaces import DistributedCache, check_key, check_tags
from ..keyscan import check_scan_args
from ..sentinels import DEFAULT, MISSING
from ..stats import CacheStats
from ..ttl import TTL, TTLArg, check_default_ttl, to_seconds

__all__ = ["NullCache"]


class NullCache(DistributedCache):
    """Stores nothing; every read is a miss (see the module docstring for each answer)."""

    provider_name = "null"

    __slots__ = ("_lock", "_misses", "_sets", "_started", "_started_wall", "default_ttl")

    #: Options accepted in ``null://?...`` URLs and config dicts.
    options: ClassVar[dict[str, Option]] = {
        "name": text_option("a name for stats and metrics"),
        "default_ttl": seconds_option(),
    }

    def __init__(self, *, name: str = "default", default_ttl: TTL = None) -> None:
        super().__init__(name=name)
        # Validated although it never applies, so switching to a real provider cannot fail.
        self.default_ttl: float | None = check_default_ttl(default_ttl)
        self._lock = threading.Lock()
        self._misses = self._sets = 0
        self._started_wall = time.time()
        self._started = time.monotonic()

    @classmethod
    def from_url(cls, url: ParsedURL, options: Mapping[str, Any]) -> NullCache:
        """Build from ``null://[NAME]?option=value``; ``options`` override the query string."""
        merged = named_options(url, options, example="null://NAME")
        return cls(**parse_options("null://", merged, cls.options))

    # -- reads -------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        check_key(key)
        with self._lock:
            self._misses += 1
        return default

    def exists(self, key: str) -> bool:
        check_key(key)
        return False

    def ttl(self, key: str) -> float | None:
        check_key(key)
        return 0.0

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        checked = [check_key(key) for key in keys]
        with self._lock:
            self._misses += len(checked)
        return {}

    def scan_keys(
        self, pattern: str = "*", *, cursor: str = "", count: int = 100
    ) -> tuple[str, list[str]]:
        check_scan_args(pattern, cursor, count)
        return "", []

    def inspect(self, key: str) -> EntryInfo | None:
        check_key(key)
        return None

    def _peek(self, key: str) -> Any:
        check_key(key)
        return MISSING  # get_or_set's uncounted re-read

    async def _apeek(self, key: str) -> Any:
        return self._peek(key)  # the base one calls aget, which counts a miss

    # -- writes ------------------------------------------------------------------------------

    def set(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> None:
        self._accept(key, ttl, tags)

    def add(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> bool:
        self._accept(key, ttl, tags)
        return True

    def replace(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        self._accept(key, ttl, tags)
        return False  # nothing is ever present

    def set_many(
        self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> list[str]:
        # Checked once, before the loop: an empty mapping is no excuse for a bad TTL or tag.
        _check_ttl(ttl)
        check_tags(tags)
        for key in mapping:
            self._accept(key, ttl, ())
        return []

    def touch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        check_key(key)
        _check_ttl(ttl)
        return False

    def incr(self, key: str, delta: int = 1) -> int:
        check_key(key)
        if type(delta) is not int:
            raise NotAnInteger(f"delta must be an int, got {delta!r}")
        return delta

    # -- removal -----------------------------------------------------------------------------

    def delete(self, key: str) -> bool:
        check_key(key)
        return False

    def delete_many(self, keys: Iterable[str]) -> int:
        for key in keys:
            check_key(key)
        return 0

    def delete_pattern(self, pattern: str) -> int:
        compile_glob(pattern)  # a bad pattern fails here as on every provider
        return 0

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        check_tags(tags)
        return 0

    def tagged_keys(self, tags: Iterable[str]) -> list[str]:
        check_tags(tags)
        return []

    def clear(self) -> None:
        """Nothing to remove."""

    # -- introspection -----------------------------------------------------------------------

    def get_stats(self) -> CacheStats:
        with self._lock:
            misses, sets = self._misses, self._sets
        return CacheStats(
            name=self.name,
            provider=self.provider_name,
            items=0,
            hits=0,
            misses=misses,
            sets=sets,
            deletes=0,
            evictions=0,
            expirations=0,
            memory_bytes=0,
            memory_limit=None,
            max_entries=None,
            avg_get_seconds=None,
            started_at=self._started_wall,
            uptime=time.monotonic() - self._started,
        )

    def reset_stats(self) -> None:
        """Zero the counters; ``started_at`` restarts too."""
        with self._lock:
            self._misses = self._sets = 0
            self._started_wall = time.time()
            self._started = time.monotonic()

    def _after_fork(self) -> None:
        super()._after_fork()
        self._lock = threading.Lock()  # another thread may have held it at the fork

    def _accept(self, key: str, ttl: TTLArg, tags: Iterable[str]) -> None:
        """Check a write as a real provider would, count it, and forget it."""
        check_key(key)
        _check_ttl(ttl)
        check_tags(tags)
        with self._lock:
            self._sets += 1


def _check_ttl(ttl: TTLArg) -> None:
    if ttl is not DEFAULT:
        to_seconds(ttl)  # TypeError/ValueError for what no provider would accept
