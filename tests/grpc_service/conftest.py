"""Fixtures shared by the gRPC review modules: a server over the module's own ``memory``
fixture, and a stub on it. A module that defines its own ``server`` or ``stub`` keeps it."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_helpers import ThreadedServer

from cachekit.interfaces import Cache
from cachekit.v1 import cache_pb2_grpc as pb_grpc


@pytest.fixture
def server(memory: Cache) -> Iterator[ThreadedServer]:
    with ThreadedServer({"default": memory}) as running:
        yield running


@pytest.fixture
def stub(server: ThreadedServer) -> Iterator[pb_grpc.CacheServiceStub]:
    with grpc.insecure_channel(server.target) as channel:
        yield pb_grpc.CacheServiceStub(channel)
