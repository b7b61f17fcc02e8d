"""The ``file://`` provider's locks: ``flock`` on files in the cache directory.

* **The directory lock** (:class:`DirectoryLock`). Every mutation holds ``flock`` on
  ``<directory>/.cachekit.lock``, opened for that one operation, so threads, processes and
  forked children all exclude one another and nothing stays open between calls. The lock file
  also stores the entry count in its first 8 bytes, kept exact under the lock: an operation
  notes the entry files it creates and removes (:class:`Held`) and the count is brought up to
  date when it lets go. It is recounted from the directory when it is missing and whenever the
  caller asks (every pruning), so drift from crashes or manual deletes heals.
* **Key locks** (:class:`KeyLock`): ``get_or_set``'s stampede lock, ``.ckl-<sha256(key)>``,
  taken without blocking (``flock`` has no timeout, so waiters poll until their deadline). A key
  lock file exists only while it is held: its holder unlinks it before closing it, and whoever
  locks one checks that it is still the file at that path, or else retries on the new one (the
  usual protocol for lock files that are removed). A holder that dies leaves an empty file that
  nobody holds; the next holder, a ``clear()`` or a pruning removes it
  (:func:`remove_free_key_lock`).
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from .file_format import ENTRY_SUFFIX, Ident

if sys.platform != "win32":
    import fcntl

__all__ = ["DIRECTORY_LOCK_NAME", "DirectoryLock", "Held", "KeyLock", "remove_free_key_lock"]

DIRECTORY_LOCK_NAME = ".cachekit.lock"
_COUNT = struct.Struct(">Q")
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC


def make_dirs(path: str, mode: int) -> None:
    """``os.makedirs(path, exist_ok=True)`` that gives ``mode`` to *every* directory it creates.

    ``os.makedirs`` gives it to the last one only, its parents getting the umask's default
    (world-readable, usually): the hole Django closed in ``FileBasedCache`` (CVE-2020-24584).
    """
    head, tail = os.path.split(path)
    if not tail:
        head, tail = os.path.split(head)
    if head and tail and not os.path.exists(head):
        make_dirs(head, mode)
        if tail == os.curdir:
            return
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        if not os.path.isdir(path):
            raise


def _open_creating(path: str, directory: str, mode: int, dir_mode: int) -> int:
    """Open (creating) a lock file; the directory is made on first use, not on start-up."""
    try:
        return os.open(path, _OPEN_FLAGS, mode)
    except FileNotFoundError:
        make_dirs(directory, dir_mode)
        return os.open(path, _OPEN_FLAGS, mode)


class Held:
    """The directory lock, held: entry files created (+1) and removed (-1) since taking it."""

    __slots__ = ("delta", "fd")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.delta = 0

    def remove(self, path: str, ident: Ident | None = None) -> bool:
        """Unlink ``path`` if it is still the file read as ``ident``; whether it was removed."""
        try:
            if ident is not None:
                st = os.stat(path)
                if (st.st_ino, st.st_mtime_ns) != ident:
                    return False  # rewritten since it was read: not ours to remove
            os.unlink(path)
        except FileNotFoundError:
            return False
        if path.endswith(ENTRY_SUFFIX):
            self.delta -= 1
        return True


class DirectoryLock:
    """``flock`` on ``<directory>/.cachekit.lock``, and the entry count stored in that file."""

    __slots__ = ("_count_entries", "_dir_mode", "_directory", "_mode", "path")

    def __init__(
        self, directory: str, mode: int, dir_mode: int, count_entries: Callable[[], int]
    ) -> None:
        self._directory = directory
        self._mode = mode
        self._dir_mode = dir_mode
        self._count_entries = count_entries  # lists the directory: the recount
        self.path = os.path.join(directory, DIRECTORY_LOCK_NAME)

    @contextmanager
    def hold(self) -> Iterator[Held]:
        """Hold the directory's ``flock``; the stored entry count follows the held changes."""
        fd = _open_creating(self.path, self._directory, self._mode, self._dir_mode)
        held = Held(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield held
        finally:
            try:
                if held.delta:
                    self.sync_count(held)
            finally:
                os.close(fd)  # releases the flock

    def sync_count(self, held: Held, *, recount: bool = False) -> int:
        """Apply the held changes to the stored count (recounting when asked or unknown)."""
        raw = os.pread(held.fd, _COUNT.size, 0)
        if recount or len(raw) < _COUNT.size:
            count = self._count_entries()  # already includes the held changes
        else:
            count = max(0, _COUNT.unpack(raw)[0] + held.delta)
        os.pwrite(held.fd, _COUNT.pack(count), 0)
        held.delta = 0
        return count

    @staticmethod
    def reset_count(held: Held) -> None:
        """The directory holds no entry any more (``clear()``)."""
        held.delta = 0
        os.pwrite(held.fd, _COUNT.pack(0), 0)


def _still_at(fd: int, path: str) -> bool:
    """Whether the open file ``fd`` is the one ``path`` names now."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


class KeyLock:
    """One key's ``get_or_set`` lock; :meth:`try_acquire` never blocks. Not reentrant."""

    __slots__ = ("_dir_mode", "_directory", "_fd", "_mode", "path")

    def __init__(self, path: str, directory: str, mode: int, dir_mode: int) -> None:
        self.path = path
        self._directory = directory
        self._mode = mode
        self._dir_mode = dir_mode
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; whether this holder has it now."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: already held by this KeyLock")
        while True:
            fd = _open_creating(self.path, self._directory, self._mode, self._dir_mode)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            if _still_at(fd, self.path):
                self._fd = fd
                return True
            # Its holder removed it between our open and our flock: lock the current file.
            os.close(fd)

    def release(self) -> None:
        """Remove the lock file and let go (nothing to do when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with suppress(FileNotFoundError):
                os.unlink(self.path)  # while held: see the module docstring
        finally:
            os.close(fd)


def remove_free_key_lock(path: str) -> bool:
    """Remove a key lock file nobody holds (left by a holder that died); whether it did."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # in use
        if not _still_at(fd, path):
            return False  # released and removed meanwhile
        os.unlink(path)
        return True
    finally:
        os.close(fd)
