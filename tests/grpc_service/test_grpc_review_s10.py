"""Regressions from a review of the gRPC service: JSON that reads back as sent, stored bytes vs
kept envelopes, GetMultiple's batches and message limit, memcached counters past 2**64, and the
client's error for a message over the limit."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_helpers import ThreadedServer

from cachekit import create_cache
from cachekit.errors import InvalidArgument, ValueTooLarge
from cachekit.interfaces import Cache
from cachekit.serialization.header import Codec, pack_header
from cachekit.testing.servers import RedisServer
from cachekit.v1 import cache_pb2 as pb
from cachekit.v1 import cache_pb2_grpc as pb_grpc

Code = grpc.StatusCode


@pytest.fixture
def memory() -> Iterator[Cache]:
    cache = create_cache("memory://review-s10?max_memory_bytes=1GiB")
    yield cache
    cache.close()


def _status(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()  # type: ignore[attr-defined]


# -- B7: a message over the limit is ValueTooLarge, as with every other provider ----------------


@pytest.mark.parametrize("query", ["", "?max_message_bytes=16MiB"])
def test_over_message_limit_is_value_too_large(server: ThreadedServer, query: str) -> None:
    client = create_cache(f"grpc://{server.target}/default{query}")
    try:
        blob = os.urandom(5 << 20)  # over the client's or the server's 4 MiB message limit
        with pytest.raises(ValueTooLarge, match="RESOURCE_EXHAUSTED"):
            client.set("k", blob)
        with pytest.raises(ValueTooLarge, match="RESOURCE_EXHAUSTED"):
            client.set_many({"k": blob})
    finally:
        client.close()


# -- B3: GetMultiple reads each value once, whatever comes first --------------------------------


@pytest.mark.parametrize("first", ["missing", "small"])
def test_get_many_after_a_miss_or_small_value_reads_each_value_once(
    server: ThreadedServer, memory: Cache, first: str
) -> None:
    keys = [f"k{i}" for i in range(40)]
    memory.set_many(dict.fromkeys(keys, b"v" * (1 << 20)))  # 40 MiB: 10 responses or more
    memory.set("small", b"s")
    client = create_cache(f"grpc://{server.target}/default")
    try:
        before = memory.get_stats().hits
        found = client.get_many([first, *keys])
        assert set(found) >= set(keys)
        # Sized by the first (absent or tiny) value, every later batch read all the keys left:
        # the ones that did not fit were read again by each follow-up (79 hits, not 40).
        assert memory.get_stats().hits - before == len(found)
    finally:
        client.close()


# -- B4: one entry beside a long list of unread keys --------------------------------------------


def test_get_many_progresses_when_one_entry_and_the_unread_list_pass_the_limit(
    memory: Cache,
) -> None:
    keys = [c * 16000 for c in "abc"]
    for key in keys:
        memory.set(key, b"v" * 30000)
    opts = {"max_message_bytes": 64 << 10, "max_value_bytes": 32 << 10}
    with ThreadedServer({"default": memory}, **opts) as running:
        options = [("grpc.max_receive_message_length", 1 << 24)]
        with grpc.insecure_channel(running.target, options=options) as channel:
            stub = pb_grpc.CacheServiceStub(channel)
            request = pb.GetMultipleRequest(namespace="default", keys=keys)
            # Was a 78 KB response: RESOURCE_EXHAUSTED on every retry.
            code, details = _status(lambda: stub.GetMultiple(request))
            assert code == Code.INVALID_ARGUMENT
            assert "ask for fewer keys" in details
        client = create_cache(f"grpc://{running.target}/default?max_message_bytes=65536")
        try:
            assert client.get_many(keys) == dict.fromkeys(keys, b"v" * 30000)
            assert asyncio.run(client.aget_many(keys)) == dict.fromkeys(keys, b"v" * 30000)
            memory.set("big", b"v" * 70000)  # over the message limit alone: nothing to split
            with pytest.raises(ValueTooLarge):
                client.get_many(["big"])
        finally:
            client.close()


# -- B1: JSON that would not read back as JSON is refused at Set ---------------------------------

_NOT_JSON_BACK = [
    b"1e400",  # inf
    b'{"x":[1,-1e999]}',  # -inf
    b'{"a":"\\ud800"}',  # a lone surrogate
    b'{"\\udfff":1}',  # ... as a key
    b"[18446744073709551616]",  # 2**64: past what JSON readers keep exact
    b"[-9223372036854775809]",
    b"[" * 600 + b"0" + b"]" * 600,  # deeper than reads can encode
]


@pytest.mark.parametrize("data", _NOT_JSON_BACK, ids=range(len(_NOT_JSON_BACK)))
def test_json_that_would_not_read_back_as_json_is_refused(
    stub: pb_grpc.CacheServiceStub, memory: Cache, data: bytes
) -> None:
    value = pb.Value(data=data, content_type="application/json")
    code, details = _status(
        lambda: stub.Set(pb.SetRequest(namespace="default", key="k", value=value))
    )
    assert code == Code.INVALID_ARGUMENT, details
    assert "read back" in details
    assert memory.get("k") is None
    if b"ud" in data or b"e" in data or b"[[" in data:  # a JSON envelope: the same answer
        # (the codec reads integers past 64 bits as floats, which JSON carries back)
        value = pb.Value(
            data=pack_header(Codec.JSON) + data, content_type="application/vnd.cachekit"
        )
        code, _ = _status(
            lambda: stub.Set(pb.SetRequest(namespace="default", key="k", value=value))
        )
        assert code == Code.INVALID_ARGUMENT
        assert memory.get("k") is None


def test_json_refused_on_a_redis_json_namespace_instead_of_stored_as_null(
    redis_server: RedisServer,
) -> None:
    served = create_cache(redis_server.url + "?prefix=s10json:&serializer=json")
    try:
        with ThreadedServer({"r": served}) as running:
            try:
                with grpc.insecure_channel(running.target) as channel:
                    stub = pb_grpc.CacheServiceStub(channel)
                    for data in (b'{"a":1e400}', b"[18446744073709551616]"):
                        value = pb.Value(data=data, content_type="application/json")
                        request = pb.SetRequest(namespace="r", key="k", value=value)
                        # Were: stored as {"a":null}; INTERNAL (the serializer's error).
                        code, _ = _status(lambda: stub.Set(request))  # noqa: B023
                        assert code == Code.INVALID_ARGUMENT
                    value = pb.Value(data=b'{"a":1.5}', content_type="application/json")
                    stub.Set(pb.SetRequest(namespace="r", key="k", value=value))
                    got = stub.Get(pb.GetRequest(namespace="r", key="k")).entry.value
                    assert (got.content_type, got.data) == ("application/json", b'{"a":1.5}')
            finally:
                running.run(served.aclose())
    finally:
        served.clear()
        served.close()


def test_json_nested_300_deep_reads_back_as_json(
    server: ThreadedServer, stub: pb_grpc.CacheServiceStub
) -> None:
    deep: Any = 0
    for _ in range(300):
        deep = [deep]
    client = create_cache(f"grpc://{server.target}/default?serializer=json")
    try:
        client.set("deep", deep)
        got = stub.Get(pb.GetRequest(namespace="default", key="deep")).entry.value
        assert got.content_type == "application/json"  # was a pickle envelope
        assert client.get("deep") == deep
    finally:
        client.close()


# -- B5: JSON whose numbers are respelled longer must still fit a response -----------------------


def test_json_that_reads_back_over_the_value_limit_is_refused(memory: Cache) -> None:
    opts = {"max_message_bytes": 64 << 10, "max_value_bytes": 32 << 10}
    with (
        ThreadedServer({"default": memory}, **opts) as running,
        grpc.insecure_channel(running.target) as channel,
    ):
        stub = pb_grpc.CacheServiceStub(channel)
        grows = b"[" + b",".join([b"1e15"] * 6000) + b"]"  # 30 KB, read back as 108 KB
        value = pb.Value(data=grows, content_type="application/json")
        request = pb.SetRequest(namespace="default", key="k", value=value)
        with pytest.raises(grpc.RpcError) as info:
            stub.Set(request)
        error: Any = info.value
        assert error.code() == Code.INVALID_ARGUMENT  # was stored, then unreadable
        assert dict(error.trailing_metadata())["cachekit-error"] == "ValueTooLarge"
        fits = b"[" + b",".join([b"1e15"] * 1000) + b"]"
        value = pb.Value(data=fits, content_type="application/json")
        assert stub.Set(pb.SetRequest(namespace="default", key="k", value=value)).stored
        got = stub.Get(pb.GetRequest(namespace="default", key="k")).entry.value
        assert got.content_type == "application/json"
        assert len(got.data) <= 32 << 10


# -- B2: stored bytes are octets whatever their first byte; envelopes kept as sent are marked ----

_MAGIC_BLOBS = [
    b"\xc1\x01\x00\x00hello-binary",  # read as an envelope of unknown codec: an error
    b"\xc1\x01\x01\x00caf\xc3\xa9",  # read as a RAW envelope: its first 4 bytes lost
    b"\xc1\x9a\x7f\x00\x13digest",  # read as an envelope of a newer version: an error
    b"\xc1",
]


@pytest.mark.parametrize("provider", ["memory", "redis", "memcached"])
def test_bytes_starting_with_the_envelope_magic_read_back_unchanged(
    provider: str, redis_server: RedisServer, memcached_server: Any
) -> None:
    url = {
        "memory": "memory://s10magic",
        "redis": f"{redis_server.url}?prefix=s10magic:",
        "memcached": f"{memcached_server.url}?prefix=s10magic:",
    }[provider]
    served = create_cache(url)
    try:
        with (
            ThreadedServer({"ns": served}) as running,
            grpc.insecure_channel(running.target) as channel,
        ):
            stub = pb_grpc.CacheServiceStub(channel)
            client = create_cache(f"grpc://{running.target}/ns")
            try:
                for blob in _MAGIC_BLOBS:
                    served.set("blob", blob)  # an in-process writer
                    got = stub.Get(pb.GetRequest(namespace="ns", key="blob")).entry.value
                    assert (got.content_type, got.data) == ("application/octet-stream", blob)
                    assert client.get("blob") == blob
                    # gRPC octets: read in-process as sent (were behind a 4-byte RAW header)
                    value = pb.Value(data=blob, content_type="application/octet-stream")
                    stub.Set(pb.SetRequest(namespace="ns", key="o", value=value))
                    assert served.get("o") == blob
                    assert client.get("o") == blob
                # An envelope kept as sent still reads back as one.
                client.set("obj", {1, 2})  # pickle: the server never decodes it
                got = stub.Get(pb.GetRequest(namespace="ns", key="obj")).entry.value
                assert got.content_type == "application/vnd.cachekit"
                assert client.get("obj") == {1, 2}
            finally:
                client.close()
                running.run(served.aclose())
    finally:
        served.clear()
        served.close()


def test_a_namespace_whose_serializer_cannot_mark_envelopes_still_reads_them_back(
    redis_server: RedisServer,
) -> None:
    served = create_cache(f"{redis_server.url}?prefix=s10sniff:&serializer=json")
    try:
        with ThreadedServer({"ns": served}) as running:
            client = create_cache(f"grpc://{running.target}/ns")
            try:
                client.set("obj", {1, 2})  # stored as plain bytes: sniffed on reads
                assert client.get("obj") == {1, 2}
                client.set("raw", b"\xc1abc")
                assert client.get("raw") == b"\xc1abc"
            finally:
                client.close()
                running.run(served.aclose())
    finally:
        served.clear()
        served.close()


# -- SetMultiple: a value over the limit is a failed key, not a failed call -----------------------


def test_set_multiple_returns_a_value_over_the_limit_in_failed_keys(
    server: ThreadedServer, stub: pb_grpc.CacheServiceStub, memory: Cache
) -> None:
    big = pb.Value(data=b"x" * ((1 << 20) + 1), content_type="application/octet-stream")
    small = pb.Value(data=b"ok", content_type="application/octet-stream")
    request = pb.SetMultipleRequest(namespace="default", values={"big": big, "small": small})
    assert list(stub.SetMultiple(request).failed_keys) == ["big"]  # was INVALID_ARGUMENT
    assert memory.get("small") == b"ok"
    assert memory.get("big") is None
    client = create_cache(f"grpc://{server.target}/default")
    try:
        assert client.set_many({"a": b"a", "b": os.urandom((1 << 20) + 1)}) == ["b"]
        assert memory.get("a") == b"a"
    finally:
        client.close()
    bad = pb.Value(data=b"{", content_type="application/json")  # bad input still fails the call
    request = pb.SetMultipleRequest(namespace="default", values={"bad": bad, "small": small})
    code, _ = _status(lambda: stub.SetMultiple(request))
    assert code == Code.INVALID_ARGUMENT


# -- a malformed value travels as the public InvalidArgument ----------------------------------


def test_a_value_that_does_not_match_its_type_is_invalid_argument(
    server: ThreadedServer, stub: pb_grpc.CacheServiceStub
) -> None:
    """The trailer named the root CacheError (InvalidValue is not public), so a Python client
    raised ConfigurationError, by the status code, for a bad value."""
    value = pb.Value(data=b"{not json", content_type="application/json")
    with pytest.raises(grpc.RpcError) as info:
        stub.Set(pb.SetRequest(namespace="default", key="k", value=value))
    error: Any = info.value
    assert error.code() == Code.INVALID_ARGUMENT
    assert dict(error.trailing_metadata())["cachekit-error"] == "InvalidArgument"
    from cachekit.grpc.client import translate

    translated = translate(error, "default")
    assert type(translated) is InvalidArgument
