"""Regressions from a review of the gRPC value handling and of DeleteNamespace's wait.

Namespaces whose serializer is JSON or MessagePack could not hold a ``Kept`` and were served by
sniffing the first byte: ``bytes`` written in-process that start with ``0xC1`` read over gRPC as
an envelope (``b"\\xc1\\x01\\x01\\x00hello"`` as ``b"hello"``), and octets sent over gRPC that
start with it read in-process with a RAW header in front. A call still running when its
namespace's delete stopped waiting hung until its own deadline, its cache closed under it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import grpc
import pytest
import redis
from grpc_helpers import ThreadedServer

from cachekit import create_cache
from cachekit.errors import BackendUnavailable
from cachekit.grpc import values
from cachekit.grpc.namespaces import Namespaces, holds_kept
from cachekit.interfaces import Cache
from cachekit.serialization import make_serializer
from cachekit.serialization.header import Codec, Compression, pack_header
from cachekit.serialization.reader import loads_any
from cachekit.testing.servers import MemcachedServer, RedisServer
from cachekit.v1 import admin_pb2 as apb
from cachekit.v1 import admin_pb2_grpc as apb_grpc
from cachekit.v1 import cache_pb2 as pb
from cachekit.v1 import cache_pb2_grpc as pb_grpc

OCTETS = values.OCTETS
Kept = values.Kept

#: Bytes values that start with what a sniffing reader looked at (the envelope magic, whole
#: envelope headers, the Kept marker itself), and some that do not.
ADVERSARIAL = [
    b"",
    b"\xc1",
    b"\xc1\x01",
    pack_header(Codec.RAW) + b"hello",
    pack_header(Codec.RAW),
    pack_header(Codec.JSON) + b'{"a":1}',
    pack_header(Codec.STR) + b"text",
    pack_header(Codec.PICKLE) + b"\x80\x05N.",
    pack_header(Codec.MSGPACK) + b"\x01",
    pack_header(Codec.RAW, extras=b"kept") + pack_header(Codec.PICKLE) + b"\x80\x05N.",
    pack_header(Codec.JSON, Compression.ZLIB) + b"x\x9c",
    b"\xc1\x02\x01\x00newer",
    b'{"a":1}',
    b"123",
    b"\x80\x05N.",
    os.urandom(64),
]

#: Namespaces that were served by sniffing: JSON and MessagePack serializers, and file and
#: tiered caches whatever their serializer.
KINDS = [
    "memory-json",
    "memory-msgpack",
    "redis-json",
    "redis-msgpack",
    "memcached-json",
    "file-json",
    "file-pickle",
    "tiered-json",
    "tiered-pickle",
]


@pytest.fixture(params=KINDS)
def shared(request: pytest.FixtureRequest) -> Iterator[tuple[Cache, Cache]]:
    """(the served cache, an in-process writer on the same storage with the same serializer)."""
    kind, serializer = request.param.split("-")
    if serializer == "msgpack":
        pytest.importorskip("msgpack")
    if kind == "memory":
        cache = create_cache(f"memory://?serializer={serializer}")
        yield cache, cache  # in-process: the same object
        cache.close()
        return
    if kind == "redis":
        server: RedisServer | MemcachedServer = request.getfixturevalue("redis_server")
        url = f"{server.url}?prefix=s11values-{serializer}:&serializer={serializer}"
    elif kind == "tiered":
        server = request.getfixturevalue("redis_server")
        l2 = quote(f"{server.url}?prefix=s11tiered-{serializer}:&serializer={serializer}")
        url = f"tiered://?l2={l2}"
    elif kind == "file":
        url = f"file://{request.getfixturevalue('tmp_path')}?serializer={serializer}"
    else:
        server = request.getfixturevalue("memcached_server")
        url = f"memcached://{server.host}:{server.port}?serializer={serializer}"
    served, direct = create_cache(url), create_cache(url)
    yield served, direct
    direct.clear()
    direct.close()
    served.close()


@pytest.fixture
def running(shared: tuple[Cache, Cache]) -> Iterator[ThreadedServer]:
    with ThreadedServer({"ns": shared[0]}) as srv:
        yield srv
        srv.run(shared[0].aclose())


@pytest.fixture
def stub(running: ThreadedServer) -> Iterator[pb_grpc.CacheServiceStub]:
    with grpc.insecure_channel(running.target) as channel:
        yield pb_grpc.CacheServiceStub(channel)


def _get(stub: pb_grpc.CacheServiceStub, key: str) -> tuple[str, bytes]:
    reply = stub.Get(pb.GetRequest(namespace="ns", key=key))
    assert reply.found
    return reply.entry.value.content_type, reply.entry.value.data


def _get_multiple(stub: pb_grpc.CacheServiceStub, keys: list[str]) -> dict[str, tuple[str, bytes]]:
    reply = stub.GetMultiple(pb.GetMultipleRequest(namespace="ns", keys=keys))
    return {e.key: (e.value.content_type, e.value.data) for e in reply.entries}


def test_json_and_msgpack_namespaces_mark_kept_envelopes(shared: tuple[Cache, Cache]) -> None:
    assert holds_kept(shared[0])  # no longer served by sniffing the first byte


def test_bytes_written_in_process_read_back_over_grpc_as_written(
    shared: tuple[Cache, Cache], stub: pb_grpc.CacheServiceStub
) -> None:
    direct = shared[1]
    keys = [f"d{i}" for i in range(len(ADVERSARIAL))]
    for key, data in zip(keys, ADVERSARIAL, strict=True):
        direct.set(key, data)
    for key, data in zip(keys, ADVERSARIAL, strict=True):
        assert _get(stub, key) == (OCTETS, data)
    expected = {k: (OCTETS, d) for k, d in zip(keys, ADVERSARIAL, strict=True)}
    assert _get_multiple(stub, keys) == expected


def test_octets_sent_over_grpc_read_back_unchanged_in_process_and_over_grpc(
    shared: tuple[Cache, Cache], stub: pb_grpc.CacheServiceStub
) -> None:
    direct = shared[1]
    keys = [f"g{i}" for i in range(len(ADVERSARIAL))]
    for key, data in zip(keys, ADVERSARIAL, strict=True):
        stub.Set(pb.SetRequest(namespace="ns", key=key, value=pb.Value(data=data)))
    many = {f"m{i}": pb.Value(data=d, content_type=OCTETS) for i, d in enumerate(ADVERSARIAL)}
    stub.SetMultiple(pb.SetMultipleRequest(namespace="ns", values=many))
    for i, data in enumerate(ADVERSARIAL):
        for key in (f"g{i}", f"m{i}"):
            found = direct.get(key)
            assert type(found) is bytes
            assert found == data
            assert _get(stub, key) == (OCTETS, data)
    expected = {k: (OCTETS, d) for k, d in zip(keys, ADVERSARIAL, strict=True)}
    assert _get_multiple(stub, keys) == expected


def test_envelopes_kept_as_sent_read_back_as_sent(
    shared: tuple[Cache, Cache], stub: pb_grpc.CacheServiceStub
) -> None:
    pickled = pack_header(Codec.PICKLE) + b"\x80\x05\x95\x06\x00\x00\x00\x00\x00\x00\x00\x8f\x94."
    signed = pack_header(Codec.JSON, signed=True) + b"{}" + b"s" * 32
    sent = {
        "pickle": (values.CACHEKIT, pickled),
        "signed": (values.CACHEKIT, signed),
        "protobuf": (f"{values.PROTOBUF}; messageType=pkg.Name", b"\x08\x01"),
    }
    try:
        import msgpack  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        pass
    else:
        sent["msgpack"] = (values.MSGPACK, msgpack.packb({"a": b"\xc1"}, use_bin_type=True))
    for key, (content_type, data) in sent.items():
        value = pb.Value(data=data, content_type=content_type)
        stub.Set(pb.SetRequest(namespace="ns", key=key, value=value))
    for key, wire in sent.items():
        assert _get(stub, key) == wire
        found = shared[1].get(key)  # the envelope, marked as one
        assert type(found) is Kept
        assert found == values.envelope(*wire)
    assert _get_multiple(stub, list(sent)) == sent


@pytest.mark.parametrize("text", ['{"a": 1}', "", "\xc1", "123", "null", '"quoted"', "\x00"])
def test_strings_read_back_as_strings(
    shared: tuple[Cache, Cache], stub: pb_grpc.CacheServiceStub, text: str
) -> None:
    shared[1].set("direct", text)
    assert _get(stub, "direct") == (values.TEXT, text.encode())
    stub.Set(
        pb.SetRequest(
            namespace="ns", key="sent", value=pb.Value(data=text.encode(), content_type=values.TEXT)
        )
    )
    assert shared[1].get("sent") == text
    assert type(shared[1].get("sent")) is str


def test_a_json_grpc_client_writes_bytes_that_in_process_readers_get_unchanged(
    shared: tuple[Cache, Cache], running: ThreadedServer
) -> None:
    client = create_cache(f"grpc://{running.target}/ns?serializer=json")
    try:
        for i, data in enumerate(ADVERSARIAL):
            client.set(f"c{i}", data)
            assert client.get(f"c{i}") == data
            assert shared[1].get(f"c{i}") == data
            shared[1].set(f"w{i}", data)
            assert client.get(f"w{i}") == data
    finally:
        client.close()


# -- the serializers mark a Kept in its header ------------------------------------------------


@pytest.mark.parametrize("name", ["json", "msgpack", "pickle"])
@pytest.mark.parametrize("options", [{}, {"secret": "s" * 32}, {"compress_threshold": 0}])
def test_serializers_give_a_kept_back_as_one(name: str, options: dict[str, Any]) -> None:
    if name == "msgpack":
        pytest.importorskip("msgpack")
    serializer = make_serializer(name, **options)
    for data in [*ADVERSARIAL, b"x" * 5000]:
        back = serializer.loads(serializer.dumps(Kept(data)))
        assert type(back) is Kept
        assert back == data
        plain = serializer.loads(serializer.dumps(data))  # bytes stay bytes
        assert type(plain) is bytes
        assert plain == data
    if not options:  # any reader: the same bytes, as a Kept
        assert type(loads_any(serializer.dumps(Kept(b"\xc1x")))) is Kept


# -- DeleteNamespace past its wait --------------------------------------------------------------


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("method", ["Set", "Get", "GetMultiple"])
def test_a_call_still_running_past_the_delete_wait_answers_unavailable(
    fresh_redis_server: RedisServer, method: str
) -> None:
    """It hung until its own deadline, the cache closed under it (and a write it was making
    landed after the delete had returned)."""
    server = fresh_redis_server
    pid = server.pid
    assert pid is not None
    checker = redis.Redis.from_url(server.url)
    namespaces = Namespaces(drain=0.2)
    namespaces.create("default")
    namespaces.create("r", f"{server.url}?socket_timeout=30")
    requests: dict[str, Any] = {
        "Set": pb.SetRequest(namespace="r", key="late", value=pb.Value(data=b"y")),
        "Get": pb.GetRequest(namespace="r", key="warm"),
        "GetMultiple": pb.GetMultipleRequest(namespace="r", keys=["warm", "other"]),
    }

    async def scenario(target: str) -> None:
        async with grpc.aio.insecure_channel(target) as ch:
            cache, admin = pb_grpc.CacheServiceStub(ch), apb_grpc.CacheAdminServiceStub(ch)
            await cache.Set(pb.SetRequest(namespace="r", key="warm", value=pb.Value(data=b"x")))
            ns = namespaces.get("r")
            os.kill(pid, signal.SIGSTOP)
            try:
                stalled = asyncio.ensure_future(getattr(cache, method)(requests[method], timeout=8))
                await _until(lambda: ns.running > 0)
                await admin.DeleteNamespace(apb.DeleteNamespaceRequest(namespace="r"), timeout=8)
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await stalled
                assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "namespace 'r' was deleted while this call ran" in (
                    failed.value.details() or ""
                )
                assert ns.running == 0
                # The server goes on serving.
                await cache.Set(pb.SetRequest(namespace="default", key="k", value=pb.Value()))
            finally:
                os.kill(pid, signal.SIGCONT)
            for _ in range(100):  # the namespace's connections are closed, none leaked
                if len(checker.client_list()) == 1:
                    break
                await asyncio.sleep(0.05)
            assert len(checker.client_list()) == 1

    with ThreadedServer(namespaces) as srv:
        asyncio.run(scenario(srv.target))
    checker.close()


def test_a_python_client_of_a_call_past_the_delete_wait_raises_backend_unavailable(
    fresh_redis_server: RedisServer,
) -> None:
    server = fresh_redis_server
    pid = server.pid
    assert pid is not None
    namespaces = Namespaces(drain=0.2)
    namespaces.create("r", f"{server.url}?socket_timeout=30")
    with ThreadedServer(namespaces) as srv:
        client = create_cache(f"grpc://{srv.target}/r?timeout=8")
        client.set("warm", b"x")
        os.kill(pid, signal.SIGSTOP)
        try:
            ns = namespaces.get("r")

            async def delete_once_stalled() -> None:
                await _until(lambda: ns.running > 0)
                await namespaces.adelete("r")

            deleting = asyncio.run_coroutine_threadsafe(delete_once_stalled(), srv.loop)
            with pytest.raises(BackendUnavailable, match="deleted while this call ran"):
                client.get("warm")
            deleting.result(10)
        finally:
            os.kill(pid, signal.SIGCONT)
            client.close()


# -- MessagePack namespaces: objects JSON cannot carry ----------------------------------------

#: Values a MessagePack writer stores that JSON cannot carry exactly.
PACKED_ONLY: list[Any] = [{"a": b"x"}, {1: "a"}, [b"\xc1", 2], {(1, 2): "t"}, {"n": {2: [b""]}}]


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_objects_written_in_a_msgpack_namespace_read_back_as_msgpack(
    request: pytest.FixtureRequest, kind: str
) -> None:
    """They were answered as pickle envelopes, which a MessagePack client refuses to read (and
    no other language can)."""
    msgpack = pytest.importorskip("msgpack")
    if kind == "memory":
        url = "memory://?serializer=msgpack"
    else:
        url = f"{request.getfixturevalue('redis_server').url}?prefix=s11packs:&serializer=msgpack"
    served = create_cache(url)
    try:
        with ThreadedServer({"ns": served}) as srv, grpc.insecure_channel(srv.target) as ch:
            stub = pb_grpc.CacheServiceStub(ch)
            packed, plain = (
                create_cache(f"grpc://{srv.target}/ns?serializer=msgpack"),
                create_cache(f"grpc://{srv.target}/ns"),
            )
            try:
                keys = [f"p{i}" for i in range(len(PACKED_ONLY))]
                for key, value in zip(keys, PACKED_ONLY, strict=True):
                    served.set(key, value)
                for key, value in zip(keys, PACKED_ONLY, strict=True):
                    content_type, data = _get(stub, key)
                    assert content_type == values.MSGPACK
                    assert data == msgpack.packb(value, use_bin_type=True)
                    assert packed.get(key) == value
                    assert plain.get(key) == value
                assert packed.get_many(keys) == dict(zip(keys, PACKED_ONLY, strict=True))
            finally:
                packed.close()
                plain.close()
                srv.run(served.aclose())
    finally:
        served.clear()
        served.close()


def test_msgpack_with_array_keys_is_one_msgpack_object(
    stub: pb_grpc.CacheServiceStub, shared: tuple[Cache, Cache]
) -> None:
    """cachekit's MessagePack serializer writes tuple keys as arrays: Set refused such maps."""
    msgpack = pytest.importorskip("msgpack")
    data = msgpack.packb({(1, 2): "t", (3, (4,)): [b"x"]}, use_bin_type=True)
    value = pb.Value(data=data, content_type=values.MSGPACK)
    stub.Set(pb.SetRequest(namespace="ns", key="k", value=value))
    assert _get(stub, "k") == (values.MSGPACK, data)


def test_a_call_stalled_on_memcached_past_the_delete_wait_answers_unavailable(
    fresh_memcached_server: MemcachedServer,
) -> None:
    server = fresh_memcached_server
    pid = server.pid
    assert pid is not None
    namespaces = Namespaces(drain=0.2)
    namespaces.create("default")
    namespaces.create("m", f"memcached://{server.host}:{server.port}?timeout=30")
    with ThreadedServer(namespaces) as srv, grpc.insecure_channel(srv.target) as ch:
        cache, admin = pb_grpc.CacheServiceStub(ch), apb_grpc.CacheAdminServiceStub(ch)
        cache.Set(pb.SetRequest(namespace="m", key="warm", value=pb.Value(data=b"x")))
        ns = namespaces.get("m")
        os.kill(pid, signal.SIGSTOP)
        try:
            late = pb.SetRequest(namespace="m", key="late", value=pb.Value(data=b"y"))
            stalled = cache.Set.future(late, timeout=8)
            srv.run(_until(lambda: ns.running > 0))
            admin.DeleteNamespace(apb.DeleteNamespaceRequest(namespace="m"), timeout=8)
            with pytest.raises(grpc.RpcError) as failed:
                stalled.result()
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
            listed = admin.ListNamespaces(apb.ListNamespacesRequest()).namespaces
            assert [n.name for n in listed] == ["default"]
        finally:
            os.kill(pid, signal.SIGCONT)
