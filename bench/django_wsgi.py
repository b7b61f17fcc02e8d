"""Requests/second of a ``cache_page`` view under gunicorn, with each Django cache backend.

``python -m bench.django_wsgi`` (``--quick`` for a short run). For each backend it starts
gunicorn (sync workers, one per CPU by default; ``--worker-class gthread`` for threads with
keep-alive) on the one-page project in
``bench/django_wsgi_site/``, fills the page's cache entry, checks that pages now come from the
cache (the ``X-Rendered`` header of a cached page repeats), then drives ``/page/`` with ``wrk``
(or, when ``wrk`` is not installed, a Python client of as many threads as connections, which
saturates less and says so). Every request is a ``cache_page`` hit: two cache reads (the header
list and the page) and the response.

Backends, each set up as its documentation recommends for production: Django's
``LocMemCache``, ``RedisCache`` and ``PyMemcacheCache`` (with the options Django's docs show:
``no_delay``, ``ignore_exc``, pooling), django-redis's ``DefaultClient`` (hiredis parser when
installed), and cachekit's ``MemoryCache``, ``RedisCache`` and ``MemcachedCache`` with
defaults. The servers are a ``redis-server`` and a ``memcached`` on free loopback ports
(:mod:`cachekit.testing.servers`), killed at exit.

Candidates are interleaved round by round; the table prints the median req/s, the spread over
rounds, and each cachekit backend's median per-round ratio against its peers. gunicorn, wrk and
the servers share this machine's CPUs, so figures compare backends within a run, not machines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from dataclasses import dataclass
from typing import Any

from bench import _wsgi as wsgi
from bench._servers import sigterm_as_exit

PATH = "/page/"


@dataclass(frozen=True)
class Candidate:
    name: str
    cache: dict[str, Any]
    shared: bool  # one cache for all workers (a server), or one per worker process


#: (cachekit candidate, peer) pairs whose ratios are printed.
PAIRS = [
    ("cachekit MemoryCache", "LocMemCache"),
    ("cachekit RedisCache", "Django RedisCache"),
    ("cachekit RedisCache", "django-redis"),
    ("cachekit MemcachedCache", "PyMemcacheCache"),
]


def candidates(redis_url: str, memcached: str) -> list[Candidate]:
    return [
        Candidate(
            "LocMemCache",
            {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "bench"},
            shared=False,
        ),
        Candidate(
            "cachekit MemoryCache",
            {"BACKEND": "cachekit_django.cache.MemoryCache", "LOCATION": "bench"},
            shared=False,
        ),
        Candidate(
            "Django RedisCache",
            {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url},
            shared=True,
        ),
        Candidate(
            "django-redis",
            {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": redis_url,
                "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
            },
            shared=True,
        ),
        Candidate(
            "cachekit RedisCache",
            {"BACKEND": "cachekit_django.cache.RedisCache", "LOCATION": redis_url},
            shared=True,
        ),
        Candidate(
            "PyMemcacheCache",
            {
                "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                "LOCATION": memcached,
                "OPTIONS": {
                    "no_delay": True,
                    "ignore_exc": True,
                    "max_pool_size": 4,
                    "use_pooling": True,
                },
            },
            shared=True,
        ),
        Candidate(
            "cachekit MemcachedCache",
            {"BACKEND": "cachekit_django.cache.MemcachedCache", "LOCATION": memcached},
            shared=True,
        ),
    ]


# -- gunicorn -------------------------------------------------------------------------------------


def gunicorn(candidate: Candidate, port: int, workers: int, worker_class: str) -> Any:
    """gunicorn serving the bench project with ``candidate``'s cache; stopped on exit."""
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.django_wsgi_site.settings",
        "BENCH_CACHE": json.dumps(candidate.cache),
    }
    return wsgi.gunicorn(
        "bench.django_wsgi_site.wsgi:application",
        env,
        port=port,
        workers=workers,
        worker_class=worker_class,
        name=candidate.name,
        probe=PATH,
    )


def check_cached(candidate: Candidate, port: int, workers: int) -> None:
    """Pages must come from the cache: at most one render per worker (one in all if shared)."""
    renders = {wsgi.get(port, PATH, header="X-Rendered")[1] for _ in range(8 * workers)}
    allowed = 1 if candidate.shared else workers
    if len(renders) > allowed:
        raise RuntimeError(
            f"{candidate.name}: {len(renders)} different renders of a cache_page view "
            f"(at most {allowed} expected): the cache is not serving"
        )


# -- load ----------------------------------------------------------------------------------------


# -- run ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s per backend")
    parser.add_argument("--reps", type=int, help="interleaved rounds (default 3)")
    parser.add_argument("--seconds", type=int, help="load per round and backend (default 8)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument(
        "--worker-class", choices=list(wsgi.WORKER_CLASSES), default="sync", help="gunicorn set-up"
    )
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument("--candidates", help="comma-separated substrings of candidate names")
    parser.add_argument("--python-client", action="store_true", help="do not use wrk")
    args = parser.parse_args(argv)
    reps = args.reps or (1 if args.quick else 3)
    seconds = args.seconds or (2 if args.quick else 8)
    wrk = None if args.python_client else shutil.which("wrk")

    from cachekit.testing.servers import MemcachedServer, RedisServer, free_port

    with (
        sigterm_as_exit(),
        RedisServer() as redis_server,
        MemcachedServer({"-m": 256}) as memcached,
    ):
        chosen = [
            c
            for c in candidates(redis_server.url, f"{memcached.host}:{memcached.port}")
            if not args.candidates or any(s in c.name for s in args.candidates.split(","))
        ]
        client = (
            f"wrk ({wrk}) -t2 -c{args.connections}"
            if wrk
            else f"Python threads x{args.connections}"
            + ("" if args.python_client else " (wrk not found: apt-get install wrk)")
        )
        load = os.getloadavg()
        print(
            f"Python {sys.version.split()[0]}; gunicorn {args.workers} {args.worker_class} "
            "workers; load from "
            f"{client}; {seconds:g} s per backend per round, {reps} round(s); CPUs "
            f"{sorted(os.sched_getaffinity(0))}; load average {load[0]:.2f}"
        )
        results: dict[str, list[float]] = {c.name: [] for c in chosen}
        for rep in range(reps):
            order = chosen[rep % len(chosen) :] + chosen[: rep % len(chosen)]
            for candidate in order:
                port = free_port()
                with gunicorn(candidate, port, args.workers, args.worker_class):
                    check_cached(candidate, port, args.workers)
                    if wrk:
                        wsgi.drive_wrk(port, PATH, 1, args.connections)  # warm-up, not counted
                        rate = wsgi.drive_wrk(port, PATH, seconds, args.connections)
                    else:
                        wsgi.drive_python(port, PATH, 1, args.connections)
                        rate = wsgi.drive_python(port, PATH, seconds, args.connections)
                results[candidate.name].append(rate)
            print(f"  round {rep + 1}/{reps} done")
        print_table(results)


def print_table(results: dict[str, list[float]]) -> None:
    print(f"\n{'backend':<26}{'req/s':>10}{'spread':>9}")
    for name, rates in results.items():
        median = statistics.median(rates)
        spread = (max(rates) - min(rates)) / median if median else 0.0
        print(f"{name:<26}{median:>10,.0f}{spread:>8.0%}")
    print()
    for mine, peer in PAIRS:
        if mine in results and peer in results:
            ratios = [a / b for a, b in zip(results[mine], results[peer], strict=True)]
            print(f"{mine} vs {peer}: {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
