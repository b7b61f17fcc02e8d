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
from cachekit.errors import ValueTooLarge
from cachekit.interfaces import Cache
from cachekit.v1 import cache_pb2 as pb
from cachekit.v1 import cache_pb2_grpc as pb_grpc

Code = grpc.StatusCode


@pytest.fixture
def memory() -> Iterator[Cache]:
    cache = create_cache("memory://review-s10?max_memory_bytes=1GiB")
    yield cache
    cache.close()


@pytest.fixture
def server(memory: Cache) -> Iterator[ThreadedServer]:
    with ThreadedServer({"default": memory}) as running:
        yield running


@pytest.fixture
def stub(server: ThreadedServer) -> Iterator[pb_grpc.CacheServiceStub]:
    with grpc.insecure_channel(server.target) as channel:
        yield pb_grpc.CacheServiceStub(channel)


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
