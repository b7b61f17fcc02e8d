"""The tiered near cache: ``tiered://?l1=memory://...&l2=redis://...``.

A bounded in-process L1 (:class:`~cachekit.providers.memory.MemoryCache`) in front of an L2
with tags and patterns (a :class:`~cachekit.interfaces.DistributedCache`, usually Redis; not
memcached), which is the source of truth. Reads try L1, then L2, and fill L1; writes go to
L2 first, then update or evict the local L1, then publish an invalidation so that every other
process evicts its copy. The invalidation protocol, its staleness bounds and the
read/invalidate race are described in :mod:`.invalidation`; ``docs/tiered.md`` has the
configuration and the measured figures.

Configuration (URL query, nested URLs percent-encoded, or a dict)::

    tiered://?l1=memory%3A%2F%2F%3Fmax_entries%3D10000&l2=redis%3A%2F%2Fhost%3A6379%2F0&l1_ttl=30
    {"url": "tiered://", "l1": "memory://?max_entries=10000",
     "l2": {"url": "redis://host:6379/0", "prefix": "app:"}, "l1_ttl": 30}

With an L2 other than Redis there is no channel to invalidate other processes' L1s: that is
refused with :class:`~cachekit.errors.ConfigurationError` unless ``invalidation=none`` says
the caller accepts staleness up to ``l1_ttl`` (e.g. a single process, or data that tolerates it).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ..config import (
    Option,
    ParsedURL,
    choice_option,
    int_option,
    parse_options,
    parse_url,
    seconds_option,
)
from ..entry import EntryInfo
from ..errors import (
    ConfigurationError,
    InvalidArgumentType,
    InvalidKey,
    SerializationError,
    UnsupportedOperation,
    ValueTooLarge,
)
from ..interfaces import DistributedCache, check_key, check_tags
from ..metrics.latency import DEFAULT_SAMPLE_EVERY, MAX_SAMPLE_EVERY, GetTimer
from ..sentinels import DEFAULT, MISSING
from ..stats import CacheStats
from ..ttl import TTL, TTLArg, resolve_ttl, to_seconds
from .memory import MemoryCache
from .timed import TimedGets

if TYPE_CHECKING:
    from .invalidation import Invalidation, InvalidationChannel

__all__ = ["DEFAULT_L1", "DEFAULT_L1_TTL", "TieredCache"]

#: The L1 when none is given: the bounded memory provider with its default bound.
DEFAULT_L1 = "memory://?max_entries=10000"
#: Default hard staleness bound (seconds an L1 copy may live at most).
DEFAULT_L1_TTL = 60.0
_INVALIDATION_MODES = ("pubsub", "none")
#: Slack of the read-fill key set over twice the L1 size before it is pruned to live keys.
_FILLS_SLACK = 1024


def _cache_spec(value: Any) -> Any:
    if isinstance(value, str) or (isinstance(value, Mapping) and isinstance(value.get("url"), str)):
        return value
    raise TypeError("expected a cache URL or a dict with a 'url'")


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("expected a non-empty string")
    return value


def _split_spec(spec: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    options = dict(spec)
    return options.pop("url"), options


class TieredCache(TimedGets, DistributedCache):
    """An L1 :class:`MemoryCache` in front of an L2 cache, kept coherent by invalidations."""

    provider_name = "tiered"

    options: ClassVar[dict[str, Option]] = {
        "name": Option(_str, "a name for stats and metrics"),
        "l1": Option(_cache_spec, "a memory:// URL or a dict with a 'url'"),
        "l2": Option(_cache_spec, "a cache URL or a dict with a 'url'"),
        "l1_ttl": seconds_option(allow_none=False),
        "channel": Option(_str, "a pub/sub channel name"),
        "invalidation": choice_option(_INVALIDATION_MODES),
        "default_ttl": seconds_option(),
        "stats_sample_every": int_option(minimum=1, maximum=MAX_SAMPLE_EVERY),
    }

    __slots__ = (
        "_channel", "_deletes", "_epoch", "_get_timer", "_l1", "_l1_ttl", "_l2", "_l2_hits",
        "_l2_misses", "_live", "_lock", "_origin", "_read_fills", "_ready", "_sets", "_started",
        "_started_wall", "channel", "invalidation",
    )  # fmt: skip

    def __init__(
        self,
        *,
        l2: str | Mapping[str, Any],
        l1: str | Mapping[str, Any] = DEFAULT_L1,
        l1_ttl: float = DEFAULT_L1_TTL,
        channel: str | None = None,
        invalidation: str | None = None,
        name: str = "default",
        default_ttl: TTL | object = DEFAULT,
        stats_sample_every: int = DEFAULT_SAMPLE_EVERY,
    ) -> None:
        from ..factory import create_cache  # the factory imports the registry, which names us

        super().__init__(name=name)
        if not (isinstance(l1_ttl, (int, float)) and 0 < l1_ttl < float("inf")):
            raise ConfigurationError(
                f"l1_ttl must be a positive number of seconds, got {l1_ttl!r}", key="l1_ttl"
            )
        self._l1_ttl = float(l1_ttl)
        self._get_timer = GetTimer(stats_sample_every)
        l1_cache = create_cache(l1)
        if not isinstance(l1_cache, MemoryCache):
            l1_cache.close()
            raise ConfigurationError(
                f"l1 must be an in-process memory:// cache, got {l1_cache.provider_name}://",
                key="l1",
            )
        self._l1: MemoryCache = l1_cache
        l2_options = {} if default_ttl is DEFAULT else {"default_ttl": default_ttl}
        l2_cache = create_cache(l2, **l2_options)
        if not isinstance(l2_cache, DistributedCache):
            l2_cache.close()
            raise ConfigurationError(
                "l2 must be a cache that supports tags and patterns (a DistributedCache, such "
                f"as redis://), got {l2_cache.provider_name}://",
                key="l2",
            )
        self._l2: DistributedCache = l2_cache
        self._origin = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._epoch = 0
        self._ready = threading.Event()
        # Keys whose L1 copy came from an L2 read: their tags are unknown here (L2 does not
        # return them), so every tag invalidation evicts them too. Pruned as it grows.
        self._read_fills: set[str] = set()
        self._channel: InvalidationChannel | None = None
        is_redis = l2_cache.provider_name == "redis"
        if invalidation is None:
            invalidation = "pubsub"
        if invalidation not in _INVALIDATION_MODES:
            hint = (
                " (RESP3 client tracking is not implemented)" if invalidation == "tracking" else ""
            )
            accepted = ", ".join(_INVALIDATION_MODES)
            raise ConfigurationError(
                f"invalidation accepts {accepted}, got {invalidation!r}{hint}",
                key="invalidation",
            )
        self.invalidation = invalidation
        self.channel: str | None = None
        if invalidation == "pubsub":
            if not is_redis:
                l2_cache.close()
                raise ConfigurationError(
                    f"cross-process invalidation needs a Redis L2 (pub/sub), got "
                    f"{l2_cache.provider_name}://; set invalidation=none to accept L1 copies "
                    "being stale for up to l1_ttl",
                    key="invalidation",
                )
            from .invalidation import InvalidationChannel

            self.channel = channel or f"cachekit:invalidate:{getattr(l2_cache, 'prefix', name)}"
            self._channel = InvalidationChannel(
                _redis_settings(l2),
                self.channel,
                self._origin,
                self._apply,
                self._set_live,
            )
            # L1 is used only while the subscriber is confirmed; see invalidation.py.
            self._live = False
        else:
            if channel is not None:
                raise ConfigurationError("channel needs invalidation=pubsub", key="channel")
            self._live = True
            self._ready.set()
        self._l2_hits = self._l2_misses = self._sets = self._deletes = 0
        self._started_wall = time.time()
        self._started = time.monotonic()

    @classmethod
    def from_url(cls, url: ParsedURL, options: Mapping[str, Any]) -> TieredCache:
        if url.hosts or url.path or url.username is not None or url.password is not None:
            # Not echoed: its encoded l2= may carry a Redis password, which errors (logs,
            # gRPC answers) must never show.
            raise ConfigurationError(
                "tiered:// takes its caches as options: tiered://?l1=<url-encoded memory:// "
                "URL>&l2=<url-encoded URL>; this one has a host, path or credentials of its own",
                key="url",
            )
        merged = parse_options("tiered://", {**url.options, **options}, cls.options)
        if "l2" not in merged:
            raise ConfigurationError("tiered:// needs an l2 cache URL", key="l2")
        return cls(**merged)

    def __repr__(self) -> str:
        return f"<TieredCache name={self.name!r} l1={self._l1!r} l2={self._l2!r}>"

    @property
    def l1(self) -> MemoryCache:
        return self._l1

    @property
    def l2(self) -> DistributedCache:
        return self._l2

    @property
    def l1_ttl(self) -> float:
        return self._l1_ttl

    @property
    def subscriber_connected(self) -> bool:
        """Whether the L1 is in use (the invalidation subscription is confirmed)."""
        return self._live

    def start(self, timeout: float | None = None) -> bool:
        """Start the invalidation subscriber now (it otherwise starts on first use) and wait up
        to ``timeout`` seconds for it to be subscribed; return whether L1 is in use."""
        self._ensure_subscriber()
        return self._ready.wait(timeout) if timeout else self._live

    # -- the invalidation side (subscriber thread) ---------------------------------------------

    def _set_live(self, connected: bool) -> None:
        with self._lock:
            self._epoch += 1
            self._live = connected
            self._l1.clear()
            self._read_fills.clear()
        if connected:
            self._ready.set()
        else:
            self._ready.clear()

    def _apply(self, message: Invalidation) -> None:
        l1 = self._l1
        with self._lock:
            self._epoch += 1
            if message.kind == "keys":
                l1.delete_many(message.items)
            elif message.kind == "pattern":
                for pattern in message.items:
                    l1.delete_pattern(pattern)
            elif message.kind == "tags":
                self._invalidate_l1_tags(message.items)
            else:
                l1.clear()

    def _ensure_subscriber(self) -> None:
        channel = self._channel
        if channel is not None and not channel.running:
            channel.start()

    def _publish(self, kind: str, items: Iterable[str] = ()) -> None:
        if self._channel is not None:
            self._channel.publish(kind, items)

    async def _apublish(self, kind: str, items: Iterable[str] = ()) -> None:
        if self._channel is not None:
            await self._channel.apublish(kind, items)

    # -- L1 maintenance -------------------------------------------------------------------------

    def _l1_seconds(self, seconds: float | None) -> float:
        return self._l1_ttl if seconds is None else min(seconds, self._l1_ttl)

    def _fill(self, epoch: int, key: str, value: Any, remaining: float | None) -> None:
        """Store a value read from L2, unless an invalidation or write happened meanwhile."""
        if remaining == 0.0:
            return  # expired or deleted since the read
        with self._lock:
            if self._live and self._epoch == epoch:
                try:
                    self._l1.set(key, value, self._l1_seconds(remaining))
                except (ValueTooLarge, SerializationError):
                    # The L1 cannot hold it (over max_memory_bytes, or its own serializer
                    # refuses it): the read still returns L2's value, served from L2 each time.
                    self._l1.delete(key)
                    return
                fills = self._read_fills
                fills.add(key)
                if len(fills) > 2 * len(self._l1) + _FILLS_SLACK:
                    fills.intersection_update(self._l1.keys())

    def _invalidate_l1_tags(self, tags: Iterable[str]) -> None:
        """Under the lock: evict the tagged L1 entries and those whose tags are unknown."""
        self._l1.invalidate_tags(tags)
        self._l1.delete_many(self._read_fills)
        self._read_fills.clear()

    def _written(
        self,
        epoch: int,
        stored: Mapping[str, Any],
        seconds: float | None,
        tags: frozenset[str] | None,
        evict: Iterable[str] = (),
    ) -> None:
        """After an L2 write: store ``stored`` in L1 (if nothing raced it), evict ``evict``.

        A value the L1 refuses (over its memory bound: ``set_many`` skips it, leaving any older
        entry in place) is evicted; if the L1 raises (its serializer), every key is evicted
        and the error propagates."""
        l1 = self._l1
        with self._lock:
            try:
                if stored:
                    if self._live and self._epoch == epoch and (seconds is None or seconds > 0):
                        try:
                            refused = l1.set_many(
                                stored, self._l1_seconds(seconds), tags=tags or ()
                            )
                        except BaseException:
                            l1.delete_many(stored)
                            raise
                        if refused:
                            l1.delete_many(refused)
                        self._read_fills.difference_update(stored)
                    else:
                        l1.delete_many(stored)
                l1.delete_many(evict)
            finally:
                self._epoch += 1

    def _settle(
        self,
        epoch: int,
        mapping: Mapping[str, Any],
        failed: list[str] | None,
        seconds: float | None,
        tags: frozenset[str] | None,
    ) -> None:
        """L1 after an L2 ``set_many``: the stored values kept, the failed keys evicted (the
        write may have reached the server anyway: the caller publishes the invalidation for
        every key regardless); ``failed=None`` (it raised): nothing kept, since it may not."""
        if failed is None:
            self._evict(mapping)
            return
        stored = {k: v for k, v in mapping.items() if k not in failed} if failed else mapping
        self._written(epoch, stored, seconds, tags, evict=failed)

    def _evict(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._l1.delete_many(keys)
            self._epoch += 1

    def _count(self, hits: int = 0, misses: int = 0, sets: int = 0, deletes: int = 0) -> None:
        with self._lock:
            self._l2_hits += hits
            self._l2_misses += misses
            self._sets += sets
            self._deletes += deletes

    # -- reads ----------------------------------------------------------------------------------

    def _get(self, key: str, default: Any) -> Any:
        if self._live:
            value = self._l1.get(key, MISSING)
            if value is not MISSING:
                return value
        else:
            key = check_key(key)
            self._ensure_subscriber()
        epoch = self._epoch
        if not self._live:
            value = self._l2.get(key, MISSING)
            self._count(hits=value is not MISSING, misses=value is MISSING)
            return default if value is MISSING else value
        value, remaining = self._l2._get_with_ttl(key)
        if value is MISSING:
            self._count(misses=1)
            return default
        self._count(hits=1)
        self._fill(epoch, key, value, remaining)
        return value

    def _peek(self, key: str) -> Any:
        if self._live:
            value = self._l1._peek(key)
            if value is not MISSING:
                return value
        return self._l2._peek(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """L1 first, then one L2 read (values with their TTLs) for the rest, filled into L1."""
        keys = [check_key(k) for k in keys]
        if not self._live:
            self._ensure_subscriber()
            found = self._l2.get_many(keys)
            self._count(hits=len(found), misses=len(keys) - len(found))
            return found
        found = self._l1.get_many(keys)
        rest = [k for k in keys if k not in found]
        if rest:
            epoch = self._epoch
            from_l2 = self._l2._get_many_with_ttl(rest)
            self._count(hits=len(from_l2), misses=len(rest) - len(from_l2))
            for key, (value, remaining) in from_l2.items():
                found[key] = value
                self._fill(epoch, key, value, remaining)
        return found

    def exists(self, key: str) -> bool:
        key = check_key(key)
        if self._live and self._l1._peek(key) is not MISSING:
            return True
        return self._l2.exists(key)

    def ttl(self, key: str) -> float | None:
        return self._l2.ttl(key)

    def scan_keys(
        self, pattern: str = "*", *, cursor: str = "", count: int = 100
    ) -> tuple[str, list[str]]:
        """L2's keys: L1 holds a subset of them."""
        return self._l2.scan_keys(pattern, cursor=cursor, count=count)

    async def ascan_keys(
        self, pattern: str = "*", *, cursor: str = "", count: int = 100
    ) -> tuple[str, list[str]]:
        return await self._l2.ascan_keys(pattern, cursor=cursor, count=count)

    def inspect(self, key: str) -> EntryInfo | None:
        """The entry as L2 stores it (L1 holds decoded copies of it)."""
        return self._l2.inspect(key)

    async def ainspect(self, key: str) -> EntryInfo | None:
        return await self._l2.ainspect(key)

    def lock(self, name: str, **options: Any) -> Any:
        """L2's distributed lock (see the Redis provider's ``lock``); L1 has no part in it."""
        lock = getattr(self._l2, "lock", None)
        if lock is None:
            raise UnsupportedOperation(f"{type(self._l2).__name__} (L2) has no lock")
        return lock(name, **options)

    def alock(self, name: str, **options: Any) -> Any:
        """The async twin of :meth:`lock`."""
        alock = getattr(self._l2, "alock", None)
        if alock is None:
            raise UnsupportedOperation(f"{type(self._l2).__name__} (L2) has no lock")
        return alock(name, **options)

    # -- writes ---------------------------------------------------------------------------------

    def _seconds(self, ttl: TTLArg) -> float | None:
        return resolve_ttl(ttl, getattr(self._l2, "default_ttl", None))

    def set(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> None:
        self.set_many({check_key(key): value}, ttl, tags=tags)

    def set_many(
        self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> list[str]:
        mapping = {check_key(k): v for k, v in mapping.items()}
        seconds = self._seconds(ttl)
        tagset = check_tags(tags)
        self._ensure_subscriber()
        epoch = self._epoch
        failed: list[str] = []
        answered = False
        try:
            failed = self._l2.set_many(mapping, ttl, tags=tagset or ())
            answered = True
        finally:
            try:
                self._settle(epoch, mapping, failed if answered else None, seconds, tagset)
            finally:  # the L1 update may raise (its serializer): peers must still hear of it
                if mapping:
                    self._publish("keys", mapping)
        self._count(sets=len(mapping) - len(failed) if seconds is None or seconds > 0 else 0)
        return failed

    def add(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> bool:
        key = check_key(key)
        seconds = self._seconds(ttl)
        tagset = check_tags(tags)
        self._ensure_subscriber()
        epoch = self._epoch
        added = answered = False
        try:
            added = self._l2.add(key, value, ttl, tags=tagset or ())
            answered = True
        finally:
            if added and (seconds is None or seconds > 0):
                try:
                    self._written(epoch, {key: value}, seconds, tagset)
                finally:  # see set_many
                    self._publish("keys", [key])
            elif not answered:  # it raised, and may still have reached the server
                self._evict([key])
                self._publish("keys", [key])
        if added and (seconds is None or seconds > 0):
            self._count(sets=1)
        return added

    def replace(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        key = check_key(key)
        seconds = self._seconds(ttl)
        tagset = check_tags(tags)
        if seconds is not None and seconds <= 0:
            return self.delete(key)
        self._ensure_subscriber()
        epoch = self._epoch
        replaced = False
        try:
            replaced = self._l2.replace(key, value, ttl, tags=tagset or ())
        finally:
            # A replace that failed (or failed open, which reads as False) may still have
            # reached the server: evict everywhere then, as set_many does.
            try:
                if replaced:
                    self._written(epoch, {key: value}, seconds, tagset)
                else:
                    self._evict([key])
            finally:  # see set_many
                self._publish("keys", [key])
        if replaced:
            self._count(sets=1)
        return replaced

    def delete(self, key: str) -> bool:
        return self.delete_many([key]) > 0

    def delete_many(self, keys: Iterable[str]) -> int:
        keys = [check_key(k) for k in keys]
        if not keys:
            return 0
        self._ensure_subscriber()
        removed = 0
        try:
            removed = self._l2.delete_many(keys)
        finally:
            self._evict(keys)
            self._publish("keys", keys)
        self._count(deletes=removed)
        return removed

    def touch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        key = check_key(key)
        self._ensure_subscriber()
        try:
            return self._l2.touch(key, ttl)
        finally:
            self._evict([key])
            self._publish("keys", [key])

    def incr(self, key: str, delta: int = 1) -> int:
        key = check_key(key)
        self._ensure_subscriber()
        try:
            return self._l2.incr(key, delta)
        finally:
            self._evict([key])
            self._publish("keys", [key])

    def delete_pattern(self, pattern: str) -> int:
        if not isinstance(pattern, str) or not pattern:
            raise InvalidKey(f"pattern must be a non-empty str, got {pattern!r}")
        self._ensure_subscriber()
        removed = 0
        try:
            removed = self._l2.delete_pattern(pattern)
        finally:
            with self._lock:
                self._l1.delete_pattern(pattern)
                self._epoch += 1
            self._publish("pattern", [pattern])
        self._count(deletes=removed)
        return removed

    def tagged_keys(self, tags: Iterable[str]) -> list[str]:
        """L2's: it holds every tagged entry; L1 holds copies of some."""
        return self._l2.tagged_keys(tags)

    async def atagged_keys(self, tags: Iterable[str]) -> list[str]:
        """L2's native twin (the inherited default would run the sync read on the loop)."""
        return await self._l2.atagged_keys(tags)

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        tagset = check_tags(tags)
        if not tagset:
            return 0
        self._ensure_subscriber()
        removed = 0
        try:
            removed = self._l2.invalidate_tags(tagset)
        finally:
            with self._lock:
                self._invalidate_l1_tags(tagset)
                self._epoch += 1
            self._publish("tags", sorted(tagset))
        self._count(deletes=removed)
        return removed

    def clear(self) -> None:
        self._ensure_subscriber()
        try:
            self._l2.clear()
        finally:
            with self._lock:
                self._l1.clear()
                self._epoch += 1
            self._publish("clear")

    # -- get_or_set: L1, then L2's own (cross-process stampede-protected) get_or_set ----------

    def get_or_set(
        self,
        key: str,
        default_or_factory: Any,
        ttl: TTLArg = DEFAULT,
        *,
        tags: Iterable[str] = (),
    ) -> Any:
        if ttl is not DEFAULT:
            to_seconds(ttl)
        tagset = check_tags(tags) or ()
        value = self.get(key, MISSING)  # an L2 hit fills L1
        if value is not MISSING:
            return value
        outcome = [False, False]  # [add was called, add stored a value]
        l2_add = self._l2.add
        seconds = self._seconds(ttl)

        def add(k: str, v: Any) -> bool:
            outcome[0] = True
            added = l2_add(k, v, ttl, tags=tagset)
            outcome[1] = added and (seconds is None or seconds > 0)
            return added

        try:
            return self._l2._get_or_set(key, default_or_factory, ttl, add)
        finally:
            if outcome[0]:
                self._stored_by_get_or_set(key, outcome[1])

    async def aget_or_set(
        self,
        key: str,
        default_or_factory: Any,
        ttl: TTLArg = DEFAULT,
        *,
        tags: Iterable[str] = (),
    ) -> Any:
        if inspect.isawaitable(default_or_factory):  # before the lookup, as every provider
            raise InvalidArgumentType(
                "aget_or_set takes a value or a (coroutine) function, not an awaitable: "
                "pass the function itself so it runs only on a miss"
            )
        if ttl is not DEFAULT:
            to_seconds(ttl)
        tagset = check_tags(tags) or ()
        value = await self.aget(key, MISSING)
        if value is not MISSING:
            return value
        outcome = [False, False]  # see get_or_set
        l2_aadd = self._l2.aadd
        seconds = self._seconds(ttl)

        async def add(k: str, v: Any) -> bool:
            outcome[0] = True
            added = await l2_aadd(k, v, ttl, tags=tagset)
            outcome[1] = added and (seconds is None or seconds > 0)
            return added

        try:
            return await self._l2._aget_or_set(key, default_or_factory, ttl, add)
        finally:
            if outcome[0]:
                self._evict([key])
                await self._apublish("keys", [key])
                if outcome[1]:
                    self._count(sets=1)

    def _stored_by_get_or_set(self, key: str, stored: bool) -> None:
        """L2 may have stored a value here while other processes' L1 still hold an older one
        (L2 lost the key without an invalidation: maxmemory eviction, a flush): say so. Only a
        store L2 made counts as a set (not a TTL of 0, a write failing open, a lost ``add``)."""
        self._evict([key])
        self._publish("keys", [key])
        if stored:
            self._count(sets=1)

    # -- stats and life cycle -----------------------------------------------------------------

    def get_stats(self) -> CacheStats:
        return self._stats(self._l2.get_stats())

    async def aget_stats(self) -> CacheStats:
        return self._stats(await self._l2.aget_stats())

    def _stats(self, l2: CacheStats) -> CacheStats:
        l1 = self._l1.get_stats()
        channel = self._channel
        with self._lock:
            l2_hits, l2_misses, sets, deletes = (
                self._l2_hits, self._l2_misses, self._sets, self._deletes
            )  # fmt: skip
        extra: dict[str, Any] = {
            "l1_hits": l1.hits,
            "l1_misses": l1.misses,
            "l1_items": l1.items,
            "l1_evictions": l1.evictions,
            "l2_hits": l2_hits,
            "l2_misses": l2_misses,
            "l1_ttl": self._l1_ttl,
            "invalidation": self.invalidation,
            "channel": self.channel,
            "subscriber_connected": channel.connected if channel is not None else False,
            "invalidations_received": channel.received if channel is not None else 0,
            "invalidations_sent": channel.sent if channel is not None else 0,
            "invalidation_publish_errors": channel.publish_errors if channel is not None else 0,
            "subscriber_reconnects": channel.reconnects if channel is not None else 0,
            "l2": l2.extra,
        }
        if l2.server_read_error is None:  # else a gap, not a false zero (docs/metrics.md)
            extra["l2_items"] = l2.items
        return CacheStats(
            name=self.name, provider=self.provider_name, items=l2.items,
            hits=l1.hits + l2_hits, misses=l2_misses, sets=sets, deletes=deletes,
            evictions=l1.evictions + l2.evictions, expirations=l1.expirations + l2.expirations,
            memory_bytes=l1.memory_bytes, memory_limit=l1.memory_limit,
            max_entries=l1.max_entries, started_at=self._started_wall,
            uptime=time.monotonic() - self._started, extra=extra, **self._get_timer.fields(),
        )  # fmt: skip

    def _after_fork(self) -> None:
        """A forked child has no subscriber thread, and shares its parent's id (each would
        skip the other's messages as its own): a new id, the L1 flushed and bypassed until the
        child's own subscriber (started on next use) is confirmed."""
        super()._after_fork()
        self._lock = threading.Lock()
        self._origin = uuid.uuid4().hex
        self._epoch += 1
        self._read_fills = set()
        self._get_timer._after_fork()
        self._l1._after_fork()  # before clear(): its lock may have been held at the fork
        if self._channel is not None:
            self._channel._after_fork(self._origin)
            self._live = False
            self._ready = threading.Event()
            self._l1.clear()

    def reset_stats(self) -> None:
        """Zero this cache's counters and its L1's (not the data); ``started_at`` restarts too.
        L2's are its own (a Redis L2's ``reset_stats()``); the channel's counts stay."""
        self._l1.reset_stats()
        with self._lock:
            self._l2_hits = self._l2_misses = self._sets = self._deletes = 0
            self._started_wall = time.time()
            self._started = time.monotonic()
        self._get_timer.reset()

    def close(self) -> None:
        """Stop the subscriber (the L1 is flushed: it cannot be kept coherent) and close L2.

        The cache may be used again: the subscriber restarts on the next call.
        """
        if self._channel is not None:
            self._channel.stop()
        else:
            self._l1.clear()
        self._l2.close()

    async def aclose(self) -> None:
        """Close the loop's async clients, then :meth:`close` in a worker thread: stopping the
        subscriber publishes a wake-up and joins its thread, which must not stall the loop."""
        if self._channel is not None:
            await self._channel.aclose()
        await self._l2.aclose()
        await asyncio.to_thread(self.close)

    # -- async twins: L2's native async I/O, the in-process L1 called directly ----------------

    async def _aget(self, key: str, default: Any) -> Any:
        if self._live:
            value = self._l1.get(key, MISSING)
            if value is not MISSING:
                return value
        else:
            key = check_key(key)
            self._ensure_subscriber()
        epoch = self._epoch
        if not self._live:
            value = await self._l2.aget(key, MISSING)
            self._count(hits=value is not MISSING, misses=value is MISSING)
            return default if value is MISSING else value
        value, remaining = await self._l2._aget_with_ttl(key)
        if value is MISSING:
            self._count(misses=1)
            return default
        self._count(hits=1)
        self._fill(epoch, key, value, remaining)
        return value

    async def _apeek(self, key: str) -> Any:
        if self._live:
            value = self._l1._peek(key)
            if value is not MISSING:
                return value
        return await self._l2._apeek(key)

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The async twin of :meth:`get_many`: one L2 read for the keys L1 lacks, filled."""
        keys = [check_key(k) for k in keys]
        if not self._live:
            self._ensure_subscriber()
            found = await self._l2.aget_many(keys)
            self._count(hits=len(found), misses=len(keys) - len(found))
            return found
        found = self._l1.get_many(keys)
        rest = [k for k in keys if k not in found]
        if rest:
            epoch = self._epoch
            from_l2 = await self._l2._aget_many_with_ttl(rest)
            self._count(hits=len(from_l2), misses=len(rest) - len(from_l2))
            for key, (value, remaining) in from_l2.items():
                found[key] = value
                self._fill(epoch, key, value, remaining)
        return found

    async def aexists(self, key: str) -> bool:
        key = check_key(key)
        if self._live and self._l1._peek(key) is not MISSING:
            return True
        return await self._l2.aexists(key)

    async def attl(self, key: str) -> float | None:
        return await self._l2.attl(key)

    async def aset(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> None:
        await self.aset_many({check_key(key): value}, ttl, tags=tags)

    async def aset_many(
        self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> list[str]:
        mapping = {check_key(k): v for k, v in mapping.items()}
        seconds = self._seconds(ttl)
        tagset = check_tags(tags)
        self._ensure_subscriber()
        epoch = self._epoch
        failed: list[str] = []
        answered = False
        try:
            failed = await self._l2.aset_many(mapping, ttl, tags=tagset or ())
            answered = True
        finally:
            try:
                self._settle(epoch, mapping, failed if answered else None, seconds, tagset)
            finally:  # see set_many
                if mapping:
                    await self._apublish("keys", mapping)
        self._count(sets=len(mapping) - len(failed) if seconds is None or seconds > 0 else 0)
        return failed

    async def aadd(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        key = check_key(key)
        seconds = self._seconds(ttl)
        tagset = check_tags(tags)
        self._ensure_subscriber()
        epoch = self._epoch
        added = answered = False
        try:
            added = await self._l2.aadd(key, value, ttl, tags=tagset or ())
            answered = True
        finally:
            if added and (seconds is None or seconds > 0):
                try:
                    self._written(epoch, {key: value}, seconds, tagset)
                finally:  # see set_many
                    await self._apublish("keys", [key])
            elif not answered:  # it raised, and may still have reached the server
                self._evict([key])
                await self._apublish("keys", [key])
        if added and (seconds is None or seconds > 0):
            self._count(sets=1)
        return added

    async def areplace(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        key = check_key(key)
        seconds = self._seconds(ttl)
        tagset = check_tags(tags)
        if seconds is not None and seconds <= 0:
            return await self.adelete(key)
        self._ensure_subscriber()
        epoch = self._epoch
        replaced = False
        try:
            replaced = await self._l2.areplace(key, value, ttl, tags=tagset or ())
        finally:
            try:
                if replaced:  # see replace()
                    self._written(epoch, {key: value}, seconds, tagset)
                else:
                    self._evict([key])
            finally:
                await self._apublish("keys", [key])
        if replaced:
            self._count(sets=1)
        return replaced

    async def adelete(self, key: str) -> bool:
        return await self.adelete_many([key]) > 0

    async def adelete_many(self, keys: Iterable[str]) -> int:
        keys = [check_key(k) for k in keys]
        if not keys:
            return 0
        self._ensure_subscriber()
        removed = 0
        try:
            removed = await self._l2.adelete_many(keys)
        finally:
            self._evict(keys)
            await self._apublish("keys", keys)
        self._count(deletes=removed)
        return removed

    async def atouch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        key = check_key(key)
        self._ensure_subscriber()
        try:
            return await self._l2.atouch(key, ttl)
        finally:
            self._evict([key])
            await self._apublish("keys", [key])

    async def aincr(self, key: str, delta: int = 1) -> int:
        key = check_key(key)
        self._ensure_subscriber()
        try:
            return await self._l2.aincr(key, delta)
        finally:
            self._evict([key])
            await self._apublish("keys", [key])

    def decr(self, key: str, delta: int = 1) -> int:
        if type(delta) is not int:  # the L2's class, as its own incr raises for such a delta
            raise self._l2._not_an_integer(f"delta must be an int, got {delta!r}")
        return self.incr(key, -delta)

    async def adecr(self, key: str, delta: int = 1) -> int:
        if type(delta) is not int:
            raise self._l2._not_an_integer(f"delta must be an int, got {delta!r}")
        return await self.aincr(key, -delta)

    async def adelete_pattern(self, pattern: str) -> int:
        if not isinstance(pattern, str) or not pattern:
            raise InvalidKey(f"pattern must be a non-empty str, got {pattern!r}")
        self._ensure_subscriber()
        removed = 0
        try:
            removed = await self._l2.adelete_pattern(pattern)
        finally:
            with self._lock:
                self._l1.delete_pattern(pattern)
                self._epoch += 1
            await self._apublish("pattern", [pattern])
        self._count(deletes=removed)
        return removed

    async def ainvalidate_tags(self, tags: Iterable[str]) -> int:
        tagset = check_tags(tags)
        if not tagset:
            return 0
        self._ensure_subscriber()
        removed = 0
        try:
            removed = await self._l2.ainvalidate_tags(tagset)
        finally:
            with self._lock:
                self._invalidate_l1_tags(tagset)
                self._epoch += 1
            await self._apublish("tags", sorted(tagset))
        self._count(deletes=removed)
        return removed

    async def aclear(self) -> None:
        self._ensure_subscriber()
        try:
            await self._l2.aclear()
        finally:
            with self._lock:
                self._l1.clear()
                self._epoch += 1
            await self._apublish("clear")


def _redis_settings(spec: str | Mapping[str, Any]) -> Any:
    """Connection settings of a Redis L2, for the pub/sub client built beside it."""
    from .redis import RedisCache
    from .redis_conn import settings_from_url

    url, extra = _split_spec(spec)
    parsed = parse_url(url)
    options = parse_options(f"{parsed.scheme}://", {**parsed.options, **extra}, RedisCache.options)
    return settings_from_url(parsed, options)
