"""Regressions from a review of the ``file://`` provider: locks inherited by forked children,
lock and entry files that are symlinks or FIFOs, and negative TTLs."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

import cachekit
from cachekit.errors import BackendUnavailable
from cachekit.providers.filesystem import FileCache

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork and POSIX files"),
    # Python 3.12+ warns about forking a process with threads: these tests do so on purpose.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

#: How long a step may take before the test calls it blocked (the blocking ones would never end).
BOUND = 10.0


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def completes(fn: Callable[[], Any], unblock: Callable[[], None] | None = None) -> Any:
    """``fn()``'s result, failing the test if it has not returned within ``BOUND`` seconds.

    It runs in a thread so a call stuck in the kernel cannot hang the suite; ``unblock`` frees
    such a call before failing, so the thread does not outlive the test.
    """
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    thread.join(BOUND)
    if thread.is_alive():
        if unblock is not None:
            unblock()
        thread.join(BOUND)
        pytest.fail(f"{fn} blocked")
    assert result, f"{fn} raised (see the thread's traceback)"
    return result[0]


def kill(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


class LockHolder:
    """A thread holding the cache's directory lock (as any mutation does) until released."""

    def __init__(self, cache: FileCache) -> None:
        self._held, self._release = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, args=(cache,), daemon=True)
        self._thread.start()
        assert self._held.wait(BOUND)

    def _hold(self, cache: FileCache) -> None:
        with cache._files.locked():
            self._held.set()
            self._release.wait()

    def release(self) -> None:
        self._release.set()
        self._thread.join(BOUND)


# -- 1. a fork while another thread holds a lock --------------------------------------------------


def test_a_child_forked_while_a_thread_holds_the_lock_does_not_keep_it(tmp_path: Path) -> None:
    # flock belongs to the open file description, which the child's copy of the fd kept alive:
    # the parent's next write waited for the child to exit.
    cache = FileCache(tmp_path)
    holder = LockHolder(cache)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: a worker that never touches the cache
        time.sleep(30)
        os._exit(0)
    try:
        holder.release()
        completes(lambda: cache.set("after", 1))
        assert cache.get("after") == 1
    finally:
        kill(pid)


def test_a_child_forked_while_a_thread_holds_the_lock_can_write(tmp_path: Path) -> None:
    # The child's own write used to wait forever on the copy of the lock it inherited.
    cache = FileCache(tmp_path)
    holder = LockHolder(cache)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            signal.alarm(30)  # never outlive the test by much
            cache.set("child", 1)
            code = 0 if cache.get("child") == 1 else 2
        finally:
            os._exit(code)
    try:
        holder.release()  # the parent's thread lets go after the fork: the child may go on
        deadline = time.monotonic() + BOUND
        while (status := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                pytest.fail("the child's set() blocked")
            time.sleep(0.01)
        pid = 0
        assert os.waitstatus_to_exitcode(status[1]) == 0
        assert cache.get("child") == 1
    finally:
        if pid:
            kill(pid)


# -- 2. symlinks and FIFOs in the directory -------------------------------------------------------


def test_a_symlinked_directory_lock_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    # The entry count was pwrite()n at offset 0 of whatever the lock file's name pointed to.
    directory, victim = tmp_path / "cache", tmp_path / "victim"
    directory.mkdir()
    victim.write_bytes(b"precious data")
    (directory / ".cachekit.lock").symlink_to(victim)
    cache = FileCache(directory)
    with pytest.raises(BackendUnavailable):
        cache.set("k", 1)
    assert victim.read_bytes() == b"precious data"


def test_a_dangling_key_lock_symlink_creates_nothing(tmp_path: Path) -> None:
    # open(O_CREAT) through a dangling symlink created its target, wherever that was.
    directory, target = tmp_path / "cache", tmp_path / "created"
    directory.mkdir()
    (directory / f".ckl-{digest('k')}").symlink_to(target)
    cache = FileCache(directory)
    with pytest.raises(BackendUnavailable):
        cache.get_or_set("k", lambda: 1)
    assert not target.exists()
    assert not target.is_symlink()


def test_a_symlinked_entry_reads_as_a_miss(tmp_path: Path) -> None:
    # Reads followed the link: another directory's file was served as this cache's value.
    elsewhere, directory = tmp_path / "elsewhere", tmp_path / "cache"
    FileCache(elsewhere).set("k", "planted")
    directory.mkdir()
    (directory / f"{digest('k')}.ckc").symlink_to(elsewhere / f"{digest('k')}.ckc")
    cache = FileCache(directory)
    assert cache.get("k") is None
    assert cache.get_stats().extra["corrupt_files_total"] == 1
    assert not (directory / f"{digest('k')}.ckc").is_symlink()  # removed, as corrupt files are
    assert FileCache(elsewhere).get("k") == "planted"  # the link, not its target


def test_a_fifo_entry_reads_as_a_miss_without_blocking(tmp_path: Path) -> None:
    # open() of a FIFO waits for a writer: get() and every header scan hung forever.
    fifo = tmp_path / f"{digest('k')}.ckc"
    os.mkfifo(fifo)

    def unblock() -> None:  # a writer that closes at once: the stuck reader sees EOF
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    cache = FileCache(tmp_path)
    assert completes(cache.scan_keys, unblock) == ("", [])
    os.mkfifo(fifo)  # the scan removed it, as corrupt files are
    assert completes(lambda: cache.get("k", "miss"), unblock) == "miss"
    assert not fifo.exists()
    assert cache.get_stats().extra["corrupt_files_total"] == 2


# -- 3. ttl() never negative ----------------------------------------------------------------------


class TickingClock:
    """Epoch seconds that move ``tick`` seconds at every reading: time passes between reads."""

    def __init__(self, now: float) -> None:
        self.now, self.tick = now, 0.0

    def __call__(self) -> float:
        now = self.now
        self.now += self.tick
        return now


def test_ttl_and_inspect_never_report_a_negative_ttl(tmp_path: Path) -> None:
    # The entry is live at the read's reading of the clock, expired at the next one.
    clock = TickingClock(1_000.0)
    cache = FileCache(tmp_path, clock=clock)
    cache.set("k", 1, ttl=10)
    clock.now, clock.tick = 1_009.5, 1.0
    assert cache.ttl("k") == 0.0
    clock.now = 1_009.5
    info = cache.inspect("k")
    assert info is not None
    assert info.ttl == 0.0


# -- get_or_set's fill re-reads go through the shared _fill_peek hook ---------------------------


class _Opaque:
    """A value only a pickle serializer can store: a JSON cache cannot decode its entry."""


@pytest.mark.parametrize("stampede_timeout", [None, 5.0])
@pytest.mark.parametrize("use_async", [False, True])
def test_an_undecodable_entry_written_during_the_fill_is_a_miss(
    tmp_path: Path, stampede_timeout: float | None, use_async: bool
) -> None:
    """Another program (a pickle cache) writes the key while the factory runs: the fill's
    re-read treats its entry as missing and the factory's value is served, as on Redis."""
    other = FileCache(directory=str(tmp_path), serializer="pickle")
    cache = FileCache(directory=str(tmp_path), serializer="json", stampede_timeout=stampede_timeout)

    def factory() -> str:
        other.set("k", _Opaque())
        return "new"

    try:
        if use_async:
            assert asyncio.run(cache.aget_or_set("k", factory)) == "new"
        else:
            assert cache.get_or_set("k", factory) == "new"
    finally:
        other.close()
        cache.close()


def test_stats_report_a_missing_directory_that_cannot_be_made(tmp_path: Path) -> None:
    """A directory the first write could not make read as a healthy, empty cache."""
    (tmp_path / "afile").write_text("not a directory")
    broken = cachekit.create_cache(f"file://{tmp_path}/afile/cache")
    stats = broken.get_stats()
    assert stats.extra["available"] is False
    assert stats.server_read_error is not None
    fresh = cachekit.create_cache(f"file://{tmp_path}/later/cache")
    assert fresh.get_stats().extra["available"] is True  # made on the first write
    assert not (tmp_path / "later").exists()  # and not by a stats read
