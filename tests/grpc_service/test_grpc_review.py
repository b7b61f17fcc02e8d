"""Regressions from a review of the gRPC service: values shared with in-process readers,
GetMultiple's reads, counters past int64 on memcached, JSON/MessagePack validation, page tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_helpers import ThreadedServer

from cachekit import create_cache
from cachekit.grpc import values
from cachekit.interfaces import Cache
from cachekit.v1 import cache_pb2 as pb
from cachekit.v1 import cache_pb2_grpc as pb_grpc

Code = grpc.StatusCode
_SMALL: dict[str, Any] = {"max_message_bytes": 64 << 10, "max_value_bytes": 32 << 10}


@pytest.fixture
def memory() -> Iterator[Cache]:
    cache = create_cache("memory://review")
    yield cache
    cache.close()


def _set(stub: Any, key: str, data: bytes, content_type: str, ns: str = "default") -> None:
    value = pb.Value(data=data, content_type=content_type)
    assert stub.Set(pb.SetRequest(namespace=ns, key=key, value=value)).stored


def _get(stub: Any, key: str, ns: str = "default") -> tuple[str, bytes]:
    got = stub.Get(pb.GetRequest(namespace=ns, key=key))
    assert got.found
    return got.entry.value.content_type, got.entry.value.data


def _status(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()  # type: ignore[attr-defined]


# -- 1. values written over gRPC are the values in-process readers get --------------------------


@pytest.mark.parametrize(
    ("content_type", "data", "value", "view"),
    [
        ("application/json", b'{"lang":"go"}', {"lang": "go"}, values.JSON),
        ("application/json", b'[1,2.5,true,null,"x"]', [1, 2.5, True, None, "x"], values.JSON),
        ("text/plain", b"hello", "hello", values.TEXT),
        (values.TEXT, "héllo".encode(), "héllo", values.TEXT),
        (values.OCTETS, b"\x00\xffbin", b"\x00\xffbin", values.OCTETS),
        ("", b"raw", b"raw", values.OCTETS),
        (values.INTEGER, b"-12", -12, values.INTEGER),
    ],
)
def test_grpc_writes_are_decoded_values_in_process(
    stub: pb_grpc.CacheServiceStub,
    memory: Cache,
    *,
    content_type: str,
    data: bytes,
    value: Any,
    view: str,
) -> None:
    _set(stub, "k", data, content_type)
    assert memory.get("k") == value
    assert type(memory.get("k")) is type(value)
    got_type, got_data = _get(stub, "k")
    assert got_type == view
    if view == values.JSON:
        assert json.loads(got_data) == json.loads(data)
    else:
        assert got_data == data


def test_octets_that_look_like_an_envelope_round_trip_exactly(
    stub: pb_grpc.CacheServiceStub,
) -> None:
    for data in (b"\xc1\x01\x02\x00hi", b"\xc1\x01\x00\x00", b"\xc1"):
        _set(stub, "k", data, values.OCTETS)
        assert _get(stub, "k") == (values.OCTETS, data)


def test_grpc_cache_envelopes_are_decoded_for_in_process_readers(
    server: ThreadedServer, memory: Cache
) -> None:
    as_json = create_cache(f"grpc://{server.target}/default?serializer=json")
    pickled = create_cache(f"grpc://{server.target}/default")
    try:
        as_json.set("doc", {"a": [1, 2], "big": "x" * 5000})  # compressed by the serializer
        assert memory.get("doc") == {"a": [1, 2], "big": "x" * 5000}
        assert as_json.get("doc") == {"a": [1, 2], "big": "x" * 5000}
        pickled.set("text", "héllo")
        pickled.set("blob", b"\x00\xc1raw")
        pickled.set("n", 7)
        assert (memory.get("text"), memory.get("blob"), memory.get("n")) == (
            "héllo",
            b"\x00\xc1raw",
            7,
        )
        pickled.set("magic", b"\xc1\x01raw")  # kept behind a RAW header, read back exactly
        for key, expected in (
            ("text", "héllo"),
            ("blob", b"\x00\xc1raw"),
            ("magic", b"\xc1\x01raw"),
            ("n", 7),
        ):
            assert pickled.get(key) == expected
            assert as_json.get(key) == expected
        pickled.set("obj", {1, 2})  # pickle is never decoded by the server: kept as sent
        assert pickled.get("obj") == {1, 2}
        # Set in-process, read over gRPC: JSON when JSON carries it exactly, else pickle.
        memory.set("py", {"ok": True, "f": 1.5})
        assert as_json.get("py") == {"ok": True, "f": 1.5}
        memory.set("tuple", (1, 2))
        assert pickled.get("tuple") == (1, 2)
    finally:
        as_json.close()
        pickled.close()


def test_a_compressed_value_over_the_value_limit_decompressed_is_kept_as_sent(
    server: ThreadedServer, memory: Cache
) -> None:
    """Decoded, it would not fit in a Get response (4 MiB) any more: stored as the envelope."""
    client = create_cache(f"grpc://{server.target}/default?serializer=json")
    try:
        big = {"s": "x" * (5 << 20)}  # compresses to a few KiB
        client.set("big", big)
        assert client.get("big") == big
        assert type(memory.get("big")) is values.Kept  # the envelope, marked as one
        small = {"s": "y" * (512 << 10)}  # under the value limit once decompressed: decoded
        client.set("small", small)
        assert memory.get("small") == small
        assert client.get("small") == small
    finally:
        client.close()


def test_grpc_writes_reach_a_direct_redis_reader(redis_server: Any) -> None:
    url = f"{redis_server.url}?prefix=review1:"
    served = create_cache(url)
    with ThreadedServer({"app": served}) as running:
        direct = create_cache(url)
        client = create_cache(f"grpc://{running.target}/app?serializer=json")
        try:
            client.set("doc", {"lang": "py"})
            assert direct.get("doc") == {"lang": "py"}
            with grpc.insecure_channel(running.target) as channel:
                stub = pb_grpc.CacheServiceStub(channel)
                _set(stub, "go", b'{"lang":"go"}', "application/json", ns="app")
                assert direct.get("go") == {"lang": "go"}
                _set(stub, "t", b"hello", "text/plain", ns="app")
                assert direct.get("t") == "hello"
                assert _get(stub, "go", ns="app") == (values.JSON, b'{"lang":"go"}')
                assert _get(stub, "t", ns="app") == (values.TEXT, b"hello")
            direct.set("mine", {"from": "python"})
            assert client.get("mine") == {"from": "python"}
        finally:
            direct.clear()
            direct.close()
            client.close()
            running.run(served.aclose())  # its async clients live on the server's loop
    served.close()


# -- 2. GetMultiple reads each value about once --------------------------------------------------


def test_get_many_reads_each_key_once_when_responses_are_split(memory: Cache) -> None:
    with ThreadedServer({"default": memory}, **_SMALL) as running:
        client = create_cache(f"grpc://{running.target}/default")
        try:
            keys = [f"k{i}" for i in range(100)]
            memory.set_many(dict.fromkeys(keys, b"v" * 8000))
            before = memory.get_stats().hits
            found = client.get_many([*keys, "missing"])
            assert sorted(found) == sorted(keys)
            hits = memory.get_stats().hits - before
            assert 100 <= hits <= 105, hits  # each read about once
        finally:
            client.close()


def test_get_multiple_lists_unread_keys_and_always_progresses(memory: Cache) -> None:
    with ThreadedServer({"default": memory}, **_SMALL) as running:
        memory.set_many({f"k{i}": b"v" * 30000 for i in range(5)})
        with grpc.insecure_channel(running.target) as channel:
            stub = pb_grpc.CacheServiceStub(channel)
            keys = ["absent", *(f"k{i}" for i in range(5))]
            seen: list[str] = []
            while keys:
                response = stub.GetMultiple(pb.GetMultipleRequest(namespace="default", keys=keys))
                assert response.entries  # progress on every call
                assert response.ByteSize() <= 64 << 10
                seen += [e.key for e in response.entries]
                keys = list(response.unread_keys)
            assert seen == [f"k{i}" for i in range(5)]


def test_get_multiple_answers_a_repeated_key_once(
    stub: pb_grpc.CacheServiceStub, memory: Cache
) -> None:
    memory.set_many({"a": b"1", "b": b"2"})
    request = pb.GetMultipleRequest(namespace="default", keys=["a", "b", "a", "x", "b"])
    response = stub.GetMultiple(request)
    assert [e.key for e in response.entries] == ["a", "b"]
    assert not response.unread_keys


# -- 3. memcached counters past int64 are undone -------------------------------------------------


def test_memcached_increment_past_int64_changes_nothing(memcached_server: Any) -> None:
    url = memcached_server.url
    served = create_cache(url)
    with (
        ThreadedServer({"mc": served}) as running,
        grpc.insecure_channel(running.target) as channel,
    ):
        stub = pb_grpc.CacheServiceStub(channel)
        top = (1 << 63) - 1
        _set(stub, "review-counter", str(top - 1).encode(), values.INTEGER, ns="mc")
        request = pb.IncrementRequest(namespace="mc", key="review-counter", delta=5)
        code, details = _status(lambda: stub.Increment(request))
        assert code == Code.FAILED_PRECONDITION
        assert _get(stub, "review-counter", ns="mc") == (
            values.INTEGER,
            str(top - 1).encode(),
        )
        assert "nothing was changed" in details
        ok = pb.IncrementRequest(namespace="mc", key="review-counter", delta=1)
        assert stub.Increment(ok).value == top
        stub.Delete(pb.DeleteRequest(namespace="mc", key="review-counter"))
        running.run(served.aclose())  # its async clients live on the server's loop
    served.close()


# -- 4. and 5. JSON and MessagePack are validated --------------------------------------------------


@pytest.mark.parametrize("data", [b"NaN", b"[Infinity]", b'{"a":-Infinity}'])
def test_json_non_finite_constants_are_invalid(stub: pb_grpc.CacheServiceStub, data: bytes) -> None:
    value = pb.Value(data=data, content_type="application/json")
    code, details = _status(
        lambda: stub.Set(pb.SetRequest(namespace="default", key="k", value=value))
    )
    assert code == Code.INVALID_ARGUMENT
    assert "not valid" in details
    assert not stub.Exists(pb.ExistsRequest(namespace="default", key="k")).exists


@pytest.mark.parametrize("data", [b"\xc1\xc1garbage", b"\x01\x02", b"", b"\x92\x01"])
def test_msgpack_must_be_one_object(stub: pb_grpc.CacheServiceStub, data: bytes) -> None:
    pytest.importorskip("msgpack")
    value = pb.Value(data=data, content_type="application/msgpack")
    code, _ = _status(lambda: stub.Set(pb.SetRequest(namespace="default", key="k", value=value)))
    assert code == Code.INVALID_ARGUMENT
    assert not stub.Exists(pb.ExistsRequest(namespace="default", key="k")).exists


def test_msgpack_still_round_trips(stub: pb_grpc.CacheServiceStub) -> None:
    pytest.importorskip("msgpack")
    _set(stub, "m", b"\x82\xa1a\x01\xa1b\xc4\x01x", values.MSGPACK)
    assert _get(stub, "m") == (values.MSGPACK, b"\x82\xa1a\x01\xa1b\xc4\x01x")


# -- 6. memory page tokens are checked -------------------------------------------------------------


def test_memory_keys_refuses_a_token_it_did_not_hand_out(
    stub: pb_grpc.CacheServiceStub, memory: Cache
) -> None:
    memory.set_many({f"key{i:02}": i for i in range(25)})
    for token in ("zzz", "key05", "garbage.token"):
        request = pb.KeysRequest(namespace="default", page_token=token, page_size=10)
        code, _ = _status(lambda request=request: stub.Keys(request))
        assert code == Code.INVALID_ARGUMENT
    seen: list[str] = []
    token = ""
    while True:
        page = stub.Keys(pb.KeysRequest(namespace="default", page_token=token, page_size=10))
        seen += page.keys
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"key{i:02}" for i in range(25)]
