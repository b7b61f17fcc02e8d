"""The async twins of :class:`~cachekit.providers.redis.RedisCache`, native ``redis.asyncio``.

A base class of ``RedisCache`` rather than a thread-pool wrapper: each ``a*`` method mirrors its
sync twin in :mod:`.redis` command for command, with ``await`` on the async client of the
running event loop (see :mod:`.redis_conn`). Argument building, decoding, counting and failure
handling are the sync class's (shared, not repeated); the attributes and helpers it provides are
declared below for the type checker only.

As in the sync class, the ``_a*_raw`` methods are the multi-key primitives run under the circuit
breaker; :class:`.redis_cluster.RedisClusterCache` replaces them with per-slot versions.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import redis.exceptions

from ..errors import CacheError, InvalidKey
from ..interfaces import DistributedCache, check_key, check_tags
from ..resilience import CircuitBreaker
from ..sentinels import DEFAULT, MISSING
from ..ttl import TTLArg
from . import redis_scripts as lua
from .redis_conn import UNAVAILABLE, RedisClients
from .redis_errors import RedisNotAnInteger
from .redis_lock import AsyncCacheLock, set_nx_or_undo
from .redis_scripts import SCAN_BATCH, escape_glob, px

__all__ = ["NOT_RELEASED", "RAISE", "RedisAsyncOps"]

logger = logging.getLogger("cachekit.providers.redis")

RAISE: Any = object()  # a fallback meaning "fail closed even when fail_open is set"
#: The fallback of a stampede-lock release failing open: tells "not released" from a reply.
NOT_RELEASED: Any = object()


class _NotTaken:
    """False, as a refused ``SET NX`` is (a cancelled acquire then undoes nothing), but told
    apart from it: the lock's ``SET NX`` failed open, so there is no lock to wait for or free."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False


#: The fallback of a stampede-lock ``SET NX`` failing open (see :class:`_NotTaken`).
NOT_TAKEN: Any = _NotTaken()


class RedisAsyncOps(DistributedCache):
    """Native asyncio twins of the Redis provider's operations (one client per event loop)."""

    __slots__ = ()

    if TYPE_CHECKING:  # provided by RedisCache
        _breaker: CircuitBreaker
        _clients: RedisClients
        _kopen: str
        _kclose: str
        _side_prefix: str
        _stamp_prefix: str
        _tag_prefix: str
        _prefix: str
        _meta: str
        _prefix_len: int
        _flushdb: bool
        _stampede_timeout: float | None
        _loads: Callable[[bytes], Any]
        default_ttl: float | None

        def _failed(self, op: str, exc: BaseException, fallback: Any) -> Any: ...
        def _open(self, op: str, fallback: Any) -> Any: ...
        def _unlock_failed(self, exc: BaseException | None) -> None: ...
        def _count(
            self, hits: int = 0, misses: int = 0, sets: int = 0, deletes: int = 0
        ) -> None: ...
        def _check_key(self, key: Any) -> str: ...
        def _ttl(self, ttl: TTLArg) -> float | None: ...
        def _store_args(
            self,
            mapping: Mapping[str, Any],
            seconds: float,
            mode: str,
            tags: frozenset[str] | None,
        ) -> tuple[list[str], list[Any]]: ...
        def _delete_args(self, keys: Iterable[str]) -> list[str]: ...
        def _members(self, raw: Iterable[bytes]) -> list[str]: ...
        def _tag_checks(self, pipe: Any, checks: list[tuple[str, str]]) -> None: ...
        def _found(self, keys: list[str], raws: list[bytes | None] | None) -> dict[str, Any]: ...
        def _user_key(self, raw: bytes) -> str: ...
        def _match(self, pattern: str) -> str: ...
        def _keep(self, pattern: str) -> Callable[[bytes], bool] | None: ...
        @staticmethod
        def _pttl(ms: int) -> float | None: ...

    # -- plumbing ------------------------------------------------------------------------------

    async def _acall(
        self, op: str, fallback: Any, fn: Callable[..., Awaitable[Any]], *args: Any
    ) -> Any:
        breaker = self._breaker
        if not breaker.allow():
            return self._open(op, fallback)
        try:
            result = await fn(*args)
        except UNAVAILABLE as exc:
            breaker.failure()
            return self._failed(op, exc, fallback)
        except redis.exceptions.RedisError as exc:
            breaker.success()
            return self._failed(op, exc, fallback)
        except UnicodeEncodeError as exc:  # a key with a lone surrogate (tags are checked)
            breaker.release()  # never sent: no verdict on the server
            raise InvalidKey(
                f"cache keys must be encodable as UTF-8 (no lone surrogates): {exc}"
            ) from None
        except BaseException:  # no verdict on the server (a value that cannot be encoded,
            breaker.release()  # a cancelled await): a half-open probe may go again
            raise
        breaker.success()
        return result

    async def _ascript(
        self, op: str, fallback: Any, script: lua.Script, keys: list[str], args: list[Any]
    ) -> Any:
        return await self._acall(op, fallback, script.acall, self._clients.aclient(), keys, args)

    # -- multi-key primitives (per slot on a cluster) ----------------------------------------------

    async def _astore_raw(
        self, mapping: Mapping[str, Any], seconds: float | None, mode: str, tags: frozenset[str]
    ) -> int:
        keys, args = self._store_args(mapping, seconds, mode, tags)  # type: ignore[arg-type]
        return int(await lua.STORE.acall(self._clients.aclient(), keys, args))

    async def _adelete_raw(self, keys: Iterable[str]) -> int:
        args = self._delete_args(keys)
        if not args:
            return 0
        extra = [self._tag_prefix, self._prefix_len]
        return int(await lua.DELETE.acall(self._clients.aclient(), args, extra))

    async def _atouch_raw(self, key: str, px_: int) -> bool:
        keys = [self._kopen + key + self._kclose, self._side_prefix + key + self._kclose]
        return bool(await lua.TOUCH.acall(self._clients.aclient(), keys, [px_, self._tag_prefix]))

    async def _ainvalidate_raw(self, tags: list[str]) -> int:
        """The async twin of ``RedisCache._invalidate_raw`` (same batches)."""
        client, head = self._clients.aclient(), [self._tag_prefix, self._side_prefix, self._prefix]
        removed, size = 0, lua.INVALIDATE_BATCH
        for i in range(0, len(tags), size):
            removed += int(await lua.INVALIDATE.acall(client, [], [*head, *tags[i : i + size]]))
        return removed

    async def _amget_raw(self, keys: list[str]) -> list[bytes | None]:
        prefix, close = self._kopen, self._kclose
        result: list[bytes | None] = await self._clients.aclient().mget(
            [prefix + k + close for k in keys]
        )
        return result

    def _ascan(self, match: str) -> AsyncIterator[bytes]:
        return self._clients.aclient().scan_iter(  # type: ignore[no-any-return]
            match=match, count=SCAN_BATCH
        )

    # -- reads ---------------------------------------------------------------------------------

    async def _aget(self, key: str, default: Any) -> Any:
        key = self._check_key(key)
        data = self._kopen + key + self._kclose
        raw = await self._acall("get", None, self._clients.aclient().get, data)
        self._count(hits=raw is not None, misses=raw is None)
        return default if raw is None else self._loads(raw)

    async def _apeek(self, key: str) -> Any:
        data = self._kopen + key + self._kclose
        raw = await self._acall("get", None, self._clients.aclient().get, data)
        return MISSING if raw is None else self._loads(raw)

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = [self._check_key(k) for k in keys]
        if not keys:
            return {}
        raws = await self._acall("get_many", None, self._amget_raw, keys)
        return self._found(keys, raws)

    async def aexists(self, key: str) -> bool:
        key = self._check_key(key)
        client = self._clients.aclient()
        data = self._kopen + key + self._kclose
        return bool(await self._acall("exists", 0, client.exists, data))

    async def attl(self, key: str) -> float | None:
        key = self._check_key(key)
        client = self._clients.aclient()
        data = self._kopen + key + self._kclose
        return self._pttl(await self._acall("ttl", -2, client.pttl, data))

    # -- writes --------------------------------------------------------------------------------

    async def aset(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> None:
        await self.aset_many({key: value}, ttl, tags=tags)

    async def aset_many(
        self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> list[str]:
        seconds = self._ttl(ttl)
        tagset = check_tags(tags)
        if not all(type(k) is str and k.isascii() for k in mapping):  # the builders skip
            mapping = {self._check_key(k): v for k, v in mapping.items()}  # a str's encoding
        if seconds is not None and seconds <= 0:
            await self.adelete_many(mapping)
            return []
        if not mapping:
            return []
        stored = await self._acall(
            "set", None, self._astore_raw, mapping, seconds, lua.PLAIN, tagset
        )
        if stored is None:
            return list(mapping)
        self._count(sets=stored)
        return []

    async def aadd(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        return await self._astore_if(lua.ONLY_ABSENT, key, value, ttl, tags)

    async def areplace(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        return await self._astore_if(lua.ONLY_PRESENT, key, value, ttl, tags)

    async def _astore_if(
        self, mode: str, key: str, value: Any, ttl: TTLArg, tags: Iterable[str]
    ) -> bool:
        """The sync ``_store_if``'s twin."""
        key = self._check_key(key)
        seconds = self._ttl(ttl)
        tagset = check_tags(tags)
        present = mode == lua.ONLY_PRESENT
        if seconds is not None and seconds <= 0:
            return await self.adelete(key) if present else not await self.aexists(key)
        op = "replace" if present else "add"
        stored = await self._acall(op, 0, self._astore_raw, {key: value}, seconds, mode, tagset)
        self._count(sets=stored)
        return bool(stored)

    async def adelete(self, key: str) -> bool:
        return await self.adelete_many([key]) > 0

    async def adelete_many(self, keys: Iterable[str]) -> int:
        keys = [self._check_key(k) for k in keys]
        if not keys:
            return 0
        removed = int(await self._acall("delete", 0, self._adelete_raw, keys))
        self._count(deletes=removed)
        return removed

    async def atouch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        key = self._check_key(key)
        seconds = self._ttl(ttl)
        if seconds is not None and seconds <= 0:
            return await self.adelete(key)
        ms = 0 if seconds is None else px(seconds)
        return bool(await self._acall("touch", 0, self._atouch_raw, key, ms))

    async def aincr(self, key: str, delta: int = 1) -> int:
        key = self._check_key(key)
        if type(delta) is not int:
            raise RedisNotAnInteger(f"delta must be an int, got {delta!r}")
        ms = 0 if self.default_ttl is None else px(self.default_ttl)
        data = self._kopen + key + self._kclose
        return int(await self._ascript("incr", RAISE, lua.INCR, [data], [delta, ms]))

    async def adecr(self, key: str, delta: int = 1) -> int:
        if type(delta) is not int:
            raise RedisNotAnInteger(f"delta must be an int, got {delta!r}")
        return await self.aincr(key, -delta)

    async def atagged_keys(self, tags: Iterable[str]) -> list[str]:
        tagset = check_tags(tags)
        if not tagset:
            return []
        return list(await self._acall("tagged_keys", [], self._atagged_raw, sorted(tagset)))

    async def _atagged_raw(self, tags: list[str]) -> list[str]:
        from .redis import _still_tagged

        client = self._clients.aclient()
        checks = [
            (tag, member)
            for tag in tags
            for member in self._members(await client.smembers(self._tag_prefix + tag))
        ]
        if not checks:
            return []
        pipe = client.pipeline(transaction=False)
        self._tag_checks(pipe, checks)
        return _still_tagged(checks, await pipe.execute())

    async def ainvalidate_tags(self, tags: Iterable[str]) -> int:
        tagset = check_tags(tags)
        if not tagset:
            return 0
        removed = int(
            await self._acall("invalidate_tags", 0, self._ainvalidate_raw, sorted(tagset))
        )
        self._count(deletes=removed)
        return removed

    async def adelete_pattern(self, pattern: str) -> int:
        if not isinstance(pattern, str) or not pattern:
            raise InvalidKey(f"pattern must be a non-empty str, got {pattern!r}")
        return int(await self._acall("delete_pattern", 0, self._adelete_matching, pattern))

    async def _ascan_matching(self, pattern: str) -> AsyncIterator[bytes]:
        """The raw data keys whose user key matches ``pattern``."""
        keep = self._keep(pattern)
        async for raw in self._ascan(self._match(pattern)):
            if keep is None or keep(raw):
                yield raw

    async def _adelete_matching(self, pattern: str) -> int:
        removed = 0
        batch: list[str] = []
        async for raw in self._ascan_matching(pattern):
            batch.append(self._user_key(raw))
            if len(batch) >= SCAN_BATCH:
                removed += await self._adelete_raw(batch)
                batch.clear()
        if batch:
            removed += await self._adelete_raw(batch)
        self._count(deletes=removed)
        return removed

    async def aclear(self) -> None:
        await self._acall("clear", None, self._aclear)

    async def _aclear(self) -> None:
        client = self._clients.aclient()
        if self._flushdb:
            await client.flushdb(asynchronous=True)
            return
        for match in (escape_glob(self._kopen) + "*", escape_glob(self._meta) + "*"):  # _clear's
            batch: list[bytes] = []
            async for raw in self._ascan(match):
                batch.append(raw)
                if len(batch) >= SCAN_BATCH:
                    await client.unlink(*batch)
                    batch.clear()
            if batch:
                await client.unlink(*batch)

    # -- get_or_set with stampede protection across processes -------------------------------------

    async def _alead(
        self, key: str, factory: Callable[[], Any], add: Callable[[str, Any], Any]
    ) -> Any:
        """The async twin of ``RedisCache._lead`` (same lock, same backoff)."""
        timeout = self._stampede_timeout
        if timeout is None:
            return await self._acompute_alone(key, factory, add)
        lock_key, token = self._stamp_prefix + key + self._kclose, uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        delay = 0.005

        async def produce() -> Any:
            result = factory()
            if inspect.isawaitable(result):
                result = await result
            return await self._aadd_or_current(key, result, add)

        while True:
            current = await self._afill_peek(key)
            if current is not MISSING:
                return current
            lock = partial(self._clients.aclient().set, lock_key, token, px=px(timeout), nx=True)
            # Cancelled while the SET NX is in flight (the loop ending under its flight), the
            # lock it may take is released, not left to hold off every caller for ``timeout``.
            took = await set_nx_or_undo(
                self._acall("lock", NOT_TAKEN, lock),
                partial(self._aunlock_stampede, lock_key, token),
                f"cache {self.name!r}: stampede lock",
            )
            if took is NOT_TAKEN:  # failed open (server down): compute without the lock
                return await produce()
            if took:
                try:
                    return await produce()
                finally:
                    await self._aunlock_stampede(lock_key, token)
            if time.monotonic() + delay > deadline:
                return await produce()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _aunlock_stampede(self, lock_key: str, token: str) -> None:
        """The async twin of ``RedisCache._unlock_stampede`` (never raises a cache error)."""
        try:
            sent = await self._ascript("unlock", NOT_RELEASED, lua.RELEASE, [lock_key], [token])
        except CacheError as exc:
            self._unlock_failed(exc)
        else:
            if sent is NOT_RELEASED:
                self._unlock_failed(None)

    # -- locks and life cycle ---------------------------------------------------------------------

    def alock(
        self,
        name: str,
        *,
        timeout: float | None = 10.0,
        blocking_timeout: float | None = None,
        sleep: float = 0.05,
        blocking: bool = True,
        thread_local: bool = False,
    ) -> AsyncCacheLock:
        """The async twin of ``lock()`` (use it inside the event loop that runs it)."""
        name = check_key(name)
        lock = self._clients.aclient().lock(
            self._meta + "l:" + name,
            timeout=timeout,
            sleep=sleep,
            blocking=blocking,
            blocking_timeout=blocking_timeout,
            thread_local=thread_local,
        )
        return AsyncCacheLock(lock, name)

    async def aclose(self) -> None:
        await self._clients.aclose()
