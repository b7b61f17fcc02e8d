"""The embedded in-memory provider: the default cache, and the L1 of the near cache.

Design, in the order the hot path meets it:

* One ``dict`` of ``key -> (value, expires_at, size)`` tuples and one non-reentrant lock.
  Tuples are immutable, so a read never sees a half-written entry and an update is a single
  dict store. Bookkeeping of recency/frequency belongs to the :mod:`eviction policy
  <cachekit.policies>`; its hooks are bound once and called under the lock.
* TTLs use an injectable monotonic clock, read only when an entry has an expiry (so a cache of
  non-expiring entries never calls it on a hit). Expiry is lazy on access, plus amortised
  sweeping: entries with a TTL are pushed on a min-heap of ``(expires_at, key)`` and each write
  pops the expired head of the heap, so expired entries never hold memory long after their death
  even if nobody reads them again. Stale heap nodes (overwritten or deleted keys) are skipped
  when popped, and the heap is rebuilt when they outnumber the live entries.
* Bounds: ``max_entries`` and/or ``max_memory_bytes`` (accounted with a pluggable
  :mod:`sizer <cachekit.sizing>`). A write inserts first, then evicts the policy's victims until
  the cache is back within its bounds. A single value larger than ``max_memory_bytes`` raises
  :class:`~cachekit.errors.ValueTooLarge`. Bounded by default: :data:`DEFAULT_MAX_ENTRIES`
  entries unless a bound is given; ``max_entries=None`` with no memory bound is the explicit
  way to ask for an unbounded cache.
* Values are stored by reference (like ``cachetools`` and ``functools.lru_cache``), so a hit
  costs no copy; pass a ``serializer`` to store encoded bytes instead, which gives every reader
  an independent copy (as Django's ``LocMemCache`` does) and exact memory accounting.
* Statistics are plain integers updated under the lock; ``get`` latency is timed on one call in
  ``stats_sample_every`` so that observing the cache costs nearly nothing.
* Listeners are called after the lock is released, and their exceptions are logged, never
  raised into the caller.
"""

from __future__ import annotations

import enum
import fnmatch
import heapq
import itertools
import logging
import re
import sys
import threading
import time
from collections import deque as _consume
from collections.abc import Callable, Iterable, Mapping
from heapq import heappush
from typing import Any, ClassVar, TypeAlias

from ..config import (
    Option,
    ParsedURL,
    choice_option,
    int_option,
    object_option,
    parse_options,
    seconds_option,
    size_option,
)
from ..errors import ConfigurationError, InvalidKey, NotAnInteger, ValueTooLarge
from ..interfaces import DistributedCache, check_key
from ..metrics.latency import LatencySampler
from ..policies.base import EvictionPolicy
from ..registry import policy_registry, serializer_registry
from ..sentinels import DEFAULT, MISSING, DefaultType
from ..sizing import SIZERS, Sizer, shallow_sizer
from ..stats import CacheStats
from ..ttl import TTL, TTLArg, check_default_ttl, to_seconds

__all__ = ["DEFAULT_MAX_ENTRIES", "EvictionListener", "MemoryCache", "RemovalCause"]

log = logging.getLogger(__name__)

#: Entry bound of a cache given neither ``max_entries`` nor ``max_memory_bytes``.
DEFAULT_MAX_ENTRIES = 10_000
#: Rebuild the expiry heap when it holds more than this many nodes per live entry (+ slack).
_HEAP_SLACK_FACTOR = 2
_HEAP_SLACK = 1024
#: Most expired entries one write sweeps, so a write's worst case stays bounded.
_SWEEP_BATCH = 32
#: Entries sized to estimate the memory of a cache that does not account it per entry.
_MEMORY_SAMPLE = 1024

_Entry: TypeAlias = tuple[Any, float | None, int]


class RemovalCause(enum.Enum):
    """Why an entry left the cache without being deleted."""

    EVICTED = "evicted"
    EXPIRED = "expired"


#: ``listener(key, value, cause)``; value is the stored value (encoded if a serializer is set).
EvictionListener: TypeAlias = Callable[[str, Any, RemovalCause], object]


class MemoryCache(DistributedCache):
    """Thread-safe, bounded, in-process cache; see the module docstring for the design."""

    provider_name = "memory"

    __slots__ = (
        "_clock",
        "_data",
        "_deletes",
        "_dumps",
        "_entry_limit",
        "_evictions",
        "_expirations",
        "_expiry_heap",
        "_hits",
        "_key_tags",
        "_listener",
        "_loads",
        "_lock",
        "_memory",
        "_memory_limit",
        "_missed",
        "_misses",
        "_on_hit",
        "_on_insert",
        "_on_miss",
        "_on_update",
        "_plain",
        "_policy",
        "_reads",
        "_sample_mask",
        "_sampler",
        "_serializer",
        "_sets",
        "_sizer",
        "_started",
        "_started_wall",
        "_tag_keys",
        "_ticker",
        "_update_is_hit",
        "default_ttl",
        "max_entries",
        "max_memory_bytes",
    )  # fmt: skip

    #: Options accepted in ``memory://?...`` URLs and config dicts.
    options: ClassVar[dict[str, Option]] = {
        "name": Option(str, "a name for stats and metrics"),
        "max_entries": int_option(minimum=1, allow_none=True),
        "max_memory_bytes": size_option(allow_none=True),
        "policy": choice_option(policy_registry.names),
        "default_ttl": seconds_option(),
        "serializer": choice_option(serializer_registry.names),
        "sizer": choice_option(SIZERS),
        "stats_sample_every": int_option(minimum=1),
        "eviction_listener": object_option("a callable (key, value, cause)"),
        "clock": object_option("a callable returning monotonic seconds"),
    }

    def __init__(
        self,
        *,
        name: str = "default",
        max_entries: int | DefaultType | None = DEFAULT,
        max_memory_bytes: int | None = None,
        policy: str | EvictionPolicy = "lru",
        default_ttl: TTL = None,
        serializer: Any = None,
        sizer: str | Sizer | DefaultType = DEFAULT,
        stats_sample_every: int = 64,
        eviction_listener: EvictionListener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name=name)
        if max_entries is DEFAULT:
            max_entries = DEFAULT_MAX_ENTRIES if max_memory_bytes is None else None
        if max_entries is not None and (type(max_entries) is not int or max_entries < 1):
            raise ConfigurationError(
                f"max_entries must be a positive int or None, got {max_entries!r}",
                key="max_entries",
            )
        if max_memory_bytes is not None and (
            type(max_memory_bytes) is not int or max_memory_bytes < 1
        ):
            raise ConfigurationError(
                f"max_memory_bytes must be a positive int or None, got {max_memory_bytes!r}",
                key="max_memory_bytes",
            )
        self.max_entries: int | None = max_entries
        self.max_memory_bytes: int | None = max_memory_bytes
        # The bounds as plain ints, so the write path compares without None checks.
        self._entry_limit = sys.maxsize if max_entries is None else max_entries
        self._memory_limit = sys.maxsize if max_memory_bytes is None else max_memory_bytes
        self.default_ttl: float | None = check_default_ttl(default_ttl)
        if isinstance(policy, str):
            policy = policy_registry.get(policy, key="policy")(max_entries)
        if not isinstance(policy, EvictionPolicy):
            raise ConfigurationError(
                f"policy must be a name or an EvictionPolicy, got {policy!r}", key="policy"
            )
        self._policy = policy
        if isinstance(serializer, str):
            serializer = serializer_registry.get(serializer, key="serializer")()
        self._serializer = serializer
        self._dumps: Callable[[Any], bytes] | None = serializer.dumps if serializer else None
        self._loads: Callable[[bytes], Any] | None = serializer.loads if serializer else None
        self._sizer: Sizer | None
        if sizer is DEFAULT:
            # Sizing costs a third of a write; without a memory bound nothing depends on it,
            # so stats then estimate memory from a sample instead (see get_stats).
            self._sizer = shallow_sizer if max_memory_bytes is not None else None
        elif isinstance(sizer, str):
            if sizer not in SIZERS:
                raise ConfigurationError(
                    f"unknown sizer {sizer!r}; accepted: {', '.join(SIZERS)}", key="sizer"
                )
            self._sizer = SIZERS[sizer]
        else:
            self._sizer = sizer
        self._listener = eviction_listener
        self._clock = clock
        self._lock = threading.Lock()
        self._data: dict[str, _Entry] = {}
        self._expiry_heap: list[tuple[float, str]] = []
        self._key_tags: dict[str, frozenset[str]] = {}
        self._tag_keys: dict[str, set[str]] = {}
        self._memory = 0
        # Bound once: the hot path calls these without attribute lookups on the policy.
        self._on_hit = policy.on_hit
        # Policies that ignore misses (LRU, TTL) keep the base no-op: skip calling it at all.
        self._on_miss = None if type(policy).on_miss is EvictionPolicy.on_miss else policy.on_miss
        self._on_insert = policy.on_insert
        self._on_update = policy.on_update
        self._update_is_hit = policy.update_is_access
        try:
            self._sampler = LatencySampler(sample_every=stats_sample_every)
        except ConfigurationError as exc:
            raise ConfigurationError(str(exc), key="stats_sample_every") from None
        self._sample_mask = self._sampler.mask
        self._ticker = itertools.count(1)
        self._reads: list[str] = []
        self._missed: list[str] = []
        self._plain = True
        self._refresh_plain()
        self._reset_counters()

    def _reset_counters(self) -> None:
        self._hits = self._misses = self._sets = self._deletes = 0
        self._evictions = self._expirations = 0
        self._started_wall = time.time()
        self._started = time.monotonic()

    # -- configuration ------------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: ParsedURL, options: Mapping[str, Any]) -> MemoryCache:
        """Build from ``memory://[name]?option=value``; ``options`` override the query string."""
        if url.hosts and url.path:
            raise ConfigurationError(
                f"memory:// takes at most a name (memory://NAME), got {url.raw!r}", key="url"
            )
        merged: dict[str, Any] = {**url.options, **options}
        if url.hosts and "name" not in merged:
            merged["name"] = url.hosts[0][0]
        return cls(**parse_options("memory://", merged, cls.options))

    # -- reads --------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        if type(key) is not str or not key:
            key = check_key(key)
        if next(self._ticker) & self._sample_mask:
            # Lock-free: a dict read is atomic, and the access is only logged (a C-level list
            # append); the logs are replayed into the policy and the counters, in order, under
            # the lock before the next write or stats read. See _drain_reads.
            entry = self._data.get(key)
            if entry is None:
                self._missed.append(key)
                return default
            if entry[1] is None or entry[1] > self._clock():
                self._reads.append(key)
                return entry[0] if self._loads is None else self._loads(entry[0])
            return self._locked_get(key, default, 0.0)
        return self._locked_get(key, default, time.perf_counter())

    def _locked_get(self, key: str, default: Any, t0: float) -> Any:
        """Expired entries and the sampled (timed) calls: served under the lock."""
        expired: _Entry | None = None
        with self._lock:
            self._drain_reads()
            entry = self._data.get(key)
            if entry is None:
                self._count_miss(key)
            elif entry[1] is None or entry[1] > self._clock():
                self._hits += 1
                self._on_hit(key)
            else:
                expired = self._pop_expired(key)
                entry = None
                self._count_miss(key)
            if t0:
                self._sampler.observe(time.perf_counter() - t0)
        if entry is None:
            if expired is not None and self._listener is not None:
                self._notify([(key, expired[0], RemovalCause.EXPIRED)])
            return default
        return entry[0] if self._loads is None else self._loads(entry[0])

    def _count_miss(self, key: str) -> None:
        self._misses += 1
        if self._on_miss is not None:
            self._on_miss(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = [k if type(k) is str and k else check_key(k) for k in keys]
        found: dict[str, Any] = {}
        removed: list[tuple[str, Any, RemovalCause]] = []
        with self._lock:
            self._drain_reads()
            now = self._clock()
            data = self._data
            for key in keys:
                entry = data.get(key)
                if entry is not None and (entry[1] is None or entry[1] > now):
                    self._hits += 1
                    self._on_hit(key)
                    found[key] = entry[0]
                    continue
                if entry is not None:
                    removed.append((key, self._pop_expired(key)[0], RemovalCause.EXPIRED))
                self._count_miss(key)
        if self._loads is not None:
            loads = self._loads
            found = {key: loads(value) for key, value in found.items()}
        self._notify(removed)
        return found

    def _peek(self, key: str) -> Any:
        """A live value or MISSING, without counting a lookup or touching the policy."""
        entry = self._data.get(key)
        if entry is None or (entry[1] is not None and entry[1] <= self._clock()):
            return MISSING
        return entry[0] if self._loads is None else self._loads(entry[0])

    def exists(self, key: str) -> bool:
        """Whether ``key`` is live; not counted as a hit or a miss, not an access for the policy."""
        key = check_key(key)
        with self._lock:
            entry = self._data.get(key)
            return entry is not None and (entry[1] is None or entry[1] > self._clock())

    def ttl(self, key: str) -> float | None:
        key = check_key(key)
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return 0.0
            if entry[1] is None:
                return None
            return max(entry[1] - self._clock(), 0.0)

    # -- writes -------------------------------------------------------------------------------

    def set(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> None:
        if type(key) is not str or not key:
            key = check_key(key)
        seconds = self.default_ttl if ttl is DEFAULT else to_seconds(ttl)
        if self._dumps is not None:
            value = self._dumps(value)
        if tags or not self._plain or (seconds is not None and seconds <= 0):
            self._set_general(key, value, seconds, tags)
            return
        # The common write (no sizing, no tags anywhere), inlined: _store does the same for the
        # general case. Most of a write's cost is interpreter dispatch, hence the flat code.
        removed: list[tuple[str, Any, RemovalCause]] | None = None
        data = self._data
        with self._lock:
            if self._reads or self._missed:
                self._drain_reads()
            if seconds is None:
                expires_at = None
            else:
                expires_at = self._clock() + seconds
                heappush(self._expiry_heap, (expires_at, key))
            if key in data:
                data[key] = (value, expires_at, 0)
                if self._update_is_hit:
                    self._on_hit(key)
                else:
                    self._on_update(key, expires_at)
            else:
                data[key] = (value, expires_at, 0)
                self._on_insert(key, expires_at)
            self._sets += 1
            heap = self._expiry_heap
            if heap and heap[0][0] <= self._clock():
                removed = self._sweep([])
            if len(data) > self._entry_limit:
                removed = self._evict(removed)
        if removed:
            self._notify(removed)

    def _set_general(
        self, key: str, value: Any, seconds: float | None, tags: Iterable[str]
    ) -> None:
        size = self._sizer(key, value) if self._sizer is not None else 0
        if size > self._memory_limit:
            raise self._too_large(key, size)
        with self._lock:
            self._drain_reads()
            if seconds is None:
                expires_at = None
            elif seconds > 0:
                expires_at = self._clock() + seconds
            else:
                self._discard(key)
                return
            removed = self._store(key, value, expires_at, size, frozenset(tags) if tags else None)
        self._notify(removed)

    def add(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> bool:
        key = check_key(key)
        seconds = self.default_ttl if ttl is DEFAULT else to_seconds(ttl)
        tagset = frozenset(tags) if tags else None
        if self._dumps is not None:
            value = self._dumps(value)
        size = self._sizer(key, value) if self._sizer is not None else 0
        if size > self._memory_limit:
            raise self._too_large(key, size)
        with self._lock:
            self._drain_reads()
            now = self._clock()
            entry = self._data.get(key)
            if entry is not None and (entry[1] is None or entry[1] > now):
                return False
            if seconds is not None and seconds <= 0:
                self._discard(key)
                return True
            expires_at = None if seconds is None else now + seconds
            removed = self._store(key, value, expires_at, size, tagset)
        self._notify(removed)
        return True

    def set_many(
        self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> list[str]:
        seconds = self.default_ttl if ttl is DEFAULT else to_seconds(ttl)
        tagset = frozenset(tags) if tags else None
        dumps, sizer, limit = self._dumps, self._sizer, self._memory_limit
        prepared: list[tuple[str, Any, int]] = []
        for raw_key, value in mapping.items():
            key = check_key(raw_key)
            stored = dumps(value) if dumps is not None else value
            size = sizer(key, stored) if sizer is not None else 0
            if size > limit:
                raise self._too_large(key, size)
            prepared.append((key, stored, size))
        removed: list[tuple[str, Any, RemovalCause]] = []
        with self._lock:
            self._drain_reads()
            now = self._clock()
            for key, stored, size in prepared:
                if seconds is not None and seconds <= 0:
                    self._discard(key)
                    continue
                expires_at = None if seconds is None else now + seconds
                removed.extend(self._store(key, stored, expires_at, size, tagset) or ())
        self._notify(removed)
        return []

    def touch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        key = check_key(key)
        seconds = self.default_ttl if ttl is DEFAULT else to_seconds(ttl)
        with self._lock:
            self._drain_reads()
            now = self._clock()
            entry = self._data.get(key)
            if entry is None or (entry[1] is not None and entry[1] <= now):
                return False
            if seconds is not None and seconds <= 0:
                self._discard(key)
                return True
            expires_at = None if seconds is None else now + seconds
            self._data[key] = (entry[0], expires_at, entry[2])
            self._refresh(key, expires_at)
            if expires_at is not None:
                heapq.heappush(self._expiry_heap, (expires_at, key))
            return True

    def incr(self, key: str, delta: int = 1) -> int:
        key = check_key(key)
        if type(delta) is not int:
            raise NotAnInteger(f"delta must be an int, got {delta!r}")
        dumps, loads = self._dumps, self._loads
        with self._lock:
            self._drain_reads()
            now = self._clock()
            entry = self._data.get(key)
            if entry is None or (entry[1] is not None and entry[1] <= now):
                current, expires_at = (
                    0,
                    (None if self.default_ttl is None else now + self.default_ttl),
                )
            else:
                current = loads(entry[0]) if loads is not None else entry[0]
                expires_at = entry[1]
                if type(current) is not int:
                    raise NotAnInteger(f"value of {key!r} is {type(current).__name__}, not int")
            result = current + delta
            stored = dumps(result) if dumps is not None else result
            tags = self._key_tags.get(key)
            size = self._sizer(key, stored) if self._sizer is not None else 0
            removed = self._store(key, stored, expires_at, size, tags)
        self._notify(removed)
        return result

    # -- removal ------------------------------------------------------------------------------

    def delete(self, key: str) -> bool:
        key = check_key(key)
        with self._lock:
            self._drain_reads()
            entry = self._data.get(key)
            if entry is None:
                return False
            if entry[1] is not None and entry[1] <= self._clock():
                self._pop_expired(key)
                return False
            self._discard(key)
            self._deletes += 1
            return True

    def delete_many(self, keys: Iterable[str]) -> int:
        keys = [check_key(k) for k in keys]
        count = 0
        with self._lock:
            self._drain_reads()
            now = self._clock()
            for key in keys:
                entry = self._data.get(key)
                if entry is None:
                    continue
                if entry[1] is None or entry[1] > now:
                    count += 1
                self._discard(key)
            self._deletes += count
        return count

    def delete_pattern(self, pattern: str) -> int:
        if not isinstance(pattern, str) or not pattern:
            raise InvalidKey(f"pattern must be a non-empty str, got {pattern!r}")
        match = re.compile(fnmatch.translate(pattern)).match
        with self._lock:
            doomed = [key for key in self._data if match(key)]
        return self.delete_many(doomed)

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        if isinstance(tags, str):
            raise TypeError("invalidate_tags takes an iterable of tags, not a single str")
        with self._lock:
            doomed: set[str] = set()
            for tag in tags:
                doomed |= self._tag_keys.get(tag, set())
        return self.delete_many(doomed)

    def clear(self) -> None:
        with self._lock:
            self._drain_reads()
            self._data.clear()
            self._policy.clear()
            self._expiry_heap.clear()
            self._key_tags.clear()
            self._tag_keys.clear()
            self._memory = 0
            self._refresh_plain()

    # -- introspection ------------------------------------------------------------------------

    def get_stats(self) -> CacheStats:
        with self._lock:
            self._drain_reads()
            sampler = self._sampler
            return CacheStats(
                name=self.name,
                provider=self.provider_name,
                items=len(self._data),
                hits=self._hits,
                misses=self._misses,
                sets=self._sets,
                deletes=self._deletes,
                evictions=self._evictions,
                expirations=self._expirations,
                memory_bytes=self._memory if self._sizer is not None else self._estimate_memory(),
                memory_limit=self.max_memory_bytes,
                max_entries=self.max_entries,
                avg_get_seconds=sampler.average,
                started_at=self._started_wall,
                uptime=time.monotonic() - self._started,
                policy=self._policy.name,
                get_latency_buckets=sampler.buckets(),
                get_latency_sum=sampler.sum,
                get_latency_count=sampler.count,
            )

    def _estimate_memory(self) -> int:
        """Shallow size of up to the first 1024 entries, scaled to the entry count."""
        data = self._data
        if not data:
            return 0
        sample = list(itertools.islice(data.items(), _MEMORY_SAMPLE))
        total = sum(shallow_sizer(key, entry[0]) for key, entry in sample)
        return total * len(data) // len(sample)

    def reset_stats(self) -> None:
        """Zero the counters (not the data); ``started_at`` restarts too."""
        with self._lock:
            self._drain_reads()
            self._reset_counters()
            self._sampler.reset()

    def keys(self) -> list[str]:
        """A snapshot of the live keys (expired ones are skipped, not removed)."""
        with self._lock:
            now = self._clock()
            return [k for k, e in self._data.items() if e[1] is None or e[1] > now]

    def __len__(self) -> int:
        """Entries held, including expired ones not yet swept (see :meth:`keys`)."""
        return len(self._data)

    @property
    def policy(self) -> EvictionPolicy:
        return self._policy

    # -- internals (lock held) ------------------------------------------------------------------

    def _too_large(self, key: str, size: int) -> ValueTooLarge:
        return ValueTooLarge(
            f"value for {key!r} accounts {size} bytes, over max_memory_bytes="
            f"{self.max_memory_bytes}"
        )

    def _drain_reads(self) -> None:
        """Replay the lock-free hit and miss logs into the counters and the policy.

        Slicing and then deleting the prefix (rather than swapping in a new list) cannot lose
        an append made concurrently by a lock-free reader. Hits on keys removed since their
        read are counted but not replayed. Misses are replayed before hits; the policies that
        use misses (frequency sketches) are insensitive to that order within one batch.
        """
        missed = self._missed
        if missed:
            n = len(missed)
            self._misses += n
            if self._on_miss is not None:
                _consume(map(self._on_miss, missed[:n]), 0)
            del missed[:n]
        reads = self._reads
        if reads:
            n = len(reads)
            self._hits += n
            _consume(map(self._on_hit, filter(self._data.__contains__, reads[:n])), 0)
            del reads[:n]

    def _store(
        self,
        key: str,
        value: Any,
        expires_at: float | None,
        size: int,
        tags: frozenset[str] | None,
    ) -> list[tuple[str, Any, RemovalCause]] | None:
        """Insert or replace an entry, then sweep and evict; returns what left, if anything.

        This is most of the cost of a write, so it reads each attribute once and allocates
        nothing unless something is swept, evicted or tagged.
        """
        data = self._data
        old = data.get(key)
        data[key] = (value, expires_at, size)
        self._sets += 1
        if old is None:
            self._memory += size
            self._on_insert(key, expires_at)
        else:
            self._memory += size - old[2]
            self._refresh(key, expires_at)
        if tags or self._key_tags:
            self._untag(key)
            if tags:
                self._tag(key, tags)
        removed: list[tuple[str, Any, RemovalCause]] | None = None
        heap = self._expiry_heap
        if expires_at is not None:
            heapq.heappush(heap, (expires_at, key))
        if heap and heap[0][0] <= self._clock():
            removed = self._sweep([])
        if len(data) > self._entry_limit or self._memory > self._memory_limit:
            removed = self._evict(removed)
        return removed

    def _evict(
        self, removed: list[tuple[str, Any, RemovalCause]] | None
    ) -> list[tuple[str, Any, RemovalCause]] | None:
        data, evict, pop = self._data, self._policy.evict, self._data.pop
        entry_limit, memory_limit = self._entry_limit, self._memory_limit
        listening = self._listener is not None
        while len(data) > entry_limit or self._memory > memory_limit:
            victim = evict()
            entry = pop(victim)
            self._memory -= entry[2]
            self._evictions += 1
            if self._key_tags:
                self._untag(victim)
            if listening:
                if removed is None:
                    removed = []
                removed.append((victim, entry[0], RemovalCause.EVICTED))
        return removed

    def _sweep(
        self, removed: list[tuple[str, Any, RemovalCause]]
    ) -> list[tuple[str, Any, RemovalCause]]:
        heap, data = self._expiry_heap, self._data
        now = self._clock()
        for _ in range(_SWEEP_BATCH):
            if not heap or heap[0][0] > now:
                break
            expires_at, key = heapq.heappop(heap)
            entry = data.get(key)
            if entry is not None and entry[1] == expires_at:
                removed.append((key, self._pop_expired(key)[0], RemovalCause.EXPIRED))
        if len(heap) > _HEAP_SLACK_FACTOR * len(data) + _HEAP_SLACK:
            self._expiry_heap = [(e[1], k) for k, e in data.items() if e[1] is not None]
            heapq.heapify(self._expiry_heap)
        return removed

    def _pop_expired(self, key: str) -> _Entry:
        entry = self._data.pop(key)
        self._memory -= entry[2]
        self._expirations += 1
        self._policy.on_remove(key)
        if self._key_tags:
            self._untag(key)
        return entry

    def _discard(self, key: str) -> None:
        entry = self._data.pop(key, None)
        if entry is not None:
            self._memory -= entry[2]
            self._policy.on_remove(key)
            if self._key_tags:
                self._untag(key)

    def _refresh(self, key: str, expires_at: float | None) -> None:
        if self._update_is_hit:
            self._on_hit(key)
        else:
            self._on_update(key, expires_at)

    def _refresh_plain(self) -> None:
        """Whether writes may take the inlined path: no sizing and no tagged key to untag."""
        self._plain = self._sizer is None and not self._key_tags

    def _tag(self, key: str, tags: frozenset[str]) -> None:
        self._plain = False
        self._key_tags[key] = tags
        for tag in tags:
            members = self._tag_keys.get(tag)
            if members is None:
                self._tag_keys[tag] = {key}
            else:
                members.add(key)

    def _untag(self, key: str) -> None:
        tags = self._key_tags.pop(key, None)
        if tags:
            for tag in tags:
                members = self._tag_keys[tag]
                members.discard(key)
                if not members:
                    del self._tag_keys[tag]
            if not self._key_tags:
                self._refresh_plain()

    def _notify(self, removed: Iterable[tuple[str, Any, RemovalCause]] | None) -> None:
        listener = self._listener
        if listener is None or not removed:
            return
        for key, value, cause in removed:
            try:
                listener(key, value, cause)
            except Exception:
                log.exception("eviction listener of cache %r raised for key %r", self.name, key)
