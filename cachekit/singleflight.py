"""Single-flight: concurrent callers for one key compute it once and share the outcome.

Used by ``get_or_set`` so that a popular key that expires does not send every thread (or every
task) to the slow factory at once (a cache stampede). The leader's exception is re-raised in
every waiter, because a waiter that silently recomputed would defeat the purpose under load.

Two hooks a caller may give:

* ``share``, for **waiters after a success.** The leader's value is an object of the leader's:
  handed to every waiter, one mutable object (a response whose cookies each request's code then
  sets) would be shared by concurrent requests. ``get_or_set`` passes a ``share`` that reads the
  value the leader stored (each waiter's own copy, from a serializing cache) and falls back to
  the leader's value when nothing was stored (a TTL of 0, a backend down and failing open), so
  the factory still runs once.
* ``alone``, for **re-entry.** A computation that asks for its own key again (a cached view
  calling another with the same key, a recursive memoized function whose ignored arguments make
  every level one key) would wait for itself forever: the nested call runs ``alone`` instead.
  It is recognised by a context variable naming the flight, the key and the computation, which
  counts only while that computation runs: an asyncio task it started inherits the variable,
  and once the computation is over that task coalesces like any other caller.

**A waiter's wait is bounded** (:data:`WAIT_TIMEOUT`, 10 s, unless the flight was given its
own): a nested call the variable does not reach (one the computation hands to a worker thread,
or to a task started outside it, and then waits for) would otherwise wait on the computation
while the computation waits on it, forever. Once the bound expires the waiter runs ``alone``
(with no ``alone``, the computation itself): like a provider's ``stampede_timeout``, a leader
slower than the bound costs a second computation, never a hang.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import copy
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["WAIT_TIMEOUT", "AsyncSingleFlight", "SingleFlight"]

#: Seconds a caller waits for another's computation of its key before computing on its own
#: (the default of every flight not given a ``wait``; read at each wait). The providers' default
#: ``stampede_timeout``, the bound of a wait across processes, is the same 10 s.
WAIT_TIMEOUT: float = 10.0
#: How often a waiter on another loop's computation checks that loop still runs (seconds).
_LEADER_CHECK = 0.05
#: Entries of stopped loops are purged once the cross-loop table is this large (then doubles).
_PURGE_FROM = 64

#: (flight, key, computation) of the computations the current thread or task runs as a leader:
#: a :class:`_Call` (sync) or the computation's task (async).
_leading: contextvars.ContextVar[frozenset[tuple[int, str, Any]]] = contextvars.ContextVar(
    "cachekit_singleflight_leading", default=frozenset()
)


def _reentered(flight: object, key: str) -> bool:
    """Whether this thread or task is inside a running computation of ``key`` by ``flight``."""
    leading = _leading.get()
    if not leading:
        return False
    me = id(flight)
    for owner, name, computation in leading:
        if owner == me and name == key:
            finished = (
                computation.done.is_set() if isinstance(computation, _Call) else computation.done()
            )
            if not finished:
                return True
    return False


class _Call:
    __slots__ = ("done", "error", "value", "waiters")

    def __init__(self) -> None:
        self.waiters = 0
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class SingleFlight:
    """Thread-level single-flight keyed by string; ``wait`` bounds a waiter's wait (seconds,
    default :data:`WAIT_TIMEOUT`)."""

    __slots__ = ("_calls", "_lock", "_wait")

    def __init__(self, wait: float | None = None) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call] = {}
        self._wait = wait

    def do(
        self,
        key: str,
        fn: Callable[[], Any],
        alone: Callable[[], Any] | None = None,
        share: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Run ``fn`` once for all concurrent callers of ``key`` and return its result to each
        (through ``share`` for waiters; ``alone`` for a re-entrant call and for a waiter whose
        wait expired: see the module)."""
        if alone is not None and _reentered(self, key):
            return alone()
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
            else:
                call.waiters += 1
        if not leader:
            if not call.done.wait(WAIT_TIMEOUT if self._wait is None else self._wait):
                with self._lock:
                    call.waiters -= 1
                return fn() if alone is None else alone()
            if call.error is not None:
                raise _own_copy(call.error)
            return call.value if share is None else share(call.value)
        token = _leading.set(_leading.get() | {(id(self), key, call)})
        try:
            call.value = fn()
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            _leading.reset(token)
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
    """Task-level single-flight; one table per event loop since futures belong to a loop.
    ``wait`` bounds a waiter's wait, as :class:`SingleFlight`'s.

    A key computed on another loop (another thread's: Flask runs each async view in an event
    loop of its own) is waited for too, through a thread-safe future the leader's task
    completes, so the computation runs once per process there as well, without blocking
    either loop.
    """

    __slots__ = ("_lock", "_purge_at", "_running", "_tables", "_wait")

    def __init__(self, wait: float | None = None) -> None:
        self._tables: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Future[Any]]
        ] = weakref.WeakKeyDictionary()
        self._wait = wait
        self._lock = threading.Lock()
        #: key -> the outcome of its computation in flight on some loop, for the other loops.
        self._running: dict[
            str, tuple[asyncio.AbstractEventLoop, concurrent.futures.Future[Any]]
        ] = {}
        self._purge_at = _PURGE_FROM

    async def do(
        self,
        key: str,
        fn: Callable[[], Awaitable[Any]],
        alone: Callable[[], Awaitable[Any]] | None = None,
        share: Callable[[Any], Awaitable[Any]] | None = None,
    ) -> Any:
        """Await ``fn()`` once for all concurrent callers of ``key`` on this loop.

        The computation runs in a task of its own and every caller, the first included, awaits
        it without owning it: cancelling any caller (a client that went away) cancels only that
        caller, never the computation the others are waiting for. A waiter waits at most the
        flight's bound, then runs ``alone`` (see the module).
        """
        if alone is not None and _reentered(self, key):
            return await alone()
        loop = asyncio.get_running_loop()
        table = self._tables.get(loop)
        if table is None:
            table = self._tables[loop] = {}
        task = table.get(key)
        if task is None:
            outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()
            with self._lock:
                elsewhere = self._running.get(key)
                # A loop that stopped running never completes its computation: not waited for.
                if elsewhere is None or not elsewhere[0].is_running():
                    self._running[key] = (loop, outcome)
                    if len(self._running) > self._purge_at:
                        self._purge()
                    elsewhere = None
            if elsewhere is not None:  # computed on another loop
                return await self._wait_elsewhere(key, *elsewhere, fn, alone=alone, share=share)
            # Created with the lock released: an eager task factory (3.12+) runs the computation
            # inside create_task, and it may call do() again (which takes the lock).
            task = table[key] = loop.create_task(_run(fn, (id(self), key)))
            task.add_done_callback(lambda done: self._finish(table, key, done, outcome))
            return await asyncio.shield(task)
        # asyncio.wait neither cancels the task nor raises on expiry; this caller's own
        # cancellation propagates from it.
        done, _ = await asyncio.wait((task,), timeout=self._bound())
        if not done:
            return await (fn() if alone is None else alone())
        if not task.cancelled() and (error := task.exception()) is not None:
            raise _own_copy(error) from error.__cause__  # the leader's failure
        value = task.result()  # CancelledError if the computation was cancelled
        return value if share is None else await share(value)

    def _bound(self) -> float:
        return WAIT_TIMEOUT if self._wait is None else self._wait

    async def _wait_elsewhere(
        self,
        key: str,
        leader: asyncio.AbstractEventLoop,
        outcome: concurrent.futures.Future[Any],
        fn: Callable[[], Awaitable[Any]],
        *,
        alone: Callable[[], Awaitable[Any]] | None,
        share: Callable[[Any], Awaitable[Any]] | None,
    ) -> Any:
        """Wait, without blocking this loop, for the computation the loop ``leader`` runs. Its
        cancellation (that loop's request went away) is not this caller's: it computes; so it
        does as soon as ``leader`` stops running (its task will not finish then)."""
        loop = asyncio.get_running_loop()
        arrived: asyncio.Future[None] = loop.create_future()

        def wake(_: concurrent.futures.Future[Any]) -> None:  # in the leader's thread
            with contextlib.suppress(RuntimeError):  # this loop closed meanwhile: no one waits
                loop.call_soon_threadsafe(_settle, arrived)

        # Not asyncio.wrap_future: a waiter giving up would cancel the one shared outcome.
        outcome.add_done_callback(wake)
        deadline = loop.time() + self._bound()
        while not arrived.done():
            left = deadline - loop.time()
            if left <= 0 or not leader.is_running():
                break
            await asyncio.wait((arrived,), timeout=min(left, _LEADER_CHECK))
        if not outcome.done() or outcome.cancelled():
            if not leader.is_running():
                self._drop(key, outcome)
            return await (fn() if alone is None else alone())
        if (error := outcome.exception()) is not None:
            raise _own_copy(error) from error.__cause__  # the leader's failure
        value = outcome.result()
        return value if share is None else await share(value)

    def _finish(
        self,
        table: dict[str, asyncio.Future[Any]],
        key: str,
        done: asyncio.Future[Any],
        outcome: concurrent.futures.Future[Any],
    ) -> None:
        """The leader's task is over: hand its outcome to the waiters on other loops."""
        _forget(table, key, done)
        self._drop(key, outcome)
        if done.cancelled():
            outcome.cancel()
        elif (error := done.exception()) is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(done.result())

    def _drop(self, key: str, outcome: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            running = self._running.get(key)
            if running is not None and running[1] is outcome:
                del self._running[key]

    def _purge(self) -> None:
        """Forget computations of loops that stopped (lock held): their tasks never finish, so
        nothing else removes them, and they hold their loops. Run when the table doubles, so
        its cost stays linear in the calls."""
        for key, (loop, _) in list(self._running.items()):
            if not loop.is_running():
                del self._running[key]
        self._purge_at = max(_PURGE_FROM, 2 * len(self._running))

    def in_flight(self) -> int:
        """Keys being computed on the running loop."""
        return len(self._tables.get(asyncio.get_running_loop(), ()))


async def _run(fn: Callable[[], Awaitable[Any]], marker: tuple[int, str]) -> Any:
    # The task's own context: calls nested in the computation see it (see _reentered).
    _leading.set(_leading.get() | {(*marker, asyncio.current_task())})
    return await fn()


def _settle(arrived: asyncio.Future[None]) -> None:
    if not arrived.done():
        arrived.set_result(None)


def _forget(table: dict[str, asyncio.Future[Any]], key: str, done: asyncio.Future[Any]) -> None:
    if table.get(key) is done:
        del table[key]
    if not done.cancelled():
        done.exception()  # retrieved: a failure nobody awaited any more is not logged at GC


def _own_copy(error: BaseException) -> BaseException:
    """A per-waiter copy of the leader's exception, so threads never share one traceback."""
    try:
        clone = copy.copy(error)
    except Exception:
        return error
    clone.__cause__ = error.__cause__
    clone.__suppress_context__ = True
    return clone.with_traceback(error.__traceback__)
