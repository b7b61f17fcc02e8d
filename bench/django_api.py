"""cachekit's Django backends beside their peers, all through Django's cache API, in one run.

* Redis: cachekit's ``RedisCache`` backend, django-redis (``DefaultClient``), Django's built-in
  ``RedisCache`` - each configured as its documentation shows for production (defaults: pickle,
  the hiredis parser redis-py picks when installed) - and raw redis-py as the baseline
  (``Redis(connection_pool=ConnectionPool.from_url(url))``, ``GET``/``SET EX``).
* Memory: cachekit's ``MemoryCache`` backend beside Django's ``LocMemCache``, both with
  ``MAX_ENTRIES=10000`` (the key pool fits, so nothing is culled mid-run).
* Memcached: cachekit's ``MemcachedCache`` backend, Django's ``PyMemcacheCache`` (Django's
  documented options: ``no_delay``, ``ignore_exc``, ``max_pool_size=4``, ``use_pooling``), and raw
  pymemcache as the baseline (``base.Client((host, port), no_delay=True)``, writes wait for
  ``STORED``, as the backends' do).

A reference row, ``python floor``, is the least a pure-Python Django memory backend does
(:mod:`bench.django_floor`: key, lock, expiry, LRU, bound, copies): the ceiling for any
backend written in Python, against which the memory target can be read.

Each candidate runs ``get`` (a hit), ``set`` (``timeout=300``) and ``mix`` (90% get, 10% set,
as ``bench.throughput``) over a pool of 1,000 ``str`` keys (``page:000042``). Values are 100
random bytes; the memory backends also run a small dict (a row, what a view caches), which both
must copy: ``LocMemCache`` pickles everything, cachekit's memory backend pickles mutable values
and stores immutable ones as they are. One ``redis-server`` and one ``memcached`` are started on
free loopback ports (:mod:`cachekit.testing.servers`) and, unless ``--no-pin``, pinned with this
process to one CPU (as ``bench.network``: a ping-pong between two vCPUs is bimodal here).

Method: candidates are interleaved for ``--reps`` rounds (A B C ... A B C ..., rotated each
round); a round times ``set``, ``get`` then ``mix`` for one candidate. Tables show median
microseconds per call; a ratio (baseline time / candidate time, so above 1 is faster) is taken
within a round and its median printed, so a slow minute on a shared machine moves both sides.
Targets (the issue's): cachekit's Redis backend get/set at least 0.9x raw redis-py; its memory
backend at least 5x ``LocMemCache``; its memcached backend at least 0.9x raw pymemcache.
Run from the repository root::

    python -m bench.django_api            # ~2 minutes on 2 quiet vCPUs
    python -m bench.django_api --quick    # a few seconds: proves it runs
    python -m bench.django_api --groups memory --reps 9
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
from typing import Any

from bench._servers import pin, sigterm_as_exit

TIMEOUT = 300
KEY_POOL = 1000
OPS = ("get", "set", "mix")
#: Share of sets in the ``mix`` op (the rest are gets), as in bench.throughput.
MIX_SETS = 0.1
#: Timed loops per op per round of the in-process candidates (the fastest counts).
MEMORY_REPEATS = 5
#: (candidate, baseline, minimum speed ratio) per value kind, from the issue.
TARGETS = [
    ("cachekit RedisCache", "redis-py (raw)", 0.9),
    ("cachekit MemoryCache", "django LocMemCache", 5.0),
    ("cachekit MemcachedCache", "pymemcache (raw)", 0.9),
]


@dataclass(frozen=True)
class Candidate:
    name: str
    group: str  # "redis", "memory" or "memcached"
    make: Callable[[], Any]
    note: str
    #: ``set(key, value)`` of raw clients takes the TTL under another keyword.
    raw: bool = False


def _django(alias: str, name: str, group: str, note: str) -> Candidate:
    from django.core.cache import caches

    return Candidate(name, group, lambda: caches.create_connection(alias), note)


def configure(redis_url: str, mc_host: str, mc_port: int) -> list[Candidate]:
    """Configure Django (once per process) and return every candidate, baselines first."""
    import django
    from django.conf import settings

    mc_location = f"{mc_host}:{mc_port}"
    if not settings.configured:
        settings.configure(
            CACHES={
                "default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
                "ck-redis": {
                    "BACKEND": "cachekit_django.cache.RedisCache",
                    "LOCATION": redis_url,
                    "KEY_PREFIX": "ck",
                },
                "django-redis": {
                    "BACKEND": "django_redis.cache.RedisCache",
                    "LOCATION": redis_url,
                    "KEY_PREFIX": "djr",
                    "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
                },
                "django-builtin-redis": {
                    "BACKEND": "django.core.cache.backends.redis.RedisCache",
                    "LOCATION": redis_url,
                    "KEY_PREFIX": "djb",
                },
                "ck-memory": {
                    "BACKEND": "cachekit_django.cache.MemoryCache",
                    "LOCATION": "bench",
                    "OPTIONS": {"MAX_ENTRIES": 10_000},
                },
                "locmem": {
                    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                    "LOCATION": "bench",
                    "OPTIONS": {"MAX_ENTRIES": 10_000},
                },
                "floor": {
                    "BACKEND": "bench.django_floor.FloorCache",
                    "LOCATION": "bench",
                    "OPTIONS": {"MAX_ENTRIES": 10_000},
                },
                "ck-memcached": {
                    "BACKEND": "cachekit_django.cache.MemcachedCache",
                    "LOCATION": mc_location,
                    "KEY_PREFIX": "ck",
                },
                "django-pymemcache": {
                    "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                    "LOCATION": mc_location,
                    "KEY_PREFIX": "djm",
                    "OPTIONS": {
                        "no_delay": True,
                        "ignore_exc": True,
                        "max_pool_size": 4,
                        "use_pooling": True,
                    },
                },
            },
            INSTALLED_APPS=[],
        )
        django.setup()

    def raw_redis() -> Any:
        import redis

        return redis.Redis(connection_pool=redis.ConnectionPool.from_url(redis_url))

    def raw_pymemcache() -> Any:
        from pymemcache.client.base import Client

        return Client((mc_host, mc_port), no_delay=True, default_noreply=False)

    return [
        Candidate("redis-py (raw)", "redis", raw_redis, "GET / SET EX, hiredis", raw=True),
        _django("ck-redis", "cachekit RedisCache", "redis", "defaults (pickle, raw bytes)"),
        _django("django-redis", "django-redis", "redis", "DefaultClient, pickle"),
        _django("django-builtin-redis", "django RedisCache", "redis", "built-in, pickle"),
        _django("locmem", "django LocMemCache", "memory", "MAX_ENTRIES=10000, pickle"),
        _django("ck-memory", "cachekit MemoryCache", "memory", "MAX_ENTRIES=10000"),
        _django("floor", "python floor (reference)", "memory", "bench/django_floor.py"),
        Candidate(
            "pymemcache (raw)", "memcached", raw_pymemcache, "no_delay, waits for STORED", raw=True
        ),
        _django("ck-memcached", "cachekit MemcachedCache", "memcached", "defaults"),
        _django("django-pymemcache", "django PyMemcacheCache", "memcached", "Django's options"),
    ]


def _values(kind: str, rng: random.Random) -> list[Any]:
    if kind == "bytes":
        return [rng.randbytes(100) for _ in range(KEY_POOL)]
    return [
        {"id": i, "title": f"Product {i}", "price": "19.90", "tags": ["a", "b"], "stock": i % 7}
        for i in range(KEY_POOL)
    ]


def run_round(
    candidate: Candidate, keys: list[str], values: list[Any], ops: int
) -> dict[str, float]:
    """Seconds per call of each op, on a fresh instance (connected and warmed up untimed).

    In-process candidates take microseconds per call, where one preemption on a shared machine
    moves a loop's time a lot: their loops run :data:`MEMORY_REPEATS` times and the fastest
    counts (the usual micro-benchmark rule); network loops run once.
    """
    cache = candidate.make()
    items = [(keys[i % KEY_POOL], values[i % KEY_POOL]) for i in range(ops)]
    rng = random.Random(7)
    mix = [(rng.random() < MIX_SETS, key, value) for key, value in items]
    reads = [key for key, _ in items]
    set_, get = cache.set, cache.get
    for key, value in items[:KEY_POOL]:  # warm-up: connect, load scripts, fill the pool
        set_(key, value, TIMEOUT) if not candidate.raw else _raw_set(cache, key, value)
    # redis-py's set takes the TTL as ``ex``; Django's set(key, value, timeout) and
    # pymemcache's set(key, value, expire) take it third.
    kw = candidate.raw and candidate.group == "redis"

    def set_loop() -> None:
        if kw:
            for key, value in items:
                set_(key, value, ex=TIMEOUT)
        else:
            for key, value in items:
                set_(key, value, TIMEOUT)

    def get_loop() -> None:
        for key in reads:
            get(key)

    def mix_loop() -> None:
        if kw:
            for is_set, key, value in mix:
                if is_set:
                    set_(key, value, ex=TIMEOUT)
                else:
                    get(key)
        else:
            for is_set, key, value in mix:
                if is_set:
                    set_(key, value, TIMEOUT)
                else:
                    get(key)

    repeats = MEMORY_REPEATS if candidate.group == "memory" else 1
    out: dict[str, float] = {}
    gc.collect()
    for op, loop in (("set", set_loop), ("get", get_loop), ("mix", mix_loop)):
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            loop()
            best = min(best, time.perf_counter() - t0)
        out[op] = best / ops
    got = get(keys[0])
    if got != values[0]:
        raise AssertionError(f"{candidate.name}: read back {got!r}, not what was stored")
    with contextlib.suppress(Exception):
        cache.close()
    return out


def _raw_set(client: Any, key: str, value: Any) -> None:
    if hasattr(client, "connection_pool"):
        client.set(key, value, ex=TIMEOUT)
    else:
        client.set(key, value, TIMEOUT)


@contextlib.contextmanager
def servers(pin_cpu: int | None) -> Iterator[tuple[Any, Any]]:
    from cachekit.testing.servers import MemcachedServer, RedisServer

    with RedisServer() as redis_server, MemcachedServer({"-m": 256}) as memcached:
        if pin_cpu is not None:
            for pid in (redis_server.pid, memcached.pid, 0):
                pin(pid, pin_cpu)
        yield redis_server, memcached


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few ops and rounds (seconds)")
    parser.add_argument("--reps", type=int, help="interleaved rounds (default 5; quick 2)")
    parser.add_argument("--ops", type=int, help="calls per op per round (default 10000)")
    parser.add_argument("--no-pin", action="store_true", help="leave client and servers unpinned")
    parser.add_argument(
        "--groups", default="redis,memory,memcached", help="comma-separated subset to run"
    )
    args = parser.parse_args(argv)
    reps = args.reps or (2 if args.quick else 5)
    ops = args.ops or (2000 if args.quick else 10_000)
    cpus = sorted(os.sched_getaffinity(0))
    pin_cpu = None if args.no_pin else cpus[0]
    rng = random.Random(42)
    keys = [f"page:{i:06d}" for i in range(KEY_POOL)]
    kinds = {"bytes": _values("bytes", rng), "dict": _values("dict", rng)}
    started = time.perf_counter()

    with sigterm_as_exit(), servers(pin_cpu) as (redis_server, memcached):
        chosen = configure(redis_server.url, memcached.host, memcached.port)
        groups = set(args.groups.split(","))
        chosen = [c for c in chosen if c.group in groups]
        runs = [
            (c, kind) for c in chosen for kind in kinds if kind == "bytes" or c.group == "memory"
        ]
        from importlib.metadata import version

        libs = ("django", "redis", "hiredis", "django-redis", "pymemcache")
        versions = ", ".join(f"{lib} {version(lib)}" for lib in libs)
        print(
            f"Python {sys.version.split()[0]}; {versions}\n"
            f"pinned: {'no' if pin_cpu is None else f'client and servers on CPU {pin_cpu}'}; "
            f"load average {os.getloadavg()[0]:.2f}; {ops:,} calls per op per round, {reps} "
            f"rounds; keys: {KEY_POOL:,} str; timeout {TIMEOUT} s\n"
        )
        for c in chosen:
            print(f"  {c.name:<26} {c.group:<10} {c.note}")
        samples: dict[tuple[str, str], list[dict[str, float]]] = {
            (c.name, kind): [] for c, kind in runs
        }
        for rep in range(reps):
            order = runs[rep % len(runs) :] + runs[: rep % len(runs)]
            for candidate, kind in order:
                samples[(candidate.name, kind)].append(run_round(candidate, keys, kinds[kind], ops))
        baselines = {"redis": "redis-py (raw)", "memory": "django LocMemCache",
                     "memcached": "pymemcache (raw)"}  # fmt: skip

        def ratios(name: str, base: str, kind: str, op: str) -> float:
            pairs = zip(samples[(base, kind)], samples[(name, kind)], strict=True)
            return statistics.median(b[op] / c[op] for b, c in pairs)

        header = "".join(f"{op + ' us':>9}" for op in OPS) + "".join(
            f"{op + ' x':>8}" for op in OPS
        )
        print(f"\n{'candidate':<26} {'value':<6}{header}   (x: speed vs the group's baseline)")
        for c, kind in runs:
            med = {op: statistics.median(s[op] for s in samples[(c.name, kind)]) for op in OPS}
            base = baselines[c.group]
            times = "".join(f"{med[op] * 1e6:>9.2f}" for op in OPS)
            xs = "".join(f"{ratios(c.name, base, kind, op):>7.2f}x" for op in OPS)
            print(f"{c.name:<26} {kind:<6}{times}{xs}")
        failed = 0
        print("\ntargets:")
        for name, base, minimum in TARGETS:
            for kind in kinds:
                if (name, kind) not in samples:
                    continue
                for op in OPS:
                    ratio = ratios(name, base, kind, op)
                    ok = ratio >= minimum
                    failed += not ok
                    print(
                        f"  {'PASS' if ok else 'FAIL'} {name} {op} ({kind}): {ratio:.2f}x "
                        f"{base} (target >= {minimum}x)"
                    )
        print(f"\ndone in {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
