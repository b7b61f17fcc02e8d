"""Real servers for the network benches: started on free ports, pinned, and their CPU time read.

The servers come from :mod:`cachekit.testing.servers` (free loopback ports, never 6379/11211,
killed at exit even after an interrupt). Pinning moves *every* thread of a server (memcached
runs worker threads, redis-server its bio threads) to one CPU: ``sched_setaffinity`` on a pid
alone would move only the main thread. A server's CPU time is read from
``/proc/PID/task/*/schedstat`` (nanoseconds on CPU, summed over its threads), which is precise
enough to charge a server for a loop of a few thousand requests.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

__all__ = ["pin", "server_cpu_ns", "sigterm_as_exit"]


def _tasks(pid: int) -> list[int]:
    try:
        return [int(task) for task in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return [pid]


def pin(pid: int, cpu: int) -> None:
    """Run every thread of process ``pid`` (0: this process) on ``cpu`` only."""
    if pid == 0:
        pid = os.getpid()
    for task in _tasks(pid):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(task, {cpu})


def server_cpu_ns(pid: int) -> int:
    """CPU time in nanoseconds used so far by every thread of process ``pid``."""
    total = 0
    for task in _tasks(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
    return total


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit`` so the ``with`` blocks holding servers still close them."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
