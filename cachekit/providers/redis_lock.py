"""``RedisCache.lock()``: a distributed lock with safe release, in cachekit's errors.

A thin wrapper over redis-py's ``Lock``, which stores a random token with ``SET NX PX`` and
releases (or extends) only through a Lua compare-and-delete on that token, so a client whose lock
expired and was taken by someone else cannot release the new owner's lock. As every lease-based
lock, it protects only while the holder finishes within ``timeout`` (M. Kleppmann, "How to do
distributed locking", 2016): pick a timeout well above the critical section, or ``extend()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import redis.exceptions

from ..errors import CacheError, LockError, LockNotOwned
from .redis_conn import UNAVAILABLE
from .redis_errors import RedisLockError, RedisLockNotOwned, RedisUnavailable

# LockError and LockNotOwned live in cachekit.errors; re-exported here, where they were first.
__all__ = ["AsyncCacheLock", "CacheLock", "LockError", "LockNotOwned", "set_nx_or_undo"]

logger = logging.getLogger("cachekit")

#: Cleanups still running after their caller was cancelled twice (a task needs a reference).
_CLEANUPS: set[asyncio.Future[None]] = set()

#: The provider's outage errors, a cluster's too (CLUSTERDOWN, no reachable node...).
_UNAVAILABLE = UNAVAILABLE
_ERRORS: tuple[type[Exception], ...] = (redis.exceptions.LockError, *UNAVAILABLE)


def _translate(exc: Exception, name: str) -> CacheError:
    if isinstance(exc, redis.exceptions.LockNotOwnedError):
        return RedisLockNotOwned(f"lock {name!r} is not owned by this holder: {exc}")
    if isinstance(exc, redis.exceptions.LockError):
        message = str(exc)
        if "unlocked" in message or "not owned" in message:
            return RedisLockNotOwned(f"lock {name!r} is not owned by this holder: {exc}")
        return RedisLockError(f"lock {name!r}: {exc}")
    return RedisUnavailable(f"lock {name!r}: {exc}")


async def set_nx_or_undo(
    attempt: Awaitable[bool], undo: Callable[[], Awaitable[object]], what: str
) -> bool:
    """Await a lock's ``SET NX`` (``attempt``). A caller cancelled while it is in flight must
    not strand the lock: the command may still reach the server and take it, with nobody left
    owning the token. So the attempt is shielded; on cancellation its answer is awaited and a
    lock it took is released with ``undo`` (a token-checked delete) before the
    ``CancelledError`` propagates. A second cancellation leaves that cleanup running."""
    task = asyncio.ensure_future(attempt)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        cleanup = asyncio.ensure_future(_undo_if_taken(task, undo, what))
        _CLEANUPS.add(cleanup)
        cleanup.add_done_callback(_CLEANUPS.discard)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(cleanup)
        raise


async def _undo_if_taken(
    task: asyncio.Future[bool], undo: Callable[[], Awaitable[object]], what: str
) -> None:
    """Release unless the ``SET NX`` answered that it took nothing: an attempt cancelled too
    (the loop shutting down) or failing may still have been sent; the delete checks the token."""
    with contextlib.suppress(Exception, asyncio.CancelledError):
        if not await task:
            return
    try:
        await undo()
    except Exception as exc:  # the lock then expires with its timeout, if it has one
        logger.warning("%s taken by a cancelled acquire was not released: %s", what, exc)


class CacheLock:
    """A distributed lock; use as ``with cache.lock("name", timeout=10):``."""

    __slots__ = ("_lock", "name")

    def __init__(self, lock: Any, name: str) -> None:
        self._lock = lock
        self.name = name

    def acquire(
        self, *, blocking: bool | None = None, blocking_timeout: float | None = None
    ) -> bool:
        """Take the lock; ``False`` if it stayed busy for ``blocking_timeout`` seconds."""
        try:
            return bool(self._lock.acquire(blocking=blocking, blocking_timeout=blocking_timeout))
        except _ERRORS as exc:
            raise _translate(exc, self.name) from exc

    def release(self) -> None:
        """Release; raises :class:`LockNotOwned` if this holder does not own it any more."""
        try:
            self._lock.release()
        except _ERRORS as exc:
            raise _translate(exc, self.name) from exc
        except AttributeError as exc:  # thread_local: redis-py has no token in this thread
            raise RedisLockNotOwned(
                f"lock {self.name!r} was not acquired by this thread (thread_local)"
            ) from exc

    def extend(self, additional_time: float, *, replace_ttl: bool = False) -> None:
        try:
            self._lock.extend(additional_time, replace_ttl=replace_ttl)
        except _ERRORS as exc:
            raise _translate(exc, self.name) from exc
        except AttributeError as exc:  # as in release()
            raise RedisLockNotOwned(
                f"lock {self.name!r} was not acquired by this thread (thread_local)"
            ) from exc

    def locked(self) -> bool:
        """Whether anyone holds the lock now."""
        try:
            return bool(self._lock.locked())
        except _UNAVAILABLE as exc:
            raise _translate(exc, self.name) from exc

    def owned(self) -> bool:
        """Whether this holder holds it now."""
        try:
            return bool(self._lock.owned())
        except _UNAVAILABLE as exc:
            raise _translate(exc, self.name) from exc

    def __enter__(self) -> CacheLock:
        if not self.acquire():
            raise RedisLockError(
                f"could not acquire lock {self.name!r} within its blocking_timeout"
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class AsyncCacheLock:
    """The async twin of :class:`CacheLock`: ``async with cache.alock("name"):``."""

    __slots__ = ("_lock", "name")

    def __init__(self, lock: Any, name: str) -> None:
        self._lock = lock
        self.name = name

    async def acquire(
        self, *, blocking: bool | None = None, blocking_timeout: float | None = None
    ) -> bool:
        """Take the lock; ``False`` if it stayed busy for ``blocking_timeout`` seconds.

        Cancelled while a ``SET NX`` is in flight, it releases the lock that command took
        (see :func:`set_nx_or_undo`) before the ``CancelledError`` propagates."""
        lock = self._lock
        token = uuid.uuid4().hex.encode()
        if blocking is None:
            blocking = lock.blocking
        if blocking_timeout is None:
            blocking_timeout = lock.blocking_timeout
        loop = asyncio.get_running_loop()
        stop_at = None if blocking_timeout is None else loop.time() + blocking_timeout
        try:
            while True:
                if await set_nx_or_undo(
                    lock.do_acquire(token),
                    lambda: self._release_token(token),
                    f"lock {self.name!r}",
                ):
                    lock.local.token = token
                    return True
                if not blocking or (stop_at is not None and loop.time() + lock.sleep > stop_at):
                    return False
                await asyncio.sleep(lock.sleep)
        except _ERRORS as exc:
            raise _translate(exc, self.name) from exc

    async def _release_token(self, token: bytes) -> None:
        lock = self._lock
        await lock.lua_release(keys=[lock.name], args=[token], client=lock.redis)

    async def release(self) -> None:
        """Release; raises :class:`LockNotOwned` if this holder does not own it any more."""
        try:
            await self._lock.release()
        except _ERRORS as exc:
            raise _translate(exc, self.name) from exc

    async def extend(self, additional_time: float, *, replace_ttl: bool = False) -> None:
        """Add ``additional_time`` seconds to the lease (or make it the whole remaining lease
        with ``replace_ttl``); raises :class:`LockNotOwned` if this holder lost the lock."""
        try:
            await self._lock.extend(additional_time, replace_ttl=replace_ttl)
        except _ERRORS as exc:
            raise _translate(exc, self.name) from exc

    async def locked(self) -> bool:
        """Whether anyone holds the lock now."""
        try:
            return bool(await self._lock.locked())
        except _UNAVAILABLE as exc:
            raise _translate(exc, self.name) from exc

    async def owned(self) -> bool:
        """Whether this holder holds it now."""
        try:
            return bool(await self._lock.owned())
        except _UNAVAILABLE as exc:
            raise _translate(exc, self.name) from exc

    async def __aenter__(self) -> AsyncCacheLock:
        if not await self.acquire():
            raise RedisLockError(
                f"could not acquire lock {self.name!r} within its blocking_timeout"
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()
