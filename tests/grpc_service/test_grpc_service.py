"""Every RPC and error status over raw stubs (what a client in another language sends)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_helpers import ThreadedServer
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cachekit import MISSING, create_cache
from cachekit.errors import InvalidKey, ValueTooLarge
from cachekit.grpc import values
from cachekit.grpc.client import GrpcCache, Unauthenticated
from cachekit.testing.servers import make_self_signed_cert
from cachekit.v1 import admin_pb2 as apb
from cachekit.v1 import admin_pb2_grpc as apb_grpc
from cachekit.v1 import cache_pb2 as pb
from cachekit.v1 import cache_pb2_grpc as pb_grpc

Code = grpc.StatusCode
_ids = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    caches = {"default": create_cache("memory://default"), "other": create_cache("memory://other")}
    with ThreadedServer(caches, max_value_bytes=1000, metrics_port=0) as running:
        yield running


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
def ns(admin: apb_grpc.CacheAdminServiceStub, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"ns{next(_ids)}"
    admin.CreateNamespace(apb.CreateNamespaceRequest(namespace=name, url="memory://"))
    yield name
    admin.DeleteNamespace(apb.DeleteNamespaceRequest(namespace=name))


def status(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()  # type: ignore[attr-defined]


def json_value(obj: Any) -> pb.Value:
    return pb.Value(data=json.dumps(obj).encode(), content_type="application/json")


# -- data plane --------------------------------------------------------------------------------


def test_set_get_delete_exists(stub: pb_grpc.CacheServiceStub, ns: str) -> None:
    assert stub.Set(pb.SetRequest(namespace=ns, key="k", value=json_value({"a": 1}))).stored
    got = stub.Get(pb.GetRequest(namespace=ns, key="k", include_metadata=True))
    assert got.found
    assert got.entry.value.content_type == "application/json"
    assert json.loads(got.entry.value.data) == {"a": 1}
    assert not got.entry.HasField("expires_at")  # never expires
    assert not got.entry.HasField("created_at")  # not tracked: unset, not faked
    assert stub.Exists(pb.ExistsRequest(namespace=ns, key="k")).exists
    assert stub.Delete(pb.DeleteRequest(namespace=ns, key="k")).deleted
    assert not stub.Delete(pb.DeleteRequest(namespace=ns, key="k")).deleted
    assert not stub.Get(pb.GetRequest(namespace=ns, key="k")).found


def test_add_ttl_touch_and_metadata(stub: pb_grpc.CacheServiceStub, ns: str) -> None:
    value = pb.Value(data=b"v", content_type="")
    ttl = Duration(seconds=100)
    assert stub.Set(pb.SetRequest(namespace=ns, key="k", value=value, ttl=ttl)).stored
    request = pb.SetRequest(namespace=ns, key="k", value=value, only_if_absent=True)
    assert not stub.Set(request).stored
    got = stub.Get(pb.GetRequest(namespace=ns, key="k", include_metadata=True)).entry
    assert 99 < got.ttl.seconds + got.ttl.nanos / 1e9 <= 100
    assert got.expires_at.seconds > 0
    assert got.size > 0
    assert got.value.content_type == values.OCTETS
    touch = pb.TouchExpirationRequest(namespace=ns, key="k", no_expiry=True)
    assert stub.TouchExpiration(touch).touched
    assert not stub.Get(pb.GetRequest(namespace=ns, key="k", inspect=True)).entry.HasField("ttl")
    zero = pb.TouchExpirationRequest(namespace=ns, key="k", ttl=Duration())
    assert stub.TouchExpiration(zero).touched
    assert not stub.Exists(pb.ExistsRequest(namespace=ns, key="k")).exists


def test_counters(stub: pb_grpc.CacheServiceStub, ns: str) -> None:
    assert stub.Increment(pb.IncrementRequest(namespace=ns, key="n", delta=5)).value == 5
    assert stub.Decrement(pb.DecrementRequest(namespace=ns, key="n", delta=7)).value == -2
    got = stub.Get(pb.GetRequest(namespace=ns, key="n")).entry.value
    assert (got.content_type, got.data) == (values.INTEGER, b"-2")
    stub.Set(pb.SetRequest(namespace=ns, key="s", value=json_value("x")))
    code, message = status(lambda: stub.Increment(pb.IncrementRequest(namespace=ns, key="s")))
    assert code == Code.FAILED_PRECONDITION
    assert "not int" in message


def test_multiple_clear_keys_and_stats(stub: pb_grpc.CacheServiceStub, ns: str) -> None:
    items = {f"user:{i}": json_value(i) for i in range(25)} | {"post:1": json_value(1)}
    assert (
        list(stub.SetMultiple(pb.SetMultipleRequest(namespace=ns, values=items)).failed_keys) == []
    )
    got = stub.GetMultiple(pb.GetMultipleRequest(namespace=ns, keys=["user:1", "nope"]))
    assert [(e.key, e.value.data) for e in got.entries] == [("user:1", b"1")]
    seen: list[str] = []
    token = ""
    while True:
        page = stub.Keys(
            pb.KeysRequest(namespace=ns, pattern="user:*", page_size=10, page_token=token)
        )
        assert len(page.keys) <= 10
        seen += page.keys
        token = page.next_page_token
        if not token:
            break
    assert sorted(set(seen)) == sorted(k for k in items if k.startswith("user:"))
    removed = stub.DeleteMultiple(pb.DeleteMultipleRequest(namespace=ns, keys=["user:0", "x"]))
    assert removed.deleted == 1
    assert stub.Clear(pb.ClearRequest(namespace=ns, pattern="user:1?")).deleted == 10
    cleared = stub.Clear(pb.ClearRequest(namespace=ns))
    assert not cleared.HasField("deleted")
    stats = stub.GetStats(pb.GetStatsRequest(namespace=ns)).stats
    assert (stats.provider, stats.items) == ("memory", 0)
    assert stats.sets >= 26
    assert stats.HasField("max_entries")


def test_flush_empties_named_namespaces(stub: pb_grpc.CacheServiceStub, ns: str) -> None:
    stub.Set(pb.SetRequest(namespace=ns, key="k", value=json_value(1)))
    assert list(stub.Flush(pb.FlushRequest(namespaces=[ns])).namespaces) == [ns]
    assert not stub.Exists(pb.ExistsRequest(namespace=ns, key="k")).exists


def test_cross_language_json(
    server: ThreadedServer, stub: pb_grpc.CacheServiceStub, ns: str
) -> None:
    """A raw client's JSON is a GrpcCache(json) value, and back, byte for byte."""
    cache = create_cache(f"grpc://{server.target}/{ns}?serializer=json")
    stub.Set(pb.SetRequest(namespace=ns, key="from-go", value=json_value({"n": [1, 2]})))
    assert cache.get("from-go") == {"n": [1, 2]}
    cache.set("from-python", {"ok": True, "list": [1.5, None]})
    got = stub.Get(pb.GetRequest(namespace=ns, key="from-python")).entry.value
    assert got.content_type == "application/json"
    assert json.loads(got.data) == {"ok": True, "list": [1.5, None]}
    cache.set("text", "héllo")
    text = stub.Get(pb.GetRequest(namespace=ns, key="text")).entry.value
    assert (text.content_type, text.data) == (values.TEXT, "héllo".encode())
    cache.set("count", 7)
    assert stub.Increment(pb.IncrementRequest(namespace=ns, key="count", delta=1)).value == 8
    assert cache.get("count") == 8
    pickled = create_cache(f"grpc://{server.target}/{ns}")
    pickled.set("obj", {1, 2})
    opaque = stub.Get(pb.GetRequest(namespace=ns, key="obj")).entry.value
    assert opaque.content_type == values.CACHEKIT
    assert pickled.get("obj") == {1, 2}
    cache.close()
    pickled.close()


@pytest.mark.parametrize(
    ("content_type", "data", "view"),
    [
        ("text/plain", "ü".encode(), values.TEXT),
        (
            "application/x-protobuf; messageType=google.protobuf.Duration",
            b"\x08\x05",
            "application/x-protobuf; messageType=google.protobuf.Duration",
        ),
        ("application/msgpack", b"\x01", values.MSGPACK),
        (values.INTEGER, b"12", values.INTEGER),
    ],
)
def test_content_types_round_trip(
    stub: pb_grpc.CacheServiceStub, ns: str, content_type: str, data: bytes, view: str
) -> None:
    stub.Set(
        pb.SetRequest(namespace=ns, key="k", value=pb.Value(data=data, content_type=content_type))
    )
    got = stub.Get(pb.GetRequest(namespace=ns, key="k")).entry.value
    assert (got.content_type, got.data) == (view, data)


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (pb.SetRequest(namespace="default", key="", value=pb.Value()), "non-empty"),
        (pb.SetRequest(namespace="default", key="k", value=pb.Value(data=b"x" * 1001)), "limit"),
        (
            pb.SetRequest(
                namespace="default",
                key="k",
                value=pb.Value(data=b"{", content_type="application/json"),
            ),
            "not valid",
        ),
        (
            pb.SetRequest(namespace="default", key="k", value=pb.Value(content_type="image/png")),
            "unsupported",
        ),
        (
            pb.SetRequest(
                namespace="default",
                key="k",
                value=pb.Value(data=b"\xc1\x09", content_type=values.CACHEKIT),
            ),
            "truncated",
        ),
        (
            pb.SetRequest(
                namespace="default",
                key="k",
                value=pb.Value(data=b"\xc1\x09\x01\x00", content_type=values.CACHEKIT),
            ),
            "version",
        ),
        (
            pb.SetRequest(namespace="default", key="k", value=pb.Value(), ttl=Duration(seconds=-1)),
            "negative",
        ),
        (
            pb.SetRequest(
                namespace="default",
                key="k",
                value=pb.Value(),
                ttl=Duration(seconds=1),
                no_expiry=True,
            ),
            "exclusive",
        ),
        (pb.KeysRequest(namespace="default", pattern="[abc"), "unterminated"),
        (pb.KeysRequest(namespace="default", pattern="a\\"), "backslash"),
        (pb.KeysRequest(namespace="default", page_size=-1), "negative"),
        (pb.ClearRequest(namespace="default", pattern="x" * 2000), "longer"),
        (pb.GetRequest(namespace="", key="k"), "namespace"),
        (pb.GetMultipleRequest(namespace="default", keys=["a", ""]), "non-empty"),
        (
            pb.SetRequest(
                namespace="default",
                key="k",
                value=pb.Value(data=b"x", content_type="text/plain"),
                only_if_absent=True,
                only_if_present=True,
            ),
            "mutually exclusive",
        ),
        (
            pb.SetRequest(
                namespace="default",
                key="k",
                value=pb.Value(data=b"x", content_type="application/x-protobuf"),
            ),
            "messageType",
        ),
        (
            pb.SetRequest(
                namespace="default",
                key="k",
                value=pb.Value(data=b"x", content_type="text/plain; charset=latin-1"),
            ),
            "UTF-8",
        ),
        (
            pb.SetRequest(
                namespace="default",
                key="k",
                value=pb.Value(data=b"x", content_type="text/plain; junk"),
            ),
            "malformed",
        ),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else v,
)
def test_invalid_argument(stub: pb_grpc.CacheServiceStub, request_: Any, fragment: str) -> None:
    method = {
        pb.SetRequest: stub.Set,
        pb.KeysRequest: stub.Keys,
        pb.ClearRequest: stub.Clear,
        pb.GetRequest: stub.Get,
        pb.GetMultipleRequest: stub.GetMultiple,
    }[type(request_)]
    code, message = status(lambda: method(request_))
    assert code == Code.INVALID_ARGUMENT
    assert fragment in message


def test_unknown_namespace_is_not_found(stub: pb_grpc.CacheServiceStub) -> None:
    code, message = status(lambda: stub.Get(pb.GetRequest(namespace="ghost", key="k")))
    assert code == Code.NOT_FOUND
    assert "ghost" in message


def test_oversized_message_is_refused_and_the_server_lives_on(
    server: ThreadedServer, stub: pb_grpc.CacheServiceStub
) -> None:
    big = pb.Value(data=b"x" * (5 << 20))
    code, _ = status(lambda: stub.Set(pb.SetRequest(namespace="default", key="k", value=big)))
    assert code == Code.RESOURCE_EXHAUSTED
    assert not stub.Get(pb.GetRequest(namespace="default", key="nothing")).found


def test_client_errors_map_back(server: ThreadedServer) -> None:
    cache = GrpcCache(f"grpc://{server.target}/default")
    with pytest.raises(ValueTooLarge):
        cache.set("k", os.urandom(2000))  # incompressible: over the 1000-byte limit
    with pytest.raises(InvalidKey):
        cache.scan_keys("[abc")
    assert cache.get("absent", MISSING) is MISSING
    cache.close()


def test_deadline_is_respected(stub: pb_grpc.CacheServiceStub) -> None:
    stream = stub.Watch(pb.WatchRequest(namespace="default"), timeout=0.3)
    with pytest.raises(grpc.RpcError) as info:
        list(stream)
    assert info.value.code() == Code.DEADLINE_EXCEEDED  # type: ignore[attr-defined]


# -- Watch ---------------------------------------------------------------------------------------


def test_watch_delivers_invalidations(stub: pb_grpc.CacheServiceStub, ns: str) -> None:
    stream = stub.Watch(pb.WatchRequest(namespace=ns), timeout=10)
    stream.initial_metadata()  # the subscription is live
    stub.Set(pb.SetRequest(namespace=ns, key="a", value=json_value(1)))
    stub.Delete(pb.DeleteRequest(namespace=ns, key="a"))
    stub.Increment(pb.IncrementRequest(namespace=ns, key="n"))
    stub.TouchExpiration(pb.TouchExpirationRequest(namespace=ns, key="n", ttl=Duration(seconds=9)))
    stub.Clear(pb.ClearRequest(namespace=ns, pattern="x*"))
    stub.Clear(pb.ClearRequest(namespace=ns))
    events = [next(stream) for _ in range(6)]
    stream.cancel()
    assert [(e.kind, e.key, e.pattern) for e in events] == [
        (pb.EVENT_KIND_SET, "a", ""),
        (pb.EVENT_KIND_DELETE, "a", ""),
        (pb.EVENT_KIND_SET, "n", ""),
        (pb.EVENT_KIND_TOUCH, "n", ""),
        (pb.EVENT_KIND_CLEAR, "", "x*"),
        (pb.EVENT_KIND_CLEAR, "", ""),
    ]
    assert {e.namespace for e in events} == {ns}


def test_slow_watcher_gets_an_overflow_event(
    server: ThreadedServer, stub: pb_grpc.CacheServiceStub, ns: str
) -> None:
    hub = server.server.namespaces.get(ns).hub
    hub.queue_size = 4
    stream = stub.Watch(pb.WatchRequest(namespace=ns), timeout=10)
    stream.initial_metadata()
    sub = next(iter(hub._subscribers))
    server.run(_publish_many(hub, 50))
    kinds = [next(stream).kind for _ in range(2)]
    stream.cancel()
    assert kinds[0] == pb.EVENT_KIND_OVERFLOW
    assert sub.dropped >= 1


async def _publish_many(hub: Any, n: int) -> None:
    hub._subscribers = {type(s)(hub.queue_size) if False else s for s in hub._subscribers}
    for s in hub._subscribers:
        s.queue._maxsize = hub.queue_size  # this subscriber was made before the size changed
    for i in range(n):
        hub.publish(1, f"k{i}")


def test_deleting_a_namespace_ends_its_watch(
    stub: pb_grpc.CacheServiceStub, admin: apb_grpc.CacheAdminServiceStub
) -> None:
    admin.CreateNamespace(apb.CreateNamespaceRequest(namespace="doomed"))
    stream = stub.Watch(pb.WatchRequest(namespace="doomed"), timeout=10)
    stream.initial_metadata()
    admin.DeleteNamespace(apb.DeleteNamespaceRequest(namespace="doomed"))
    assert [e.kind for e in stream] == [pb.EVENT_KIND_NAMESPACE_DELETED]


# -- admin ------------------------------------------------------------------------------------


def test_admin_lifecycle(
    admin: apb_grpc.CacheAdminServiceStub, stub: pb_grpc.CacheServiceStub
) -> None:
    made = admin.CreateNamespace(
        apb.CreateNamespaceRequest(namespace="adm", url="memory://?max_entries=50&policy=lfu")
    ).namespace
    assert (made.provider, made.policy.eviction_policy, made.policy.max_entries) == (
        "memory",
        "lfu",
        50,
    )
    code, _ = status(lambda: admin.CreateNamespace(apb.CreateNamespaceRequest(namespace="adm")))
    assert code == Code.ALREADY_EXISTS
    assert "adm" in [n.name for n in admin.ListNamespaces(apb.ListNamespacesRequest()).namespaces]
    stub.Set(pb.SetRequest(namespace="adm", key="k", value=json_value(1), no_expiry=True))
    stub.Get(pb.GetRequest(namespace="adm", key="k"))
    configured = admin.ConfigurePolicy(
        apb.ConfigurePolicyRequest(
            namespace="adm",
            eviction_policy="adaptive",
            max_entries=10,
            default_ttl=Duration(seconds=30),
            max_ttl=Duration(seconds=60),
        )
    ).namespace
    assert configured.policy.eviction_policy == "adaptive"
    assert configured.policy.max_entries == 10
    assert configured.policy.max_ttl.seconds == 60
    assert stub.Exists(pb.ExistsRequest(namespace="adm", key="k")).exists  # entries moved over
    stub.Set(pb.SetRequest(namespace="adm", key="capped", value=json_value(1), no_expiry=True))
    capped = stub.Get(pb.GetRequest(namespace="adm", key="capped", inspect=True)).entry.ttl
    assert 59 < capped.seconds + capped.nanos / 1e9 <= 60
    stub.Set(pb.SetRequest(namespace="adm", key="dflt", value=json_value(1)))
    dflt = stub.Get(pb.GetRequest(namespace="adm", key="dflt", inspect=True)).entry.ttl
    assert 29 < dflt.seconds + dflt.nanos / 1e9 <= 30
    stats = admin.GetNamespaceStats(apb.GetNamespaceStatsRequest(namespace="adm"))
    assert stats.stats.items == 3
    assert ("Set", "OK") in {(r.method, r.code) for r in stats.rpcs}
    cleared = admin.ConfigurePolicy(
        apb.ConfigurePolicyRequest(namespace="adm", default_ttl=Duration(), max_ttl=Duration())
    ).namespace
    assert not cleared.policy.HasField("max_ttl")
    admin.DeleteNamespace(apb.DeleteNamespaceRequest(namespace="adm"))
    code, _ = status(lambda: admin.DeleteNamespace(apb.DeleteNamespaceRequest(namespace="adm")))
    assert code == Code.NOT_FOUND


@pytest.mark.parametrize(
    ("request_", "code", "fragment"),
    [
        (
            apb.CreateNamespaceRequest(namespace="bad", url="memory://?max_entriez=3"),
            Code.INVALID_ARGUMENT,
            "max_entriez",
        ),
        (apb.CreateNamespaceRequest(namespace="bad", url="nope://"), Code.INVALID_ARGUMENT, "url"),
        (apb.CreateNamespaceRequest(namespace="bad name!"), Code.INVALID_ARGUMENT, "namespace"),
        (
            apb.ConfigurePolicyRequest(namespace="default", eviction_policy="lru"),
            Code.FAILED_PRECONDITION,
            "memory caches the server built",
        ),
        (apb.ConfigurePolicyRequest(namespace="ghost"), Code.NOT_FOUND, "ghost"),
        (
            apb.ConfigurePolicyRequest(namespace="default", max_ttl=Duration(seconds=-5)),
            Code.INVALID_ARGUMENT,
            "negative",
        ),
        (
            apb.ConfigurePolicyRequest(namespace="default", max_entries=-5),
            Code.INVALID_ARGUMENT,
            "negative",
        ),
        (apb.GetNamespaceStatsRequest(namespace="ghost"), Code.NOT_FOUND, "ghost"),
    ],
    ids=lambda v: (
        v.name
        if isinstance(v, grpc.StatusCode)
        else (v if isinstance(v, str) else type(v).__name__)
    ),
)
def test_admin_errors(
    admin: apb_grpc.CacheAdminServiceStub, request_: Any, code: Any, fragment: str
) -> None:
    method = getattr(admin, type(request_).__name__.removesuffix("Request"))
    got, message = status(lambda: method(request_))
    assert (got, fragment in message) == (code, True), message


def test_bad_policy_names_the_key(admin: apb_grpc.CacheAdminServiceStub, ns: str) -> None:
    code, message = status(
        lambda: admin.ConfigurePolicy(
            apb.ConfigurePolicyRequest(namespace=ns, eviction_policy="fifo")
        )
    )
    assert code == Code.INVALID_ARGUMENT
    assert "policy" in message


# -- health, reflection, metrics -------------------------------------------------------------------


def test_health_and_reflection(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "cachekit.v1.CacheService", "cachekit.v1.CacheAdminService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = reflect.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for s in next(replies).list_services_response.service}
    assert {
        "cachekit.v1.CacheService",
        "cachekit.v1.CacheAdminService",
        "grpc.health.v1.Health",
    } <= names


def test_prometheus_metrics(server: ThreadedServer, stub: pb_grpc.CacheServiceStub) -> None:
    stub.Get(pb.GetRequest(namespace="default", key="m"))
    status(lambda: stub.Get(pb.GetRequest(namespace="default", key="")))
    url = f"http://127.0.0.1:{server.server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    assert 'cachekit_grpc_calls_total{code="OK",method="Get",namespace="default"}' in text
    assert 'code="INVALID_ARGUMENT",method="Get",namespace="default"' in text
    assert "cachekit_grpc_call_seconds_bucket" in text
    assert "cachekit_" in text.replace("cachekit_grpc", "")  # the namespaces' cache stats too


def test_metrics_label_only_namespaces_the_server_has(
    server: ThreadedServer, stub: pb_grpc.CacheServiceStub
) -> None:
    """Clients pick the name: each made-up one must not become a series of its own."""

    def unknown_not_found() -> int:
        rows = server.server.metrics.counts("(unknown)")
        return sum(n for method, code, n in rows if (method, code) == ("Get", "NOT_FOUND"))

    before = unknown_not_found()
    for n in range(5):
        code, _ = status(lambda n=n: stub.Get(pb.GetRequest(namespace=f"made-up-{n}", key="k")))
        assert code == Code.NOT_FOUND
    url = f"http://127.0.0.1:{server.server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    assert "made-up" not in text
    assert 'code="NOT_FOUND",method="Get",namespace="(unknown)"' in text
    assert unknown_not_found() - before == 5


# -- auth and TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secured() -> Iterator[ThreadedServer]:
    with ThreadedServer(
        {"default": create_cache("memory://")}, token="s3cret", admin_token="adm1n"
    ) as running:
        yield running


def test_tokens(secured: ThreadedServer) -> None:
    with grpc.insecure_channel(secured.target) as ch:
        stub, admin = pb_grpc.CacheServiceStub(ch), apb_grpc.CacheAdminServiceStub(ch)
        get = pb.GetRequest(namespace="default", key="k")
        assert status(lambda: stub.Get(get))[0] == Code.UNAUTHENTICATED
        bad = (("authorization", "Bearer nope"),)
        assert status(lambda: stub.Get(get, metadata=bad))[0] == Code.UNAUTHENTICATED
        user = (("authorization", "Bearer s3cret"),)
        assert not stub.Get(get, metadata=user).found
        listing = apb.ListNamespacesRequest()
        code, message = status(lambda: admin.ListNamespaces(listing, metadata=user))
        assert (code, "admin" in message) == (Code.UNAUTHENTICATED, True)
        assert (
            status(lambda: stub.Flush(pb.FlushRequest(), metadata=user))[0] == Code.UNAUTHENTICATED
        )
        boss = (("authorization", "Bearer adm1n"),)
        assert admin.ListNamespaces(listing, metadata=boss).namespaces
        assert not stub.Get(get, metadata=boss).found
        watch = stub.Watch(pb.WatchRequest(namespace="default"), timeout=5)
        assert status(lambda: next(watch))[0] == Code.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(Unauthenticated):
        GrpcCache(f"grpc://{secured.target}/default?token=wrong").get("k")
    cache = GrpcCache(f"grpc://{secured.target}/default?token=s3cret")
    cache.set("k", 1)
    assert cache.get("k") == 1
    cache.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    server_dir, client_dir = tmp_path_factory.mktemp("server"), tmp_path_factory.mktemp("client")
    cert, key = make_self_signed_cert(server_dir)
    client_cert, client_key = make_self_signed_cert(client_dir)
    return {"cert": cert, "key": key, "client_cert": client_cert, "client_key": client_key}


def test_tls_and_mutual_tls(certs: dict[str, Path]) -> None:
    with ThreadedServer(
        {"default": create_cache("memory://")},
        tls_cert=str(certs["cert"]),
        tls_key=str(certs["key"]),
    ) as tls:
        cache = create_cache(f"grpcs://{tls.target}/default?ssl_ca_certs={certs['cert']}&timeout=3")
        cache.set("k", "over tls")
        assert cache.get("k") == "over tls"
        cache.close()
        plain = GrpcCache(f"grpc://{tls.target}/default?timeout=2")
        with pytest.raises(Exception, match="UNAVAILABLE"):
            plain.get("k")
        plain.close()
    with ThreadedServer(
        {"default": create_cache("memory://")},
        tls_cert=str(certs["cert"]),
        tls_key=str(certs["key"]),
        tls_client_ca=str(certs["client_cert"]),
    ) as mtls:
        base = f"grpcs://{mtls.target}/default?ssl_ca_certs={certs['cert']}&timeout=3"
        anonymous = create_cache(base)
        with pytest.raises(Exception, match="UNAVAILABLE"):
            anonymous.get("k")
        anonymous.close()
        client = create_cache(
            f"{base}&ssl_certfile={certs['client_cert']}&ssl_keyfile={certs['client_key']}"
        )
        client.set("k", 1)
        assert client.get("k") == 1
        client.close()


def test_async_client_against_a_live_server(server: ThreadedServer) -> None:
    cache = GrpcCache(f"grpc://{server.target}/other")

    async def scenario() -> Any:
        await cache.aset("a", [1])
        got = await cache.aget("a")
        info = await cache.ainspect("a")
        await cache.aclose()
        return got, info

    got, info = asyncio.run(scenario())
    assert got == [1]
    assert info is not None
    assert info.value_type == "list"


def test_provider_error_subclasses_travel_as_their_public_class() -> None:
    """Review finding: a Redis-backed server sent ``RedisNotAnInteger``, a name clients do not
    know, so they raised a bare CacheError instead of NotAnInteger."""
    from cachekit.errors import BackendUnavailable, NotAnInteger
    from cachekit.grpc.interceptors import public_error_name
    from cachekit.providers.filesystem import FileUnavailable
    from cachekit.providers.redis_errors import RedisNotAnInteger, RedisUnavailable

    assert public_error_name(RedisNotAnInteger("x")) == "NotAnInteger"
    assert public_error_name(NotAnInteger("x")) == "NotAnInteger"
    assert public_error_name(RedisUnavailable("x")) == "BackendUnavailable"
    assert public_error_name(FileUnavailable("x")) == "BackendUnavailable"
    assert public_error_name(BackendUnavailable("x")) == "BackendUnavailable"


@pytest.mark.parametrize("pattern", ["[]", "a[]]", "[a-]x]", "[\\]]"])
def test_patterns_closed_by_redis_rules_are_taken(pattern: str) -> None:
    """The check read classes as fnmatch does: "[]" (an empty class, to Redis and the memory
    provider) was refused as unterminated."""
    from cachekit.grpc.convert import check_pattern

    assert check_pattern(pattern) == pattern
