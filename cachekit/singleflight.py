"""Single-flight: concurrent callers for one key compute it once and share the outcome.

Used by ``get_or_set`` so that a popular key that expires does not send every thread (or every
task) to the slow factory at once (a cache stampede). The leader's exception is re-raised in
every waiter, because a waiter that silently recomputed would defeat the purpose under load.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["AsyncSingleFlight", "SingleFlight"]


class _Call:
    __slots__ = ("done", "error", "value", "waiters")

    def __init__(self) -> None:
        self.waiters = 0
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class SingleFlight:
    """Thread-level single-flight keyed by string."""

    __slots__ = ("_calls", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call] = {}

    def do(self, key: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` once for all concurrent callers of ``key`` and return its result to each."""
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
            else:
                call.waiters += 1
        if not leader:
            call.done.wait()
            if call.error is not None:
                raise call.error
            return call.value
        try:
            call.value = fn()
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()
        return call.value

    def in_flight(self) -> int:
        """Number of keys being computed right now (for tests and stats)."""
        return len(self._calls)

    def waiters(self, key: str) -> int:
        """Callers waiting on the computation of ``key`` (0 when none is in flight)."""
        with self._lock:
            call = self._calls.get(key)
            return call.waiters if call is not None else 0


class AsyncSingleFlight:
    """Task-level single-flight; one table per event loop since futures belong to a loop."""

    __slots__ = ("_tables",)

    def __init__(self) -> None:
        self._tables: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Future[Any]]
        ] = weakref.WeakKeyDictionary()

    async def do(self, key: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        loop = asyncio.get_running_loop()
        table = self._tables.get(loop)
        if table is None:
            table = self._tables[loop] = {}
        pending = table.get(key)
        if pending is not None:
            # shield: a cancelled waiter must not cancel the leader's computation.
            return await asyncio.shield(pending)
        fut: asyncio.Future[Any] = loop.create_future()
        table[key] = fut
        try:
            value = await fn()
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            # Mark retrieved: with no waiter, an unretrieved exception would be logged at GC.
            fut.exception()
            raise
        else:
            fut.set_result(value)
            return value
        finally:
            del table[key]
