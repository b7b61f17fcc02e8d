"""``GrpcCache`` against a real in-process server, from a review: message limits above gRPC's
4 MiB default, Watch streams at shutdown, and the exception types the core raises."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest
from grpc_helpers import ThreadedServer

from cachekit import create_cache
from cachekit.errors import ConfigurationError
from cachekit.grpc.client import GrpcCache

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
