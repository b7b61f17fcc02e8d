"""A cachekit gRPC server on a background event loop, for the tests (real sockets, no mocks)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

from cachekit.grpc.server import CacheServer
from cachekit.interfaces import Cache


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
