"""Throughput and memory per entry of the memory provider beside Python's in-process caches.

Workload (the issue's): Zipf(0.99) over 100k string keys, capacity 10k, 90% get / 10% set,
demand-filled (a get that misses is followed by a set of that key, counted as part of the same
operation), on 1 thread and on 4 threads sharing one cache, each thread with its own stream.
Every candidate is timed on a fresh instance warmed by the same untimed stream, candidates are
interleaved (A B C ... A B C ...) for ``--reps`` rounds, and each figure is a median; ratios are
taken within a round (the candidates of one round ran seconds apart), then their median is
printed. gc and the GIL switch interval stay at Python's defaults, as an application has them.

Memory per entry fills fresh caches to capacity with the same keys and values, in a subprocess
per candidate and method: ``tracemalloc`` sees everything allocated through Python's allocator
(exact for pure-Python caches); the RSS delta (``/proc/self/statm``) also sees the Rust parts of
theine and cachebox, which tracemalloc cannot. Run from the repository root::

    python -m bench.throughput              # everything: ~3 minutes on 2 vCPUs
    python -m bench.throughput --quick      # shorter runs, no memory table: ~45 s
    python -m bench.throughput --pin --threads 4 --candidates "memory[lru],cachebox"
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from bench._workloads import Op, make_keys, make_values, zipf_stream

ROOT = Path(__file__).resolve().parents[1]

CAPACITY = 10_000
KEY_COUNT = 100_000
ZIPF_EXPONENT = 0.99
GET_RATIO = 0.9
#: TTL of the expiring variants (cachetools.TTLCache needs one); long enough never to fire.
TTL_SECONDS = 3600
#: Python's default GIL switch interval, set explicitly in case the environment changed it.
SWITCH_INTERVAL = 0.005
#: The issue's targets, checked on the 4-thread run.
TARGET_THREADS = 4
TARGET_VS_CACHETOOLS = 1.5
TARGET_VS_LOCMEM = 5.0
#: Caches filled per memory probe: RSS grows by whole pages, several fills dilute that.
PROBE_INSTANCES = 4

MISS = object()
CACHETOOLS, LOCMEM, CACHEBOX = "cachetools.LRUCache+lock", "django LocMemCache", "cachebox.LRUCache"


# -- timed loops: one per calling convention, each as tight as that API allows -----------------


def run_get_default(cache: Any, ops: list[Op]) -> int:
    """``get(key, default)`` and ``set(key, value)``: cachekit and Django. Returns the hits."""
    get, set_ = cache.get, cache.set
    hits = 0
    for key, value, is_get in ops:
        if is_get and get(key, MISS) is not MISS:
            hits += 1
        else:
            set_(key, value)
    return hits


def run_cachebox(cache: Any, ops: list[Op]) -> int:
    """cachebox spells set ``insert`` (it returns the old value, which is dropped)."""
    get, insert = cache.get, cache.insert
    hits = 0
    for key, value, is_get in ops:
        if is_get and get(key, MISS) is not MISS:
            hits += 1
        else:
            insert(key, value)
    return hits


def run_locked(handle: tuple[Any, threading.Lock], ops: list[Op]) -> int:
    """A ``cachetools`` mapping, which is not thread-safe, behind a ``threading.Lock``."""
    cache, lock = handle
    get, setitem = cache.get, cache.__setitem__
    hits = 0
    for key, value, is_get in ops:
        if is_get:
            with lock:
                found = get(key, MISS)
            if found is not MISS:
                hits += 1
                continue
        with lock:
            setitem(key, value)
    return hits


def run_theine(cache: Any, ops: list[Op]) -> int:
    """theine 2: ``get(key)`` returns ``(value, found)``."""
    get, set_ = cache.get, cache.set
    hits = 0
    for key, value, is_get in ops:
        if is_get and get(key)[1]:
            hits += 1
        else:
            set_(key, value)
    return hits


# -- candidates --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A cache to time: how to build a fresh one, drive it, count its entries, dispose of it."""

    name: str
    make: Callable[[], Any]
    run: Callable[[Any, list[Op]], int]
    #: Every byte through Python's allocator (else partly Rust, invisible to tracemalloc).
    pure_python: bool
    entries: Callable[[Any], int] = len
    close: Callable[[Any], object] = lambda cache: None


def _memory(policy: str, ttl: float | None = None) -> Callable[[], Any]:
    from cachekit.providers.memory import MemoryCache

    return lambda: MemoryCache(max_entries=CAPACITY, policy=policy, default_ttl=ttl)


def _locked(factory: Callable[[], Any]) -> Callable[[], tuple[Any, threading.Lock]]:
    return lambda: (factory(), threading.Lock())


_locmem_names = itertools.count(1)


def _locmem() -> Any:
    """A Django LocMemCache under a name of its own: instances sharing a name share data.

    ``CULL_FREQUENCY`` is Django's default, 3: a set into a full cache first drops the least
    recently used third, so it holds 6,667 to 10,000 entries (its lower hit ratio shows it).
    """
    from django.conf import settings
    from django.core.cache.backends.locmem import LocMemCache

    if not settings.configured:
        settings.configure()
    params = {"TIMEOUT": None, "OPTIONS": {"MAX_ENTRIES": CAPACITY, "CULL_FREQUENCY": 3}}
    return LocMemCache(f"bench-{next(_locmem_names)}", params)


def _close_theine(cache: Any) -> None:
    """Stop its expiry coroutine, which otherwise keeps the instance alive for good."""
    cache.clear()
    cache.close()


def candidates() -> list[Candidate]:
    """Every candidate, cachekit first; the libraries are imported here, not at module load."""
    import cachebox
    import cachetools
    import theine

    def memory(policy: str, ttl: float | None = None) -> Candidate:
        name = f"cachekit memory[{policy}]" + (f" ttl={ttl}" if ttl else "")
        return Candidate(name, _memory(policy, ttl), run_get_default, pure_python=True)

    def locked(name: str, factory: Callable[[], Any]) -> Candidate:
        return Candidate(name, _locked(factory), run_locked, True, entries=lambda h: len(h[0]))

    return [
        *(memory(policy) for policy in ("lru", "lfu", "ttl", "adaptive")),
        memory("lru", TTL_SECONDS),
        memory("ttl", TTL_SECONDS),
        locked(CACHETOOLS, lambda: cachetools.LRUCache(CAPACITY)),
        locked(
            f"cachetools.TTLCache+lock ttl={TTL_SECONDS}",
            lambda: cachetools.TTLCache(CAPACITY, TTL_SECONDS),
        ),
        Candidate(
            LOCMEM, _locmem, run_get_default, True,
            entries=lambda c: len(c._cache), close=lambda c: c.clear(),
        ),
        Candidate(
            "theine.Cache", lambda: theine.Cache(CAPACITY), run_theine, False, close=_close_theine
        ),
        Candidate(CACHEBOX, lambda: cachebox.LRUCache(CAPACITY), run_cachebox, False),
    ]  # fmt: skip


# -- timing ------------------------------------------------------------------------------------


class Sample(NamedTuple):
    """One timed run of one candidate."""

    ops_per_s: float
    cpu_us_per_op: float
    hit_ratio: float
    #: Voluntary context switches per 1000 operations: threads that slept on a lock or the GIL.
    switches: float


def _switches() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw


def _run_threads(candidate: Candidate, cache: Any, streams: list[list[Op]]) -> int:
    """One thread per stream, all released at once; the caller's clock runs around this."""
    if len(streams) == 1:
        return candidate.run(cache, streams[0])
    hits = [0] * len(streams)
    start = threading.Barrier(len(streams))

    def worker(i: int) -> None:
        start.wait()
        hits[i] = candidate.run(cache, streams[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(streams))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(hits)


def measure(candidate: Candidate, warmup: list[Op], streams: list[list[Op]]) -> Sample:
    """Time one fresh instance after an untimed warm-up and a collection of earlier garbage.

    Thread start-up (~0.1 ms for 4 threads) is inside the timed span; a run lasts ~0.3-5 s.
    """
    cache = candidate.make()
    try:
        candidate.run(cache, warmup)
        gc.collect()
        switches, wall, cpu = _switches(), time.perf_counter(), time.process_time()
        hits = _run_threads(candidate, cache, streams)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        switches = _switches() - switches
    finally:
        candidate.close(cache)
    ops = sum(map(len, streams))
    gets = sum(is_get for stream in streams for _, _, is_get in stream)
    return Sample(ops / wall, cpu / ops * 1e6, hits / gets, switches / ops * 1000)


# -- memory per entry --------------------------------------------------------------------------


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def probe_memory(name: str, method: str) -> float:
    """Bytes per entry of candidate ``name`` filled to capacity, by ``tracemalloc`` or ``rss``.

    Meant for a fresh process (see :func:`memory_table`): keys, values and one throw-away
    instance (lazy imports, Django settings) exist before the baseline is taken.
    """
    import tracemalloc

    candidate = next(c for c in candidates() if c.name == name)
    keys, values = make_keys(CAPACITY), make_values(CAPACITY)
    fill = [(key, value, False) for key, value in zip(keys, values, strict=True)]
    candidate.close(candidate.make())
    gc.collect()
    if method == "tracemalloc":
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if method == "tracemalloc" else _resident_bytes()
    held = []
    for _ in range(PROBE_INSTANCES):
        held.append(candidate.make())
        candidate.run(held[-1], fill)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if method == "tracemalloc" else _resident_bytes()
    return (after - before) / sum(map(candidate.entries, held))


def memory_table(chosen: Iterable[Candidate]) -> list[tuple[str, float, float, str]]:
    """``(name, tracemalloc B/entry, RSS B/entry, method to quote)`` per candidate."""
    rows = []
    for candidate in chosen:
        figures = []
        for method in ("tracemalloc", "rss"):
            command = [sys.executable, "-m", "bench.throughput", "--probe-memory", candidate.name]
            out = subprocess.run(
                [*command, method], cwd=ROOT, capture_output=True, text=True, check=True
            )
            figures.append(float(out.stdout))
        quoted = "tracemalloc" if candidate.pure_python else "rss"
        rows.append((candidate.name, figures[0], figures[1], quoted))
    return rows


# -- report ------------------------------------------------------------------------------------


def ratio(samples: dict[str, list[Sample]], name: str, baseline: str) -> float | None:
    """Median over rounds of ``name``'s ops/s divided by ``baseline``'s in the same round."""
    if name not in samples or baseline not in samples:
        return None
    pairs = zip(samples[name], samples[baseline], strict=True)
    return statistics.median(a.ops_per_s / b.ops_per_s for a, b in pairs)


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def print_throughput(threads: int, samples: dict[str, list[Sample]]) -> None:
    rounds = len(next(iter(samples.values())))
    print(f"\n## {threads} thread(s), median of {rounds} interleaved rounds\n")
    print(
        f"{'candidate':<34} {'ops/s':>10} {'spread':>6} {'CPU us/op':>9} {'csw/kop':>7} "
        f"{'hit %':>5} {'vs cachetools':>13} {'vs LocMem':>9} {'vs cachebox':>11}"
    )
    for name, runs in samples.items():
        rates = [s.ops_per_s for s in runs]
        rate = statistics.median(rates)
        print(
            f"{name:<34} {rate:>10,.0f} {(max(rates) - min(rates)) / rate:>6.0%} "
            f"{statistics.median(s.cpu_us_per_op for s in runs):>9.2f} "
            f"{statistics.median(s.switches for s in runs):>7.1f} "
            f"{statistics.median(s.hit_ratio for s in runs):>5.1%} "
            f"{_times(ratio(samples, name, CACHETOOLS)):>13} "
            f"{_times(ratio(samples, name, LOCMEM)):>9} "
            f"{_times(ratio(samples, name, CACHEBOX)):>11}"
        )


def print_checks(results: dict[int, dict[str, list[Sample]]], pure: set[str]) -> None:
    """The issue's targets as PASS/FAIL, and the best pure-Python cache against cachebox."""
    print("\n## Targets\n")
    lru = "cachekit memory[lru]"
    at_target = results.get(TARGET_THREADS, {})
    for baseline, target in ((CACHETOOLS, TARGET_VS_CACHETOOLS), (LOCMEM, TARGET_VS_LOCMEM)):
        measured = ratio(at_target, lru, baseline)
        verdict = "SKIP" if measured is None else "PASS" if measured >= target else "FAIL"
        print(
            f"{verdict}: {lru} >= {target}x {baseline} on {TARGET_THREADS} threads: "
            f"{_times(measured)}"
        )
    for threads, samples in results.items():
        ratios = {n: ratio(samples, n, CACHEBOX) for n in samples if n in pure}
        known = {n: r for n, r in ratios.items() if r is not None}
        if known:
            best = max(known, key=known.__getitem__)
            print(
                f"closest any pure-Python cache comes to cachebox on {threads} thread(s): "
                f"{best} at {known[best]:.2f}x"
            )


def print_memory(rows: list[tuple[str, float, float, str]]) -> None:
    print(f"\n## Memory per entry, {CAPACITY:,} entries (the keys and values are the bench's)\n")
    print(f"{'candidate':<34} {'B/entry':>7}  {'method':<11} {'tracemalloc':>11} {'RSS':>5}")
    for name, traced, rss, method in rows:
        quoted = traced if method == "tracemalloc" else rss
        print(f"{name:<34} {quoted:>7.0f}  {method:<11} {traced:>11.0f} {rss:>5.0f}")


def _versions() -> str:
    from importlib.metadata import version

    libs = ("cachetools", "theine", "theine-core", "cachebox", "django")
    return ", ".join(f"{lib} {version(lib)}" for lib in libs)


# -- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k ops per run, no memory table")
    parser.add_argument("--reps", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--ops", type=int, help="timed ops per run, split over the threads")
    parser.add_argument("--threads", default="1,4", help="thread counts (default 1,4)")
    parser.add_argument("--candidates", help="comma-separated substrings of candidate names")
    parser.add_argument("--pin", action="store_true", help="run on one CPU only")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory table")
    parser.add_argument("--probe-memory", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe_memory:
        print(probe_memory(*args.probe_memory))
        return

    started = time.perf_counter()
    ops = args.ops or (100_000 if args.quick else 400_000)
    chosen = [
        c for c in candidates()
        if not args.candidates or any(s in c.name for s in args.candidates.split(","))
    ]  # fmt: skip
    if args.pin:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.enable()

    keys, values = make_keys(KEY_COUNT), make_values(KEY_COUNT)

    def stream(length: int, seed: int) -> list[Op]:
        return zipf_stream(
            keys, values, length=length, exponent=ZIPF_EXPONENT, get_ratio=GET_RATIO, seed=seed
        )

    warmup = stream(ops // 2, seed=0)
    streams = {
        n: [stream(ops // n, seed=100 * n + i) for i in range(n)]
        for n in map(int, args.threads.split(","))
    }
    # Millions of long-lived tuples: keep them out of the gc passes the caches trigger.
    gc.collect()
    gc.freeze()

    print(
        f"Python {sys.version.split()[0]}; {_versions()}\n"
        f"Zipf({ZIPF_EXPONENT}) over {KEY_COUNT:,} keys, capacity {CAPACITY:,}, "
        f"{GET_RATIO:.0%} get (demand-filled); {ops:,} timed ops per run after {ops // 2:,} "
        f"warm-up ops; CPUs {sorted(os.sched_getaffinity(0))}; switch interval "
        f"{sys.getswitchinterval()} s; gc thresholds {gc.get_threshold()}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    results: dict[int, dict[str, list[Sample]]] = {n: {c.name: [] for c in chosen} for n in streams}
    for _ in range(args.reps):
        for n, thread_streams in streams.items():
            for candidate in chosen:
                results[n][candidate.name].append(measure(candidate, warmup, thread_streams))
    for n, samples in results.items():
        print_throughput(n, samples)
    print_checks(results, {c.name for c in chosen if c.pure_python})
    if not (args.quick or args.no_memory):
        print_memory(memory_table(chosen))
    print(
        "\nops/s: requests per second of wall time (a miss's fill is part of its get); spread: "
        "(max - min) / median;\nCPU us/op: process CPU time per request; csw/kop: voluntary "
        "context switches per 1000 requests.\nRatios: median over rounds of the ratio within "
        f"each round. Load average now {os.getloadavg()[0]:.2f}; run time "
        f"{time.perf_counter() - started:.0f} s."
    )


if __name__ == "__main__":
    main()
