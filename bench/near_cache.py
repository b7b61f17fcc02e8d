"""The tiered near cache: hot-key get throughput, and the cross-process staleness bound.

(a) **Hot-key get.** ``TieredCache.get`` of one key that sits in L1, against a raw redis-py
    ``GET`` of the same key (hiredis parser, ``decode_responses=False``, a ``redis.Redis`` on the
    same server URL), interleaved for ``--reps`` rounds on fresh instances; medians of ops/s and
    of client CPU time per op (``time.process_time``), and the median of the per-round ratios.
    Target (issue 3): at least 20x the raw ``GET``.
(b) **Staleness across processes.** Process A (this one) writes a new value of a key through its
    own TieredCache; process B (a spawned child with its own TieredCache, its L1 already holding
    the previous value) polls ``get`` until it sees the new value. The delay from A's ``set``
    returning to B first seeing the value (``time.monotonic``: CLOCK_MONOTONIC, one clock for
    every process on the machine) is measured over ``--writes`` writes; p50/p90/p99/max are
    printed, also from the start of A's ``set``. B polls in two modes: ``busy`` (a tight loop:
    the subscriber thread must win the GIL from it, so up to one switch interval, 5 ms, is
    added) and ``paced`` (a 100 µs sleep between gets, as an application that does other I/O).

A real ``redis-server`` is started by :class:`cachekit.testing.servers.RedisServer` on a free
port (never 6379). With ``--pin`` (default on) the server and this process run on CPU 0 and the
reader B on CPU 1 (see docs/benchmarking notes: loopback round trips across idle vCPUs are
bimodal). Run from the repository root::

    python -m bench.near_cache                  # both parts, ~30 s on 2 vCPUs
    python -m bench.near_cache --quick          # shorter runs
    python -m bench.near_cache --no-pin --writes 500
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

import redis

from cachekit import create_cache
from cachekit.providers.tiered import TieredCache
from cachekit.testing.servers import RedisServer

TARGET_RATIO = 20.0
VALUE = b"x" * 100
KEY = "hot"
POLL_PACE = 0.0001


def _pin(pid: int, cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu in os.sched_getaffinity(0) | {0}:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})


def _tiered(url: str, prefix: str) -> TieredCache:
    cache = create_cache({"url": "tiered://", "l2": {"url": url, "prefix": prefix}})
    assert isinstance(cache, TieredCache)
    if not cache.start(timeout=10):
        raise RuntimeError("the invalidation subscriber did not connect")
    return cache


# -- (a) hot-key throughput ------------------------------------------------------------------


def _time_loop(get: Any, key: Any, ops: int) -> tuple[float, float]:
    """(ops per second, CPU microseconds per op) of ``ops`` calls of ``get(key)``."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(ops):
        get(key)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return ops / wall, cpu / ops * 1e6


def hot_key(url: str, reps: int, tiered_ops: int, raw_ops: int) -> bool:
    print("\n(a) hot-key get, 100 B value: TieredCache (L1 hit) vs raw redis-py GET (hiredis)")
    rows: dict[str, list[tuple[float, float]]] = {"tiered": [], "raw": []}
    ratios: list[float] = []
    for rep in range(reps):
        cache = _tiered(url, f"bench-hot{rep}:")
        cache.set(KEY, VALUE)
        while KEY not in cache.l1.keys():  # a fill may be skipped when a message races it
            cache.get(KEY)
        assert cache.get(KEY) == VALUE
        raw = redis.Redis.from_url(url, decode_responses=False)
        raw.set(f"raw:{KEY}", VALUE)
        assert raw.get(f"raw:{KEY}") == VALUE
        tiered = _time_loop(cache.get, KEY, tiered_ops)
        plain = _time_loop(raw.get, f"raw:{KEY}", raw_ops)
        stats = cache.get_stats().extra
        assert stats["l1_hits"] >= tiered_ops, stats
        cache.clear()
        cache.close()
        raw.close()
        rows["tiered"].append(tiered)
        rows["raw"].append(plain)
        ratios.append(tiered[0] / plain[0])
        print(
            f"  round {rep + 1}: tiered {tiered[0]:>12,.0f} ops/s {tiered[1]:6.2f} us CPU/op | "
            f"raw GET {plain[0]:>9,.0f} ops/s {plain[1]:6.2f} us CPU/op | ratio {ratios[-1]:.0f}x"
        )
    for name, label in (("tiered", "TieredCache.get (L1 hit)"), ("raw", "redis-py GET (hiredis)")):
        ops = statistics.median(r[0] for r in rows[name])
        cpu = statistics.median(r[1] for r in rows[name])
        print(f"  median {label:<26} {ops:>12,.0f} ops/s  {cpu:7.2f} us CPU/op")
    ratio = statistics.median(ratios)
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(f"  median ratio tiered/raw: {ratio:.0f}x (target >= {TARGET_RATIO:.0f}x) {verdict}")
    return ratio >= TARGET_RATIO


# -- (b) staleness across two processes ---------------------------------------------------------


def _reader(  # noqa: PLR0917 - a multiprocessing target takes its arguments positionally
    url: str, prefix: str, writes: int, pace: float, cpu: int | None, conn: Connection
) -> None:
    """Process B: for each value i, poll until it is seen, report when, re-cache it, ack."""
    if cpu is not None:
        _pin(0, cpu)
    cache = _tiered(url, prefix)
    try:
        conn.send("ready")
        get, l1_keys = cache.get, cache.l1.keys
        for i in range(writes + 1):
            while True:
                value = get(KEY)
                if value is not None and value[0] == i:
                    seen = time.monotonic()
                    break
                if pace:
                    time.sleep(pace)
            while KEY not in l1_keys():  # the old value must sit in L1 before the next write
                get(KEY)
            conn.send(seen)
        conn.send(cache.get_stats().extra["invalidations_received"])
    finally:
        cache.close()
        conn.close()


def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def staleness(url: str, writes: int, pace: float, pin: bool) -> dict[str, float]:
    mode = "paced" if pace else "busy"
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    prefix = f"bench-stale-{mode}:"
    proc = ctx.Process(
        target=_reader, args=(url, prefix, writes, pace, 1 if pin else None, child), daemon=True
    )
    proc.start()
    child.close()
    writer = _tiered(url, prefix)
    try:
        assert parent.recv() == "ready"
        writer.set(KEY, (0, time.monotonic()))
        parent.recv()  # B has value 0 in its L1
        from_return: list[float] = []
        from_start: list[float] = []
        cpu0 = time.process_time()
        for i in range(1, writes + 1):
            start = time.monotonic()
            writer.set(KEY, (i, start))
            returned = time.monotonic()
            seen = parent.recv()
            from_return.append(seen - returned)
            from_start.append(seen - start)
        cpu = time.process_time() - cpu0
        received = parent.recv()
    finally:
        writer.clear()
        writer.close()
        proc.join(30)
        parent.close()
    from_return.sort()
    from_start.sort()
    result = {
        q: _percentile(from_return, p) * 1e3
        for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
    }
    print(
        f"  {mode:<5} reader: from set() returning: p50 {result['p50']:.2f} ms, "
        f"p90 {result['p90']:.2f} ms, p99 {result['p99']:.2f} ms, max {result['max']:.2f} ms"
    )
    print(
        f"  {'':<5}         from set() starting:  p50 {_percentile(from_start, 0.5) * 1e3:.2f} ms, "
        f"p99 {_percentile(from_start, 0.99) * 1e3:.2f} ms | writer loop CPU "
        f"{cpu / writes * 1e6:.0f} us per write (set+publish+IPC) | B received {received} "
        "invalidations"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--writes", type=int, default=300, help="writes per staleness run")
    parser.add_argument("--quick", action="store_true", help="fewer ops and writes")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args(argv)
    tiered_ops, raw_ops = (200_000, 5_000) if args.quick else (1_000_000, 20_000)
    writes = max(200, args.writes) if not args.quick else 200
    with RedisServer() as server:
        if args.pin:
            assert server.pid is not None
            _pin(server.pid, 0)
            _pin(0, 0)
        print(f"redis-server {server.url} (pid {server.pid}); pinned: {args.pin}")
        ok = hot_key(server.url, args.reps, tiered_ops, raw_ops)
        print(f"\n(b) cross-process staleness over {writes} writes (A writes, B polls its get)")
        for pace in (0.0, POLL_PACE):
            staleness(server.url, writes, pace, args.pin)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
