"""The entries of one ``file://`` cache directory: read, written, removed and kept bounded.

:class:`FileStore` knows files, not cache semantics (TTL defaults, serialization of new values,
hit and miss counts, fail-open: :class:`~cachekit.providers.filesystem.FileCache` owns those).

* **Atomic writes.** A value is written to a temporary file in the same directory and renamed
  over the entry with ``os.replace``: a reader opens the old file or the new one, never a torn
  one. Reads take no lock; every mutation holds the directory lock (:mod:`.file_lock`).
* **Safe removal.** A file found expired or corrupt is removed only if, under the lock, it is
  still the file that was read (inode and mtime), so a concurrent rewrite is never deleted by
  mistake. Expired files a read meets are removed then; the others at pruning.
* **Corrupt files** (see :mod:`.file_format`) read as misses: logged, counted and removed.
* **The bound.** A write that takes the entry count over ``max_entries`` prunes: expired files
  first, then the least recently written, down to 90 % of the bound so the pass, which reads
  every header, is amortised over the writes that follow. It scans without the lock and removes
  its victims under it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from typing import Any

from ..errors import SerializationError
from .file_format import (
    TMP_PREFIX,
    TMP_SUFFIX,
    CorruptFile,
    Entry,
    Ident,
    encode_entry,
    entry_name,
    is_entry_name,
    is_key_lock_name,
    is_owned,
    key_lock_name,
    read_entry,
)
from .file_lock import DirectoryLock, Held, KeyLock, make_dirs, remove_free_key_lock

__all__ = ["FileStore"]

# The provider's logger: operators filter file:// messages by one name.
log = logging.getLogger("cachekit.providers.filesystem")

#: Pruning frees 1/N of ``max_entries`` (at least one entry), so the next pass, which reads
#: every header, is that many new entries away.
_PRUNE_DIVISOR = 10
#: A temporary file this old (seconds) belongs to a writer that died: pruning removes it.
_STALE_TMP_SECONDS = 3600.0


class FileStore:
    """One directory's entry files; ``clock`` is wall-clock epoch seconds (shared expiry)."""

    __slots__ = (
        "_clock", "_counts_lock", "_dir_mode", "_loads", "_lock", "corrupt", "directory",
        "evictions", "expirations", "max_entries", "mode", "name",
    )  # fmt: skip

    def __init__(
        self,
        directory: str,
        *,
        name: str,
        mode: int,
        max_entries: int | None,
        clock: Callable[[], float],
        loads: Callable[[bytes], Any],
    ) -> None:
        self.directory = directory
        self.name = name
        self.mode = mode
        self._dir_mode = mode | ((mode & 0o444) >> 2)  # x wherever r: 0o600 -> 0o700
        self.max_entries = max_entries
        self._clock = clock
        self._loads = loads
        self._lock = DirectoryLock(directory, mode, self._dir_mode, lambda: len(self.entry_files()))
        self._counts_lock = threading.Lock()
        self.expirations = self.evictions = self.corrupt = 0

    def _after_fork(self) -> None:
        self._counts_lock = threading.Lock()  # the directory lock is a file lock, per hold

    def locked(self) -> AbstractContextManager[Held]:
        """Hold the directory lock (see :mod:`.file_lock`)."""
        return self._lock.hold()

    def key_lock(self, key: str) -> KeyLock:
        """``get_or_set``'s lock on ``key`` (not taken yet)."""
        path = os.path.join(self.directory, key_lock_name(key))
        return KeyLock(path, self.directory, self.mode, self._dir_mode)

    def reset_counts(self) -> None:
        """Zero this process's removal counts (the files stay)."""
        with self._counts_lock:
            self.expirations = self.evictions = self.corrupt = 0

    def _count(self, expirations: int = 0, evictions: int = 0, corrupt: int = 0) -> None:
        with self._counts_lock:
            self.expirations += expirations
            self.evictions += evictions
            self.corrupt += corrupt

    # -- reading --------------------------------------------------------------------------------

    def path(self, key: str) -> str:
        return os.path.join(self.directory, entry_name(key))

    def live(
        self, key: str, held: Held | None = None, *, header_only: bool = False
    ) -> Entry | None:
        """The live entry of ``key``; an expired or corrupt file met on the way is removed."""
        path = self.path(key)
        try:
            entry = read_entry(path, header_only=header_only)
        except CorruptFile as exc:
            self._drop_corrupt(path, exc, held)
            return None
        if entry is None or entry.key != key:  # absent, or a (SHA-256!) collision: a miss
            return None
        if entry.expires_at <= self._clock():
            if self._remove(path, entry.ident, held):
                self._count(expirations=1)
            return None
        return entry

    def fetch(self, key: str, held: Held | None = None) -> tuple[Entry, Any] | None:
        """The live entry and its decoded value; an undecodable payload is a corrupt file."""
        entry = self.live(key, held)
        if entry is None:
            return None
        try:
            return entry, self._loads(entry.payload)
        except SerializationError as exc:
            self._drop_corrupt(self.path(key), CorruptFile(str(exc), entry.ident), held)
            return None

    def entry_files(self) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(self.directory) as it:
                return [d for d in it if is_entry_name(d.name)]
        except FileNotFoundError:  # nothing written yet
            return []

    def scan(self) -> list[tuple[str, Entry]]:
        """``(path, header)`` of every live entry; corrupt files met are removed."""
        now = self._clock()
        found: list[tuple[str, Entry]] = []
        for dirent in self.entry_files():
            try:
                entry = read_entry(dirent.path, header_only=True)
            except CorruptFile as exc:
                self._drop_corrupt(dirent.path, exc, None)
                continue
            if entry is not None and entry.expires_at > now:
                found.append((dirent.path, entry))
        return found

    def _drop_corrupt(self, path: str, exc: CorruptFile, held: Held | None) -> None:
        log.warning("cache %r: corrupt file %s (%s): read as a miss, removed", self.name, path, exc)
        self._count(corrupt=1)
        self._remove(path, exc.ident, held)

    # -- writing --------------------------------------------------------------------------------

    def _remove(self, path: str, ident: Ident | None, held: Held | None) -> bool:
        if held is not None:
            return held.remove(path, ident)
        with self.locked() as own:
            return own.remove(path, ident)

    def _write_temp(
        self, key: str, payload: bytes, expires_at: float, tags: frozenset[str] | None
    ) -> str:
        """A complete entry file under a temporary name, ready to be renamed into place."""
        data = encode_entry(key, tags, payload, expires_at, time.time_ns())
        try:
            fd, tmp = tempfile.mkstemp(TMP_SUFFIX, TMP_PREFIX, self.directory)
        except FileNotFoundError:  # the directory is made on the first write, not on start-up
            make_dirs(self.directory, self._dir_mode)
            fd, tmp = tempfile.mkstemp(TMP_SUFFIX, TMP_PREFIX, self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                if self.mode != 0o600:  # mkstemp's mode
                    os.fchmod(f.fileno(), self.mode)
                f.write(data)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp

    def _commit(self, held: Held, tmp: str, path: str) -> bool:
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

    def rewrite(
        self,
        held: Held,
        key: str,
        payload: bytes,
        expires_at: float,
        tags: frozenset[str] | None,
    ) -> int:
        """Write ``key``'s entry under the held lock; the new entry count if it made an entry
        (pass it to :meth:`enforce_bound` once the lock is released), else 0."""
        tmp = self._write_temp(key, payload, expires_at, tags)
        if self._commit(held, tmp, self.path(key)):
            return self._lock.sync_count(held)
        return 0

    def store(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        tags: frozenset[str] | None,
        *,
        only_if_absent: bool = False,
        only_if_present: bool = False,
    ) -> bool:
        """Write an entry (``add``: only if no live one; ``replace``: only over a live one);
        whether it was written."""
        path = self.path(key)
        tmp = self._write_temp(key, payload, expires_at, tags)  # before the lock: held briefly
        count, pending = 0, True
        try:
            with self.locked() as held:
                if (only_if_absent or only_if_present) and (
                    self.live(key, held, header_only=True) is None
                ) == only_if_present:
                    return False
                pending = False  # _commit disposes of tmp whatever happens
                if self._commit(held, tmp, path):
                    count = self._lock.sync_count(held)
        finally:
            if pending:  # add/replace found (no) live entry, or the lock could not be taken
                with suppress(FileNotFoundError):
                    os.unlink(tmp)
        self.enforce_bound(count)
        return True

    # -- removal --------------------------------------------------------------------------------

    def remove_key(self, key: str) -> bool:
        """Remove ``key``'s file; whether it held a live value."""
        with self.locked() as held:
            if self.live(key, held, header_only=True) is None:
                return False
            return held.remove(self.path(key))

    def remove_where(
        self, matches: Callable[[str], bool] | None, tags: frozenset[str] | None
    ) -> int:
        """Remove the live entries whose key matches or that carry any of ``tags``."""
        victims = [
            (path, entry.ident)
            for path, entry in self.scan()
            if (matches is not None and matches(entry.key))
            or (tags is not None and entry.tags is not None and not tags.isdisjoint(entry.tags))
        ]
        if not victims:
            return 0
        with self.locked() as held:
            return sum(held.remove(path, ident) for path, ident in victims)

    def clear(self) -> None:
        """Remove the entries, temporaries and free key locks; nothing else in the directory."""
        if not os.path.isdir(self.directory):
            return
        with self.locked() as held:
            with os.scandir(self.directory) as it:
                dirents = list(it)
            for dirent in dirents:
                if is_owned(dirent.name):
                    with suppress(FileNotFoundError):
                        os.unlink(dirent.path)
                elif is_key_lock_name(dirent.name):
                    with suppress(OSError):  # a leftover that cannot go is harmless
                        remove_free_key_lock(dirent.path)
            self._lock.reset_count(held)

    # -- the bound ------------------------------------------------------------------------------

    def enforce_bound(self, count: int) -> None:
        """Prune if a write took the entry count to ``count``, over ``max_entries``."""
        if self.max_entries is not None and count > self.max_entries:
            self._prune(self.max_entries)

    def _prune(self, max_entries: int) -> None:
        """Expired files, then the least recently written, until 90 % of the bound is left."""
        now, wall = self._clock(), time.time()
        expired: list[tuple[str, Ident]] = []
        live: list[tuple[int, str, Ident]] = []
        stale: list[str] = []
        key_locks: list[str] = []
        try:
            with os.scandir(self.directory) as it:
                dirents = list(it)
        except FileNotFoundError:  # removed from under us: nothing to prune
            return
        for dirent in dirents:
            if is_entry_name(dirent.name):
                try:
                    entry = read_entry(dirent.path, header_only=True)
                except CorruptFile as exc:
                    self._drop_corrupt(dirent.path, exc, None)
                    continue
                if entry is None:
                    continue
                if entry.expires_at <= now:
                    expired.append((dirent.path, entry.ident))
                else:
                    live.append((entry.written_ns, dirent.path, entry.ident))
            elif is_owned(dirent.name):
                with suppress(FileNotFoundError):
                    if wall - dirent.stat().st_mtime > _STALE_TMP_SECONDS:
                        stale.append(dirent.path)
            elif is_key_lock_name(dirent.name):
                key_locks.append(dirent.path)
        keep = max(1, max_entries - max_entries // _PRUNE_DIVISOR)
        live.sort()
        oldest = live[: max(0, len(live) - keep)]
        with self.locked() as held:
            gone = sum(held.remove(path, ident) for path, ident in expired)
            evicted = sum(held.remove(path, ident) for _, path, ident in oldest)
            for path in stale:
                held.remove(path)
            self._lock.sync_count(held, recount=True)
        for path in key_locks:  # left by holders that died; those in use stay
            with suppress(OSError):  # a leftover that cannot go is harmless
                remove_free_key_lock(path)
        self._count(expirations=gone, evictions=evicted)
