"""Regressions from a review of the gRPC service: JSON that reads back as sent, stored bytes vs
kept envelopes, GetMultiple's batches and message limit, memcached counters past 2**64, and the
client's error for a message over the limit."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_helpers import ThreadedServer

from cachekit import create_cache
from cachekit.errors import ValueTooLarge
from cachekit.interfaces import Cache
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
