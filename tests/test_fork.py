"""Caches used before a ``fork()`` keep working, unshared, in the parent and every child.

Real forks of the test process (as gunicorn ``--preload`` or Celery's prefork pool do) against
real servers; each child reports through a pipe and leaves with ``os._exit``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from cachekit import create_cache
from cachekit.testing.servers import MemcachedServer, RedisServer

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # Python 3.12+ warns about forking a process that has threads (the near cache's
    # subscriber): the reset this module tests is what makes that fork safe for the caches.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


def _fork(child: Callable[[], Any]) -> tuple[int, int]:
    """Run ``child`` in a forked process; returns (pid, read end of its JSON report)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, whose coverage is not collected
        os.close(read)
        try:
            report = {"ok": child()}
        except BaseException as exc:
            report = {"error": repr(exc)}
        os.write(write, json.dumps(report).encode())
        os._exit(0)
    os.close(write)
    return pid, read


def _report(pid: int, read: int, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the child did not finish")
        time.sleep(0.01)
    with os.fdopen(read, "rb") as pipe:
        report = json.loads(pipe.read() or b'{"error": "no report"}')
    assert os.waitstatus_to_exitcode(status) == 0
    assert "error" not in report, report["error"]
    return report["ok"]


def test_memcached_connections_are_not_shared_with_children(
    memcached_server: MemcachedServer,
) -> None:
    """Review finding: a child kept its parent's socket, and two processes reading replies
    from one socket got each other's values (another user's data, no error)."""
    cache = create_cache(memcached_server.url + "?prefix=forked")
    values = {f"user:{i}": f"secret-{i}" for i in range(4)}
    cache.set_many(values)
    assert cache.get("user:0") == "secret-0"  # the parent's connection is open

    def reader(key: str) -> Callable[[], int]:
        def run() -> int:
            wrong = 0
            for _ in range(2000):
                if cache.get(key) != values[key]:
                    wrong += 1
            return wrong

        return run

    children = [_fork(reader(f"user:{i}")) for i in (1, 2, 3)]
    wrong_here = sum(cache.get("user:0") != "secret-0" for _ in range(2000))
    assert [_report(pid, read) for pid, read in children] == [0, 0, 0]
    assert wrong_here == 0


def test_memory_cache_is_copied_and_then_independent() -> None:
    cache = create_cache("memory://")
    cache.set("k", "parent")

    def child() -> list[Any]:
        seen = cache.get("k")
        cache.set("k", "child")
        return [seen, cache.get("k")]

    pid, read = _fork(child)
    assert _report(pid, read) == ["parent", "child"]
    assert cache.get("k") == "parent"


def test_near_cache_child_subscribes_on_its_own_and_sees_parent_writes(
    redis_server: RedisServer,
) -> None:
    """A forked child has no subscriber thread and shared its parent's instance id (so each
    skipped the other's invalidations as its own): it must subscribe anew, under its own id."""
    l2 = quote(redis_server.url + "?prefix=forktier", safe="")
    cache: Any = create_cache(f"tiered://?l2={l2}&l1_ttl=300")
    assert cache.start(timeout=10)
    cache.set("k", "v1")
    assert cache.get("k") == "v1"  # in the parent's L1
    parent_origin = cache._origin
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()

    def child() -> dict[str, Any]:
        os.close(ready_r)
        os.close(go_w)
        subscribed = cache.start(timeout=10)
        first = cache.get("k")  # fills the child's L1
        os.write(ready_w, b"1")
        os.read(go_r, 1)  # the parent has written v2
        deadline = time.monotonic() + 5
        while cache.get("k") != "v2" and time.monotonic() < deadline:
            time.sleep(0.005)
        return {
            "subscribed": subscribed,
            "new_id": cache._origin != parent_origin,
            "first": first,
            "last": cache.get("k"),
        }

    pid, read = _fork(child)
    os.close(ready_w)
    os.close(go_r)
    assert os.read(ready_r, 1) == b"1"
    cache.set("k", "v2")
    os.write(go_w, b"1")
    report = _report(pid, read)
    assert report == {"subscribed": True, "new_id": True, "first": "v1", "last": "v2"}
    for fd in (ready_r, go_w):
        os.close(fd)
    cache.close()


@pytest.mark.parametrize("kind", ["memory", "redis", "memcached", "file"])
def test_locks_another_thread_held_at_the_fork_are_not_inherited(
    kind: str,
    redis_server: RedisServer,
    memcached_server: MemcachedServer,
    tmp_path: Any,
) -> None:
    """Review finding: the child of a fork taken while another thread held a cache's stats
    lock (taken on every Redis get) deadlocked on its first call."""
    url = {
        "memory": "memory://",
        "redis": redis_server.url + "?prefix=forklocks:",
        "memcached": memcached_server.url + "?prefix=forklocks",
        "file": f"file://?directory={tmp_path}",
    }[kind]
    cache: Any = create_cache(url)
    cache.set("k", "v")
    held = [
        lock
        for lock in (
            getattr(cache, "_stats_lock", None),
            getattr(getattr(cache, "_lock", None), "lock", None),  # memory's
            getattr(getattr(cache, "_fail_open", None), "_lock", None),
            getattr(getattr(cache, "_failure", None), "_lock", None),
        )
        if lock is not None
    ]
    assert held
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        for lock in held:
            lock.acquire()
        taken.set()
        release.wait(30)
        for lock in held:
            lock.release()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    taken.wait(10)
    try:
        pid, read = _fork(lambda: [cache.get("k"), cache.set("k2", 1), cache.get_stats().sets > 0])
    finally:
        release.set()
        holder.join(10)
    assert _report(pid, read, timeout=15) == ["v", None, True]
    cache.clear()
