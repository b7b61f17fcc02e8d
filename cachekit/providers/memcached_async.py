"""The async twins of :class:`~cachekit.providers.memcached.MemcachedCache`.

pymemcache has no asyncio client, so each ``a*`` method runs its sync twin in asyncio's default
thread pool: the event loop never blocks on a socket, at the price of a thread hand-off per
call. The provider already keeps one connection per thread per server, so the pool's threads
never share a socket. (Redis, whose driver has a native asyncio client, does real async I/O:
see :mod:`.redis_async`.)
"""

from __future__ import annotations

from asyncio import to_thread
from collections.abc import Iterable, Mapping
from typing import Any

from ..entry import EntryInfo
from ..sentinels import DEFAULT
from ..stats import CacheStats
from ..ttl import TTLArg
from .timed import TimedGets

__all__ = ["MemcachedAsyncOps"]


class MemcachedAsyncOps(TimedGets):
    """Thread-pool async twins: correct for an event loop, never blocking it."""

    __slots__ = ()

    async def _aget(self, key: str, default: Any) -> Any:
        return await to_thread(self._get, key, default)

    async def _apeek(self, key: str) -> Any:
        return await to_thread(self._peek, key)

    async def aexists(self, key: str) -> bool:
        return await to_thread(self.exists, key)

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Any]:
        return await to_thread(self.get_many, list(keys))

    async def attl(self, key: str) -> float | None:
        return await to_thread(self.ttl, key)

    async def ainspect(self, key: str) -> EntryInfo | None:
        return await to_thread(self.inspect, key)

    async def aset(self, key: str, value: Any, ttl: TTLArg = DEFAULT) -> None:
        await to_thread(self.set, key, value, ttl)

    async def aadd(self, key: str, value: Any, ttl: TTLArg = DEFAULT) -> bool:
        return await to_thread(self.add, key, value, ttl)

    async def areplace(self, key: str, value: Any, ttl: TTLArg = DEFAULT) -> bool:
        return await to_thread(self.replace, key, value, ttl)

    async def aset_many(self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT) -> list[str]:
        return await to_thread(self.set_many, dict(mapping), ttl)

    async def adelete(self, key: str) -> bool:
        return await to_thread(self.delete, key)

    async def adelete_many(self, keys: Iterable[str]) -> int:
        return await to_thread(self.delete_many, list(keys))

    async def atouch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        return await to_thread(self.touch, key, ttl)

    async def aincr(self, key: str, delta: int = 1) -> int:
        return await to_thread(self.incr, key, delta)

    async def adecr(self, key: str, delta: int = 1) -> int:
        return await to_thread(self.decr, key, delta)

    async def aclear(self) -> None:
        await to_thread(self.clear)

    async def aget_stats(self) -> CacheStats:
        return await to_thread(self.get_stats)

    async def aclose(self) -> None:
        await to_thread(self.close)
