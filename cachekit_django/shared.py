"""One cachekit cache per configuration per process, shared by every backend instance.

Django builds a backend instance per thread (and per async context) on first use of an alias.
Like ``LocMemCache``'s module-level stores, memory backends with the same ``LOCATION`` must share
their data; network backends share their connection pools and statistics the same way, instead
of opening a pool per thread. The core caches are thread-safe, so sharing is sound.

Django-style culling (``MAX_ENTRIES``/``CULL_FREQUENCY``) is an eviction listener: the memory
provider, bounded at ``MAX_ENTRIES``, evicts one entry when a new key would exceed the bound,
and the listener then evicts the rest of the 1/``CULL_FREQUENCY`` share (everything but the
new key for 0) as the provider's policy chooses - with the default LRU policy, the least
recently used, as ``LocMemCache`` culls - leaving the counts ``LocMemCache`` leaves, with no
cost on the write path until the bound is reached.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from typing import Any

from cachekit import Cache, create_cache
from cachekit.providers.memory import MemoryCache, RemovalCause

from .locations import Plan

__all__ = ["Culler", "build_unshared", "close_shared", "shared_cache", "sharing"]

_lock = threading.Lock()
_caches: dict[tuple[Any, ...], Cache] = {}


class Culler:
    """Eviction listener giving a bounded memory cache ``LocMemCache``'s culling counts."""

    __slots__ = ("_culling", "cache", "cull_frequency", "max_entries", "then")

    def __init__(self, max_entries: int, cull_frequency: int, then: Any = None) -> None:
        self.max_entries = max_entries
        self.cull_frequency = cull_frequency
        self.then = then  # a user's eviction_listener, still called for every eviction
        self.cache: MemoryCache | None = None
        self._culling = threading.local()  # the evictions of a cull do not start another

    def __call__(self, key: str, value: Any, cause: RemovalCause) -> None:
        if self.then is not None:
            self.then(key, value, cause)
        cache = self.cache
        if cause is not RemovalCause.EVICTED or cache is None:
            return
        if getattr(self._culling, "active", False):
            return
        # Down to what LocMemCache leaves after a cull and the write that caused it: it removes
        # max_entries // cull_frequency (all for 0) before inserting. A target, not a share:
        # a batch written to the core at once (core set_many) evicts once per new key, and
        # only the first eviction culls. The Django backend's set_many writes a culled store
        # key by key instead (CacheKitCache.set_many), so that each new key past the bound
        # culls or fills up as in LocMemCache's set_many, one set() per key.
        if self.cull_frequency == 0:
            target = 1
        else:
            target = self.max_entries - self.max_entries // self.cull_frequency + 1
        extra = len(cache.keys()) - target
        if extra > 0:
            self._culling.active = True
            try:
                cache.evict(extra)  # under LRU the least recently used: the new key stays
            finally:
                self._culling.active = False


def _hashable(value: Any) -> Hashable:
    try:
        hash(value)
    except TypeError:
        return ("unhashable", type(value).__name__, repr(value))
    return value  # type: ignore[no-any-return]


def _build(plan: Plan) -> Cache:
    options = dict(plan.options)
    culler: Culler | None = None
    if plan.cull is not None:
        culler = Culler(*plan.cull, then=options.get("eviction_listener"))
        options["eviction_listener"] = culler
    cache = create_cache(plan.url, **options)
    if culler is not None and isinstance(cache, MemoryCache):
        culler.cache = cache
    return cache


def shared_cache(plan: Plan) -> Cache:
    """The process's cache for ``plan``, built on first use (building never connects)."""
    key = (plan.url, plan.cull, tuple(sorted((k, _hashable(v)) for k, v in plan.options.items())))
    cache = _caches.get(key)
    if cache is None:
        with _lock:
            cache = _caches.get(key)
            if cache is None:
                cache = _caches[key] = _build(plan)
    return cache


def build_unshared(plan: Plan) -> Cache:
    """A cache for ``plan`` that nobody else holds (system checks build and close one)."""
    return _build(plan)


def close_shared(url: str | None = None) -> int:
    """Close and forget the shared caches built from ``url`` (all when ``None``); returns how
    many. For tests and orderly shutdown: a backend built later builds a fresh one."""
    with _lock:
        keys = [key for key in _caches if url is None or key[0] == url]
        closing = [_caches.pop(key) for key in keys]
    for cache in closing:
        cache.close()
    return len(closing)


def sharing(cores: Mapping[str, Cache | None]) -> dict[str, tuple[str, ...]]:
    """For each alias, the other aliases built on the same core cache (``{alias: core}`` in;
    aliases differing only in ``KEY_PREFIX``/``VERSION`` share one): they share its counters,
    and its ``clear()`` empties them all."""
    by_core: dict[int, list[str]] = {}
    for alias, core in cores.items():
        if core is not None:
            by_core.setdefault(id(core), []).append(alias)
    return {
        alias: tuple(other for other in group if other != alias)
        for group in by_core.values()
        for alias in group
    }
