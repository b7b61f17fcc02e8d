"""``cachekit demo``: the embedded memory provider doing a web cache's job, with its stats.

It replays a skewed (Zipf-like) stream of page requests through ``get_or_set`` in front of a
deliberately slow "render", from several threads, once per eviction policy, and prints what
each cache saw. It needs nothing but the standard library.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections.abc import Sequence

from .factory import create_cache
from .providers.memory import MemoryCache
from .stats import CacheStats

__all__ = ["main", "run_demo"]

RENDER_COST_SECONDS = 0.0002


def _zipf_stream(pages: int, requests: int, seed: int, skew: float = 0.99) -> list[str]:
    rng = random.Random(seed)
    weights = [1.0 / (rank**skew) for rank in range(1, pages + 1)]
    return [f"/page/{n}" for n in rng.choices(range(pages), weights=weights, k=requests)]


def _render(path: str) -> str:
    time.sleep(RENDER_COST_SECONDS)  # stands in for a template render or a database query
    return f"<html><body>{path}</body></html>"


def run_demo(
    url: str, *, threads: int = 4, requests: int = 20_000, pages: int = 5_000, seed: int = 7
) -> tuple[CacheStats, float]:
    """Serve ``requests`` page views through a cache built from ``url``; return its stats."""
    cache = create_cache(url)
    streams = [_zipf_stream(pages, requests // threads, seed + i) for i in range(threads)]
    start = threading.Barrier(threads + 1)

    def serve(stream: list[str]) -> None:
        start.wait()
        for path in stream:
            cache.get_or_set(path, lambda path=path: _render(path), ttl=60)

    pool = [threading.Thread(target=serve, args=(stream,)) for stream in streams]
    for thread in pool:
        thread.start()
    began = time.perf_counter()
    start.wait()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    stats = cache.get_stats()
    cache.close()
    return stats, elapsed


def _table(rows: Sequence[tuple[str, CacheStats, float]]) -> str:
    header = (
        f"{'policy':<10}{'requests':>10}{'hit ratio':>11}{'items':>8}{'evictions':>11}"
        f"{'memory':>10}{'avg get':>10}{'req/s':>10}"
    )
    lines = [header, "-" * len(header)]
    for policy, stats, elapsed in rows:
        avg = f"{stats.avg_get_seconds * 1e6:.1f}µs" if stats.avg_get_seconds else "-"
        lines.append(
            f"{policy:<10}{stats.requests:>10}{stats.hit_ratio:>11.1%}{stats.items:>8}"
            f"{stats.evictions:>11}{stats.memory_bytes / 1024:>8.0f}KB{avg:>10}"
            f"{stats.requests / elapsed:>10.0f}"
        )
    return "\n".join(lines)


def _at_least_one(text: str) -> int:
    """argparse type of the counts: zero or less made ``run_demo`` fail (no pages: IndexError;
    no entries: ConfigurationError) or hang (negative threads: a Barrier nobody reaches)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cachekit demo", description="Serve a skewed page-view stream from the memory cache."
    )
    parser.add_argument("--requests", type=_at_least_one, default=20_000)
    parser.add_argument("--pages", type=_at_least_one, default=5_000)
    parser.add_argument("--threads", type=_at_least_one, default=4)
    parser.add_argument("--max-entries", type=_at_least_one, default=500)
    parser.add_argument(
        "--policy",
        action="append",
        choices=["lru", "lfu", "ttl", "adaptive"],
        help="policy to run (repeatable; default: all four)",
    )
    args = parser.parse_args(argv)
    policies = args.policy or ["lru", "lfu", "ttl", "adaptive"]
    print(
        f"cachekit demo: {args.requests} page views over {args.pages} pages, {args.threads} "
        f"threads, memory://?max_entries={args.max_entries}, renders cost "
        f"{RENDER_COST_SECONDS * 1e3:.1f} ms on a miss\n"
    )
    rows = []
    for policy in policies:
        url = f"memory://demo-{policy}?max_entries={args.max_entries}&policy={policy}"
        stats, elapsed = run_demo(
            url, threads=args.threads, requests=args.requests, pages=args.pages
        )
        rows.append((policy, stats, elapsed))
    print(_table(rows))
    print(f"\nprovider: {MemoryCache.provider_name}; full stats of the last run:")
    for name, value in rows[-1][1].as_dict().items():
        if name not in {"get_latency_buckets", "extra"}:
            print(f"  {name:<18} {value}")
    return 0
