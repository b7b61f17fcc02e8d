"""A cachekit gRPC server on a background event loop, for the tests (real sockets, no mocks)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import grpc
import pytest

from cachekit import create_cache
from cachekit.grpc.client import Unauthenticated
from cachekit.grpc.server import CacheServer
from cachekit.interfaces import Cache
from cachekit.v1 import admin_pb2 as apb
from cachekit.v1 import admin_pb2_grpc as apb_grpc


class ThreadedServer:
    """Runs :class:`CacheServer` on its own loop in a daemon thread; ``port`` once started."""

    def __init__(self, namespaces: Mapping[str, Cache], **options: Any) -> None:
        self.server = CacheServer(namespaces, port=0, **options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def __exit__(self, *exc: object) -> None:
        self.run(self.server.stop(0.5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def assert_token_guarded(
    address: str, namespace: str, token: str, admin: str, *, wrong: str, key: str = "k"
) -> None:
    """``token`` opens the data plane of ``namespace``, ``wrong`` does not; only ``admin``
    opens admin calls (the token sources' tests of ``cachekit serve`` and both commands)."""
    with create_cache(f"grpc://{address}/{namespace}?token={token}&timeout=5") as cache:
        cache.set(key, "v")
        assert cache.get(key) == "v"
    intruder = create_cache(f"grpc://{address}/{namespace}?token={wrong}&timeout=5")
    with intruder, pytest.raises(Unauthenticated):
        intruder.get(key)
    with grpc.insecure_channel(address) as channel:
        stub = apb_grpc.CacheAdminServiceStub(channel)
        request = apb.ListNamespacesRequest()
        reply = stub.ListNamespaces(request, metadata=(("authorization", f"Bearer {admin}"),))
        assert [ns.name for ns in reply.namespaces] == [namespace]
        with pytest.raises(grpc.RpcError) as info:
            stub.ListNamespaces(request, metadata=(("authorization", f"Bearer {token}"),))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
