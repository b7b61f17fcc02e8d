"""gRPC service benchmark: Get/Set through ``cachekit serve`` beside a minimal grpcio echo floor.

Each server runs in its own process, as it is deployed: the floor is a grpc.aio server with one
bytes-in/bytes-out ``Echo`` method (no protobuf, no interceptor: what any grpcio unary call
costs) and the same server options as :func:`cachekit.grpc.server.serve` (message size limits);
the cache server is ``python -m cachekit serve --url memory:// --port 0``, the production entry
point, with its defaults (auth, per-RPC metrics, health, reflection, Watch all wired). Both bind
free loopback ports. The client is this process: one grpc.aio channel per server, reused (the
grpcio performance guide: re-use channels and stubs, asyncio rather than threads in Python),
raw stub calls for all three cases (``Echo`` of a serialized ``SetRequest`` carrying the
payload, ``Get`` of a hit answering that payload, ``Set`` of the payload).

Method (house style, see ``/work/shared/benchmarking.md``): the client and both servers are
pinned to one CPU (``--cpu``, or ``--no-pin``): a ping-pong between two idle vCPUs is bimodal on
these machines. Cases are interleaved (echo, Get, Set, then the next round starting one later)
for ``--reps`` rounds of ``--seconds`` each, with 1 caller and with 16 concurrent callers (one
asyncio task each, one shared channel). Tables show medians over rounds: calls/s, p50/p99
latency (the round's percentiles, then their median), client and server CPU time per call
(``process_time`` / ``/proc/PID/task/*/schedstat``), and the ratio of calls/s to the echo floor
taken within each round (target: >= 0.8x). Run from the repository root::

    python -m bench.grpc_bench                  # 256 B, 5 rounds of 2 s per case: ~1.5 min
    python -m bench.grpc_bench --quick          # 3 rounds of 0.5 s: ~20 s
    python -m bench.grpc_bench --payload 256,10000 --token secret
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from bench._servers import server_cpu_ns, sigterm_as_exit

ECHO_SERVICE = "bench.Echo"
ECHO_METHOD = f"/{ECHO_SERVICE}/Echo"
NAMESPACE = "default"
TARGET = 0.8


# -- the echo floor (a child process) -------------------------------------------------------------


async def _serve_echo() -> None:
    import signal

    import grpc
    import grpc.aio

    from cachekit.grpc.server import server_options

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    handler: Any = grpc.unary_unary_rpc_method_handler(echo)  # bytes in, bytes out
    server = grpc.aio.server(options=server_options())
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(ECHO_SERVICE, {"Echo": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"echo: serving on grpc://127.0.0.1:{port}", flush=True)
    await stop.wait()
    await server.stop(None)


# -- servers ------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[str]
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid


def _start(name: str, argv: list[str]) -> Server:
    """Start a server (it inherits this process's CPU affinity, so all its threads do)."""
    process = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # "...: serving NAME on grpc://127.0.0.1:PORT"
    if "grpc://" not in line:
        process.kill()
        raise RuntimeError(f"{name} server did not start: {line!r}")
    return Server(name, process, int(line.rstrip().rpartition(":")[2]))


@contextlib.contextmanager
def servers(token: str | None) -> Iterator[tuple[Server, Server]]:
    started: list[Server] = []
    try:
        started.append(_start("echo", ["-m", "bench.grpc_bench", "--serve-echo"]))
        cache_argv = ["-m", "cachekit", "serve", "--url", "memory://", "--port", "0"]
        started.append(_start("cachekit", cache_argv + (["--token", token] if token else [])))
        yield started[0], started[1]
    finally:
        for server in started:
            server.process.terminate()
        for server in started:
            try:
                server.process.wait(10)
            except subprocess.TimeoutExpired:
                server.process.kill()


# -- measuring ----------------------------------------------------------------------------------


@dataclass
class Sample:
    rate: float
    p50: float
    p99: float
    client_cpu: float
    server_cpu: float


async def measure(
    call: Callable[[], Awaitable[Any]], callers: int, seconds: float, server: Server
) -> Sample:
    latencies: list[float] = []
    clock = time.perf_counter

    async def worker(deadline: float) -> None:
        while clock() < deadline:
            start = clock()
            await call()
            latencies.append(clock() - start)

    for _ in range(100):  # warm-up: the connection, the server's handler caches
        await call()
    cpu, server_ns, began = time.process_time(), server_cpu_ns(server.pid), clock()
    await asyncio.gather(*(worker(began + seconds) for _ in range(callers)))
    elapsed = clock() - began
    cpu, server_ns = time.process_time() - cpu, server_cpu_ns(server.pid) - server_ns
    latencies.sort()
    n = len(latencies)
    return Sample(
        rate=n / elapsed,
        p50=latencies[n // 2],
        p99=latencies[min(n - 1, int(n * 0.99))],
        client_cpu=cpu / n,
        server_cpu=server_ns / 1e9 / n,
    )


def payload_of(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


async def run_payload(
    *,
    echo_server: Server,
    cache_server: Server,
    size: int,
    callers_list: list[int],
    reps: int,
    seconds: float,
    token: str | None,
) -> None:
    import grpc.aio

    from cachekit.grpc import values
    from cachekit.v1 import cache_pb2 as pb
    from cachekit.v1 import cache_pb2_grpc as pb_grpc

    metadata = (("authorization", f"Bearer {token}"),) if token else None
    value = pb.Value(data=payload_of(size), content_type=values.OCTETS)
    set_request = pb.SetRequest(namespace=NAMESPACE, key="bench:1", value=value)
    get_request = pb.GetRequest(namespace=NAMESPACE, key="bench:1")
    echo_request = set_request.SerializeToString()

    results: dict[tuple[str, int], list[Sample]] = {}
    ratios: dict[tuple[str, int], list[float]] = {}
    names = ["echo (floor)", "Get", "Set"]
    for rep in range(reps):
        for callers in callers_list:
            # Fresh channels per round; the order rotates so no case always runs first.
            echo_channel = grpc.aio.insecure_channel(f"127.0.0.1:{echo_server.port}")
            cache_channel = grpc.aio.insecure_channel(f"127.0.0.1:{cache_server.port}")
            echo: Any = echo_channel.unary_unary(ECHO_METHOD)
            stub = pb_grpc.CacheServiceStub(cache_channel)
            await stub.Set(set_request, metadata=metadata)
            cases: dict[str, tuple[Callable[[], Awaitable[Any]], Server]] = {
                "echo (floor)": (partial(echo, echo_request, metadata=metadata), echo_server),
                "Get": (partial(stub.Get, get_request, metadata=metadata), cache_server),
                "Set": (partial(stub.Set, set_request, metadata=metadata), cache_server),
            }
            shift = rep % len(names)
            samples: dict[str, Sample] = {}
            for name in names[shift:] + names[:shift]:
                call, server = cases[name]
                samples[name] = await measure(call, callers, seconds, server)
            found = await stub.Get(get_request, metadata=metadata)
            assert found.found, "Get lost the value"
            assert found.entry.value.data == value.data, "Get changed the value"
            for name, sample in samples.items():
                results.setdefault((name, callers), []).append(sample)
                ratios.setdefault((name, callers), []).append(
                    sample.rate / samples["echo (floor)"].rate
                )
            await echo_channel.close()
            await cache_channel.close()
    print_table(size, callers_list, names, results, ratios)


def print_table(
    size: int,
    callers_list: list[int],
    names: list[str],
    results: dict[tuple[str, int], list[Sample]],
    ratios: dict[tuple[str, int], list[float]],
) -> None:
    med = statistics.median
    print(f"\npayload {size} B")
    print(
        f"{'case':<14}{'callers':>8}{'calls/s':>10}{'p50 us':>9}{'p99 us':>9}"
        f"{'client us':>11}{'server us':>11}{'vs echo':>9}{'ratio range':>14}"
    )
    for callers in callers_list:
        for name in names:
            rows = results[(name, callers)]
            r = ratios[(name, callers)]
            mark = ""
            if not name.startswith("echo"):
                mark = "  ok" if med(r) >= TARGET else f"  BELOW {TARGET}x"
            print(
                f"{name:<14}{callers:>8}{med(s.rate for s in rows):>10.0f}"
                f"{med(s.p50 for s in rows) * 1e6:>9.0f}{med(s.p99 for s in rows) * 1e6:>9.0f}"
                f"{med(s.client_cpu for s in rows) * 1e6:>11.0f}"
                f"{med(s.server_cpu for s in rows) * 1e6:>11.0f}"
                f"{med(r):>8.2f}x{min(r):>7.2f}-{max(r):.2f}{mark}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.5 s per case")
    parser.add_argument("--payload", default="256", help="value bytes, comma-separated")
    parser.add_argument("--callers", default="1,16", help="concurrent callers, comma-separated")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per case and round")
    parser.add_argument("--reps", type=int, default=5, help="rounds (medians are printed)")
    parser.add_argument("--cpu", type=int, default=0, help="CPU the client and servers run on")
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler place them")
    parser.add_argument("--token", help="run the cache server with --token (callers send it)")
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_echo:
        asyncio.run(_serve_echo())
        return
    seconds, reps = (0.5, 3) if args.quick else (args.seconds, args.reps)
    cpu = None if args.no_pin else args.cpu
    if cpu is not None:  # before grpc starts a thread or a server starts: all inherit it
        os.sched_setaffinity(0, {cpu})
    sizes = [int(s) for s in args.payload.split(",")]
    callers_list = [int(c) for c in args.callers.split(",")]
    print(
        f"grpc bench: {reps} rounds x {seconds:.1f} s per case, "
        f"{f'pinned to CPU {cpu}' if cpu is not None else 'not pinned'}"
        f"{', token auth on' if args.token else ''}; medians; client/server us = CPU per call"
    )
    with sigterm_as_exit(), servers(args.token) as (echo_server, cache_server):
        for size in sizes:
            run = run_payload(
                echo_server=echo_server,
                cache_server=cache_server,
                size=size,
                callers_list=callers_list,
                reps=reps,
                seconds=seconds,
                token=args.token,
            )
            asyncio.run(run)


if __name__ == "__main__":
    main()
