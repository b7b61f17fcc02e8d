"""The embedded in-memory provider: the default cache, and the L1 of the near cache.

Design, in the order the hot path meets it:

* One ``dict`` of ``key -> (value, expires_at, size)`` tuples and one non-reentrant lock,
  which a thread never sleeps on while it may be the GIL's next holder: a busy lock is retried
  after yielding the GIL (:func:`_acquire`). Sleeping on it forms a lock convoy on a multi-core
  machine - the woken waiter owns the lock while it waits for the GIL, so the thread holding
  the GIL blocks at its next write, and so on: every write then costs two context switches
  (bench/throughput.py, 4 threads on 2 CPUs: ~0.3 switches per operation, 4x the CPU time).
  Tuples are immutable, so a reader never sees a half-written entry and a write is one dict
  store. Recency/frequency bookkeeping belongs to the :mod:`eviction policy
  <cachekit.policies>`, whose hooks are bound once and called under the lock.
* Reads take no lock. A hit is a dict read (atomic) plus a C-level append of the key to a read
  log; a miss appends to a miss log. The logs are replayed into the policy and the hit/miss
  counters under the lock at the start of every write, stats read and sampled ``get``, so the
  policy sees each access before any later write and eviction acts on it (hits are replayed in
  the order they happened; a batch's misses, which only frequency sketches use, before its
  hits). Under a lock per read, threads queue for every lookup; here only writers do. A policy
  whose hit hook is one GIL-atomic C call (LRU's ``move_to_end``) has it applied by the read
  itself instead, and its read log only counts: a replay costs more than the hook.
* TTLs use an injectable monotonic clock, read only for entries that have an expiry. Expiry is
  lazy on access, plus amortised sweeping: TTL'd entries are pushed on a min-heap of
  ``(expires_at, key)`` and each write pops up to :data:`_SWEEP_BATCH` expired heads (a
  ``get_stats()``, all of them), so an expired entry nobody reads again does not hold memory.
  Stale heap nodes (keys rewritten or deleted since) are skipped when popped, and the heap is
  rebuilt whenever they make it more than twice the size of the cache.
* Bounds: ``max_entries`` and/or ``max_memory_bytes`` (accounted per entry with a
  :mod:`sizer <cachekit.sizing>`). A write inserts first, then evicts the policy's victims until
  the cache is within its bounds. A value that alone exceeds ``max_memory_bytes`` raises
  :class:`~cachekit.errors.ValueTooLarge` (``set_many`` returns its key), and the write's
  previous value goes, as memcached drops it: a refused write leaves no stale value (an ``add``
  over a live key, which would not have written, leaves it). Bounded by default:
  :data:`DEFAULT_MAX_ENTRIES` entries unless a bound is given; ``max_entries=None`` with no
  memory bound is the explicit way to ask for an unbounded cache.
* Values are stored by reference (like ``cachetools`` and ``functools.lru_cache``), so a hit
  costs no copy; a ``serializer`` stores encoded bytes instead, which gives every reader an
  independent copy (as Django's ``LocMemCache`` does).
* ``get`` latency is timed on one call in ``stats_sample_every``; those calls take the locked
  path, so the figure includes waiting for the lock, but not the replay of the lock-free logs
  they do first (the other calls' policy work).
* Listeners run after the lock is released; their exceptions are logged, never raised.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
import sys
import threading
import time
from collections import deque as _consume
from collections.abc import Callable, Iterable, Mapping
from heapq import heappush
from time import sleep as _yield_gil
from typing import Any, ClassVar, TypeAlias

from ..config import (
    Option,
    ParsedURL,
    choice_option,
    int_option,
    named_options,
    object_option,
    parse_options,
    seconds_option,
    size_option,
    text_option,
)
from ..entry import EntryInfo, describe_payload
from ..errors import ConfigurationError, InvalidArgument, NotAnInteger, ValueTooLarge
from ..glob import compile_glob
from ..interfaces import DistributedCache, check_encodable, check_key, check_tags
from ..keyscan import check_scan_args, sorted_page
from ..metrics.latency import LatencySampler
from ..policies.base import EvictionPolicy
from ..registry import policy_registry, serializer_registry
from ..sentinels import DEFAULT, MISSING, DefaultType
from ..sizing import SIZERS, Sizer, shallow_sizer
from ..stats import CacheStats
from ..tagindex import TagIndex
from ..ttl import TTL, TTLArg, check_default_ttl, to_seconds

__all__ = ["DEFAULT_MAX_ENTRIES", "EvictionListener", "MemoryCache", "RemovalCause"]

log = logging.getLogger(__name__)

#: Entry bound of a cache given neither ``max_entries`` nor ``max_memory_bytes``.
DEFAULT_MAX_ENTRIES = 10_000
#: The expiry heap is rebuilt when it holds more than twice the entries plus this slack.
_HEAP_SLACK = 1024
#: Most expired entries one write sweeps, so a write's worst case stays bounded.
_SWEEP_BATCH = 32
#: Most expired entries one ``get_stats()`` sweeps (a bound on how long a scrape holds the lock).
_STATS_SWEEP = 1 << 20
#: Entries sized to estimate the memory of a cache that does not account it per entry.
_MEMORY_SAMPLE = 1024
#: Largest ``stats_sample_every``: sampled gets also drain the lock-free logs, so this bounds
#: how long the logs grow during a read-only phase.
_MAX_SAMPLE_EVERY = 1024
#: GIL-yielding retries of a busy lock before sleeping on it; measured contention clears in
#: under 10, the bound only stops a long holder (clear(), delete_pattern()) being polled.
_SPIN_TRIES = 100
#: Whether this interpreter has a GIL (3.13+ may run without): direct hits depend on it.
_GIL: bool = getattr(sys, "_is_gil_enabled", lambda: True)()

_Entry: TypeAlias = tuple[Any, float | None, int]


class RemovalCause(enum.Enum):
    """Why an entry left the cache without being deleted."""

    EVICTED = "evicted"
    EXPIRED = "expired"


#: ``listener(key, value, cause)``; value is the stored value (encoded if a serializer is set).
EvictionListener: TypeAlias = Callable[[str, Any, RemovalCause], object]
_Removed: TypeAlias = list[tuple[str, Any, RemovalCause]]


def _acquire(lock: threading.Lock) -> None:
    """Take a busy ``lock`` by retrying after yielding the GIL (see the module docstring)."""
    for _ in range(_SPIN_TRIES):
        _yield_gil(0)
        if lock.acquire(False):
            return
    lock.acquire()


class _Lock:
    """A ``threading.Lock`` taken with :func:`_acquire`; hot paths inline ``__enter__``."""

    __slots__ = ("acquire", "lock", "release")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acquire = self.lock.acquire
        self.release = self.lock.release

    def __enter__(self) -> None:
        if not self.acquire(False):
            _acquire(self.lock)

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _sizer_option(value: Any) -> Sizer:
    if callable(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str) and value in SIZERS:
        return SIZERS[value]
    raise ConfigurationError(
        f"accepted values: {', '.join(SIZERS)} or a callable (key, value) -> bytes; got {value!r}",
        key="sizer",
    )


class MemoryCache(DistributedCache):
    """Thread-safe, bounded, in-process cache; see the module docstring for the design."""

    provider_name = "memory"

    __slots__ = (
        "_clock", "_data", "_deletes", "_dumps", "_entry_limit", "_evict_one", "_evictions",
        "_expirations", "_expiry_heap", "_hit_direct", "_hits", "_key_tags", "_listener", "_loads",
        "_lock", "_memory", "_memory_limit", "_missed", "_misses", "_on_hit", "_on_insert",
        "_on_miss", "_on_update", "_policy", "_reads", "_sample_mask", "_sampler", "_serializer",
        "_sets", "_sizer", "_started", "_started_wall", "_tags", "_ticker", "_update_is_hit",
        "default_ttl", "max_entries", "max_memory_bytes",
    )  # fmt: skip

    #: Options accepted in ``memory://?...`` URLs and config dicts.
    options: ClassVar[dict[str, Option]] = {
        "name": text_option("a name for stats and metrics"),
        "max_entries": int_option(minimum=1, allow_none=True),
        "max_memory_bytes": size_option(allow_none=True),
        "policy": choice_option(policy_registry.names),
        "default_ttl": seconds_option(),
        "serializer": choice_option(serializer_registry.names),
        "sizer": Option(_sizer_option, "a sizer name or a callable"),
        "stats_sample_every": int_option(minimum=1, maximum=_MAX_SAMPLE_EVERY),
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
        sizer: str | Sizer | DefaultType | None = DEFAULT,
        stats_sample_every: int = 64,
        eviction_listener: EvictionListener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name=name)
        if max_entries is DEFAULT:
            max_entries = DEFAULT_MAX_ENTRIES if max_memory_bytes is None else None
        _check_bound("max_entries", max_entries)
        _check_bound("max_memory_bytes", max_memory_bytes)
        self.max_entries: int | None = max_entries
        self.max_memory_bytes: int | None = max_memory_bytes
        # The bounds as plain ints, so the write path compares without None checks.
        self._entry_limit = sys.maxsize if max_entries is None else max_entries
        self._memory_limit = sys.maxsize if max_memory_bytes is None else max_memory_bytes
        self.default_ttl: float | None = check_default_ttl(default_ttl)
        self._policy = policy = _make_policy(policy, max_entries)
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
        elif sizer is None:
            if max_memory_bytes is not None:
                raise ConfigurationError(
                    "a memory bound needs a sizer to account entries; leave sizer unset",
                    key="sizer",
                )
            self._sizer = None
        else:
            self._sizer = _sizer_option(sizer) if isinstance(sizer, str) else sizer
        for option, value in (("eviction_listener", eviction_listener), ("clock", clock)):
            if value is not None and not callable(value):
                raise ConfigurationError(f"{option} must be callable, got {value!r}", key=option)
        if not 1 <= stats_sample_every <= _MAX_SAMPLE_EVERY:
            raise ConfigurationError(
                f"stats_sample_every must be a power of two from 1 to {_MAX_SAMPLE_EVERY}",
                key="stats_sample_every",
            )
        try:
            self._sampler = LatencySampler(sample_every=stats_sample_every)
        except ConfigurationError as exc:
            raise ConfigurationError(str(exc), key="stats_sample_every") from None
        self._listener = eviction_listener
        self._clock = clock
        self._lock = _Lock()
        self._data: dict[str, _Entry] = {}
        self._expiry_heap: list[tuple[float, str]] = []
        self._tags = TagIndex()
        self._key_tags = self._tags.key_tags  # its emptiness, tested without a Python call
        self._memory = 0
        # Bound once: the hot path calls these without attribute lookups on the policy.
        self._on_hit = policy.on_hit
        # Policies that ignore misses (LRU, TTL) keep the base no-op: skip calling it at all.
        self._on_miss = None if type(policy).on_miss is EvictionPolicy.on_miss else policy.on_miss
        self._on_insert = policy.on_insert
        self._evict_one = policy.evict
        self._hit_direct = policy.hit_is_atomic and _GIL
        self._on_update = policy.on_update
        self._update_is_hit = policy.update_is_access
        self._sample_mask = self._sampler.mask
        self._ticker = itertools.count(1)
        self._reads: list[str] = []
        self._missed: list[str] = []
        self._reset_counters()

    def _reset_counters(self) -> None:
        self._hits = self._misses = self._sets = self._deletes = 0
        self._evictions = self._expirations = 0
        self._started_wall = time.time()
        self._started = time.monotonic()

    @classmethod
    def from_url(cls, url: ParsedURL, options: Mapping[str, Any]) -> MemoryCache:
        """Build from ``memory://[NAME]?option=value``; ``options`` override the query string."""
        merged = named_options(url, options, example="memory://NAME?option=value")
        return cls(**parse_options("memory://", merged, cls.options))

    # -- reads ----------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        if type(key) is not str or not key:
            key = check_key(key)
        if next(self._ticker) & self._sample_mask:
            # Lock-free: see the module docstring.
            entry = self._data.get(key)
            if entry is None:
                if not key.isascii():  # on a miss only: an unencodable key is never stored
                    check_encodable(key)
                self._missed.append(key)
                return default
            if entry[1] is None or entry[1] > self._clock():
                if self._hit_direct:
                    # Not contextlib.suppress: two more Python calls per hit.
                    try:  # noqa: SIM105
                        self._on_hit(key)
                    except KeyError:  # removed since the lookup: nothing to reorder
                        pass
                self._reads.append(key)
                return entry[0] if self._loads is None else self._loads(entry[0])
            return self._locked_get(key, default, 0.0)
        return self._locked_get(key, default, time.perf_counter())

    def _locked_get(self, key: str, default: Any, t0: float) -> Any:
        """Expired entries and the sampled (timed) calls: served under the lock."""
        removed: _Removed = []
        with self._lock:
            if t0 and (self._reads or self._missed):
                # The replay is the logged calls' policy work, not this call's: left out of
                # its time (lfu/adaptive hooks made a sample read tens of times the mean).
                t1 = time.perf_counter()
                self._drain_logs()
                t0 += time.perf_counter() - t1
            else:
                self._drain_logs()
            entry = self._live(key, removed)
            if entry is None:
                if not key.isascii():  # see get
                    check_encodable(key)
                self._count_miss(key)
            else:
                self._hits += 1
                self._on_hit(key)
            if t0:
                self._sampler.observe(time.perf_counter() - t0)
        self._notify(removed)
        if entry is None:
            return default
        return entry[0] if self._loads is None else self._loads(entry[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = [k if type(k) is str and k and k.isascii() else check_key(k) for k in keys]
        found: dict[str, Any] = {}
        removed: _Removed = []
        with self._lock:
            self._drain_logs()
            for key in keys:
                entry = self._live(key, removed)
                if entry is None:
                    self._count_miss(key)
                else:
                    self._hits += 1
                    self._on_hit(key)
                    found[key] = entry[0]
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

    async def _apeek(self, key: str) -> Any:
        return self._peek(key)

    def exists(self, key: str) -> bool:
        """Whether ``key`` is live; not counted as a hit or a miss, not an access for the policy."""
        return self._peek(check_key(key)) is not MISSING

    def ttl(self, key: str) -> float | None:
        key = check_key(key)
        entry = self._data.get(key)
        if entry is None:
            return 0.0
        if entry[1] is None:
            return None
        return max(entry[1] - self._clock(), 0.0)

    def keys(self) -> list[str]:
        """A snapshot of the live keys (expired ones are skipped, not removed)."""
        with self._lock:
            now = self._clock()
            return [k for k, e in self._data.items() if e[1] is None or e[1] > now]

    def scan_keys(
        self, pattern: str = "*", *, cursor: str = "", count: int = 100
    ) -> tuple[str, list[str]]:
        check_scan_args(pattern, cursor, count)
        matches = compile_glob(pattern)
        return sorted_page([k for k in self.keys() if matches(k)], cursor, count)

    def inspect(self, key: str) -> EntryInfo | None:
        key = check_key(key)
        entry = self._data.get(key)
        if entry is None or (entry[1] is not None and entry[1] <= self._clock()):
            return None
        stored = entry[0]
        ttl = None if entry[1] is None else max(entry[1] - self._clock(), 0.0)
        if self._loads is not None and isinstance(stored, bytes):
            serializer, compression = describe_payload(stored)
            value_type = type(self._loads(stored)).__name__
            return EntryInfo(key, ttl, len(stored), serializer, compression, value_type)
        size = (self._sizer or shallow_sizer)(key, stored)
        return EntryInfo(key, ttl, size, None, None, type(stored).__name__)

    def __len__(self) -> int:
        """Entries held, including expired ones not yet swept (see :meth:`keys`)."""
        return len(self._data)

    @property
    def policy(self) -> EvictionPolicy:
        return self._policy

    # -- writes ---------------------------------------------------------------------------------

    def set(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> None:
        if type(key) is not str or not key or not key.isascii():  # a lone surrogate: refused
            key = check_key(key)
        if ttl is DEFAULT:
            seconds = self.default_ttl
        elif type(ttl) is int:  # the usual explicit TTL (Django passes one on every write)
            try:
                seconds = float(ttl)
            except OverflowError:  # 10**400: to_seconds says what it means or refuses it
                seconds = to_seconds(ttl)
        else:
            seconds = to_seconds(ttl)
        if self._dumps is not None:
            value = self._dumps(value)
        if tags or self._sizer is not None or (seconds is not None and seconds <= 0):
            self._set_general(key, value, seconds, check_tags(tags))
            return
        # The common write (no sizing, no tags), flattened: _store does the same for the
        # general case. Most of a write's cost is interpreter dispatch, hence no helper calls
        # and one clock read.
        removed: _Removed | None = None
        data = self._data
        lock = self._lock
        if not lock.acquire(False):
            _acquire(lock.lock)
        try:
            if self._reads or self._missed:
                self._drain_logs()
            old = data.get(key)
            heap = self._expiry_heap
            if seconds is None:
                expires_at = None
                now = self._clock() if heap or (old is not None and old[1] is not None) else 0.0
            else:
                now = self._clock()
                expires_at = now + seconds
                if old is None or old[1] is None or expires_at < old[1]:  # see _sweep
                    heappush(heap, (expires_at, key))
            if old is not None and old[1] is not None and old[1] <= now:
                removed = [(key, self._pop_expired(key)[0], RemovalCause.EXPIRED)]
                old = None
            data[key] = (value, expires_at, 0)
            if len(heap) > 2 * len(data) + _HEAP_SLACK:  # after the write: it keeps its node
                self._compact_heap()
                heap = self._expiry_heap
            if old is None:
                self._on_insert(key, expires_at)
            elif self._update_is_hit:
                self._on_hit(key)
            else:
                self._on_update(key, expires_at)
            self._sets += 1
            if self._key_tags:
                self._tags.untag(key)
            if heap and heap[0][0] <= now:
                removed = self._sweep(removed)
            if len(data) > self._entry_limit:
                if removed is None and self._listener is None and not self._key_tags:
                    # The steady state of a full cache: one victim, nothing to report or untag.
                    del data[self._evict_one()]
                    self._evictions += 1
                else:
                    removed = self._evict(removed)
        finally:
            lock.release()
        if removed:
            self._notify(removed)

    def _set_general(
        self, key: str, value: Any, seconds: float | None, tags: frozenset[str] | None
    ) -> None:
        if seconds is not None and seconds <= 0:
            self._remove_unstored((key,))
            return
        try:
            size = self._size(key, value)
        except ValueTooLarge:
            self._refuse((key,))
            raise
        with self._lock:
            self._drain_logs()
            expires_at = None if seconds is None else self._clock() + seconds
            removed = self._store(key, value, expires_at, size, tags)
        self._notify(removed)

    def add(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> bool:
        return self._store_if(False, key, value, ttl, tags)

    def replace(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        return self._store_if(True, key, value, ttl, tags)

    def _store_if(
        self, present: bool, key: str, value: Any, ttl: TTLArg, tags: Iterable[str]
    ) -> bool:
        """``add`` (``present=False``) or ``replace``: store if the key's liveness is
        ``present``, under the lock; whether it was. A non-positive TTL stores nothing (and
        removes a replaced key)."""
        key = check_key(key)
        seconds = self.default_ttl if ttl is DEFAULT else to_seconds(ttl)
        tagset = check_tags(tags)
        if self._dumps is not None:
            value = self._dumps(value)
        if seconds is not None and seconds <= 0:
            size = 0  # stores nothing: nothing to refuse
        else:
            try:
                size = self._size(key, value)
            except ValueTooLarge:
                if present:  # the replace would have written; an add over a live key would not
                    self._refuse((key,))
                raise
        removed: _Removed = []
        with self._lock:
            self._drain_logs()
            if (self._live(key, removed) is not None) != present:
                done = False
            elif seconds is not None and seconds <= 0:
                done = not present or self._delete_live([key], removed) == 1
            else:
                done = True
                expires_at = None if seconds is None else self._clock() + seconds
                removed.extend(self._store(key, value, expires_at, size, tagset) or ())
        self._notify(removed)
        return done

    def set_many(
        self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> list[str]:
        """Store every item; values over the memory bound are skipped, their keys returned and
        their previous values dropped."""
        seconds = self.default_ttl if ttl is DEFAULT else to_seconds(ttl)
        tagset = check_tags(tags)
        dumps, sizer, limit = self._dumps, self._sizer, self._memory_limit
        if seconds is not None and seconds <= 0:
            sizer = None  # stores nothing: nothing to refuse
        prepared: list[tuple[str, Any, int]] = []
        failed: list[str] = []
        for raw_key, value in mapping.items():
            key = check_key(raw_key)
            stored = dumps(value) if dumps is not None else value
            size = sizer(key, stored) if sizer is not None else 0
            if size > limit:
                failed.append(key)
            else:
                prepared.append((key, stored, size))
        if seconds is not None and seconds <= 0:
            self._remove_unstored([key for key, _, _ in prepared])
            return []
        removed: _Removed = []
        with self._lock:
            self._drain_logs()
            now = self._clock()
            for key, stored, size in prepared:
                expires_at = None if seconds is None else now + seconds
                removed.extend(self._store(key, stored, expires_at, size, tagset) or ())
            if failed:  # in the same hold: no reader sees a refused key's older value after
                self._delete_live(failed, removed)
        self._notify(removed)
        return failed

    def touch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        key = check_key(key)
        seconds = self.default_ttl if ttl is DEFAULT else to_seconds(ttl)
        removed: _Removed = []
        with self._lock:
            self._drain_logs()
            entry = self._live(key, removed)
            if entry is not None:
                if seconds is not None and seconds <= 0:
                    self._discard(key)
                else:
                    expires_at = None if seconds is None else self._clock() + seconds
                    self._data[key] = (entry[0], expires_at, entry[2])
                    self._refresh(key, expires_at)
                    if expires_at is not None and (entry[1] is None or expires_at < entry[1]):
                        self._push_expiry(expires_at, key)  # a later expiry: see _sweep
        self._notify(removed)
        return entry is not None

    def incr(self, key: str, delta: int = 1) -> int:
        key = check_key(key)
        if type(delta) is not int:
            raise NotAnInteger(f"delta must be an int, got {delta!r}")
        dumps, loads = self._dumps, self._loads
        removed: _Removed = []
        try:
            with self._lock:
                self._drain_logs()
                entry = self._live(key, removed)
                if entry is None:
                    current, tags = 0, None
                    expires_at = (
                        None if self.default_ttl is None else self._clock() + self.default_ttl
                    )
                else:
                    current = loads(entry[0]) if loads is not None else entry[0]
                    if type(current) is not int:
                        raise NotAnInteger(f"value of {key!r} is {type(current).__name__}, not int")
                    expires_at, tags = entry[1], self._tags.tags_of(key)
                result = current + delta
                stored = dumps(result) if dumps is not None else result
                try:
                    size = self._size(key, stored)
                except ValueTooLarge:
                    if entry is not None:  # the counter it would have replaced goes too
                        self._discard(key)
                        self._deletes += 1
                    raise
                removed.extend(self._store(key, stored, expires_at, size, tags) or ())
                self._sets -= 1  # _store counted one: a counter step is no set (any provider)
        finally:
            self._notify(removed)  # an expiry found on the way is reported even if refused
        return result

    # -- removal --------------------------------------------------------------------------------

    def delete(self, key: str) -> bool:
        return self.delete_many((key,)) == 1

    def delete_many(self, keys: Iterable[str]) -> int:
        keys = [check_key(k) for k in keys]
        removed: _Removed = []
        with self._lock:
            self._drain_logs()
            count = self._delete_live(keys, removed)
        self._notify(removed)
        return count

    def delete_pattern(self, pattern: str) -> int:
        matches = compile_glob(pattern)
        removed: _Removed = []
        with self._lock:
            self._drain_logs()
            count = self._delete_live([k for k in self._data if matches(k)], removed)
        self._notify(removed)
        return count

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        tagset = check_tags(tags)
        if tagset is None:
            return 0
        removed: _Removed = []
        with self._lock:
            self._drain_logs()
            count = self._delete_live(self._tags.keys_for(tagset), removed)
        self._notify(removed)
        return count

    def tagged_keys(self, tags: Iterable[str]) -> list[str]:
        tagset = check_tags(tags)
        if tagset is None:
            return []
        data = self._data
        with self._lock:
            now = self._clock()
            return sorted(
                key
                for key in self._tags.keys_for(tagset)
                if (entry := data.get(key)) is not None and (entry[1] is None or entry[1] > now)
            )

    def tags_of(self, key: str) -> frozenset[str]:
        """The tags ``key`` was stored with (empty when it has none or is not live)."""
        key = check_key(key)
        with self._lock:
            if self._peek(key) is MISSING:
                return frozenset()
            return self._tags.tags_of(key) or frozenset()

    def _after_fork(self) -> None:
        """The entries stay (a forked child starts with its parent's cache, as with any
        in-process memory); the lock, which another thread may have held, is replaced."""
        super()._after_fork()
        self._lock = _Lock()

    def clear(self) -> None:
        with self._lock:
            self._drain_logs()
            self._data.clear()
            self._policy.clear()
            self._expiry_heap.clear()
            self._tags.clear()
            self._memory = 0

    # -- introspection --------------------------------------------------------------------------

    def get_stats(self) -> CacheStats:
        with self._lock:
            self._drain_logs()
            # Expired entries still held (reads skip them; writes sweep 32 at a time) are no
            # items: sweep them now, so ``items`` and ``expirations`` are true at a scrape
            # even after writes stopped.
            removed = self._sweep(None, _STATS_SWEEP)
            sampler = self._sampler
            stats = CacheStats(
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
        self._notify(removed)
        return stats

    def reset_stats(self) -> None:
        """Zero the counters (not the data); ``started_at`` restarts too."""
        with self._lock:
            self._drain_logs()
            self._reset_counters()
            self._sampler.reset()

    # -- internals (lock held) ------------------------------------------------------------------

    def _drain_logs(self) -> None:
        """Replay the lock-free miss and hit logs into the policy, then count them.

        Slicing and then deleting the prefix (rather than swapping in a new list) cannot lose
        an append made concurrently by a lock-free reader. Hits on keys removed since their
        read are counted but not replayed. The prefix is dropped even if a policy hook raises,
        so a broken hook cannot make every later write replay (and count) the same batch.
        """
        missed, reads = self._missed, self._reads
        if missed:
            n = len(missed)
            try:
                if self._on_miss is not None:
                    _consume(map(self._on_miss, missed[:n]), 0)
            finally:
                del missed[:n]
                self._misses += n
        if reads:
            n = len(reads)
            try:
                if not self._hit_direct:
                    _consume(map(self._on_hit, filter(self._data.__contains__, reads[:n])), 0)
            finally:
                del reads[:n]
                self._hits += n

    def _count_miss(self, key: str) -> None:
        self._misses += 1
        if self._on_miss is not None:
            self._on_miss(key)

    def _live(self, key: str, removed: _Removed) -> _Entry | None:
        """The live entry of ``key``; an expired one is removed here (counted, reported)."""
        entry = self._data.get(key)
        if entry is not None and entry[1] is not None and entry[1] <= self._clock():
            removed.append((key, self._pop_expired(key)[0], RemovalCause.EXPIRED))
            return None
        return entry

    def _delete_live(self, keys: Iterable[str], removed: _Removed) -> int:
        count = 0
        for key in keys:
            if self._live(key, removed) is not None:
                self._discard(key)
                count += 1
        self._deletes += count
        return count

    def _refuse(self, keys: Iterable[str]) -> None:
        """Drop the live values of ``keys``, whose write was refused as too large: a refused
        write leaves no older value readable (memcached drops the value it refuses). Counted
        as deletes, as the memcached provider's ``set_many`` counts the ones it refuses; an
        expired entry found is counted and reported as expired."""
        removed: _Removed = []
        with self._lock:
            self._drain_logs()
            self._delete_live(keys, removed)
        self._notify(removed)

    def _remove_unstored(self, keys: Iterable[str]) -> None:
        """A write with a non-positive TTL: it stores nothing and removes ``keys`` (uncounted,
        as before; an expired entry found is counted and reported as expired)."""
        removed: _Removed = []
        with self._lock:
            self._drain_logs()
            for key in keys:
                if self._live(key, removed) is not None:
                    self._discard(key)
        self._notify(removed)

    def _size(self, key: str, value: Any) -> int:
        if self._sizer is None:
            return 0
        size = self._sizer(key, value)
        if size > self._memory_limit:
            raise ValueTooLarge(
                f"value for {key!r} accounts {size} bytes, over max_memory_bytes="
                f"{self.max_memory_bytes}"
            )
        return size

    def _store(
        self,
        key: str,
        value: Any,
        expires_at: float | None,
        size: int,
        tags: frozenset[str] | None,
    ) -> _Removed | None:
        """Insert or replace an entry, then sweep and evict; returns what left, if anything."""
        removed: _Removed | None = None
        data = self._data
        old = data.get(key)
        if old is not None and old[1] is not None and old[1] <= self._clock():
            removed = [(key, self._pop_expired(key)[0], RemovalCause.EXPIRED)]
            old = None
        data[key] = (value, expires_at, size)
        self._sets += 1
        if old is None:
            self._memory += size
            self._on_insert(key, expires_at)
        else:
            self._memory += size - old[2]
            self._refresh(key, expires_at)
        if tags:
            self._tags.tag(key, tags)
        elif self._key_tags:
            self._tags.untag(key)
        if expires_at is not None and (old is None or old[1] is None or expires_at < old[1]):
            self._push_expiry(expires_at, key)  # a later expiry than the old: see _sweep
        heap = self._expiry_heap
        if heap and heap[0][0] <= self._clock():
            removed = self._sweep(removed)
        if len(data) > self._entry_limit or self._memory > self._memory_limit:
            removed = self._evict(removed)
        return removed

    def _refresh(self, key: str, expires_at: float | None) -> None:
        if self._update_is_hit:
            self._on_hit(key)
        else:
            self._on_update(key, expires_at)

    def _push_expiry(self, expires_at: float, key: str) -> None:
        heap = self._expiry_heap
        heappush(heap, (expires_at, key))
        if len(heap) > 2 * len(self._data) + _HEAP_SLACK:
            self._compact_heap()

    def _compact_heap(self) -> None:
        """Mostly stale nodes of rewritten keys: rebuild from the live expiries, O(n) once per
        n pushes at least, so amortised O(1)."""
        self._expiry_heap = [(e[1], k) for k, e in self._data.items() if e[1] is not None]
        heapq.heapify(self._expiry_heap)

    def _evict(self, removed: _Removed | None, count: int | None = None) -> _Removed | None:
        """Evict what the policy chooses: down to the bounds, or ``count`` entries."""
        data, evict, pop = self._data, self._policy.evict, self._data.pop
        entry_limit, memory_limit = self._entry_limit, self._memory_limit
        listening = self._listener is not None
        while (
            len(data) > entry_limit or self._memory > memory_limit
            if count is None
            else count > 0 and data
        ):
            if count is not None:
                count -= 1
            victim = evict()
            entry = pop(victim)
            self._memory -= entry[2]
            self._evictions += 1
            if self._key_tags:
                self._tags.untag(victim)
            if listening:
                if removed is None:
                    removed = []
                removed.append((victim, entry[0], RemovalCause.EVICTED))
        return removed

    def evict(self, count: int) -> int:
        """Evict ``count`` entries (fewer if it holds fewer), those the eviction policy would
        evict next: counted as evictions and reported to the listener as ``EVICTED``. Used for
        ``LocMemCache``-style culling (a share of the entries at once); returns how many went."""
        if type(count) is not int or count < 0:
            raise InvalidArgument(f"count must be an int >= 0, got {count!r}")
        with self._lock:
            self._drain_logs()
            before = len(self._data)
            removed = self._evict(None, count)
            evicted = before - len(self._data)
        self._notify(removed)
        return evicted

    def _sweep(self, removed: _Removed | None, limit: int = _SWEEP_BATCH) -> _Removed:
        """Expire entries whose heap node is due.

        A write that moves a key's expiry later pushes no node (a rewrite with the same TTL,
        the common case, would otherwise add one per write): the key's earlier node stays,
        and when it comes due here the entry is found to live longer and is rescheduled at its
        real expiry. Nodes of deleted or since-persistent keys are dropped. So every entry with
        an expiry has a node no later than it, which is all sweeping needs (reads check expiry
        themselves).
        """
        if removed is None:
            removed = []
        heap, data = self._expiry_heap, self._data
        now = self._clock()
        for _ in range(limit):
            if not heap or heap[0][0] > now:
                break
            due, key = heapq.heappop(heap)
            entry = data.get(key)
            if entry is None or entry[1] is None:
                continue
            if entry[1] <= now:
                removed.append((key, self._pop_expired(key)[0], RemovalCause.EXPIRED))
            elif entry[1] > due:
                heappush(heap, (entry[1], key))
        return removed

    def _pop_expired(self, key: str) -> _Entry:
        entry = self._data.pop(key)
        self._memory -= entry[2]
        self._expirations += 1
        self._policy.on_remove(key)
        if self._key_tags:
            self._tags.untag(key)
        return entry

    def _discard(self, key: str) -> None:
        entry = self._data.pop(key, None)
        if entry is not None:
            self._memory -= entry[2]
            self._policy.on_remove(key)
            if self._key_tags:
                self._tags.untag(key)

    def _estimate_memory(self) -> int:
        """Shallow size of up to the first 1024 entries, scaled to the entry count."""
        data = self._data
        if not data:
            return 0
        sample = list(itertools.islice(data.items(), _MEMORY_SAMPLE))
        total = sum(shallow_sizer(key, entry[0]) for key, entry in sample)
        return total * len(data) // len(sample)

    def _notify(self, removed: _Removed | None) -> None:
        listener = self._listener
        if listener is None or not removed:
            return
        for key, value, cause in removed:
            try:
                listener(key, value, cause)
            except Exception:
                log.exception("eviction listener of cache %r raised for key %r", self.name, key)


def _check_bound(option: str, value: object) -> None:
    if value is not None and (type(value) is not int or value < 1):
        raise ConfigurationError(
            f"{option} must be a positive int or None, got {value!r}", key=option
        )


def _make_policy(policy: str | EvictionPolicy, max_entries: int | None) -> EvictionPolicy:
    if isinstance(policy, str):
        built: EvictionPolicy = policy_registry.get(policy, key="policy")(max_entries)
        return built
    if not isinstance(policy, EvictionPolicy):
        raise ConfigurationError(
            f"policy must be a name or an EvictionPolicy, got {policy!r}", key="policy"
        )
    if len(policy) != 0:
        raise ConfigurationError(
            "policy instance already tracks keys (shared with another cache?); pass a fresh one",
            key="policy",
        )
    return policy
