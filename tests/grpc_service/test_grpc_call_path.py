"""The server's per-call path: which interceptors wrap which method, metrics, wire views."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_helpers import ThreadedServer

from cachekit import create_cache
from cachekit.grpc import values
from cachekit.grpc.interceptors import AuthInterceptor, MetricsInterceptor, StatusInterceptor
from cachekit.grpc.metrics import LATENCY_BOUNDS, RpcMetrics
from cachekit.serialization.header import Codec, Compression, pack_header
from cachekit.v1 import admin_pb2 as apb
from cachekit.v1 import admin_pb2_grpc as apb_grpc
from cachekit.v1 import cache_pb2 as pb
from cachekit.v1 import cache_pb2_grpc as pb_grpc

GET = "/cachekit.v1.CacheService/Get"
FLUSH = "/cachekit.v1.CacheService/Flush"
LIST = "/cachekit.v1.CacheAdminService/ListNamespaces"
HEALTH = "/grpc.health.v1.Health/Check"


async def _behavior(request: Any, context: Any) -> Any:
    return request


def _handler() -> Any:
    return grpc.unary_unary_rpc_method_handler(_behavior)


# -- interceptors: decided once per method ------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "admin_token", "wrapped"),
    [
        (None, None, set()),  # no tokens: auth costs nothing anywhere
        (None, "adm", {LIST, FLUSH}),  # admin token only: the data plane stays open
        ("tok", None, {GET, FLUSH, LIST}),
        ("tok", "adm", {GET, FLUSH, LIST}),
    ],
)
def test_auth_wraps_only_the_methods_that_need_a_token(
    token: str | None, admin_token: str | None, wrapped: set[str]
) -> None:
    auth = AuthInterceptor(token, admin_token)
    for method in (GET, FLUSH, LIST, HEALTH):
        handler = _handler()
        assert (auth.wrap(method, handler) is not handler) == (method in wrapped), method


def test_auth_accepts_the_right_tokens_per_method() -> None:
    auth = AuthInterceptor("tok", "adm")
    assert auth.accepted(GET) == ((b"tok", b"adm"), "missing or wrong bearer token")
    assert auth.accepted(LIST) == ((b"adm",), "this method needs the admin token")
    assert auth.accepted(FLUSH) == ((b"adm",), "this method needs the admin token")
    assert auth.accepted(HEALTH) is None


def test_metrics_and_status_leave_client_streams_alone() -> None:
    stream = grpc.stream_stream_rpc_method_handler(_behavior)  # reflection's kind
    unary = _handler()
    for interceptor in (MetricsInterceptor(RpcMetrics()), StatusInterceptor()):
        assert interceptor.wrap("/grpc.reflection.v1alpha.ServerReflection/X", stream) is stream
        assert interceptor.wrap(GET, unary) is not unary


# -- metrics --------------------------------------------------------------------------------------


def test_rpc_metrics_counts_and_histogram() -> None:
    metrics = RpcMetrics()
    get, setter = metrics.recorder("Get"), metrics.recorder("Set")
    get("a", "OK", 0.00005)
    get("a", "OK", 0.003)
    get("a", "NOT_FOUND", 10.0)
    get("b", "OK", 0.00005)
    setter("a", "OK", 0.0002)
    metrics.record("Set", "a", "OK", 0.0002)
    assert metrics.counts("a") == [("Get", "NOT_FOUND", 1), ("Get", "OK", 2), ("Set", "OK", 2)]
    assert metrics.counts() == [("Get", "NOT_FOUND", 1), ("Get", "OK", 3), ("Set", "OK", 2)]
    calls, latency = list(metrics.collect())
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in calls.samples}
    assert (
        samples[
            ("cachekit_grpc_calls_total", (("code", "OK"), ("method", "Get"), ("namespace", "a")))
        ]
        == 2
    )
    buckets = {
        s.labels["le"]: s.value
        for s in latency.samples
        if s.name.endswith("_bucket")
        and s.labels["method"] == "Get"
        and s.labels["namespace"] == "a"
    }
    assert buckets[repr(LATENCY_BOUNDS[0])] == 1  # cumulative: 50 us
    assert buckets["0.005"] == 2  # 50 us and 3 ms
    assert buckets["+Inf"] == 3  # and the 10 s one, over every bound
    total = next(
        s.value
        for s in latency.samples
        if s.name.endswith("_sum") and s.labels == {"method": "Get", "namespace": "a"}
    )
    assert total == pytest.approx(10.00305)


# -- wire views -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (pack_header(Codec.RAW) + b"\x00raw", (values.OCTETS, b"\x00raw")),
        (pack_header(Codec.JSON) + b'{"a":1}', (values.JSON, b'{"a":1}')),
        (pack_header(Codec.STR) + "ü".encode(), (values.TEXT, "ü".encode())),
        (pack_header(Codec.MSGPACK) + b"\x01", (values.MSGPACK, b"\x01")),
        (pack_header(Codec.RAW), (values.OCTETS, b"")),  # an empty body
        (
            pack_header(Codec.PROTOBUF, extras=b"pkg.Name") + b"\x08\x01",
            (f"{values.PROTOBUF}; messageType=pkg.Name", b"\x08\x01"),
        ),
        # Whole envelopes: no plain view exists, or the header must be read by the client.
        (pack_header(Codec.PICKLE) + b"\x80\x05N.", "whole"),
        (pack_header(Codec.JSON, Compression.ZLIB) + b"x\x9c", "whole"),
        (pack_header(Codec.JSON, signed=True) + b"{}" + b"s" * 32, "whole"),
        (b"\xc1\x02\x01\x00body", "whole"),  # a newer version
        (b"\xc1\x01\x01\xf0body", "whole"),  # unknown flags
        (b"\xc1\x01\x01", "whole"),  # truncated
        (b"no envelope", (values.OCTETS, b"no envelope")),
        (b"", (values.OCTETS, b"")),
        (42, (values.INTEGER, b"42")),
    ],
)
def test_to_wire_answers_the_plainest_view(stored: Any, expected: Any) -> None:
    expected = (values.CACHEKIT, stored) if expected == "whole" else expected
    if type(stored) is bytes and stored[:1] == b"\xc1":
        # An envelope stored as sent is a Kept; plain bytes are octets, whatever they start
        # with, except on a namespace that cannot hold a Kept (sniff).
        assert values.to_wire(values.Kept(stored)) == expected
        assert values.to_wire(stored, sniff=True) == expected
        assert values.to_wire(stored) == (values.OCTETS, stored)
    else:
        assert values.to_wire(stored) == expected


@pytest.mark.parametrize("content_type", [values.OCTETS, ""])
def test_raw_bytes_starting_with_the_magic_are_stored_unchanged(content_type: str) -> None:
    stored = values.to_stored(content_type, b"\xc1 not an envelope")
    assert type(stored) is bytes
    assert stored == b"\xc1 not an envelope"
    assert values.to_wire(stored) == (values.OCTETS, b"\xc1 not an envelope")
    # A namespace that cannot hold a Kept: behind a RAW header, never read as an envelope.
    stored = values.to_stored(content_type, b"\xc1 not an envelope", marked=False)
    assert stored == pack_header(Codec.RAW) + b"\xc1 not an envelope"
    assert values.to_wire(stored, sniff=True) == (values.OCTETS, b"\xc1 not an envelope")


# -- the server -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secured() -> Iterator[ThreadedServer]:
    with ThreadedServer({"default": create_cache("memory://")}, token="tok") as running:
        yield running


def test_unknown_methods_are_unimplemented(secured: ThreadedServer) -> None:
    with grpc.insecure_channel(secured.target) as channel:
        for method in ("/cachekit.v1.CacheService/Nope", "/elsewhere.Service/Get"):
            call = channel.unary_unary(method)
            with pytest.raises(grpc.RpcError) as info:
                call(b"", metadata=(("authorization", "Bearer tok"),), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]


def test_rejected_calls_are_counted(secured: ThreadedServer) -> None:
    metrics = secured.server.metrics
    before = {(m, c): n for m, c, n in metrics.counts("default")}
    with grpc.insecure_channel(secured.target) as channel:
        stub = pb_grpc.CacheServiceStub(channel)
        get = pb.GetRequest(namespace="default", key="k")
        with pytest.raises(grpc.RpcError):
            stub.Get(get, metadata=(("authorization", "Bearer wrong"),))
        stub.Get(get, metadata=(("authorization", "bearer  tok "),))  # scheme case, spaces
    after = {(m, c): n for m, c, n in metrics.counts("default")}
    assert after.get(("Get", "UNAUTHENTICATED"), 0) == before.get(("Get", "UNAUTHENTICATED"), 0) + 1
    assert after.get(("Get", "OK"), 0) == before.get(("Get", "OK"), 0) + 1


def test_an_admin_token_alone_guards_admin_methods_only() -> None:
    caches = {"default": create_cache("memory://")}
    with (
        ThreadedServer(caches, admin_token="adm") as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        stub, admin = pb_grpc.CacheServiceStub(channel), apb_grpc.CacheAdminServiceStub(channel)
        assert not stub.Get(pb.GetRequest(namespace="default", key="k")).found
        with pytest.raises(grpc.RpcError) as info:
            admin.ListNamespaces(apb.ListNamespacesRequest())
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        with pytest.raises(grpc.RpcError):
            stub.Flush(pb.FlushRequest())
        boss = (("authorization", "Bearer adm"),)
        assert admin.ListNamespaces(apb.ListNamespacesRequest(), metadata=boss).namespaces


def test_shared_answers_stay_intact(secured: ThreadedServer) -> None:
    """Misses and Set answers are shared message objects: serving them must not change them."""
    auth = (("authorization", "Bearer tok"),)
    with grpc.insecure_channel(secured.target) as channel:
        stub = pb_grpc.CacheServiceStub(channel)
        value = pb.Value(data=b"v", content_type=values.OCTETS)
        for _ in range(3):
            miss = stub.Get(pb.GetRequest(namespace="default", key="shared-miss"), metadata=auth)
            assert miss == pb.GetResponse(found=False)
            new = pb.SetRequest(namespace="default", key="shared", value=value, only_if_absent=True)
            stub.Set(new, metadata=auth)
            assert stub.Set(new, metadata=auth) == pb.SetResponse(stored=False)
            plain = pb.SetRequest(namespace="default", key="shared", value=value)
            assert stub.Set(plain, metadata=auth) == pb.SetResponse(stored=True)
            hit = stub.Get(pb.GetRequest(namespace="default", key="shared"), metadata=auth)
            assert (hit.found, hit.entry.key, hit.entry.value) == (True, "shared", value)
            stub.Delete(pb.DeleteRequest(namespace="default", key="shared"), metadata=auth)
