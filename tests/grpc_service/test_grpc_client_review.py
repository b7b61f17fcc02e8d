"""``GrpcCache`` against a real in-process server, from a review: message limits above gRPC's
4 MiB default, Watch streams at shutdown, and the exception types the core raises."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_helpers import ThreadedServer

from cachekit import create_cache
from cachekit.errors import ConfigurationError, NotAnInteger
from cachekit.grpc.client import GrpcCache
from cachekit.grpc.events import SERVER_STOPPING, EventHub, EventKind
from cachekit.providers.memory import MemoryCache
from cachekit.v1 import cache_pb2 as pb
from cachekit.v1 import cache_pb2_grpc as pb_grpc

_ids = itertools.count()
MiB = 1 << 20


# -- message limits ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_server() -> Iterator[ThreadedServer]:
    caches = {"default": create_cache("memory://client-review-big")}
    with ThreadedServer(caches, max_message_bytes=16 * MiB, max_value_bytes=8 * MiB) as srv:
        yield srv


def test_a_value_over_4_mib_is_read_back_with_the_servers_max_message_bytes(
    big_server: ThreadedServer,
) -> None:
    """The client's channels kept gRPC's 4 MiB receive limit: the server took a 6 MiB value and
    the client could not read it back (RESOURCE_EXHAUSTED)."""
    value = b"x" * (6 * MiB)
    with GrpcCache(f"grpc://{big_server.target}/default?max_message_bytes=16MiB") as cache:
        key = f"big{next(_ids)}"
        cache.set(key, value)
        assert cache.get(key) == value
        assert cache.get_many([key]) == {key: value}


def test_the_async_channel_takes_max_message_bytes_too(big_server: ThreadedServer) -> None:
    value = b"y" * (6 * MiB)
    cache = GrpcCache(f"grpc://{big_server.target}/default", max_message_bytes=16 * MiB)

    async def roundtrip() -> object:
        key = f"abig{next(_ids)}"
        try:
            await cache.aset(key, value)
            return await cache.aget(key)
        finally:
            await cache.aclose()

    assert asyncio.run(roundtrip()) == value


def test_max_message_bytes_defaults_to_the_servers_default() -> None:
    from cachekit.grpc.server import DEFAULT_MAX_MESSAGE_BYTES

    assert GrpcCache("grpc://127.0.0.1:1/x").max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES


@pytest.mark.parametrize("bad", [0, -1, "lots", True, 1 << 31, 2.5])
def test_max_message_bytes_is_validated(bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        GrpcCache("grpc://127.0.0.1:1/x", max_message_bytes=bad)
    assert info.value.key == "max_message_bytes"


# -- Watch streams at shutdown -------------------------------------------------------------------


async def _flood(hub: EventHub, size: int = 3000) -> None:
    """SET events of ``size``-char keys, letting the Watch handlers send between them, until a
    subscriber that does not read is blocked by flow control with a backlog (its queue stops
    draining)."""
    for i in range(100_000):
        hub.publish(EventKind.SET, f"{i:06d}" + "k" * size)
        if i % 50 == 0:
            await asyncio.sleep(0.005)
            backlog = max(sub.queue.qsize() for sub in hub._subscribers)
            if backlog >= 200:
                await asyncio.sleep(0.3)
                if max(sub.queue.qsize() for sub in hub._subscribers) >= backlog:
                    return  # stuck: nothing was sent meanwhile
    raise AssertionError("the subscriber never fell behind")


def test_a_watcher_that_does_not_read_does_not_hold_shutdown_for_the_grace() -> None:
    """A subscriber that stopped reading: its handler is blocked sending (HTTP/2 flow control)
    with events queued behind, and the stop marker was queued after them, so shutdown waited the
    whole grace and then cancelled the stream (UNAVAILABLE)."""
    with (
        ThreadedServer({"default": create_cache("memory://client-review-stop")}) as own,
        grpc.insecure_channel(own.target) as ch,
    ):
        stub = pb_grpc.CacheServiceStub(ch)
        stream = stub.Watch(pb.WatchRequest(namespace="default"))
        stream.initial_metadata()  # subscribed; never read until the server stops
        hub = own.server.namespaces.get("default").hub
        own.run(_flood(hub))
        idle = stub.Watch(pb.WatchRequest(namespace="default"))  # one with nothing pending
        idle.initial_metadata()
        started = time.monotonic()
        stopping = asyncio.run_coroutine_threadsafe(own.server.stop(60), own.loop)
        stopping.result(30)  # raises TimeoutError if shutdown waits out the 60 s grace
        assert time.monotonic() - started < 30
        for _event in idle:  # the other stream ends normally after what it was sent
            pass
        assert idle.code() == grpc.StatusCode.OK
        with contextlib.suppress(grpc.RpcError):
            for _event in stream:  # the stuck one ended too (OK, or cancelled)
                pass
        assert len(hub) == 0


def test_end_all_puts_the_stop_ahead_of_the_backlog_behind_one_overflow() -> None:
    """The stop was queued behind the pending events, so a behind subscriber was sent all of
    them first; now it gets one OVERFLOW (it still learns that it missed some), then the end."""

    async def run() -> list[int]:
        hub = EventHub(queue_size=8)
        behind, idle = hub.subscribe(), hub.subscribe()
        for i in range(5):
            hub.publish(EventKind.SET, f"k{i}")
        while not idle.queue.empty():
            await idle.next()
        hub.end_all()
        hub.publish(EventKind.SET, "after")  # nothing is queued after the end
        kinds = [(await behind.next()).kind for _ in range(behind.queue.qsize())]
        return [*kinds, -100, *[(await idle.next()).kind for _ in range(idle.queue.qsize())]]

    assert asyncio.run(run()) == [EventKind.OVERFLOW, SERVER_STOPPING, -100, SERVER_STOPPING]


class _SlowGets(MemoryCache):
    async def aget(self, key: str, default: object = None) -> object:
        await asyncio.sleep(1.0)
        return await super().aget(key, default)


def test_shutdown_still_lets_running_calls_finish_while_it_cancels_stuck_streams() -> None:
    with (
        ThreadedServer({"default": _SlowGets(name="client-review-slow")}) as own,
        grpc.insecure_channel(own.target) as ch,
    ):
        stub = pb_grpc.CacheServiceStub(ch)
        stream = stub.Watch(pb.WatchRequest(namespace="default"))
        stream.initial_metadata()
        own.run(_flood(own.server.namespaces.get("default").hub))
        get = stub.Get.future(pb.GetRequest(namespace="default", key="k"), timeout=20)
        while not own.server.calls.running:  # the Get is being served
            time.sleep(0.01)
        stopping = asyncio.run_coroutine_threadsafe(own.server.stop(60), own.loop)
        assert get.result().found is False  # finished within the grace, not cancelled
        stopping.result(30)


# -- the core's exception types ------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer({"default": create_cache("memory://client-review")}) as srv:
        yield srv


def test_an_unknown_namespace_is_the_documented_configuration_error(
    server: ThreadedServer,
) -> None:
    """The server names NamespaceNotFound's public class, the root CacheError, in the trailer,
    which the client raised as a bare CacheError instead of its NOT_FOUND mapping."""
    with GrpcCache(f"grpc://{server.target}/ghost") as cache:
        with pytest.raises(ConfigurationError) as info:
            cache.get("k")
        assert info.value.key == "namespace"
        assert "ghost" in str(info.value)

    async def aget() -> None:
        acache = GrpcCache(f"grpc://{server.target}/ghost")
        try:
            await acache.aget("k")
        finally:
            await acache.aclose()

    with pytest.raises(ConfigurationError):
        asyncio.run(aget())


@pytest.mark.parametrize(
    ("method", "delta"),
    [("incr", 1 << 63), ("incr", 1 << 64), ("incr", -(1 << 63) - 1), ("decr", -(1 << 63))],
)
def test_a_delta_outside_int64_is_not_an_integer_as_on_redis(
    server: ThreadedServer, method: str, delta: int
) -> None:
    """protobuf's own ValueError ("Value out of range") escaped from building the request."""
    with GrpcCache(f"grpc://{server.target}/default") as cache:
        key = f"n{next(_ids)}"
        cache.set(key, 5)
        with pytest.raises(NotAnInteger):
            getattr(cache, method)(key, delta)

        async def atwin() -> None:
            try:
                await getattr(cache, f"a{method}")(key, delta)
            finally:
                await cache.aclose()

        with pytest.raises(NotAnInteger):
            asyncio.run(atwin())
        assert cache.get(key) == 5


def test_counters_at_the_int64_bounds_still_work(server: ThreadedServer) -> None:
    with GrpcCache(f"grpc://{server.target}/default") as cache:
        key = f"b{next(_ids)}"
        assert cache.incr(key, (1 << 63) - 1) == (1 << 63) - 1
        assert cache.decr(key, (1 << 63) - 1) == 0
        assert cache.incr(key, -(1 << 63)) == -(1 << 63)
        assert asyncio.run(cache.adecr(key, -5)) == -(1 << 63) + 5
