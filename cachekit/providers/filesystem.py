"""The file-system provider: one file per key in a directory that threads and processes share.

The idea of cachelib's ``FileSystemCache`` (Flask-Caching) and Django's ``FileBasedCache`` - a
directory, hashed file names, serialized values - made exact when several processes use it.
The parts, each in its own module:

* :mod:`.file_format` - the files: names, the entry encoding, corrupt-file detection. Only this
  provider's names are ever counted, listed or removed: unlike cachelib's, ``clear()`` leaves
  other files in the directory alone.
* :mod:`.file_lock` - ``flock`` on files in the directory: the directory lock every mutation
  holds (so ``add``, which ``get_or_set`` stores with, and ``incr`` are atomic across
  processes), the entry count kept in it, and ``get_or_set``'s per-key locks.
* :mod:`.file_store` - the entries: atomic writes (temporary file, ``os.replace``), lock-free
  reads, safe removal, the ``max_entries`` bound and pruning.
* :mod:`.file_options` - the URL and constructor options.

This module holds :class:`FileCache`, the cache semantics on top of them:

* **Expiry** is checked on every read against the wall clock (``clock``, ``time.time`` by
  default: expiry times are compared across processes, where a monotonic clock means nothing).
* **Failures.** Corrupt files read as misses (``get_stats().extra["corrupt_files_total"]``). A
  failing disk (permissions, no space) raises :class:`~cachekit.errors.BackendUnavailable`, or
  with ``fail_open=true`` is counted and logged as a network provider's outage is.
* **Stampedes.** ``get_or_set`` with a factory computes a missing key once across processes, as
  the Redis provider's does: threads of one process share one computation (single-flight), and
  the process that computes holds the key's lock file meanwhile; the others poll for the value
  and take the lock in turn when it is free, or compute themselves after ``stampede_timeout``.
* **Tags and patterns.** The base class has no generic tag store (the memory provider's
  ``TagIndex`` lives in one process), so tags are kept in each file's header, and
  ``invalidate_tags``, ``delete_pattern`` and ``scan_keys`` read every header: O(entries),
  which a bounded directory affords.
* **Async** twins are the base class's: they run the sync code, as local-disk I/O is short;
  ``aget_or_set`` waits for another process's computation with ``asyncio.sleep``.

POSIX only (``fcntl.flock``); on NFS, ``flock`` is only as good as the server's locking.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import suppress
from typing import Any, ClassVar

from ..config import Option, ParsedURL, parse_options, seconds_option
from ..entry import EntryInfo, describe_payload
from ..errors import BackendUnavailable, ConfigurationError, NotAnInteger
from ..glob import compile_glob
from ..interfaces import DistributedCache, check_key, check_tags
from ..keyscan import check_scan_args, sorted_page
from ..metrics.latency import DEFAULT_SAMPLE_EVERY, GetTimer
from ..resilience.failopen import FailOpen
from ..sentinels import DEFAULT, MISSING
from ..serialization import Serializer
from ..stats import CacheStats
from ..ttl import TTL, TTLArg, check_default_ttl, resolve_ttl
from .file_format import INF
from .file_lock import KeyLock
from .file_options import OPTIONS, build_serializer, checked, directory_option, mode_option
from .file_store import FileStore
from .timed import TimedGets

__all__ = ["DEFAULT_MAX_ENTRIES", "FileCache", "FileUnavailable"]

log = logging.getLogger(__name__)

#: Entry bound when none is given; ``max_entries=None`` asks for an unbounded directory.
DEFAULT_MAX_ENTRIES = 10_000
#: How long ``get_or_set`` waits for another process's computation before computing too.
DEFAULT_STAMPEDE_TIMEOUT = 10.0
#: While another process computes a key, waiters look for its value after 5 ms, then back off
#: (doubling) to one look every 100 ms: ``flock`` has no timeout to block with.
_FIRST_POLL, _LAST_POLL = 0.005, 0.1


class FileUnavailable(BackendUnavailable, OSError):
    """The disk failed (permissions, no space...): cachekit's outage error and an ``OSError``,
    as Django's ``FileBasedCache`` lets it through, so handlers of either keep working."""


class FileCache(TimedGets, DistributedCache):
    """A cache in a directory, shared by every process that opens it; see the module docstring."""

    provider_name = "file"

    __slots__ = (
        "_clock", "_deletes", "_dumps", "_fail_open", "_files", "_get_timer", "_hits", "_misses",
        "_sets", "_stampede_timeout", "_started", "_started_wall", "_stats_lock", "_unlock_errors",
        "default_ttl", "directory", "max_entries", "mode", "serializer",
    )  # fmt: skip

    #: Options accepted in ``file:///path?...`` URLs and config dicts.
    options: ClassVar[dict[str, Option]] = OPTIONS

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        name: str = "default",
        max_entries: int | None = DEFAULT_MAX_ENTRIES,
        default_ttl: TTL = None,
        serializer: str | Serializer = "pickle",
        compression: str | None = None,
        compress_threshold: int | None = None,
        secret: str | bytes | None = None,
        mode: int = 0o600,
        stampede_timeout: float | None = DEFAULT_STAMPEDE_TIMEOUT,
        fail_open: bool = False,
        clock: Callable[[], float] = time.time,
        stats_sample_every: int = DEFAULT_SAMPLE_EVERY,
    ) -> None:
        if sys.platform == "win32":  # pragma: no cover - the suite runs on POSIX
            raise ConfigurationError("file:// needs POSIX file locks (fcntl)", key="url")
        super().__init__(name=name)
        self.directory: str = os.path.abspath(checked("directory", directory, directory_option))
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise ConfigurationError(
                f"directory {self.directory!r} exists and is not a directory", key="directory"
            )
        if max_entries is not None and (type(max_entries) is not int or max_entries < 1):
            raise ConfigurationError(
                f"max_entries must be a positive int or None, got {max_entries!r}",
                key="max_entries",
            )
        self.max_entries: int | None = max_entries
        self.default_ttl: float | None = check_default_ttl(default_ttl)
        self.mode: int = checked("mode", mode, mode_option)
        self.serializer: Serializer = build_serializer(
            serializer, compression, compress_threshold, secret
        )
        self._dumps = self.serializer.dumps
        self._stampede_timeout: float | None = checked(
            "stampede_timeout", stampede_timeout, seconds_option().parse
        )
        if self._stampede_timeout is not None:
            self._bound_flights(self._stampede_timeout)
        if not callable(clock):
            raise ConfigurationError(f"clock must be callable, got {clock!r}", key="clock")
        self._clock = clock
        self._get_timer = GetTimer(stats_sample_every)
        self._fail_open = FailOpen(bool(fail_open), name=name, error=FileUnavailable)
        self._files = FileStore(
            self.directory,
            name=name,
            mode=self.mode,
            max_entries=max_entries,
            clock=clock,
            loads=self.serializer.loads,
        )
        self._stats_lock = threading.Lock()
        self._hits = self._misses = self._sets = self._deletes = 0
        self._unlock_errors = 0
        self._started_wall = time.time()
        self._started = time.monotonic()

    @classmethod
    def from_url(cls, url: ParsedURL, options: Mapping[str, Any]) -> FileCache:
        """Build from ``file:///abs/dir?option=value``; ``options`` override the query string."""
        local = not url.hosts or url.hosts == (("localhost", None),)
        if not local or url.username is not None or url.password is not None:
            raise ConfigurationError(
                f"url {url.raw!r}: file:// takes a local absolute path (file:///var/cache/app)",
                key="url",
            )
        parsed = parse_options("file://", {**url.options, **options}, cls.options)
        if url.path:
            parsed.setdefault("directory", "/" + url.path)
        directory = parsed.pop("directory", None)
        if directory is None:
            raise ConfigurationError(
                "file:// needs a directory: file:///var/cache/app or the 'directory' option",
                key="directory",
            )
        return cls(directory, **parsed)

    def __repr__(self) -> str:
        return f"<FileCache name={self.name!r} directory={self.directory!r}>"

    # -- reads ----------------------------------------------------------------------------------

    def _get(self, key: str, default: Any) -> Any:
        key = check_key(key)
        value = self._guard("get", MISSING, self._value, key)
        with self._stats_lock:
            if value is MISSING:
                self._misses += 1
            else:
                self._hits += 1
        return default if value is MISSING else value

    async def _aget(self, key: str, default: Any) -> Any:
        return self._get(key, default)  # local-disk I/O is short: the sync read, as elsewhere

    def _peek(self, key: str) -> Any:
        return self._guard("get", MISSING, self._value, check_key(key))

    async def _apeek(self, key: str) -> Any:
        return self._peek(key)

    def _value(self, key: str) -> Any:
        found = self._files.fetch(key)
        return MISSING if found is None else found[1]

    def exists(self, key: str) -> bool:
        key = check_key(key)
        return self._guard("exists", None, self._files.live, key, header_only=True) is not None

    def ttl(self, key: str) -> float | None:
        key = check_key(key)
        entry = self._guard("ttl", None, self._files.live, key, header_only=True)
        if entry is None:
            return 0.0
        # max: the entry was live at live()'s reading of the clock, maybe not at this one.
        return None if entry.expires_at == INF else max(entry.expires_at - self._clock(), 0.0)

    def scan_keys(
        self, pattern: str = "*", *, cursor: str = "", count: int = 100
    ) -> tuple[str, list[str]]:
        """One page of the directory's live keys (every header is read: a tool, not a hot path)."""
        check_scan_args(pattern, cursor, count)
        matches = compile_glob(pattern)
        entries = self._closed("scan_keys", self._files.scan)
        return sorted_page([e.key for _, e in entries if matches(e.key)], cursor, count)

    def inspect(self, key: str) -> EntryInfo | None:
        key = check_key(key)
        found = self._closed("inspect", self._files.fetch, key)
        if found is None:
            return None
        entry, value = found
        ttl = None if entry.expires_at == INF else max(entry.expires_at - self._clock(), 0.0)
        codec, compression = describe_payload(entry.payload)
        return EntryInfo(key, ttl, entry.size, codec, compression, type(value).__name__)

    # -- writes ---------------------------------------------------------------------------------

    def _expiry(self, seconds: float | None) -> float:
        return INF if seconds is None else self._clock() + seconds

    def set(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> None:
        key = check_key(key)
        seconds = resolve_ttl(ttl, self.default_ttl)
        tagset = check_tags(tags)
        if seconds is not None and seconds <= 0:
            self._guard("set", False, self._files.remove_key, key)
            return
        stored = self._dumps(value)
        if self._guard("set", False, self._files.store, key, stored, self._expiry(seconds), tagset):
            with self._stats_lock:
                self._sets += 1

    def add(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> bool:
        key = check_key(key)
        seconds = resolve_ttl(ttl, self.default_ttl)
        tagset = check_tags(tags)
        if seconds is not None and seconds <= 0:  # nothing to store: report absence only
            return self._guard("add", MISSING, self._files.live, key, header_only=True) is None
        stored = self._dumps(value)
        expires_at = self._expiry(seconds)
        added: bool = self._guard(
            "add", False, self._files.store, key, stored, expires_at, tagset, only_if_absent=True
        )
        if added:
            with self._stats_lock:
                self._sets += 1
        return added

    def replace(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        key = check_key(key)
        seconds = resolve_ttl(ttl, self.default_ttl)
        tagset = check_tags(tags)
        if seconds is not None and seconds <= 0:
            return self.delete(key)
        stored = self._dumps(value)
        expires_at = self._expiry(seconds)
        replaced: bool = self._guard(
            "replace",
            False,
            self._files.store,
            key,
            stored,
            expires_at,
            tagset,
            only_if_present=True,
        )
        if replaced:
            with self._stats_lock:
                self._sets += 1
        return replaced

    def touch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        key = check_key(key)
        seconds = resolve_ttl(ttl, self.default_ttl)
        touched: bool = self._guard("touch", False, self._touch, key, seconds)
        return touched

    def _touch(self, key: str, seconds: float | None) -> bool:
        with self._files.locked() as held:
            entry = self._files.live(key, held)
            if entry is None:
                return False
            if seconds is not None and seconds <= 0:
                held.remove(self._files.path(key))
                return True
            self._files.rewrite(held, key, entry.payload, self._expiry(seconds), entry.tags)
        return True

    def incr(self, key: str, delta: int = 1) -> int:
        """Atomic across threads and processes (under the directory lock); the TTL is kept."""
        key = check_key(key)
        if type(delta) is not int:
            raise NotAnInteger(f"delta must be an int, got {delta!r}")
        try:
            return self._incr(key, delta)
        except OSError as exc:
            self._fail_open.handle("incr", exc)  # raises unless fail-open (which counts it)
            # Fail-open too: no fallback number would be honest, so the failure is raised.
            raise FileUnavailable(f"cache {self.name!r}: incr failed: {exc}") from exc

    def _incr(self, key: str, delta: int) -> int:
        with self._files.locked() as held:
            found = self._files.fetch(key, held)
            if found is None:
                current, expires_at, tags = 0, self._expiry(self.default_ttl), None
            else:
                entry, current = found
                if type(current) is not int:
                    raise NotAnInteger(f"value of {key!r} is {type(current).__name__}, not int")
                expires_at, tags = entry.expires_at, entry.tags
            result: int = current + delta
            count = self._files.rewrite(held, key, self._dumps(result), expires_at, tags)
        self._files.enforce_bound(count)
        return result

    # -- get_or_set: one computation across processes -------------------------------------------

    def _lead(self, key: str, factory: Callable[[], Any], add: Callable[[str, Any], bool]) -> Any:
        """This process's leader: compute under the key's lock, or wait for its holder's value."""
        if self._stampede_timeout is None:
            return self._compute_alone(key, factory, add)
        lock = self._files.key_lock(key)
        deadline = time.monotonic() + self._stampede_timeout
        delay = _FIRST_POLL
        while True:
            # A failing disk under fail-open: compute without the lock rather than not at all.
            if self._guard("lock", True, lock.try_acquire):
                try:
                    current = self._fill_peek(key)  # the last holder may have stored it just now
                    if current is not MISSING:
                        return current
                    return self._add_or_current(key, factory(), add)
                finally:
                    self._unlock_stampede(lock)
            current = self._fill_peek(key)
            if current is not MISSING:
                return current
            if time.monotonic() + delay > deadline:  # the holder is too slow: compute too
                return self._add_or_current(key, factory(), add)
            time.sleep(delay)
            delay = min(delay * 2, _LAST_POLL)

    def _unlock_stampede(self, lock: KeyLock) -> None:
        """Release ``get_or_set``'s key lock without raising: its failure must not replace the
        value stored or the exception in flight. The ``flock`` goes with the closed file either
        way; what can fail is removing the lock file, which the next holder then reuses.
        Counted (``stampede_unlock_errors_total``), and as any disk error under fail-open."""
        try:
            lock.release()
        except OSError as exc:
            with self._stats_lock:
                self._unlock_errors += 1
            if self._fail_open.enabled:
                self._fail_open.handle("unlock", exc)  # counted, and logged at its rate
            else:
                log.warning("cache %r: stampede lock file not removed: %s", self.name, exc)

    async def _alead(
        self, key: str, factory: Callable[[], Any], add: Callable[[str, Any], Awaitable[bool]]
    ) -> Any:
        """The async twin of :meth:`_lead` (same lock, same backoff)."""
        if self._stampede_timeout is None:
            return await self._acompute_alone(key, factory, add)
        lock = self._files.key_lock(key)
        deadline = time.monotonic() + self._stampede_timeout
        delay = _FIRST_POLL

        async def produce() -> Any:
            result = factory()
            if inspect.isawaitable(result):
                result = await result
            return await self._aadd_or_current(key, result, add)

        while True:
            if self._guard("lock", True, lock.try_acquire):
                try:
                    current = await self._afill_peek(key)
                    if current is not MISSING:
                        return current
                    return await produce()
                finally:
                    self._unlock_stampede(lock)
            current = await self._afill_peek(key)
            if current is not MISSING:
                return current
            if time.monotonic() + delay > deadline:
                return await produce()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LAST_POLL)

    # -- removal --------------------------------------------------------------------------------

    def delete(self, key: str) -> bool:
        key = check_key(key)
        removed: bool = self._guard("delete", False, self._files.remove_key, key)
        if removed:
            with self._stats_lock:
                self._deletes += 1
        return removed

    def delete_pattern(self, pattern: str) -> int:
        matches = compile_glob(pattern)
        return self._remove_where("delete_pattern", matches, None)

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        tagset = check_tags(tags)
        if tagset is None:
            return 0
        return self._remove_where("invalidate_tags", None, tagset)

    def tagged_keys(self, tags: Iterable[str]) -> list[str]:
        tagset = check_tags(tags)
        if tagset is None:
            return []
        entries = self._guard("tagged_keys", [], self._files.scan)
        return sorted(
            entry.key
            for _, entry in entries
            if entry.tags is not None and not tagset.isdisjoint(entry.tags)
        )

    def _remove_where(
        self, operation: str, matches: Callable[[str], bool] | None, tags: frozenset[str] | None
    ) -> int:
        removed: int = self._guard(operation, 0, self._files.remove_where, matches, tags)
        if removed:
            with self._stats_lock:
                self._deletes += removed
        return removed

    def _after_fork(self) -> None:
        """Locks another thread may have held at the fork (see :mod:`cachekit.forking`)."""
        super()._after_fork()
        self._stats_lock = threading.Lock()
        self._fail_open._after_fork()
        self._get_timer._after_fork()
        self._files._after_fork()

    def clear(self) -> None:
        """Remove this provider's entries, temporaries and free key locks; nothing else."""
        self._guard("clear", None, self._files.clear)

    # -- introspection --------------------------------------------------------------------------

    def get_stats(self) -> CacheStats:
        """Counters of this process; ``items`` and ``disk_bytes`` are the directory's, shared.

        An unreadable directory is reported (``extra["available"]`` is False, items 0) rather
        than raised, so the fail-open counters stay visible to metrics during an outage.
        """
        available, disk_bytes = True, 0
        try:
            files = self._files.entry_files()
            if not files and not os.path.isdir(self.directory):
                _check_creatable(self.directory)  # made on the first write: can it be?
        except OSError as exc:
            log.warning("cache %r: cannot list %s: %s", self.name, self.directory, exc)
            available, files = False, []
        for dirent in files:
            with suppress(OSError):
                disk_bytes += dirent.stat().st_size
        with self._stats_lock:
            counters = (self._hits, self._misses, self._sets, self._deletes)
            unlock_errors = self._unlock_errors
        store = self._files
        return CacheStats(
            name=self.name,
            provider=self.provider_name,
            items=len(files),
            hits=counters[0],
            misses=counters[1],
            sets=counters[2],
            deletes=counters[3],
            evictions=store.evictions,
            expirations=store.expirations,
            memory_bytes=0,  # nothing is held in memory; the disk figure is in extra
            memory_limit=None,
            max_entries=self.max_entries,
            started_at=self._started_wall,
            uptime=time.monotonic() - self._started,
            extra={
                "directory": self.directory,
                "available": available,
                "disk_bytes": disk_bytes,
                "corrupt_files_total": store.corrupt,
                "stampede_unlock_errors_total": unlock_errors,
                **self._fail_open.snapshot(),
            },
            **self._get_timer.fields(),
        )

    def reset_stats(self) -> None:
        """Zero this process's counters (not the files); ``started_at`` restarts too."""
        with self._stats_lock:
            self._hits = self._misses = self._sets = self._deletes = 0
            self._unlock_errors = 0
            self._started_wall = time.time()
            self._started = time.monotonic()
        self._files.reset_counts()
        self._get_timer.reset()

    # -- failures -------------------------------------------------------------------------------

    def _guard(
        self, operation: str, fallback: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """``fn(...)``; a disk failure raises ``BackendUnavailable`` or, fail-open, falls back."""
        try:
            return fn(*args, **kwargs)
        except OSError as exc:
            self._fail_open.handle(operation, exc)  # raises unless fail-open
            return fallback

    def _closed(self, operation: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Tools fail closed even under fail-open: an outage must not read as an empty cache."""
        try:
            return fn(*args)
        except OSError as exc:
            raise FileUnavailable(f"cache {self.name!r}: {operation} failed: {exc}") from exc


def _check_creatable(directory: str) -> None:
    """Raise ``OSError`` unless the first write could make the missing ``directory``: its
    nearest existing ancestor must be a directory this process may write in. Not made here: a
    stats read (an operator's command, as another user) must not create it."""
    path = os.path.abspath(directory)
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    if not os.path.isdir(path):
        raise NotADirectoryError(f"{path} is not a directory, so {directory} cannot be made")
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"{directory} is missing and {path} is not writable")
