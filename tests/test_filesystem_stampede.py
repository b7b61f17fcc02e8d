"""``get_or_set`` on ``file://`` computes a missing key once across processes.

Real processes race in the first test; the others play the other process themselves by holding
the key's lock file (``.ckl-<sha256(key)>``, as ``docs/filesystem.md`` documents it) with
``fcntl.flock``, which excludes another open file of the same process as it excludes another
process. Nothing here asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cachekit import create_cache
from cachekit.errors import BackendUnavailable
from cachekit.providers.filesystem import FileCache


def key_lock_path(directory: Path, key: str) -> Path:
    return directory / (".ckl-" + hashlib.sha256(key.encode()).hexdigest())


def key_locks(directory: Path) -> list[Path]:
    if not directory.exists():
        return []
    return sorted(p for p in directory.iterdir() if p.name.startswith(".ckl-"))


class Holder:
    """Another process in the middle of computing ``key``: it holds the key's lock file."""

    def __init__(self, directory: Path, key: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = key_lock_path(directory, key)
        self.fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        """Let go as a holder does: remove the file while still holding it, then close it."""
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def holder(directory: Path) -> Iterator[Callable[[str], Holder]]:
    held: list[Holder] = []

    def hold(key: str) -> Holder:
        held.append(Holder(directory, key))
        return held[-1]

    yield hold
    for h in held:
        h.release()


def until(condition: Callable[[], bool]) -> None:
    """Wait for something the code under test does on its own; a guard, not an assertion."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "the waiter never started waiting"
        time.sleep(0.001)


# -- real processes ----------------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import sys, time
    from cachekit.providers.filesystem import FileCache

    directory, log, name = sys.argv[1:4]
    cache = FileCache(directory, stampede_timeout=300)

    def compute():
        with open(log, "a") as f:
            f.write(name + "\\n")
        time.sleep(0.5)  # slow: the other processes ask for the key meanwhile
        return "computed by " + name

    print("ready", flush=True)
    sys.stdin.readline()  # every process starts asking at once
    print(cache.get_or_set("hot", compute), flush=True)
    """
)


def test_get_or_set_computes_once_across_processes(directory: Path, tmp_path: Path) -> None:
    log = tmp_path / "computations.log"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(directory), str(log), f"p{n}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * len(workers)
    computations = log.read_text().split()
    assert len(computations) == 1
    assert outputs == [f"computed by {computations[0]}\n"] * len(workers)
    assert key_locks(directory) == []  # removed by its holder


# -- waiting for another process -------------------------------------------------------------


def test_a_waiter_returns_the_holders_value_and_never_computes(
    directory: Path, holder: Callable[[str], Holder]
) -> None:
    cache, other = FileCache(directory), FileCache(directory)
    lock = holder("hot")
    calls: list[str] = []
    results: list[object] = []

    def factory() -> str:
        calls.append("waiter")
        return "waiter's"

    waiter = threading.Thread(target=lambda: results.append(cache.get_or_set("hot", factory)))
    waiter.start()
    until(lambda: cache._single_flight.in_flight() == 1)  # missed, now behind the lock
    other.set("hot", "holder's")  # what the holder computed
    lock.release()
    waiter.join()
    assert results == ["holder's"]
    assert calls == []
    assert key_locks(directory) == []


def test_a_waiter_computes_when_the_holder_gives_up_without_a_value(
    directory: Path, holder: Callable[[str], Holder]
) -> None:
    cache = FileCache(directory)
    lock = holder("hot")
    results: list[object] = []
    waiter = threading.Thread(target=lambda: results.append(cache.get_or_set("hot", lambda: 7)))
    waiter.start()
    until(lambda: cache._single_flight.in_flight() == 1)
    lock.release()  # its factory failed: nothing stored
    waiter.join()
    assert results == [7]
    assert cache.get("hot") == 7
    assert key_locks(directory) == []


def test_a_slow_holder_delays_waiters_only_until_stampede_timeout(
    directory: Path, holder: Callable[[str], Holder]
) -> None:
    cache = FileCache(directory, stampede_timeout=0.05)
    lock = holder("hot")
    assert cache.get_or_set("hot", lambda: "mine") == "mine"
    assert cache.get("hot") == "mine"
    assert key_locks(directory) == [lock.path]  # still the holder's: never taken from it


def test_aget_or_set_waits_for_the_holder_too(
    directory: Path, holder: Callable[[str], Holder]
) -> None:
    cache, other = FileCache(directory), FileCache(directory)
    lock = holder("hot")
    calls: list[str] = []

    async def factory() -> str:
        calls.append("waiter")
        return "waiter's"

    async def scenario() -> object:
        task = asyncio.create_task(cache.aget_or_set("hot", factory))
        deadline = time.monotonic() + 60
        while cache._async_single_flight.in_flight() == 0:
            assert time.monotonic() < deadline, "the waiter never started waiting"
            await asyncio.sleep(0.001)
        other.set("hot", "holder's")
        lock.release()
        return await task

    assert asyncio.run(scenario()) == "holder's"
    assert calls == []
    assert asyncio.run(cache.aget_or_set("cold", factory)) == "waiter's"
    assert key_locks(directory) == []


# -- the lock files ----------------------------------------------------------------------------


def test_a_failing_factory_leaves_no_lock_behind(directory: Path) -> None:
    cache = FileCache(directory)

    def fail() -> int:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        cache.get_or_set("k", fail)
    assert key_locks(directory) == []
    assert cache.get_or_set("k", lambda: 1) == 1


def test_stampede_timeout_none_takes_no_lock(directory: Path) -> None:
    key_lock_path(directory, "k").mkdir(parents=True)  # no lock can be taken on a directory
    with pytest.raises(BackendUnavailable):
        FileCache(directory).get_or_set("k", lambda: 1)
    unlocked = create_cache(f"file://{directory}?stampede_timeout=none")
    assert unlocked.get_or_set("k", lambda: 2) == 2
    failing_open = FileCache(directory, fail_open=True)
    assert failing_open.get_or_set("j", lambda: 3) == 3  # j's lock is fine
    key_lock_path(directory, "j").mkdir()
    failing_open.delete("j")
    assert failing_open.get_or_set("j", lambda: 4) == 4  # computed without the lock
    assert failing_open.get_stats().extra["fail_open_lock_errors_total"] == 1


def test_leftover_key_locks_go_at_clear_and_pruning_held_ones_stay(
    directory: Path, holder: Callable[[str], Holder]
) -> None:
    cache = FileCache(directory, max_entries=2)
    cache.set("a", 1)
    held = holder("busy").path
    for round_trip in (cache.clear, lambda: cache.set_many({"x": 1, "y": 2, "z": 3})):
        dead = key_lock_path(directory, "dead")
        dead.write_bytes(b"")  # left by a holder that died: nobody holds it
        round_trip()
        assert key_locks(directory) == [held]
