"""``RedisCache.lock()``: a distributed lock with safe release, in cachekit's errors.

A thin wrapper over redis-py's ``Lock``, which stores a random token with ``SET NX PX`` and
releases (or extends) only through a Lua compare-and-delete on that token, so a client whose lock
expired and was taken by someone else cannot release the new owner's lock. As every lease-based
lock, it protects only while the holder finishes within ``timeout`` (M. Kleppmann, "How to do
distributed locking", 2016): pick a timeout well above the critical section, or ``extend()``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import redis.exceptions

from ..errors import CacheError, LockError, LockNotOwned
from .redis_conn import UNAVAILABLE
from .redis_errors import RedisLockError, RedisLockNotOwned, RedisUnavailable

# LockError and LockNotOwned live in cachekit.errors; re-exported here, where they were first.
__all__ = ["AsyncCacheLock", "CacheLock", "LockError", "LockNotOwned"]

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
        try:
            return bool(
                await self._lock.acquire(blocking=blocking, blocking_timeout=blocking_timeout)
            )
        except _ERRORS as exc:
            raise _translate(exc, self.name) from exc

    async def release(self) -> None:
        try:
            await self._lock.release()
        except _ERRORS as exc:
            raise _translate(exc, self.name) from exc

    async def locked(self) -> bool:
        try:
            return bool(await self._lock.locked())
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
