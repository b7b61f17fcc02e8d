"""gRPC service benchmark: Get/Set through cachekit's server against a minimal echo floor.

Same run, same grpc.aio server setup, same payload, same kind of client (raw stubs over
grpc.aio channels): an echo service (the floor: what any grpcio unary call costs) and the real
CacheService on a memory namespace. One client, then 16 concurrent callers. Prints calls/s,
p50/p99 latency and the ratio to the echo floor (target: >= 0.8x).

    .venv/bin/python bench/grpc_bench.py [--quick] [--payload 256] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from cachekit import create_cache
from cachekit.grpc import values
from cachekit.grpc.server import CacheServer
from cachekit.v1 import cache_pb2 as pb
from cachekit.v1 import cache_pb2_grpc as pb_grpc

ECHO_METHOD = "/bench.Echo/Echo"


def _echo_handler() -> grpc.GenericRpcHandler:
    async def echo(request: bytes, context: Any) -> bytes:
        return request

    handler = grpc.unary_unary_rpc_method_handler(echo)  # bytes in, bytes out
    return grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler})


async def start_echo() -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_echo_handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def measure(
    call: Callable[[], Awaitable[Any]], callers: int, seconds: float
) -> tuple[float, float, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        clock = time.perf_counter
        while clock() < deadline:
            start = clock()
            await call()
            latencies.append(clock() - start)

    for _ in range(50):  # warm-up
        await call()
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(callers)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(latencies) / elapsed, statistics.median(latencies), p99


async def run(payload_size: int, seconds: float) -> None:
    payload = bytes(range(256)) * (payload_size // 256) + b"x" * (payload_size % 256)
    echo_server, echo_port = await start_echo()
    cache_server = CacheServer({"bench": create_cache("memory://bench")}, port=0)
    cache_port = await cache_server.start()
    echo_channel = grpc.aio.insecure_channel(f"127.0.0.1:{echo_port}")
    cache_channel = grpc.aio.insecure_channel(f"127.0.0.1:{cache_port}")
    echo = echo_channel.unary_unary(ECHO_METHOD)
    stub = pb_grpc.CacheServiceStub(cache_channel)
    value = pb.Value(data=payload, content_type=values.OCTETS)
    set_request = pb.SetRequest(namespace="bench", key="key:1", value=value)
    get_request = pb.GetRequest(namespace="bench", key="key:1")
    await stub.Set(set_request)
    echo_request = pb.SetRequest(namespace="bench", key="key:1", value=value).SerializeToString()

    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "echo (floor)": lambda: echo(echo_request),
        "Get": lambda: stub.Get(get_request),
        "Set": lambda: stub.Set(set_request),
    }
    print(f"payload {payload_size} B, {seconds:.1f} s per case")
    print(f"{'case':<14}{'callers':>8}{'calls/s':>12}{'p50 us':>10}{'p99 us':>10}{'vs echo':>9}")
    for callers in (1, 16):
        floor = 0.0
        for name, call in cases.items():
            rate, p50, p99 = await measure(call, callers, seconds)
            floor = rate if name.startswith("echo") else floor
            ratio = rate / floor if floor else 0.0
            print(
                f"{name:<14}{callers:>8}{rate:>12.0f}{p50 * 1e6:>10.0f}{p99 * 1e6:>10.0f}"
                f"{ratio:>8.2f}x"
            )
    await echo_channel.close()
    await cache_channel.close()
    await echo_server.stop(None)
    await cache_server.stop(None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="0.5 s per case")
    parser.add_argument("--payload", type=int, default=256, help="value bytes (default 256)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per case")
    args = parser.parse_args()
    asyncio.run(run(args.payload, 0.5 if args.quick else args.seconds))


if __name__ == "__main__":
    main()
