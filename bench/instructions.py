"""Client CPU as instructions per call, counted by callgrind: exact, whatever the machine's load.

Wall and CPU time on a shared 2-vCPU machine move by tens of percent between runs; the number
of instructions the client process executes per call does not. Each candidate runs the same
loop twice under ``valgrind --tool=callgrind`` (``--short`` and ``--long`` calls after a warm-up),
and the difference of the two totals divided by the difference of the call counts is the cost
of one call, start-up and imports cancelled out. It counts user-space instructions only: the
kernel's share of a round trip (copying, waking the server) is not in it, so it complements
``bench.network`` rather than replacing it. Needs ``valgrind`` (Debian: ``apt-get install
valgrind``). Run from the repository root::

    python -m bench.instructions                      # ~4 min
    python -m bench.instructions --ops get,set --size 10000
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

from cachekit.testing.servers import MemcachedServer, RedisServer

CANDIDATES = {
    "redis-py": "redis",
    "cachekit redis": "redis",
    "pymemcache": "memcached",
    "cachekit memcached": "memcached",
}
BASELINE = {"cachekit redis": "redis-py", "cachekit memcached": "pymemcache"}

# The loop each run executes; argv: candidate, op, calls, url, value size.
LOOP = r"""
import os, sys
cand, op, n, url, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
value = os.urandom(size)
keys = [f"k:{i:06d}" for i in range(100)]
if cand == "redis-py":
    import redis
    c = redis.Redis(connection_pool=redis.ConnectionPool.from_url(url))
    for k in keys: c.set(k, value, ex=3600)
    ops = {"get": lambda: c.get(keys[1]), "set": lambda: c.set(keys[1], value, ex=3600),
           "get_many": lambda: c.mget(keys)}
elif cand == "pymemcache":
    from pymemcache.client.base import Client
    host, port = url.split("//")[1].split(":")
    c = Client((host, int(port)), no_delay=True, default_noreply=False)
    c.set_many({k: value for k in keys}, expire=3600)
    ops = {"get": lambda: c.get(keys[1]), "set": lambda: c.set(keys[1], value, expire=3600),
           "get_many": lambda: c.get_many(keys),
           "set_many": lambda: c.set_many({k: value for k in keys}, expire=3600)}
else:
    import cachekit
    c = cachekit.create_cache(url)
    c.set_many({k: value for k in keys}, ttl=3600)
    ops = {"get": lambda: c.get(keys[1]), "set": lambda: c.set(keys[1], value, ttl=3600),
           "get_many": lambda: c.get_many(keys),
           "set_many": lambda: c.set_many({k: value for k in keys}, ttl=3600)}
if cand == "redis-py":
    def set_many():
        pipe = c.pipeline(transaction=False)
        for k in keys: pipe.set(k, value, ex=3600)
        pipe.execute()
    ops["set_many"] = set_many
f = ops[op]
for _ in range(50): f()
for _ in range(n): f()
"""


def instructions(candidate: str, op: str, calls: int, url: str, size: int) -> int:
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            LOOP,
            candidate,
            op,
            str(calls),
            url,
            str(size),
        ],
        capture_output=True,
        text=True,
        check=True,
        # str hashing is seeded per process and moves a call by a few thousand instructions
        # (dict probe lengths): both runs of a difference, and every candidate, use one seed.
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    match = re.search(r"Collected : (\d+)", result.stderr)
    if match is None:
        raise RuntimeError(f"no callgrind total in:\n{result.stderr[-2000:]}")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", default="get,set,get_many,set_many")
    parser.add_argument("--size", type=int, default=100, help="value size in bytes (default 100)")
    parser.add_argument("--short", type=int, default=100, help="calls in the short run")
    parser.add_argument("--long", type=int, default=400, help="calls in the long run")
    parser.add_argument("--no-compression", action="store_true", help="cachekit: compression=none")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    with RedisServer() as redis_server, MemcachedServer() as memcached_server:
        urls = {
            "redis": f"redis://127.0.0.1:{redis_server.port}/0",
            "memcached": f"memcached://127.0.0.1:{memcached_server.port}",
        }
        print(f"instructions per call (callgrind), {args.size} B values; *_many: 100 keys")
        print(f"{'op':9s} {'candidate':20s} {'instr/call':>12s} {'vs raw':>7s}")
        for op in args.ops.split(","):
            costs: dict[str, int] = {}
            for candidate, server in CANDIDATES.items():
                url = urls[server]
                if candidate.startswith("cachekit") and args.no_compression:
                    url += "?compression=none"
                short = instructions(candidate, op, args.short, url, args.size)
                long = instructions(candidate, op, args.long, url, args.size)
                costs[candidate] = (long - short) // (args.long - args.short)
                base = BASELINE.get(candidate)
                ratio = f"{costs[candidate] / costs[base]:.2f}x" if base else "1.00x"
                print(f"{op:9s} {candidate:20s} {costs[candidate]:12,d} {ratio:>7s}", flush=True)


if __name__ == "__main__":
    main()
