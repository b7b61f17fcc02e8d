"""Tags, ``InvalidateTags`` and ``DeletePattern`` over raw stubs, as a client in another language.

Real servers only: the gRPC server on a background loop, and ``memcached``/``redis-server``
processes (from the suite's session fixtures) behind namespaces that use them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from grpc_helpers import ThreadedServer

from cachekit import create_cache
from cachekit.errors import InvalidKey, UnsupportedOperation
from cachekit.grpc.client import GrpcCache
from cachekit.grpc.interceptors import ERROR_KEY, AuthInterceptor
from cachekit.testing.servers import MemcachedServer, RedisServer
from cachekit.v1 import admin_pb2 as apb
from cachekit.v1 import admin_pb2_grpc as apb_grpc
from cachekit.v1 import cache_pb2 as pb
from cachekit.v1 import cache_pb2_grpc as pb_grpc

Code = grpc.StatusCode
_ids = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer({"default": create_cache("memory://default")}) as running:
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


def _namespace(admin: apb_grpc.CacheAdminServiceStub, url: str) -> Iterator[str]:
    name = f"tags{next(_ids)}"
    admin.CreateNamespace(apb.CreateNamespaceRequest(namespace=name, url=url))
    yield name
    admin.DeleteNamespace(apb.DeleteNamespaceRequest(namespace=name))


@pytest.fixture
def ns(admin: apb_grpc.CacheAdminServiceStub) -> Iterator[str]:
    yield from _namespace(admin, "memory://")


@pytest.fixture
def redis_ns(admin: apb_grpc.CacheAdminServiceStub, redis_server: RedisServer) -> Iterator[str]:
    yield from _namespace(admin, f"{redis_server.url}?prefix=grpc-tags{next(_ids)}:")


@pytest.fixture
def memcached_ns(
    admin: apb_grpc.CacheAdminServiceStub, memcached_server: MemcachedServer
) -> Iterator[str]:
    yield from _namespace(admin, memcached_server.url)


def json_value(obj: Any) -> pb.Value:
    return pb.Value(data=json.dumps(obj).encode(), content_type="application/json")


def failure(call: Any) -> tuple[grpc.StatusCode, str, str]:
    """Status code, message and ``cachekit-error`` trailer of a call that must fail."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    error: Any = info.value
    trailer = dict(error.trailing_metadata() or ()).get(ERROR_KEY, "")
    return error.code(), error.details(), trailer


def present(stub: pb_grpc.CacheServiceStub, ns: str, keys: list[str]) -> list[str]:
    found = stub.GetMultiple(pb.GetMultipleRequest(namespace=ns, keys=keys)).entries
    return sorted(e.key for e in found)


def invalidate(stub: pb_grpc.CacheServiceStub, ns: str, *tags: str) -> int:
    return stub.InvalidateTags(pb.InvalidateTagsRequest(namespace=ns, tags=tags)).count


def delete_pattern(stub: pb_grpc.CacheServiceStub, ns: str, pattern: str) -> int:
    return stub.DeletePattern(pb.DeletePatternRequest(namespace=ns, pattern=pattern)).count


def _tag_scenario(stub: pb_grpc.CacheServiceStub, ns: str) -> None:
    """What a Go or Java client does: tag on Set, add and SetMultiple, invalidate by tag."""
    stub.Set(pb.SetRequest(namespace=ns, key="a", value=json_value(1), tags=["t1"]))
    stub.Set(pb.SetRequest(namespace=ns, key="b", value=json_value(2), tags=["t1", "t2"]))
    added = pb.SetRequest(
        namespace=ns, key="c", value=json_value(3), tags=["t2"], only_if_absent=True
    )
    assert stub.Set(added).stored
    assert not stub.Set(added).stored  # present: neither stored nor re-tagged
    batch = {"m1": json_value(1), "m2": json_value(2)}
    stub.SetMultiple(pb.SetMultipleRequest(namespace=ns, values=batch, tags=["batch"]))
    stub.Set(pb.SetRequest(namespace=ns, key="plain", value=json_value(0)))
    keys = ["a", "b", "c", "m1", "m2", "plain"]

    assert invalidate(stub, ns, "t1") == 2
    assert present(stub, ns, keys) == ["c", "m1", "m2", "plain"]
    assert invalidate(stub, ns, "t2", "unknown") == 1
    assert invalidate(stub, ns, "t1") == 0
    assert invalidate(stub, ns) == 0  # no tags: nothing
    assert invalidate(stub, ns, "batch") == 2
    assert present(stub, ns, keys) == ["plain"]


def test_tags_over_raw_stubs(stub: pb_grpc.CacheServiceStub, ns: str) -> None:
    _tag_scenario(stub, ns)


def test_tags_over_raw_stubs_on_redis(stub: pb_grpc.CacheServiceStub, redis_ns: str) -> None:
    _tag_scenario(stub, redis_ns)


def test_a_write_replaces_the_tags(stub: pb_grpc.CacheServiceStub, ns: str) -> None:
    stub.Set(pb.SetRequest(namespace=ns, key="k", value=json_value(1), tags=["old"]))
    stub.Set(pb.SetRequest(namespace=ns, key="k", value=json_value(2), tags=["new"]))
    assert invalidate(stub, ns, "old") == 0
    stub.Set(pb.SetRequest(namespace=ns, key="k", value=json_value(3)))  # an old client's write
    assert invalidate(stub, ns, "new") == 0
    assert present(stub, ns, ["k"]) == ["k"]


def test_delete_pattern_counts(stub: pb_grpc.CacheServiceStub, ns: str) -> None:
    items = {k: json_value(1) for k in ("user:1", "user:2", "user:10", "post:1", "userx", "a*b")}
    stub.SetMultiple(pb.SetMultipleRequest(namespace=ns, values=items))
    assert delete_pattern(stub, ns, "user:?") == 2
    assert delete_pattern(stub, ns, "user*") == 2
    assert delete_pattern(stub, ns, "[p]ost:*") == 1
    assert delete_pattern(stub, ns, "a\\*b") == 1  # an escaped star is a literal one
    assert delete_pattern(stub, ns, "nothing*") == 0
    assert present(stub, ns, list(items)) == []


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (pb.DeletePatternRequest(namespace="default", pattern=""), "non-empty"),
        (pb.DeletePatternRequest(namespace="default", pattern="[abc"), "unterminated"),
        (pb.DeletePatternRequest(namespace="default", pattern="a\\"), "backslash"),
        (pb.DeletePatternRequest(namespace="default", pattern="x" * 2000), "longer"),
        (pb.InvalidateTagsRequest(namespace="default", tags=["ok", ""]), "non-empty"),
        (pb.InvalidateTagsRequest(namespace="default", tags=["t"] * 10_001), "at most"),
        (
            pb.SetRequest(namespace="default", key="k", value=json_value(1), tags=[""]),
            "non-empty",
        ),
        (
            pb.SetMultipleRequest(namespace="default", values={"k": json_value(1)}, tags=["t", ""]),
            "non-empty",
        ),
        (pb.InvalidateTagsRequest(namespace="", tags=["t"]), "namespace"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_bad_tags_and_patterns_are_invalid_argument(
    stub: pb_grpc.CacheServiceStub, request_: Any, fragment: str
) -> None:
    method = getattr(stub, type(request_).__name__.removesuffix("Request"))
    code, message, _ = failure(lambda: method(request_))
    assert (code, fragment in message) == (Code.INVALID_ARGUMENT, True), message
    assert not stub.Exists(pb.ExistsRequest(namespace="default", key="k")).exists


def test_unknown_namespace_is_not_found(stub: pb_grpc.CacheServiceStub) -> None:
    for call in (
        lambda: invalidate(stub, "ghost", "t"),
        lambda: delete_pattern(stub, "ghost", "*"),
    ):
        code, message, _ = failure(call)
        assert (code, "ghost" in message) == (Code.NOT_FOUND, True)


def test_a_namespace_without_tags_is_unsupported(
    server: ThreadedServer, stub: pb_grpc.CacheServiceStub, memcached_ns: str
) -> None:
    ns = memcached_ns
    untagged = pb.SetRequest(namespace=ns, key="k", value=json_value(1))
    assert stub.Set(untagged).stored  # writes without tags work as before
    tagged = pb.SetRequest(namespace=ns, key="k2", value=json_value(1), tags=["t"])
    for call in (
        lambda: stub.Set(tagged),
        lambda: stub.SetMultiple(
            pb.SetMultipleRequest(namespace=ns, values={"k3": json_value(1)}, tags=["t"])
        ),
        lambda: invalidate(stub, ns, "t"),
        lambda: delete_pattern(stub, ns, "k*"),
        lambda: stub.Clear(pb.ClearRequest(namespace=ns, pattern="k*")),
    ):
        code, message, trailer = failure(call)
        assert (code, trailer) == (Code.FAILED_PRECONDITION, "UnsupportedOperation")
        assert "memcached" in message
    assert present(stub, ns, ["k", "k2", "k3"]) == ["k"]  # the refused writes stored nothing
    # Bad input is refused as such before the namespace's abilities are looked at.
    code, _, _ = failure(lambda: invalidate(stub, ns, ""))
    assert code == Code.INVALID_ARGUMENT

    cache = GrpcCache(f"grpc://{server.target}/{ns}")
    cache.set("plain", 1)
    assert cache.get("plain") == 1
    for client_call in (
        lambda: cache.set("k", 1, tags=["t"]),
        lambda: cache.add("k", 1, tags=["t"]),
        lambda: cache.set_many({"k": 1}, tags=["t"]),
        lambda: cache.invalidate_tags(["t"]),
        lambda: cache.delete_pattern("k*"),
        lambda: asyncio.run(cache.ainvalidate_tags(["t"])),
        lambda: asyncio.run(cache.adelete_pattern("k*")),
    ):
        with pytest.raises(UnsupportedOperation, match="memcached"):
            client_call()
    cache.close()


# -- Watch ---------------------------------------------------------------------------------------


def test_watch_events_of_tags_and_patterns(stub: pb_grpc.CacheServiceStub, ns: str) -> None:
    stream = stub.Watch(pb.WatchRequest(namespace=ns), timeout=10)
    stream.initial_metadata()  # the subscription is live
    stub.Set(pb.SetRequest(namespace=ns, key="a", value=json_value(1), tags=["t"]))
    batch = {"b": json_value(2), "c": json_value(3)}
    stub.SetMultiple(pb.SetMultipleRequest(namespace=ns, values=batch, tags=["t", "u"]))
    assert invalidate(stub, ns, "nothing") == 0  # removed nothing: no event
    assert invalidate(stub, ns, "u", "t") == 3
    stub.Set(pb.SetRequest(namespace=ns, key="p:1", value=json_value(1)))
    assert delete_pattern(stub, ns, "p:*") == 1
    events = [next(stream) for _ in range(6)]
    stream.cancel()
    got = [(e.kind, e.key, e.pattern, list(e.tags)) for e in events]
    got[1:3] = sorted(got[1:3])  # SetMultiple's values are a map: in no particular order
    assert got == [
        (pb.EVENT_KIND_SET, "a", "", []),
        (pb.EVENT_KIND_SET, "b", "", []),
        (pb.EVENT_KIND_SET, "c", "", []),
        # The provider does not name the keys it removed by tag: CLEAR with no pattern (what an
        # older subscriber reads as "drop everything") and the tags, for one that records them.
        (pb.EVENT_KIND_CLEAR, "", "", ["t", "u"]),
        (pb.EVENT_KIND_SET, "p:1", "", []),
        (pb.EVENT_KIND_CLEAR, "", "p:*", []),
    ]


# -- auth, metrics, clients ---------------------------------------------------------------------


def test_the_new_methods_are_data_plane_methods() -> None:
    auth = AuthInterceptor("tok", "adm")
    for name in ("InvalidateTags", "DeletePattern"):
        method = f"/cachekit.v1.CacheService/{name}"
        assert auth.accepted(method) == ((b"tok", b"adm"), "missing or wrong bearer token")


def test_user_token_suffices() -> None:
    with ThreadedServer(
        {"default": create_cache("memory://")}, token="s3cret", admin_token="adm1n"
    ) as secured:
        with grpc.insecure_channel(secured.target) as ch:
            stub = pb_grpc.CacheServiceStub(ch)
            user = (("authorization", "Bearer s3cret"),)
            tags = pb.InvalidateTagsRequest(namespace="default", tags=["t"])
            pattern = pb.DeletePatternRequest(namespace="default", pattern="k*")
            for call in (stub.InvalidateTags, stub.DeletePattern):
                request = tags if call is stub.InvalidateTags else pattern
                code, _, _ = failure(lambda call=call, request=request: call(request))
                assert code == Code.UNAUTHENTICATED
            value = json_value(1)
            stub.Set(
                pb.SetRequest(namespace="default", key="k", value=value, tags=["t"]),
                metadata=user,
            )
            assert stub.InvalidateTags(tags, metadata=user).count == 1
            stub.Set(pb.SetRequest(namespace="default", key="k", value=value), metadata=user)
            assert stub.DeletePattern(pattern, metadata=user).count == 1
        cache = GrpcCache(f"grpc://{secured.target}/default?token=s3cret")
        cache.set("x", 1, tags=["t"])
        assert cache.invalidate_tags(["t"]) == 1
        cache.close()


def test_calls_are_counted(
    stub: pb_grpc.CacheServiceStub, admin: apb_grpc.CacheAdminServiceStub, ns: str
) -> None:
    invalidate(stub, ns, "t")
    delete_pattern(stub, ns, "*")
    failure(lambda: delete_pattern(stub, ns, "[x"))
    rpcs = admin.GetNamespaceStats(apb.GetNamespaceStatsRequest(namespace=ns)).rpcs
    counted = {(r.method, r.code): r.count for r in rpcs}
    assert counted[("InvalidateTags", "OK")] == 1
    assert counted[("DeletePattern", "OK")] == 1
    assert counted[("DeletePattern", "INVALID_ARGUMENT")] == 1


def test_client_errors_map_back(server: ThreadedServer) -> None:
    cache = GrpcCache(f"grpc://{server.target}/default")
    with pytest.raises(InvalidKey):
        cache.delete_pattern("[abc")  # checked by the server, raised as the core's class
    with pytest.raises(InvalidKey):
        cache.delete_pattern("")
    with pytest.raises(TypeError):
        cache.set("k", 1, tags="t")  # a bare str, refused before any call, as by the core
    with pytest.raises(TypeError):
        cache.invalidate_tags([""])
    cache.close()


def test_a_server_without_the_new_rpcs_is_unsupported() -> None:
    """A server from before these RPCs answers UNIMPLEMENTED: the client says unsupported."""
    old = grpc.server(futures.ThreadPoolExecutor(max_workers=1))  # serves no method at all
    port = old.add_insecure_port("127.0.0.1:0")
    old.start()
    try:
        cache = GrpcCache(f"grpc://127.0.0.1:{port}/default")
        with pytest.raises(UnsupportedOperation, match="UNIMPLEMENTED"):
            cache.invalidate_tags(["t"])
        with pytest.raises(UnsupportedOperation, match="UNIMPLEMENTED"):
            cache.delete_pattern("k*")
        cache.close()
    finally:
        old.stop(None)
