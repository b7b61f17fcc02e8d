"""The file-system provider: one file per key in a directory that threads and processes share.

The idea of cachelib's ``FileSystemCache`` (Flask-Caching) and Django's ``FileBasedCache`` - a
directory, hashed file names, serialized values - made exact when several processes use it:

* **Layout.** ``key`` lives in ``<directory>/<sha256(key)>.ckc``: a header (magic ``CKF\\x01``,
  expiry as epoch seconds with ``inf`` for never, write time in ns, key and tag lengths), the key
  (so a hash collision is a miss, not a wrong value, and keys can be listed), the tags as JSON,
  then the value in cachekit's serialized envelope (:mod:`cachekit.serialization`). Only names
  of that form and this provider's ``.ckc-*.tmp`` temporaries are ever counted, listed or
  removed: unlike cachelib's, ``clear()`` leaves other files in the directory alone.
* **Atomic writes.** A value is written to a temporary file in the same directory and renamed
  over the entry with ``os.replace``: a reader opens the old file or the new one, never a torn
  one. Reads take no lock.
* **One lock per directory.** Every mutation holds ``flock`` on ``<directory>/.cachekit.lock``,
  opened for that one operation, so threads, processes and forked children all exclude one
  another and nothing stays open between calls. ``add`` (which ``get_or_set`` stores with) and
  ``incr`` are therefore atomic across processes, and removing a file found expired or corrupt
  first checks, under the lock, that it is still the file that was read (inode and mtime), so a
  concurrent rewrite is never deleted by mistake.
* **Bound.** The lock file also stores the entry count, kept exact under the lock (recounted
  from the directory when it is missing and at every pruning, so drift from crashes or manual
  deletes heals). A write that takes the count over ``max_entries`` prunes: expired files
  first, then the least recently written, down to 90 % of the bound so the pass, which reads
  every header, is amortised over the writes that follow. It scans without the lock and
  removes its victims under it.
* **Expiry** is checked on every read against the wall clock (``clock``, ``time.time`` by
  default: expiry times are compared across processes, where a monotonic clock means
  nothing). An expired file a read meets is removed then; the others at pruning.
* **Corrupt files** (truncated, foreign, undecodable) read as misses: logged, counted in
  ``get_stats().extra["corrupt_files_total"]`` and removed. A failing disk (permissions, no
  space) raises :class:`~cachekit.errors.BackendUnavailable`, or with ``fail_open=true`` is
  counted and logged as a network provider's outage is.
* **Tags and patterns.** The base class has no generic tag store (the memory provider's
  ``TagIndex`` lives in one process), so tags are kept in each file's header, and
  ``invalidate_tags``, ``delete_pattern`` and ``scan_keys`` read every header: O(entries),
  which a bounded directory affords.
* **Async** twins are the base class's: they run the sync code, as local-disk I/O is short.

POSIX only (``fcntl.flock``); on NFS, ``flock`` is only as good as the server's locking.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from hashlib import sha256
from typing import Any, ClassVar, NamedTuple

from ..config import (
    Option,
    ParsedURL,
    bool_option,
    int_option,
    object_option,
    parse_options,
    seconds_option,
)
from ..entry import EntryInfo, describe_payload
from ..errors import BackendUnavailable, ConfigurationError, NotAnInteger, SerializationError
from ..glob import compile_glob
from ..interfaces import DistributedCache, check_key, check_tags
from ..keyscan import check_scan_args, sorted_page
from ..resilience.failopen import FailOpen
from ..sentinels import DEFAULT, MISSING
from ..serialization import SERIALIZERS, Serializer, make_serializer
from ..stats import CacheStats
from ..ttl import TTL, TTLArg, check_default_ttl, resolve_ttl

if sys.platform != "win32":
    import fcntl

__all__ = ["DEFAULT_MAX_ENTRIES", "FileCache"]

log = logging.getLogger(__name__)

#: Entry bound when none is given; ``max_entries=None`` asks for an unbounded directory.
DEFAULT_MAX_ENTRIES = 10_000
#: magic, expires_at (epoch s, inf = never), written_ns, key length, tags length.
_HEAD = struct.Struct(">4sdQII")
_MAGIC = b"CKF\x01"
_COUNT = struct.Struct(">Q")
_SUFFIX = ".ckc"
_ENTRY_NAME = re.compile(r"[0-9a-f]{64}\.ckc")
_TMP_PREFIX, _TMP_SUFFIX = ".ckc-", ".tmp"
_LOCK_NAME = ".cachekit.lock"
#: Pruning frees 1/N of ``max_entries`` (at least one entry), so the next pass, which reads
#: every header, is that many new entries away.
_PRUNE_DIVISOR = 10
#: A temporary file this old (seconds) belongs to a writer that died: pruning removes it.
_STALE_TMP_SECONDS = 3600.0
_INF = math.inf

_Ident = tuple[int, int]  # (st_ino, st_mtime_ns) of a file as it was read


class _Entry(NamedTuple):
    key: str
    expires_at: float
    written_ns: int
    tags: frozenset[str] | None
    payload: bytes  # b"" when only the header was read
    ident: _Ident
    size: int


class _CorruptFile(SerializationError):
    """A cache file this provider cannot read; never leaves the module (it becomes a miss)."""

    def __init__(self, reason: str, ident: _Ident) -> None:
        super().__init__(reason)
        self.ident = ident


class _Held:
    """The directory lock, held: entry files created (+1) and removed (-1) since taking it."""

    __slots__ = ("delta", "fd")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.delta = 0

    def remove(self, path: str, ident: _Ident | None = None) -> bool:
        """Unlink ``path`` if it is still the file read as ``ident``; whether it was removed."""
        try:
            if ident is not None:
                st = os.stat(path)
                if (st.st_ino, st.st_mtime_ns) != ident:
                    return False  # rewritten since it was read: not ours to remove
            os.unlink(path)
        except FileNotFoundError:
            return False
        if path.endswith(_SUFFIX):
            self.delta -= 1
        return True


def _serializer_option(value: Any) -> Any:
    if isinstance(value, str):
        if value not in SERIALIZERS:
            raise ConfigurationError(f"accepted values: {', '.join(sorted(SERIALIZERS))}")
        return value
    if isinstance(value, Serializer):
        return value
    raise TypeError("expected a serializer name or a Serializer")


def _secret_option(value: Any) -> str | bytes:
    if not isinstance(value, (str, bytes)):
        raise TypeError("expected str or bytes")
    return value


def _mode_option(value: Any) -> int:
    """File permissions: an int (``0o640``) or an octal string (``"640"``, ``"0o640"``)."""
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        value = int(text, 8)
    if isinstance(value, bool) or not isinstance(value, int) or not 0o400 <= value <= 0o777:
        raise ValueError("must grant the owner read (0o400) and stay within 0o777")
    if not value & 0o200:
        raise ValueError("must let the owner write (0o200)")
    return value


def _directory_option(value: Any) -> str:
    path = os.fspath(value)
    if not isinstance(path, str) or not path:
        raise TypeError("expected a directory path")
    return path


def _read(path: str, *, header_only: bool = False) -> _Entry | None:
    """The entry stored at ``path``; ``None`` if there is no file; ``_CorruptFile`` if bad."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; FileNotFoundError is a plain miss
    except FileNotFoundError:
        return None
    with f:
        st = os.fstat(f.fileno())
        ident = (st.st_ino, st.st_mtime_ns)
        head = f.read(_HEAD.size)
        if len(head) < _HEAD.size:
            raise _CorruptFile("truncated header", ident)
        magic, expires_at, written_ns, key_len, tags_len = _HEAD.unpack(head)
        if magic != _MAGIC or math.isnan(expires_at):
            raise _CorruptFile("not a cachekit cache file", ident)
        if _HEAD.size + key_len + tags_len > st.st_size:  # never allocate what is not there
            raise _CorruptFile("truncated key or tags", ident)
        meta = f.read(key_len + tags_len)
        if len(meta) < key_len + tags_len:
            raise _CorruptFile("truncated key or tags", ident)
        payload = b"" if header_only else f.read()
    try:
        key = meta[:key_len].decode("utf-8", "surrogatepass")
        tags = None
        if tags_len:
            names = json.loads(meta[key_len:])
            if not isinstance(names, list) or not all(isinstance(t, str) for t in names):
                raise ValueError("tags are not a list of str")
            tags = frozenset(names)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise _CorruptFile(f"bad key or tags: {exc}", ident) from None
    return _Entry(key, expires_at, written_ns, tags, payload, ident, st.st_size)


class FileCache(DistributedCache):
    """A cache in a directory, shared by every process that opens it; see the module docstring."""

    provider_name = "file"

    __slots__ = (
        "_clock", "_corrupt", "_deletes", "_dir_mode", "_dumps", "_evictions", "_expirations",
        "_fail_open", "_hits", "_loads", "_lock_path", "_misses", "_sets", "_started",
        "_started_wall", "_stats_lock", "default_ttl", "directory", "max_entries", "mode",
        "serializer",
    )  # fmt: skip

    #: Options accepted in ``file:///path?...`` URLs and config dicts.
    options: ClassVar[dict[str, Option]] = {
        "name": Option(str, "a name for stats and metrics"),
        "directory": Option(_directory_option, "a directory path (or the URL's path)"),
        "max_entries": int_option(minimum=1, allow_none=True),
        "default_ttl": seconds_option(),
        "serializer": Option(_serializer_option, "a serializer name or a Serializer"),
        "compression": Option(str, "auto, none, zlib or zstd"),
        "compress_threshold": int_option(minimum=0),
        "secret": Option(_secret_option, "an HMAC key (str or bytes) signing stored values"),
        "mode": Option(_mode_option, "file permissions such as 0o600 or '640'"),
        "fail_open": bool_option(),
        "clock": object_option("a callable returning epoch seconds"),
    }

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
        fail_open: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if sys.platform == "win32":  # pragma: no cover - the suite runs on POSIX
            raise ConfigurationError("file:// needs POSIX file locks (fcntl)", key="url")
        super().__init__(name=name)
        self.directory: str = os.path.abspath(_checked("directory", directory, _directory_option))
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
        self.mode: int = _checked("mode", mode, _mode_option)
        self._dir_mode = self.mode | ((self.mode & 0o444) >> 2)  # x wherever r: 0o600 -> 0o700
        self.serializer: Serializer = _make_serializer(
            serializer, compression, compress_threshold, secret
        )
        self._dumps = self.serializer.dumps
        self._loads = self.serializer.loads
        if not callable(clock):
            raise ConfigurationError(f"clock must be callable, got {clock!r}", key="clock")
        self._clock = clock
        self._fail_open = FailOpen(bool(fail_open), name=name)
        self._lock_path = os.path.join(self.directory, _LOCK_NAME)
        self._stats_lock = threading.Lock()
        self._hits = self._misses = self._sets = self._deletes = 0
        self._evictions = self._expirations = self._corrupt = 0
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

    def get(self, key: str, default: Any = None) -> Any:
        key = check_key(key)
        value = self._guard("get", MISSING, self._value, key)
        with self._stats_lock:
            if value is MISSING:
                self._misses += 1
            else:
                self._hits += 1
        return default if value is MISSING else value

    def _peek(self, key: str) -> Any:
        return self._guard("get", MISSING, self._value, check_key(key))

    def exists(self, key: str) -> bool:
        key = check_key(key)
        return self._guard("exists", None, self._live, key, header_only=True) is not None

    def ttl(self, key: str) -> float | None:
        key = check_key(key)
        entry = self._guard("ttl", None, self._live, key, header_only=True)
        if entry is None:
            return 0.0
        return None if entry.expires_at == _INF else entry.expires_at - self._clock()

    def scan_keys(
        self, pattern: str = "*", *, cursor: str = "", count: int = 100
    ) -> tuple[str, list[str]]:
        """One page of the directory's live keys (every header is read: a tool, not a hot path)."""
        check_scan_args(pattern, cursor, count)
        matches = compile_glob(pattern)
        entries = self._closed("scan_keys", self._scan)
        return sorted_page([e.key for _, e in entries if matches(e.key)], cursor, count)

    def inspect(self, key: str) -> EntryInfo | None:
        key = check_key(key)
        found = self._closed("inspect", self._fetch, key)
        if found is None:
            return None
        entry, value = found
        ttl = None if entry.expires_at == _INF else entry.expires_at - self._clock()
        codec, compression = describe_payload(entry.payload)
        return EntryInfo(key, ttl, entry.size, codec, compression, type(value).__name__)

    # -- writes ---------------------------------------------------------------------------------

    def set(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> None:
        key = check_key(key)
        seconds = resolve_ttl(ttl, self.default_ttl)
        tagset = check_tags(tags)
        if seconds is not None and seconds <= 0:
            self._guard("set", False, self._remove_key, key)
            return
        stored = self._dumps(value)
        if self._guard("set", False, self._store, key, stored, self._expiry(seconds), tagset):
            with self._stats_lock:
                self._sets += 1

    def add(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> bool:
        key = check_key(key)
        seconds = resolve_ttl(ttl, self.default_ttl)
        tagset = check_tags(tags)
        if seconds is not None and seconds <= 0:  # nothing to store: report absence only
            return self._guard("add", MISSING, self._live, key, header_only=True) is None
        stored = self._dumps(value)
        expires_at = self._expiry(seconds)
        added: bool = self._guard("add", False, self._store, key, stored, expires_at, tagset, True)
        if added:
            with self._stats_lock:
                self._sets += 1
        return added

    def touch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        key = check_key(key)
        seconds = resolve_ttl(ttl, self.default_ttl)
        touched: bool = self._guard("touch", False, self._touch, key, seconds)
        return touched

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
            raise BackendUnavailable(f"cache {self.name!r}: incr failed: {exc}") from exc

    # -- removal --------------------------------------------------------------------------------

    def delete(self, key: str) -> bool:
        key = check_key(key)
        removed: bool = self._guard("delete", False, self._remove_key, key)
        if removed:
            with self._stats_lock:
                self._deletes += 1
        return removed

    def delete_pattern(self, pattern: str) -> int:
        matches = compile_glob(pattern)
        removed: int = self._guard("delete_pattern", 0, self._remove_where, matches, None)
        return removed

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        tagset = check_tags(tags)
        if tagset is None:
            return 0
        removed: int = self._guard("invalidate_tags", 0, self._remove_where, None, tagset)
        return removed

    def clear(self) -> None:
        """Remove this provider's files (entries and temporaries), nothing else in the directory."""
        self._guard("clear", None, self._clear)

    # -- introspection --------------------------------------------------------------------------

    def get_stats(self) -> CacheStats:
        """Counters of this process; ``items`` and ``disk_bytes`` are the directory's, shared.

        An unreadable directory is reported (``extra["available"]`` is False, items 0) rather
        than raised, so the fail-open counters stay visible to metrics during an outage.
        """
        available, disk_bytes = True, 0
        try:
            files = self._entry_files()
        except OSError as exc:
            log.warning("cache %r: cannot list %s: %s", self.name, self.directory, exc)
            available, files = False, []
        for dirent in files:
            with suppress(OSError):
                disk_bytes += dirent.stat().st_size
        with self._stats_lock:
            counters = (self._hits, self._misses, self._sets, self._deletes)
            evictions, expirations, corrupt = self._evictions, self._expirations, self._corrupt
        return CacheStats(
            name=self.name,
            provider=self.provider_name,
            items=len(files),
            hits=counters[0],
            misses=counters[1],
            sets=counters[2],
            deletes=counters[3],
            evictions=evictions,
            expirations=expirations,
            memory_bytes=0,  # nothing is held in memory; the disk figure is in extra
            memory_limit=None,
            max_entries=self.max_entries,
            avg_get_seconds=None,
            started_at=self._started_wall,
            uptime=time.monotonic() - self._started,
            extra={
                "directory": self.directory,
                "available": available,
                "disk_bytes": disk_bytes,
                "corrupt_files_total": corrupt,
                **self._fail_open.snapshot(),
            },
        )

    # -- internals: failures --------------------------------------------------------------------

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
            raise BackendUnavailable(f"cache {self.name!r}: {operation} failed: {exc}") from exc

    # -- internals: reading ---------------------------------------------------------------------

    def _path(self, key: str) -> str:
        digest = sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return os.path.join(self.directory, digest + _SUFFIX)

    def _expiry(self, seconds: float | None) -> float:
        return _INF if seconds is None else self._clock() + seconds

    def _live(
        self, key: str, held: _Held | None = None, *, header_only: bool = False
    ) -> _Entry | None:
        """The live entry of ``key``; an expired or corrupt file met on the way is removed."""
        path = self._path(key)
        try:
            entry = _read(path, header_only=header_only)
        except _CorruptFile as exc:
            self._drop_corrupt(path, exc, held)
            return None
        if entry is None or entry.key != key:  # absent, or a (SHA-256!) collision: a miss
            return None
        if entry.expires_at <= self._clock():
            if self._remove(path, entry.ident, held):
                with self._stats_lock:
                    self._expirations += 1
            return None
        return entry

    def _fetch(self, key: str, held: _Held | None = None) -> tuple[_Entry, Any] | None:
        """The live entry and its decoded value; an undecodable payload is a corrupt file."""
        entry = self._live(key, held)
        if entry is None:
            return None
        try:
            return entry, self._loads(entry.payload)
        except SerializationError as exc:
            self._drop_corrupt(self._path(key), _CorruptFile(str(exc), entry.ident), held)
            return None

    def _value(self, key: str) -> Any:
        found = self._fetch(key)
        return MISSING if found is None else found[1]

    def _entry_files(self) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(self.directory) as it:
                return [d for d in it if _ENTRY_NAME.fullmatch(d.name)]
        except FileNotFoundError:  # nothing written yet
            return []

    def _scan(self) -> list[tuple[str, _Entry]]:
        """``(path, header)`` of every live entry; corrupt files met are removed."""
        now = self._clock()
        found: list[tuple[str, _Entry]] = []
        for dirent in self._entry_files():
            try:
                entry = _read(dirent.path, header_only=True)
            except _CorruptFile as exc:
                self._drop_corrupt(dirent.path, exc, None)
                continue
            if entry is not None and entry.expires_at > now:
                found.append((dirent.path, entry))
        return found

    def _drop_corrupt(self, path: str, exc: _CorruptFile, held: _Held | None) -> None:
        log.warning("cache %r: corrupt file %s (%s): read as a miss, removed", self.name, path, exc)
        with self._stats_lock:
            self._corrupt += 1
        self._remove(path, exc.ident, held)

    # -- internals: writing (the directory lock) ------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[_Held]:
        """Hold the directory's ``flock``; the stored entry count follows the held changes."""
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, self.mode)
        except FileNotFoundError:
            os.makedirs(self.directory, mode=self._dir_mode, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, self.mode)
        held = _Held(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield held
        finally:
            try:
                if held.delta:
                    self._sync_count(held)
            finally:
                os.close(fd)  # releases the flock

    def _sync_count(self, held: _Held, *, recount: bool = False) -> int:
        """Apply the held changes to the stored count (recounting when asked or unknown)."""
        raw = os.pread(held.fd, _COUNT.size, 0)
        if recount or len(raw) < _COUNT.size:
            count = len(self._entry_files())  # already includes the held changes
        else:
            count = max(0, _COUNT.unpack(raw)[0] + held.delta)
        os.pwrite(held.fd, _COUNT.pack(count), 0)
        held.delta = 0
        return count

    def _remove(self, path: str, ident: _Ident | None, held: _Held | None) -> bool:
        if held is not None:
            return held.remove(path, ident)
        with self._locked() as own:
            return own.remove(path, ident)

    def _write_temp(
        self, key: str, payload: bytes, expires_at: float, tags: frozenset[str] | None
    ) -> str:
        """A complete entry file under a temporary name, ready to be renamed into place."""
        key_bytes = key.encode("utf-8", "surrogatepass")
        tag_bytes = json.dumps(sorted(tags)).encode("ascii") if tags else b""
        header = _HEAD.pack(_MAGIC, expires_at, time.time_ns(), len(key_bytes), len(tag_bytes))
        try:
            fd, tmp = tempfile.mkstemp(_TMP_SUFFIX, _TMP_PREFIX, self.directory)
        except FileNotFoundError:  # the directory is made on the first write, not on start-up
            os.makedirs(self.directory, mode=self._dir_mode, exist_ok=True)
            fd, tmp = tempfile.mkstemp(_TMP_SUFFIX, _TMP_PREFIX, self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                if self.mode != 0o600:  # mkstemp's mode
                    os.fchmod(f.fileno(), self.mode)
                f.write(b"".join((header, key_bytes, tag_bytes, payload)))
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp

    def _commit(self, held: _Held, tmp: str, path: str) -> bool:
        """Rename ``tmp`` over ``path``; whether that made a new entry (then it is counted).

        ``tmp`` is gone afterwards whatever happens: renamed, removed by a ``clear()`` that
        came first (the write is then ordered before it), or removed here on a failure.
        """
        existed = os.path.lexists(path)
        try:
            os.replace(tmp, path)
        except FileNotFoundError:
            return False
        except OSError:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if existed:
            return False
        held.delta += 1
        return True

    def _store(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        tags: frozenset[str] | None,
        only_if_absent: bool = False,
    ) -> bool:
        """Write an entry (``add``: only if no live one); whether it was written."""
        path = self._path(key)
        tmp = self._write_temp(key, payload, expires_at, tags)  # before the lock: held briefly
        count, pending = 0, True
        try:
            with self._locked() as held:
                if only_if_absent and self._live(key, held, header_only=True) is not None:
                    return False
                pending = False  # _commit disposes of tmp whatever happens
                if self._commit(held, tmp, path):
                    count = self._sync_count(held)
        finally:
            if pending:  # add found a live entry, or the lock could not be taken
                with suppress(FileNotFoundError):
                    os.unlink(tmp)
        self._enforce_bound(count)
        return True

    def _touch(self, key: str, seconds: float | None) -> bool:
        path = self._path(key)
        with self._locked() as held:
            entry = self._live(key, held)
            if entry is None:
                return False
            if seconds is not None and seconds <= 0:
                held.remove(path)
                return True
            tmp = self._write_temp(key, entry.payload, self._expiry(seconds), entry.tags)
            self._commit(held, tmp, path)
        return True

    def _incr(self, key: str, delta: int) -> int:
        path = self._path(key)
        count = 0
        with self._locked() as held:
            found = self._fetch(key, held)
            if found is None:
                current, expires_at, tags = 0, self._expiry(self.default_ttl), None
            else:
                entry, current = found
                if type(current) is not int:
                    raise NotAnInteger(f"value of {key!r} is {type(current).__name__}, not int")
                expires_at, tags = entry.expires_at, entry.tags
            result: int = current + delta
            tmp = self._write_temp(key, self._dumps(result), expires_at, tags)
            if self._commit(held, tmp, path):
                count = self._sync_count(held)
        self._enforce_bound(count)
        return result

    def _remove_key(self, key: str) -> bool:
        """Remove ``key``'s file; whether it held a live value."""
        with self._locked() as held:
            if self._live(key, held, header_only=True) is None:
                return False
            return held.remove(self._path(key))

    def _remove_where(
        self, matches: Callable[[str], bool] | None, tags: frozenset[str] | None
    ) -> int:
        """Remove the live entries whose key matches or that carry any of ``tags``."""
        victims = [
            (path, entry.ident)
            for path, entry in self._scan()
            if (matches is not None and matches(entry.key))
            or (tags is not None and entry.tags is not None and not tags.isdisjoint(entry.tags))
        ]
        if not victims:
            return 0
        with self._locked() as held:
            removed = sum(held.remove(path, ident) for path, ident in victims)
        with self._stats_lock:
            self._deletes += removed
        return removed

    def _clear(self) -> None:
        if not os.path.isdir(self.directory):
            return
        with self._locked() as held:
            with os.scandir(self.directory) as it:
                names = [d.path for d in it if _owned(d.name)]
            for path in names:
                with suppress(FileNotFoundError):
                    os.unlink(path)
            held.delta = 0
            os.pwrite(held.fd, _COUNT.pack(0), 0)

    # -- internals: the bound -------------------------------------------------------------------

    def _enforce_bound(self, count: int) -> None:
        if self.max_entries is not None and count > self.max_entries:
            self._prune(self.max_entries)

    def _prune(self, max_entries: int) -> None:
        """Expired files, then the least recently written, until 90 % of the bound is left."""
        now, wall = self._clock(), time.time()
        expired: list[tuple[str, _Ident]] = []
        live: list[tuple[int, str, _Ident]] = []
        stale: list[str] = []
        try:
            with os.scandir(self.directory) as it:
                dirents = list(it)
        except FileNotFoundError:  # removed from under us: nothing to prune
            return
        for dirent in dirents:
            if _ENTRY_NAME.fullmatch(dirent.name):
                try:
                    entry = _read(dirent.path, header_only=True)
                except _CorruptFile as exc:
                    self._drop_corrupt(dirent.path, exc, None)
                    continue
                if entry is None:
                    continue
                if entry.expires_at <= now:
                    expired.append((dirent.path, entry.ident))
                else:
                    live.append((entry.written_ns, dirent.path, entry.ident))
            elif _owned(dirent.name):
                with suppress(FileNotFoundError):
                    if wall - dirent.stat().st_mtime > _STALE_TMP_SECONDS:
                        stale.append(dirent.path)
        keep = max(1, max_entries - max_entries // _PRUNE_DIVISOR)
        live.sort()
        oldest = live[: max(0, len(live) - keep)]
        with self._locked() as held:
            gone = sum(held.remove(path, ident) for path, ident in expired)
            evicted = sum(held.remove(path, ident) for _, path, ident in oldest)
            for path in stale:
                held.remove(path)
            self._sync_count(held, recount=True)
        with self._stats_lock:
            self._expirations += gone
            self._evictions += evicted


def _owned(name: str) -> bool:
    """Whether a directory entry is one of this provider's files (entry or temporary)."""
    return bool(_ENTRY_NAME.fullmatch(name)) or (
        name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX)
    )


def _checked(key: str, value: Any, parse: Callable[[Any], Any]) -> Any:
    """Validate a constructor argument as the option parser would, naming the key."""
    try:
        return parse(value)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{key}: {exc}", key=key) from None
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{key}: {exc} (got {value!r})", key=key) from None


def _make_serializer(
    serializer: str | Serializer,
    compression: str | None,
    compress_threshold: int | None,
    secret: str | bytes | None,
) -> Serializer:
    codec_options: dict[str, Any] = {
        name: value
        for name, value in (
            ("compression", compression),
            ("compress_threshold", compress_threshold),
            ("secret", secret),
        )
        if value is not None
    }
    if isinstance(serializer, str):
        return make_serializer(serializer, **codec_options)
    if codec_options:
        raise ConfigurationError(
            "compression/secret options apply to a serializer given by name",
            key=next(iter(codec_options)),
        )
    if not isinstance(serializer, Serializer):
        raise ConfigurationError(
            f"serializer must be a name or a Serializer, got {serializer!r}", key="serializer"
        )
    return serializer
