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
* **Forks.** ``flock`` belongs to the open file description, which a child's copy of the fd
  keeps alive: a child forked while another thread held a lock would hold it for its whole
  life (and deadlock on it itself). Every fd open here is noted with the thread that opened it,
  and the child closes the copies whose thread did not survive the fork (:func:`_after_fork`).
* **Only regular files** are locked: a lock file that is a symlink (``O_NOFOLLOW``), a FIFO or
  a device raises :class:`UnsafeLockFile`, so nothing is created, locked or overwritten where
  somebody pointed the name (see docs/filesystem.md, Security).
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from .file_format import ENTRY_SUFFIX, Ident

if sys.platform != "win32":
    import fcntl

__all__ = [
    "DIRECTORY_LOCK_NAME",
    "DirectoryLock",
    "Held",
    "KeyLock",
    "UnsafeLockFile",
    "remove_free_key_lock",
]

DIRECTORY_LOCK_NAME = ".cachekit.lock"
_COUNT = struct.Struct(">Q")
# O_NOFOLLOW: never lock (nor create, nor write the count into) what a symlink points at.
# O_NONBLOCK: opening a FIFO must not wait for a peer; it is cleared once the file is checked.
_OPEN_FLAGS = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


class UnsafeLockFile(OSError):
    """A lock file is not a regular file (a symlink, a FIFO, a device...): refused.

    An ``OSError``, so the provider reports it as any disk failure (``FileUnavailable``).
    """


# -- fds open here, and forks ---------------------------------------------------------------------

#: Every lock fd open in this process -> the thread that opened it (and will close it).
_open_fds: dict[int, int] = {}
#: Held around each open/close and its bookkeeping, and across fork(), so a child never
#: inherits an fd missing from ``_open_fds`` (opened, or unlisted, but not closed yet).
#: Reentrant: a signal handler using the cache may interrupt its own thread holding it.
_fds_lock = threading.RLock()


def _before_fork() -> None:
    _fds_lock.acquire()


def _release_after_fork() -> None:
    _fds_lock.release()  # in the child too: the forking thread, its owner, is the one left


def _after_fork() -> None:
    """In the child: close the copies of the fds whose threads did not survive the fork.

    Closing the copy drops only the child's reference: the parent's thread keeps its lock until
    it lets go. The forking thread's own fds stay open, as its code (now the child's) will
    close them itself.
    """
    _release_after_fork()
    me = threading.get_ident()  # the forking thread's: fork keeps the calling thread's id
    for fd, owner in list(_open_fds.items()):
        if owner != me:
            del _open_fds[fd]
            with suppress(OSError):
                os.close(fd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_release_after_fork, after_in_child=_after_fork
    )


def _open_checked(path: str, flags: int, mode: int = 0o600) -> int:
    """Open a lock file, noted in ``_open_fds``; :class:`UnsafeLockFile` if not a plain file."""
    with _fds_lock:
        try:
            fd = os.open(path, flags, mode)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK):  # O_NOFOLLOW met a symlink
                raise UnsafeLockFile(
                    exc.errno, "lock file is a symbolic link: refused", path
                ) from exc
            raise
        _open_fds[fd] = threading.get_ident()
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeLockFile(errno.EINVAL, "lock file is not a regular file: refused", path)
        os.set_blocking(fd, True)  # flock ignores it, but nothing here expects it
    except BaseException:
        _close(fd)
        raise
    return fd


def _close(fd: int) -> None:
    """Close an fd from :func:`_open_checked` (releasing its ``flock``)."""
    with _fds_lock:
        _open_fds.pop(fd, None)
        os.close(fd)


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
        return _open_checked(path, _OPEN_FLAGS | os.O_CREAT, mode)
    except FileNotFoundError:
        make_dirs(directory, dir_mode)
        return _open_checked(path, _OPEN_FLAGS | os.O_CREAT, mode)


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
                st = os.lstat(path)  # a symlink read as corrupt: the link's own ident
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
                _close(fd)  # releases the flock

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
                _close(fd)
                return False
            except BaseException:
                _close(fd)
                raise
            if _still_at(fd, self.path):
                self._fd = fd
                return True
            # Its holder removed it between our open and our flock: lock the current file.
            _close(fd)

    def release(self) -> None:
        """Remove the lock file and let go (nothing to do when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with suppress(FileNotFoundError):
                os.unlink(self.path)  # while held: see the module docstring
        finally:
            _close(fd)


def remove_free_key_lock(path: str) -> bool:
    """Remove a key lock file nobody holds (left by a holder that died); whether it did."""
    try:
        fd = _open_checked(path, _OPEN_FLAGS)
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
        _close(fd)
