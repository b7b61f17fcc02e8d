"""Edges of the gRPC server found by review: counters at the int64 bounds, a behind watcher on a
deleted namespace, policy changes keeping tags, TTL limits on counters, namespace names and
ownership of ``cachekit serve``'s caches, size limits, Duration ranges (real servers only)."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from grpc_helpers import ThreadedServer

from cachekit import create_cache
from cachekit.grpc.cli import build_namespaces
from cachekit.grpc.client import GrpcCache
from cachekit.grpc.events import EventKind
from cachekit.grpc.namespaces import Namespaces
from cachekit.v1 import admin_pb2 as apb
from cachekit.v1 import admin_pb2_grpc as apb_grpc
from cachekit.v1 import cache_pb2 as pb
from cachekit.v1 import cache_pb2_grpc as pb_grpc

Code = grpc.StatusCode
_ids = itertools.count()
INT = "application/vnd.cachekit.int"


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer({"default": create_cache("memory://edges")}, watch_queue_size=4) as srv:
        yield srv


@pytest.fixture(scope="module")
def channel(server: ThreadedServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.target) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> pb_grpc.CacheServiceStub:
    return pb_grpc.CacheServiceStub(channel)


@pytest.fixture
def admin(channel: grpc.Channel) -> apb_grpc.CacheAdminServiceStub:
    return apb_grpc.CacheAdminServiceStub(channel)


@pytest.fixture
def ns(admin: apb_grpc.CacheAdminServiceStub) -> Iterator[str]:
    name = f"edge{next(_ids)}"
    admin.CreateNamespace(apb.CreateNamespaceRequest(namespace=name, url="memory://"))
    yield name
    if name in [n.name for n in admin.ListNamespaces(apb.ListNamespacesRequest()).namespaces]:
        admin.DeleteNamespace(apb.DeleteNamespaceRequest(namespace=name))


def status(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()  # type: ignore[attr-defined]


# -- Watch -------------------------------------------------------------------------------------


async def _fill_then_delete(hub: Any) -> None:
    """Overflow every subscriber, then publish the deletion, with no await in between (the
    Watch coroutines cannot drain their queue meanwhile): what DeleteNamespace publishes."""
    for i in range(20):
        hub.publish(EventKind.SET, f"k{i}")
    hub.publish(EventKind.NAMESPACE_DELETED)


def test_a_watcher_behind_still_gets_namespace_deleted(
    server: ThreadedServer, stub: pb_grpc.CacheServiceStub, ns: str
) -> None:
    stream = stub.Watch(pb.WatchRequest(namespace=ns), timeout=5)
    stream.initial_metadata()  # subscribed (a queue of 4 events: the fixture's server)
    server.run(_fill_then_delete(server.server.namespaces.get(ns).hub))
    kinds = [e.kind for e in stream]  # ends: the deletion is terminal
    assert kinds == [pb.EVENT_KIND_OVERFLOW, pb.EVENT_KIND_NAMESPACE_DELETED]


def test_stopping_the_server_ends_watch_streams_instead_of_waiting_out_the_grace() -> None:
    """A Watch stream never finishes on its own: every open one held shutdown for the whole
    grace period and was then cancelled (UNAVAILABLE). The server ends them first: the client
    sees a normal end of stream and can reconnect elsewhere."""
    with (
        ThreadedServer({"default": create_cache("memory://stopping")}) as own,
        grpc.insecure_channel(own.target) as ch,
    ):
        stream = pb_grpc.CacheServiceStub(ch).Watch(pb.WatchRequest(namespace="default"))
        stream.initial_metadata()  # subscribed
        stopping = asyncio.run_coroutine_threadsafe(own.server.stop(30), own.loop)
        assert list(stream) == []  # ended, no error (it was cancelled at the grace's end)
        stopping.result(10)  # and shutdown did not wait out the 30 s grace


# -- counters ----------------------------------------------------------------------------------

MAX64 = (1 << 63) - 1
MIN64 = -(1 << 63)


def _int(stub: pb_grpc.CacheServiceStub, ns: str, key: str) -> int | None:
    got = stub.Get(pb.GetRequest(namespace=ns, key=key))
    return int(got.entry.value.data) if got.found else None


def _set_int(stub: pb_grpc.CacheServiceStub, ns: str, key: str, value: int) -> None:
    stub.Set(
        pb.SetRequest(namespace=ns, key=key, value=pb.Value(data=b"%d" % value, content_type=INT))
    )


def _code(call: Any) -> grpc.StatusCode:
    return status(call)[0]


def test_counters_refuse_to_leave_int64_and_change_nothing(
    stub: pb_grpc.CacheServiceStub, ns: str
) -> None:
    _set_int(stub, ns, "hi", MAX64)
    _set_int(stub, ns, "lo", MIN64)
    incr, decr = stub.Increment, stub.Decrement
    code, message = status(lambda: incr(pb.IncrementRequest(namespace=ns, key="hi", delta=1)))
    assert code == Code.FAILED_PRECONDITION, message
    assert "64-bit" in message
    fp = Code.FAILED_PRECONDITION
    assert _code(lambda: decr(pb.DecrementRequest(namespace=ns, key="lo", delta=1))) == fp
    assert _code(lambda: incr(pb.IncrementRequest(namespace=ns, key="lo", delta=MIN64))) == fp
    assert (_int(stub, ns, "hi"), _int(stub, ns, "lo")) == (MAX64, MIN64)
    # -(-2**63) is no int64: refused before anything is created, as Redis's DECRBY refuses it
    invalid = Code.INVALID_ARGUMENT
    assert _code(lambda: decr(pb.DecrementRequest(namespace=ns, key="d", delta=MIN64))) == invalid
    assert _int(stub, ns, "d") is None
    # up to the bounds is fine
    assert stub.Increment(pb.IncrementRequest(namespace=ns, key="hi", delta=0)).value == MAX64
    assert stub.Decrement(pb.DecrementRequest(namespace=ns, key="hi", delta=MAX64)).value == 0
    assert stub.Decrement(pb.DecrementRequest(namespace=ns, key="n", delta=MAX64)).value == -MAX64


def test_concurrent_increments_stop_exactly_at_the_bound(
    stub: pb_grpc.CacheServiceStub, ns: str
) -> None:
    start = MAX64 - 40
    _set_int(stub, ns, "c", start)
    calls = [
        stub.Increment.future(pb.IncrementRequest(namespace=ns, key="c", delta=1))
        for _ in range(100)
    ]
    codes = [call.code() for call in calls]
    assert codes.count(Code.OK) == 40
    assert codes.count(Code.FAILED_PRECONDITION) == 60
    assert _int(stub, ns, "c") == MAX64


def _ttl(stub: pb_grpc.CacheServiceStub, ns: str, key: str) -> float:
    """The entry's TTL in seconds; -1.0 when it has none (never expires)."""
    entry = stub.Get(pb.GetRequest(namespace=ns, key=key, include_metadata=True)).entry
    return entry.ttl.seconds + entry.ttl.nanos / 1e9 if entry.HasField("ttl") else -1.0


def test_a_counter_created_by_increment_gets_the_namespace_ttl_limits(
    stub: pb_grpc.CacheServiceStub, admin: apb_grpc.CacheAdminServiceStub, ns: str
) -> None:
    admin.ConfigurePolicy(
        apb.ConfigurePolicyRequest(
            namespace=ns, default_ttl={"seconds": 5}, max_ttl={"seconds": 10}
        )
    )
    assert stub.Increment(pb.IncrementRequest(namespace=ns, key="a", delta=3)).value == 3
    assert stub.Decrement(pb.DecrementRequest(namespace=ns, key="b", delta=3)).value == -3
    assert 4 < _ttl(stub, ns, "a") <= 5
    assert 4 < _ttl(stub, ns, "b") <= 5
    # an existing counter keeps its TTL and counts on
    assert stub.Increment(pb.IncrementRequest(namespace=ns, key="a", delta=1)).value == 4
    # max_ttl alone caps the provider's "never"
    admin.ConfigurePolicy(apb.ConfigurePolicyRequest(namespace=ns, default_ttl={}))
    stub.Increment(pb.IncrementRequest(namespace=ns, key="c", delta=1))
    assert 9 < _ttl(stub, ns, "c") <= 10


# -- sizes -------------------------------------------------------------------------------------


def test_keys_over_the_key_limit_are_invalid_everywhere(
    stub: pb_grpc.CacheServiceStub, ns: str
) -> None:
    big, ok = "k" * (64 * 1024 + 1), "é" * (32 * 1024)  # 65537 bytes; 65536 bytes
    one = pb.Value(data=b"1")
    calls = [
        lambda k: stub.Set(pb.SetRequest(namespace=ns, key=k, value=one)),
        lambda k: stub.Get(pb.GetRequest(namespace=ns, key=k)),
        lambda k: stub.Delete(pb.DeleteRequest(namespace=ns, key=k)),
        lambda k: stub.Exists(pb.ExistsRequest(namespace=ns, key=k)),
        lambda k: stub.TouchExpiration(pb.TouchExpirationRequest(namespace=ns, key=k)),
        lambda k: stub.Increment(pb.IncrementRequest(namespace=ns, key=k)),
        lambda k: stub.GetMultiple(pb.GetMultipleRequest(namespace=ns, keys=["a", k])),
        lambda k: stub.SetMultiple(pb.SetMultipleRequest(namespace=ns, values={k: one})),
        lambda k: stub.DeleteMultiple(pb.DeleteMultipleRequest(namespace=ns, keys=[k])),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as info:
            call(big)
        assert info.value.code() == Code.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert ("cachekit-error", "InvalidKey") in info.value.trailing_metadata()  # type: ignore[attr-defined]
    assert not stub.Exists(pb.ExistsRequest(namespace=ns, key=big[:-1])).exists  # at the limit
    assert stub.Set(pb.SetRequest(namespace=ns, key=ok, value=one)).stored
    assert stub.Keys(pb.KeysRequest(namespace=ns)).keys == [ok]


# -- `cachekit serve`'s namespaces -------------------------------------------------------------


def test_serve_owns_the_caches_it_builds() -> None:
    namespaces = build_namespaces("memory://", ["b=memory://?max_entries=5"])
    with ThreadedServer(namespaces) as srv, grpc.insecure_channel(srv.target) as ch:
        admin = apb_grpc.CacheAdminServiceStub(ch)
        made = admin.ConfigurePolicy(
            apb.ConfigurePolicyRequest(namespace="default", max_entries=10)
        ).namespace
        assert made.policy.max_entries == 10
        listed = admin.ListNamespaces(apb.ListNamespacesRequest()).namespaces
        assert [(n.name, n.url) for n in listed] == [
            ("b", "memory://?max_entries=5"),
            ("default", "memory://?max_entries=10"),  # the URL of the rebuilt cache
        ]
        # what makes the server close them at shutdown (memory's close has nothing to observe)
        assert all(ns.owned for ns in srv.server.namespaces)


def test_every_namespace_cache_is_named_after_its_namespace(redis_server: Any) -> None:
    url = redis_server.url
    namespaces = build_namespaces(
        "memory://", [f"sessions={url}?prefix=s:", f"pages={url}", f"own={url}?name=mine"]
    )
    with ThreadedServer(namespaces, metrics_port=0) as srv, grpc.insecure_channel(srv.target) as ch:
        stub = pb_grpc.CacheServiceStub(ch)
        for name in ("sessions", "pages", "own"):
            stub.Set(pb.SetRequest(namespace=name, key="k", value=pb.Value(data=name.encode())))
        # one prefix per namespace: "pages" and "own" do not share their keys
        got = {
            n: stub.Get(pb.GetRequest(namespace=n, key="k")).entry.value.data
            for n in ("pages", "own")
        }
        assert got == {"pages": b"pages", "own": b"own"}
        metrics = f"http://127.0.0.1:{srv.server.metrics_port}/metrics"
        with urllib.request.urlopen(metrics, timeout=5) as response:
            text = response.read().decode()
        for name in ("pages", "own"):
            stub.Delete(pb.DeleteRequest(namespace=name, key="k"))
    exported = {
        line.split('cache="')[1].split('"')[0] for line in text.splitlines() if 'cache="' in line
    }
    assert exported == {"default", "sessions", "pages", "mine"}
    assert [ns.cache.name for ns in namespaces] == ["default", "mine", "pages", "sessions"]


# -- ConfigurePolicy ---------------------------------------------------------------------------


def test_eviction_changes_keep_every_entrys_tags(
    stub: pb_grpc.CacheServiceStub, admin: apb_grpc.CacheAdminServiceStub, ns: str
) -> None:
    one = pb.Value(data=b"1")
    stub.Set(pb.SetRequest(namespace=ns, key="u1", value=one, tags=["user", "a"], no_expiry=True))
    stub.Set(pb.SetRequest(namespace=ns, key="u2", value=one, tags=["user"], ttl={"seconds": 100}))
    stub.Set(pb.SetRequest(namespace=ns, key="plain", value=one))
    admin.ConfigurePolicy(apb.ConfigurePolicyRequest(namespace=ns, max_entries=500))
    admin.ConfigurePolicy(apb.ConfigurePolicyRequest(namespace=ns, eviction_policy="lfu"))
    assert 99 < _ttl(stub, ns, "u2") <= 100
    assert stub.InvalidateTags(pb.InvalidateTagsRequest(namespace=ns, tags=["a"])).count == 1
    assert stub.InvalidateTags(pb.InvalidateTagsRequest(namespace=ns, tags=["user"])).count == 1
    keys = stub.Keys(pb.KeysRequest(namespace=ns)).keys
    assert list(keys) == ["plain"]


# -- Durations and Timestamps ------------------------------------------------------------------


def test_ttls_outside_durations_range_are_invalid(
    stub: pb_grpc.CacheServiceStub, admin: apb_grpc.CacheAdminServiceStub, ns: str
) -> None:
    one = pb.Value(data=b"1")
    bad = [Duration(seconds=10**12), Duration(seconds=1, nanos=-1), Duration(nanos=10**9)]
    for ttl in bad:
        set_ = pb.SetRequest(namespace=ns, key="a", value=one, ttl=ttl)
        assert _code(lambda r=set_: stub.Set(r)) == Code.INVALID_ARGUMENT
        touch = pb.TouchExpirationRequest(namespace=ns, key="a", ttl=ttl)
        assert _code(lambda r=touch: stub.TouchExpiration(r)) == Code.INVALID_ARGUMENT
        policy = apb.ConfigurePolicyRequest(namespace=ns, max_ttl=ttl)
        assert _code(lambda r=policy: admin.ConfigurePolicy(r)) == Code.INVALID_ARGUMENT
    assert not stub.Exists(pb.ExistsRequest(namespace=ns, key="a")).exists


def test_expires_at_is_unset_past_year_9999(stub: pb_grpc.CacheServiceStub, ns: str) -> None:
    longest = Duration(seconds=315_576_000_000)  # valid, and past 9999-12-31 from now
    stub.Set(pb.SetRequest(namespace=ns, key="a", value=pb.Value(data=b"1"), ttl=longest))
    got = stub.Get(pb.GetRequest(namespace=ns, key="a", include_metadata=True))
    assert got.entry.HasField("ttl")
    assert not got.entry.HasField("expires_at")
    json_format.MessageToJson(got)  # what grpcurl and JSON transcoding do
    stub.Set(pb.SetRequest(namespace=ns, key="b", value=pb.Value(data=b"1"), ttl={"seconds": 60}))
    near = stub.Get(pb.GetRequest(namespace=ns, key="b", include_metadata=True)).entry
    assert near.HasField("expires_at")


@pytest.fixture(scope="module")
def small() -> Iterator[ThreadedServer]:
    """A server with 64 KiB messages, 16 KiB values and (a quarter of messages) 16 KiB keys."""
    caches = {"default": create_cache("memory://small")}
    with ThreadedServer(caches, max_message_bytes=64 << 10, max_value_bytes=16 << 10) as srv:
        yield srv


def test_get_multiple_stays_under_the_message_limit(small: ThreadedServer) -> None:
    cache = GrpcCache(f"grpc://{small.target}/default")
    try:
        values = {f"v{i}": os.urandom(15 << 10) for i in range(10)}  # 150 KiB in all
        for key, value in values.items():
            cache.set(key, value)
        with grpc.insecure_channel(small.target) as ch:
            request = pb.GetMultipleRequest(namespace="default", keys=[*values, "absent"])
            first = pb_grpc.CacheServiceStub(ch).GetMultiple(request)
        read = [e.key for e in first.entries]
        assert 0 < len(read) < 10
        assert read + list(first.unread_keys) == list(values)  # misses are not unread
        assert cache.get_many([*values, "absent"]) == values  # GrpcCache asks for the rest
        assert asyncio.run(cache.aget_many(list(values))) == values
    finally:
        cache.clear()
        cache.close()


def test_keys_pages_stay_under_the_message_limit(small: ThreadedServer) -> None:
    keys = {f"{i:02d}" + "k" * (12 << 10) for i in range(20)}  # 240 KiB of keys
    with grpc.insecure_channel(small.target) as ch:
        stub = pb_grpc.CacheServiceStub(ch)
        for key in keys:
            stub.Set(pb.SetRequest(namespace="default", key=key, value=pb.Value(data=b"1")))
        seen: list[str] = []
        token = ""
        while True:
            page = stub.Keys(pb.KeysRequest(namespace="default", page_size=100, page_token=token))
            assert page.keys
            seen.extend(page.keys)
            token = page.next_page_token
            if not token:
                break
        stub.Clear(pb.ClearRequest(namespace="default"))
    assert sorted(seen) == sorted(keys)


# -- errors ------------------------------------------------------------------------------------


def test_policy_refusals_travel_as_unsupported_operation(
    admin: apb_grpc.CacheAdminServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as info:  # "default" was handed over in code: not ours
        admin.ConfigurePolicy(apb.ConfigurePolicyRequest(namespace="default", max_entries=10))
    assert info.value.code() == Code.FAILED_PRECONDITION  # type: ignore[attr-defined]
    trailers = info.value.trailing_metadata()  # type: ignore[attr-defined]
    assert ("cachekit-error", "UnsupportedOperation") in trailers


def test_a_redis_page_token_past_64_bits_is_invalid(
    stub: pb_grpc.CacheServiceStub, admin: apb_grpc.CacheAdminServiceStub, redis_server: Any
) -> None:
    name = f"edge{next(_ids)}"
    url = f"{redis_server.url}?prefix={name}:"
    admin.CreateNamespace(apb.CreateNamespaceRequest(namespace=name, url=url))
    try:
        for token in ("99999999999999999999999", "zzz", "-1"):
            request = pb.KeysRequest(namespace=name, page_token=token)
            assert _code(lambda r=request: stub.Keys(r)) == Code.INVALID_ARGUMENT, token
        assert stub.Keys(pb.KeysRequest(namespace=name)).next_page_token == ""
    finally:
        admin.DeleteNamespace(apb.DeleteNamespaceRequest(namespace=name))


def test_iterating_namespaces_while_another_thread_deletes_them() -> None:
    """The Prometheus scrape thread iterates the namespaces while the server's loop deletes
    one: names, then a lookup per name, raised KeyError in between (forced here by a tiny GIL
    switch interval; it failed within a few hundred rounds)."""
    namespaces = Namespaces({})
    cache = create_cache("memory://race")
    errors: list[BaseException] = []
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            try:
                for _ in namespaces:
                    pass
            except Exception as exc:
                errors.append(exc)
                return

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=scrape)
    thread.start()
    try:
        for i in range(20000):
            namespaces.add(f"n{i % 50}", cache)
            namespaces.delete(f"n{i % 50}")
            if errors:
                break
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert not errors, errors[0]
