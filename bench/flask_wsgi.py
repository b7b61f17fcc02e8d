"""Requests/second of a cached view and a memoized function: cachekit_flask vs Flask-Caching.

``python -m bench.flask_wsgi`` (``--quick`` for a short run, ``--micro`` for the in-process hot
path only). For each backend and library it starts gunicorn (sync workers, one per CPU by
default) on ``bench/flask_bench_app.py`` built with that library, checks that responses come
from the cache (a cached response repeats its render id), then drives ``/view`` (a ``cached``
view: one cache read per request) and ``/memo`` (a plain view calling a ``memoize``d function:
a version-key read and a value read per request) with ``wrk``, or, when ``wrk`` is not
installed, a Python client of as many threads as connections (which saturates less).

Both libraries get the same Flask config, as Flask-Caching's docs recommend for production:
``SimpleCache`` (per-process memory; cachekit_flask maps it onto its memory provider, pickling
values as SimpleCache does) and ``RedisCache`` with ``CACHE_REDIS_URL`` (a ``redis-server`` on a
free loopback port from :mod:`cachekit.testing.servers`, killed at exit). One more cachekit
row, ``CACHEKIT_URL=memory://``, shows the memory provider storing references (no pickling).

Candidates are interleaved round by round; the table prints median req/s, the spread over
rounds and cachekit_flask's median per-round ratio against Flask-Caching on the same backend.
gunicorn, wrk and Redis share this machine's CPUs: figures compare libraries within a run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import timeit
from dataclasses import dataclass
from typing import Any

from bench import _wsgi as wsgi
from bench._servers import sigterm_as_exit

PATHS = ("/view", "/memo")
TARGET = 1.2


@dataclass(frozen=True)
class Candidate:
    name: str
    extension: str  # "cachekit_flask" or "flask_caching"
    backend: str  # what the ratio is taken within
    config: dict[str, Any]
    shared: bool  # one cache for all workers (a server) or one per worker process


def candidates(redis_url: str) -> list[Candidate]:
    simple = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300}
    redis = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url, "CACHE_DEFAULT_TIMEOUT": 300}
    # Own prefixes: each library writes its own format (cachelib pickles, cachekit a header).
    redis_fc = {**redis, "CACHE_KEY_PREFIX": "bench_fc_"}
    redis_ck = {**redis, "CACHE_KEY_PREFIX": "bench_ck_"}
    return [
        Candidate("Flask-Caching SimpleCache", "flask_caching", "memory", simple, shared=False),
        Candidate("cachekit_flask SimpleCache", "cachekit_flask", "memory", simple, shared=False),
        Candidate(
            "cachekit_flask memory://",
            "cachekit_flask",
            "memory-ref",
            {"CACHEKIT_URL": "memory://bench", "CACHE_DEFAULT_TIMEOUT": 300},
            shared=False,
        ),
        Candidate("Flask-Caching RedisCache", "flask_caching", "redis", redis_fc, shared=True),
        Candidate("cachekit_flask RedisCache", "cachekit_flask", "redis", redis_ck, shared=True),
    ]


#: (cachekit_flask candidate, Flask-Caching peer) pairs whose ratios are printed.
PAIRS = [
    ("cachekit_flask SimpleCache", "Flask-Caching SimpleCache"),
    ("cachekit_flask memory://", "Flask-Caching SimpleCache"),
    ("cachekit_flask RedisCache", "Flask-Caching RedisCache"),
]


# -- gunicorn -------------------------------------------------------------------------------------


def gunicorn(candidate: Candidate, port: int, workers: int, worker_class: str) -> Any:
    """gunicorn serving the bench app built with ``candidate``; stopped on exit."""
    env = {"BENCH_EXT": candidate.extension, "BENCH_CONFIG": json.dumps(candidate.config)}
    return wsgi.gunicorn(
        "bench.flask_bench_app:app",
        env,
        port=port,
        workers=workers,
        name=candidate.name,
        probe=PATHS[0],
        worker_class=worker_class,
    )


def check_cached(candidate: Candidate, port: int, workers: int, path: str) -> None:
    """Responses must come from the cache: at most one render per worker (one if shared)."""
    renders = {wsgi.get(port, path)[1] for _ in range(8 * workers)}
    allowed = 1 if candidate.shared else workers
    if len(renders) > allowed:
        raise RuntimeError(
            f"{candidate.name}: {len(renders)} different renders of {path} "
            f"(at most {allowed} expected): the cache is not serving"
        )


# -- load ----------------------------------------------------------------------------------------


# -- the in-process hot path (no server) ---------------------------------------------------------


def micro(chosen: list[Candidate], number: int) -> dict[str, dict[str, float]]:
    """µs per call of the decorated functions inside ``app.test_request_context``."""
    import importlib

    results: dict[str, dict[str, float]] = {}
    for candidate in chosen:
        os.environ["BENCH_EXT"] = candidate.extension
        os.environ["BENCH_CONFIG"] = json.dumps(candidate.config)
        sys.modules.pop("bench.flask_bench_app", None)
        module = importlib.import_module("bench.flask_bench_app")
        n = max(number // 10, 100) if candidate.shared else number  # network: ~100x slower
        with module.app.test_request_context("/view"):
            module.view()
            module.memo()
            results[candidate.name] = {
                "/view": min(timeit.repeat(module.view, number=n, repeat=5)) / n * 1e6,
                "/memo": min(timeit.repeat(module.memo, number=n, repeat=5)) / n * 1e6,
            }
            module.cache.clear()
    return results


# -- run ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s per candidate")
    parser.add_argument("--micro", action="store_true", help="only the in-process hot path")
    parser.add_argument("--reps", type=int, help="interleaved rounds (default 3)")
    parser.add_argument("--seconds", type=int, help="load per round and path (default 8)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument("--candidates", help="comma-separated substrings of candidate names")
    parser.add_argument("--python-client", action="store_true", help="do not use wrk")
    parser.add_argument(
        "--worker-class",
        choices=[*wsgi.WORKER_CLASSES, "both"],
        default="both",
        help="gunicorn set-up (default: both, one table each)",
    )
    args = parser.parse_args(argv)
    reps = args.reps or (1 if args.quick else 3)
    seconds = args.seconds or (2 if args.quick else 8)
    wrk = None if args.python_client else shutil.which("wrk")

    from cachekit.testing.servers import RedisServer

    with sigterm_as_exit(), RedisServer() as redis_server:
        chosen = [
            c
            for c in candidates(redis_server.url)
            if not args.candidates or any(s in c.name for s in args.candidates.split(","))
        ]
        print_micro(micro(chosen, 2000 if args.quick else 20000))
        if args.micro:
            return
        client = (
            f"wrk -t2 -c{args.connections}"
            if wrk
            else f"Python threads x{args.connections}"
            + ("" if args.python_client else " (wrk not found: apt-get install wrk)")
        )
        classes = list(wsgi.WORKER_CLASSES) if args.worker_class == "both" else [args.worker_class]
        for worker_class in classes:
            load = os.getloadavg()
            print(
                f"\nPython {sys.version.split()[0]}; gunicorn {args.workers} workers "
                f"({' '.join(wsgi.WORKER_CLASSES[worker_class])}); load from {client}; "
                f"{seconds:g} s per path per candidate per round, {reps} round(s); CPUs "
                f"{sorted(os.sched_getaffinity(0))}; load average {load[0]:.2f}"
            )
            results = drive(chosen, args, worker_class, reps=reps, seconds=seconds, wrk=wrk)
            print_table(results)


def drive(
    chosen: list[Candidate],
    args: argparse.Namespace,
    worker_class: str,
    *,
    reps: int,
    seconds: float,
    wrk: str | None,
) -> dict[tuple[str, str], list[float]]:
    """req/s per (candidate, path), one figure per round; candidates interleaved by round."""
    results: dict[tuple[str, str], list[float]] = {
        (c.name, path): [] for c in chosen for path in PATHS
    }
    from cachekit.testing.servers import free_port

    for rep in range(reps):
        order = chosen[rep % len(chosen) :] + chosen[: rep % len(chosen)]
        for candidate in order:
            port = free_port()
            with gunicorn(candidate, port, args.workers, worker_class):
                for path in PATHS:
                    check_cached(candidate, port, args.workers, path)
                    if wrk:
                        wsgi.drive_wrk(port, path, 1, args.connections)  # warm-up
                        rate = wsgi.drive_wrk(port, path, seconds, args.connections)
                    else:
                        wsgi.drive_python(port, path, 1, args.connections)
                        rate = wsgi.drive_python(port, path, seconds, args.connections)
                    results[(candidate.name, path)].append(rate)
        print(f"  round {rep + 1}/{reps} done")
    return results


def print_micro(results: dict[str, dict[str, float]]) -> None:
    print(f"In-process hot path (µs per hit, best of 5)\n{'candidate':<30}{'/view':>9}{'/memo':>9}")
    for name, row in results.items():
        print(f"{name:<30}{row['/view']:>9.2f}{row['/memo']:>9.2f}")
    for mine, peer in PAIRS:
        if mine in results and peer in results:
            ratios = "  ".join(
                f"{path} {results[peer][path] / results[mine][path]:.2f}x" for path in PATHS
            )
            print(f"{mine} vs {peer}: {ratios}")


def print_table(results: dict[tuple[str, str], list[float]]) -> None:
    print(f"\n{'candidate':<30}{'path':<7}{'req/s':>10}{'spread':>9}")
    for (name, path), rates in results.items():
        median = statistics.median(rates)
        spread = (max(rates) - min(rates)) / median if median else 0.0
        print(f"{name:<30}{path:<7}{median:>10,.0f}{spread:>8.0%}")
    print()
    for mine, peer in PAIRS:
        for path in PATHS:
            if (mine, path) in results and (peer, path) in results:
                pairs = zip(results[(mine, path)], results[(peer, path)], strict=True)
                ratio = statistics.median(a / b for a, b in pairs)
                verdict = "PASS" if ratio >= TARGET else "FAIL"
                print(f"{mine} vs {peer} {path}: {ratio:.2f}x ({verdict}, target {TARGET}x)")


if __name__ == "__main__":
    main()
