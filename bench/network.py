"""The network providers beside the raw clients they drive, and Django's backends for reference.

One run starts one ``redis-server`` and one ``memcached`` (:mod:`cachekit.testing.servers`, free
loopback ports, never 6379/11211) and, unless ``--no-pin``, pins every thread of both servers
and this (single-threaded) client to one CPU: a request/response ping-pong between two idle
vCPUs is bimodal on these machines (see the benchmarking notes), on one CPU it is steady. Wall
time then includes the server's work, so the server's CPU time per op is printed too.

Values are ``bytes`` (random, so incompressible), 100 B and 10 KB (10,000 B); keys are ``str``
(``k:000042``) from a pool of 1,000 per candidate. Operations, each timed on its own:

* ``get``: a hit (the pool was just written by the ``set`` loop);
* ``set``: with a TTL (3600 s);
* ``get_many``: 100 keys per call, all hits; raw: one ``MGET`` / pymemcache ``get_many``;
* ``set_many``: 100 items per call, with the TTL; raw redis-py: a pipeline
  (``transaction=False``) of 100 ``SET k v EX 3600``; raw pymemcache: ``set_many(..., expire)``.

Candidates. Redis: raw redis-py (``redis.Redis(connection_pool=ConnectionPool.from_url(url))``,
hiredis parser, ``decode_responses=False``) is the baseline; cachekit's ``RedisCache`` through
``create_cache("redis://...")`` with its defaults (serializer pickle, compression auto: ``bytes``
are stored as they are behind a 4-byte header and never pickled, but a body of 1 KiB or more
is run through zstd, kept only if smaller) and with ``compression=none`` (what the raw clients
do); django-redis and Django's built-in ``RedisCache`` through Django's cache API, with their
defaults (both pickle). Memcached: raw pymemcache (``base.Client((host, port),
no_delay=True, default_noreply=False)``: a write waits for ``STORED``, as cachekit's and
Django's do) is the baseline; the same client with pymemcache's default ``noreply=True``
(fire-and-forget writes) as a reference; cachekit's ``MemcachedCache`` (defaults, and
``compression=none``); Django's ``PyMemcacheCache`` (``no_delay=True``).

Method (house style, as ``bench.throughput``): every round builds a fresh instance of each
candidate, warms it up untimed (connects, loads scripts), then times ``set``, ``get``,
``set_many``, ``get_many`` in that order, and checks untimed that every key is there. Candidates
are interleaved (A B C ... A B C ..., starting one later each round) for ``--reps`` rounds;
tables show medians; a ratio is taken within a round, then its median printed. Per op: wall
time (``perf_counter``), client CPU time (``process_time``, the steadiest figure), server CPU
time (``/proc/PID/task/*/schedstat``). Run from the repository root::

    python -m bench.network               # ~3 minutes on 2 vCPUs
    python -m bench.network --quick       # fewer ops per round: ~1 minute
    python -m bench.network --no-pin --candidates "redis-py,cachekit redis"
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from bench._servers import pin, server_cpu_ns, sigterm_as_exit

TTL = 3600
BATCH = 100
KEY_POOL = 1000
SIZES = {"100 B": 100, "10 KB": 10_000}
OPS = ("get", "set", "get_many", "set_many")
#: The issue's targets: the provider's ops/s at least this fraction of the raw client's.
TARGETS = {"get": 0.95, "set": 0.95, "get_many": 0.9, "set_many": 1.0}
RAW_REDIS, RAW_MEMCACHED = "redis-py", "pymemcache"
#: Distinct values per size (keys cycle over them): random, so compression cannot shrink them.
DISTINCT_VALUES = 16


class Ops(NamedTuple):
    """A candidate's four operations, each one call with the same signature for every candidate."""

    get: Callable[[str], Any]
    set: Callable[[str, bytes, int], Any]
    get_many: Callable[[list[str]], Any]
    set_many: Callable[[dict[str, bytes], int], Any]


@dataclass(frozen=True)
class Candidate:
    name: str
    backend: str  # "redis" or "memcached": which server, and which raw client is the baseline
    make: Callable[[], Any]
    ops: Callable[[Any], Ops]
    close: Callable[[Any], object]
    note: str = ""


# -- candidates --------------------------------------------------------------------------------


def _raw_redis(url: str) -> Candidate:
    import redis

    def make() -> Any:
        pool = redis.ConnectionPool.from_url(url, decode_responses=False)
        return redis.Redis(connection_pool=pool)

    def ops(client: Any) -> Ops:
        def set_many(mapping: dict[str, bytes], ttl: int) -> None:
            pipe = client.pipeline(transaction=False)
            for key, value in mapping.items():
                pipe.set(key, value, ex=ttl)
            pipe.execute()

        # redis-py's set(name, value, ex): the TTL is the third positional argument.
        return Ops(client.get, client.set, client.mget, set_many)

    def close(client: Any) -> None:
        client.close()
        client.connection_pool.disconnect()

    return Candidate(RAW_REDIS, "redis", make, ops, close, "hiredis, MGET, pipeline of SET EX")


def _cachekit(url: str, name: str, backend: str, **options: Any) -> Candidate:
    from cachekit import create_cache

    def ops(cache: Any) -> Ops:
        return Ops(cache.get, cache.set, cache.get_many, cache.set_many)

    def close(cache: Any) -> None:
        cache.clear()
        cache.close()

    note = ", ".join(f"{k}={v}" for k, v in options.items() if k != "prefix") or "defaults"
    return Candidate(name, backend, lambda: create_cache(url, **options), ops, close, note)


def _raw_pymemcache(host: str, port: int, *, noreply: bool) -> Candidate:
    from pymemcache.client.base import Client

    def make() -> Any:
        return Client((host, port), no_delay=True, default_noreply=noreply)

    def ops(client: Any) -> Ops:
        # set(key, value, expire) and set_many(values, expire): the TTL is positional.
        return Ops(client.get, client.set, client.get_many, client.set_many)

    name = RAW_MEMCACHED + (" noreply" if noreply else "")
    note = "no_delay, " + ("writes fire-and-forget" if noreply else "waits for STORED")
    return Candidate(name, "memcached", make, ops, lambda c: c.close(), note)


def _django(alias: str, name: str, backend: str, note: str) -> Candidate:
    from django.core.cache import caches

    def ops(cache: Any) -> Ops:
        # Django's set(key, value, timeout) and set_many(data, timeout).
        return Ops(cache.get, cache.set, cache.get_many, cache.set_many)

    def close(cache: Any) -> None:
        cache.clear()
        cache.close()
        # Django's RedisCache keeps one pool per instance and never disconnects it.
        for pool in getattr(getattr(cache, "_cache", None), "_pools", {}).values():
            pool.disconnect()

    return Candidate(name, backend, lambda: caches.create_connection(alias), ops, close, note)


def candidates(redis_url: str, mc_host: str, mc_port: int) -> list[Candidate]:
    """Every candidate, baselines first; Django is configured here (once per process)."""
    from django.conf import settings

    mc_url = f"memcached://{mc_host}:{mc_port}"
    if not settings.configured:
        settings.configure(
            CACHES={
                "default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
                "django-redis": {
                    "BACKEND": "django_redis.cache.RedisCache",
                    "LOCATION": redis_url,
                    "KEY_PREFIX": "djr",
                },
                "django-builtin-redis": {
                    "BACKEND": "django.core.cache.backends.redis.RedisCache",
                    "LOCATION": redis_url,
                    "KEY_PREFIX": "djb",
                },
                "django-pymemcache": {
                    "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                    "LOCATION": f"{mc_host}:{mc_port}",
                    "KEY_PREFIX": "djm",
                    "OPTIONS": {"no_delay": True},
                },
            }
        )
    return [
        _raw_redis(redis_url),
        _cachekit(redis_url, "cachekit redis", "redis", prefix="ck1:"),
        _cachekit(
            redis_url, "cachekit redis compression=none", "redis", prefix="ck2:",
            compression="none",
        ),
        _django("django-redis", "django-redis", "redis", "DefaultClient, pickle"),
        _django("django-builtin-redis", "django RedisCache", "redis", "built-in, pickle"),
        _raw_pymemcache(mc_host, mc_port, noreply=False),
        _raw_pymemcache(mc_host, mc_port, noreply=True),
        _cachekit(mc_url, "cachekit memcached", "memcached", prefix="ck1"),
        _cachekit(
            mc_url, "cachekit memcached compression=none", "memcached", prefix="ck2",
            compression="none",
        ),
        _django("django-pymemcache", "django PyMemcacheCache", "memcached", "no_delay, pickle"),
    ]  # fmt: skip


# -- workload ----------------------------------------------------------------------------------


class Workload(NamedTuple):
    """Everything a round feeds one candidate, built before any timing."""

    set_items: list[tuple[str, bytes]]
    get_keys: list[str]
    mappings: list[dict[str, bytes]]
    batches: list[list[str]]
    #: Every key's final value, to check (untimed) that the writes all landed.
    expected: dict[str, bytes]


def make_workload(size: int, singles: int, batches: int, seed: int) -> Workload:
    rng = random.Random(seed)
    keys = [f"k:{i:06d}" for i in range(KEY_POOL)]
    values = [rng.randbytes(size) for _ in range(DISTINCT_VALUES)]
    set_items = [(keys[i % KEY_POOL], values[i % DISTINCT_VALUES]) for i in range(singles)]
    get_keys = [keys[i % KEY_POOL] for i in range(singles)]
    groups = [keys[i : i + BATCH] for i in range(0, KEY_POOL, BATCH)]
    mappings = [
        {key: values[(j + i) % DISTINCT_VALUES] for i, key in enumerate(groups[j % len(groups)])}
        for j in range(batches)
    ]
    expected = dict(set_items)
    for mapping in mappings:
        expected.update(mapping)
    return Workload(set_items, get_keys, mappings, [list(m) for m in mappings], expected)


# -- timing ------------------------------------------------------------------------------------


class Sample(NamedTuple):
    """One timed loop: microseconds per call of wall, client CPU and server CPU time."""

    wall_us: float
    cpu_us: float
    server_us: float


def _timed(loop: Callable[[], object], calls: int, server_pid: int) -> Sample:
    gc.collect()
    server, wall, cpu = server_cpu_ns(server_pid), time.perf_counter(), time.process_time()
    loop()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server = server_cpu_ns(server_pid) - server
    return Sample(wall / calls * 1e6, cpu / calls * 1e6, server / calls / 1e3)


def run_round(candidate: Candidate, work: Workload, server_pid: int) -> dict[str, Sample]:
    """A fresh instance: untimed warm-up, the four timed loops, an untimed completeness check."""
    handle = candidate.make()
    try:
        get, set_, get_many, set_many = candidate.ops(handle)
        for key, value in work.set_items[:50]:
            set_(key, value, TTL)
            get(key)
        set_many(work.mappings[0], TTL)
        get_many(work.batches[0])

        def loop_set() -> None:
            for key, value in work.set_items:
                set_(key, value, TTL)

        def loop_get() -> None:
            for key in work.get_keys:
                get(key)

        def loop_set_many() -> None:
            for mapping in work.mappings:
                set_many(mapping, TTL)

        def loop_get_many() -> None:
            for keys in work.batches:
                get_many(keys)

        samples = {
            "set": _timed(loop_set, len(work.set_items), server_pid),
            "get": _timed(loop_get, len(work.get_keys), server_pid),
            "set_many": _timed(loop_set_many, len(work.mappings), server_pid),
            "get_many": _timed(loop_get_many, len(work.batches), server_pid),
        }
        _check(candidate.name, get_many, work.expected)
        return samples
    finally:
        candidate.close(handle)


def _check(name: str, get_many: Callable[[list[str]], Any], expected: dict[str, bytes]) -> None:
    """Every key written in the round reads back with its last value (nothing evicted)."""
    keys = list(expected)
    found: dict[str, Any] = {}
    for i in range(0, len(keys), BATCH):
        chunk = keys[i : i + BATCH]
        answer = get_many(chunk)
        found.update(dict(zip(chunk, answer, strict=True)) if isinstance(answer, list) else answer)
    wrong = [key for key in keys if found.get(key) != expected[key]]
    if wrong:
        raise AssertionError(f"{name}: {len(wrong)} keys missing or wrong, e.g. {wrong[:3]}")


# -- report ------------------------------------------------------------------------------------

#: results[size][op][candidate] = one Sample per round
Results = dict[str, dict[str, dict[str, list[Sample]]]]


def _ratios(results: Results, size: str, op: str, name: str, base: str) -> tuple[float, float]:
    """Medians over rounds of (ops/s of ``name`` / ops/s of ``base``, CPU/op name / CPU/op base)."""
    pairs = list(zip(results[size][op][name], results[size][op][base], strict=True))
    speed = statistics.median(b.wall_us / a.wall_us for a, b in pairs)
    cpu = statistics.median(a.cpu_us / b.cpu_us for a, b in pairs)
    return speed, cpu


def print_tables(results: Results, chosen: list[Candidate]) -> None:
    for backend, base in (("redis", RAW_REDIS), ("memcached", RAW_MEMCACHED)):
        names = [c.name for c in chosen if c.backend == backend]
        if not names:
            continue
        for size in results:
            rounds = len(results[size]["get"][names[0]])
            print(
                f"\n## {backend}, {size} values: median of {rounds} interleaved rounds "
                f"(get_many/set_many: per call of {BATCH} keys)\n"
            )
            print(
                f"{'op':<9} {'candidate':<36} {'wall us':>8} {'spread':>6} {'ops/s':>8} "
                f"{'CPU us':>7} {'srv us':>7} {'ops/s vs raw':>12} {'CPU vs raw':>10}"
            )
            for op in OPS:
                for name in names:
                    runs = results[size][op][name]
                    walls = [s.wall_us for s in runs]
                    wall = statistics.median(walls)
                    speed, cpu = (
                        _ratios(results, size, op, name, base)
                        if base in names
                        else (float("nan"), float("nan"))
                    )
                    print(
                        f"{op:<9} {name:<36} {wall:>8.1f} {(max(walls) - min(walls)) / wall:>6.0%} "
                        f"{1e6 / wall:>8,.0f} {statistics.median(s.cpu_us for s in runs):>7.1f} "
                        f"{statistics.median(s.server_us for s in runs):>7.1f} "
                        f"{speed:>11.2f}x {cpu:>9.2f}x"
                    )
                print()


def print_targets(results: Results, chosen: list[Candidate]) -> int:
    """PASS/FAIL of every cachekit candidate against its raw client; returns the failures."""
    print("## Targets (ops/s ratio vs the raw client, median of per-round ratios)\n")
    names = {c.name for c in chosen}
    failures = 0
    for candidate in chosen:
        if not candidate.name.startswith("cachekit"):
            continue
        base = RAW_REDIS if candidate.backend == "redis" else RAW_MEMCACHED
        if base not in names:
            continue
        for size in results:
            for op in OPS:
                speed, cpu = _ratios(results, size, op, candidate.name, base)
                target = TARGETS[op]
                verdict = "PASS" if speed >= target else "FAIL"
                failures += verdict == "FAIL"
                print(
                    f"{verdict}: {candidate.name:<36} {op:<8} {size:>5} >= {target:.2f}x "
                    f"{base}: {speed:.2f}x (client CPU {cpu:.2f}x)"
                )
    return failures


def _versions() -> str:
    from importlib.metadata import version

    libs = ("redis", "hiredis", "pymemcache", "django", "django-redis")
    return ", ".join(f"{lib} {version(lib)}" for lib in libs)


# -- command line ------------------------------------------------------------------------------


@contextlib.contextmanager
def servers(pin_cpu: int | None) -> Iterator[tuple[Any, Any]]:
    """A redis-server and a memcached on free ports, pinned with this process; closed after."""
    from cachekit.testing.servers import MemcachedServer, RedisServer

    with RedisServer() as redis_server, MemcachedServer({"-m": 256}) as memcached:
        if pin_cpu is not None:
            for pid in (redis_server.pid, memcached.pid, 0):
                pin(pid, pin_cpu)
        yield redis_server, memcached


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer ops per round (~1 minute)")
    parser.add_argument("--reps", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--ops", type=int, help="get and set calls per round (default 5000)")
    parser.add_argument("--batches", type=int, help="get_many/set_many calls per round")
    parser.add_argument("--candidates", help="comma-separated substrings of candidate names")
    parser.add_argument("--sizes", default=",".join(SIZES), help="value sizes (default all)")
    parser.add_argument("--no-pin", action="store_true", help="leave client and servers unpinned")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    singles = args.ops or (800 if args.quick else 5000)
    batches = args.batches or (20 if args.quick else 150)
    cpus = sorted(os.sched_getaffinity(0))
    pin_cpu = None if args.no_pin else cpus[0]
    sizes = {label: SIZES[label] for label in args.sizes.split(",")}
    work = {
        label: make_workload(size, singles, batches, seed=size) for label, size in sizes.items()
    }
    gc.collect()
    gc.freeze()
    load_start = os.getloadavg()

    with sigterm_as_exit(), servers(pin_cpu) as (redis_server, memcached):
        import redis.utils

        chosen = [
            c
            for c in candidates(redis_server.url, memcached.host, memcached.port)
            if not args.candidates or any(s in c.name for s in args.candidates.split(","))
        ]
        print(
            f"Python {sys.version.split()[0]}; {_versions()}; redis-server "
            f"{redis_server.binary}, memcached {memcached.binary} (-m 256, default threads)\n"
            f"hiredis parser: {redis.utils.HIREDIS_AVAILABLE}; "
            f"pinned: {'no' if pin_cpu is None else f'client and both servers on CPU {pin_cpu}'}; "
            f"machine's CPUs {cpus}; load average "
            f"{load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}\n"
            f"values: random bytes; keys: str from a pool of {KEY_POOL:,}; TTL {TTL} s; "
            f"{singles:,} get and set calls and {batches} get_many/set_many calls of {BATCH} "
            f"per round; {args.reps} rounds\n"
        )
        for c in chosen:
            print(f"  {c.name:<36} {c.backend:<10} {c.note}")
        results: Results = {
            size: {op: {c.name: [] for c in chosen} for op in OPS} for size in sizes
        }
        for rep in range(args.reps):
            order = chosen[rep % len(chosen) :] + chosen[: rep % len(chosen)]
            for size in sizes:
                for candidate in order:
                    pid = redis_server.pid if candidate.backend == "redis" else memcached.pid
                    assert pid is not None
                    samples = run_round(candidate, work[size], pid)
                    for op, sample in samples.items():
                        results[size][op][candidate.name].append(sample)
            print(f"  round {rep + 1}/{args.reps} done at {time.perf_counter() - started:.0f} s")
        print_tables(results, chosen)
        print_targets(results, chosen)
    load_end = os.getloadavg()
    print(
        "\nwall us: wall time per call; spread: (max - min) / median over the rounds; ops/s: "
        "calls per second of wall time;\nCPU us: this process's CPU time per call; srv us: the "
        "server's CPU time per call (all its threads);\nops/s vs raw: median of the per-round "
        "ratios of ops/s (> 1: faster than the raw client); CPU vs raw: same for client CPU "
        f"(> 1: costs more).\nLoad average at start {load_start[0]:.2f}, at end "
        f"{load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}; run time "
        f"{time.perf_counter() - started:.0f} s."
    )


if __name__ == "__main__":
    main()
