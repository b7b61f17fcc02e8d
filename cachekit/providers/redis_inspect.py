"""Listing and inspecting a Redis cache's entries, and reading values with their TTLs.

A base class of ``RedisCache`` (like :mod:`.redis_async`): ``scan_keys`` pages with Redis's own
``SCAN`` cursor on a standalone server and over a sorted snapshot on a cluster (whose cursor is
one per primary); ``inspect`` reads the value and its ``PTTL`` in one round trip. Both fail
closed: a listing that silently came back empty under fail-open would read as "no keys".
``_get_with_ttl``/``_get_many_with_ttl`` and their async twins serve the near cache
(:mod:`.tiered`), which must know how long an L2 value may live in L1: one pipeline of
``GET``/``PTTL`` pairs instead of two round trips per key (on a cluster the pipeline is split
per node by redis-py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..entry import EntryInfo, describe_payload
from ..errors import InvalidArgument
from ..interfaces import DistributedCache
from ..keyscan import check_scan_args, sorted_page
from ..sentinels import MISSING
from .redis_async import RAISE

if TYPE_CHECKING:
    from .redis_conn import RedisClients

__all__ = ["RedisInspectOps"]


class RedisInspectOps(DistributedCache):
    """``scan_keys``/``inspect`` and their async twins for the Redis providers."""

    __slots__ = ()

    #: Whether SCAN's cursor can be handed out (one server) or pages come from a snapshot.
    _native_scan_cursor = True

    if TYPE_CHECKING:  # provided by RedisCache
        _clients: RedisClients
        _kopen: str
        _kclose: str
        _loads: Callable[[bytes], Any]

        def _sync(self) -> Any: ...
        def _call(self, op: str, fallback: Any, fn: Callable[..., Any], *args: Any) -> Any: ...
        async def _acall(
            self, op: str, fallback: Any, fn: Callable[..., Any], *args: Any
        ) -> Any: ...
        def _check_key(self, key: Any) -> str: ...
        def _user_key(self, raw: bytes) -> str: ...
        def _match(self, pattern: str) -> str: ...
        def _keep(self, pattern: str) -> Callable[[bytes], bool] | None: ...
        def _scan_matching(self, pattern: str) -> Iterable[bytes]: ...
        def _ascan_matching(self, pattern: str) -> AsyncIterator[bytes]: ...
        def _scan(self, match: str) -> Iterator[bytes]: ...
        def _ascan(self, match: str) -> AsyncIterator[bytes]: ...
        def _count(
            self, hits: int = 0, misses: int = 0, sets: int = 0, deletes: int = 0
        ) -> None: ...
        @staticmethod
        def _pttl(ms: int) -> float | None: ...

    def _start(self, pattern: str, cursor: str, count: int) -> int:
        check_scan_args(pattern, cursor, count)
        if not self._native_scan_cursor:
            return 0
        if cursor and not cursor.isdigit():
            raise InvalidArgument(f"not a cursor this cache handed out: {cursor!r}")
        return int(cursor or 0)

    def scan_keys(
        self, pattern: str = "*", *, cursor: str = "", count: int = 100
    ) -> tuple[str, list[str]]:
        start = self._start(pattern, cursor, count)
        if not self._native_scan_cursor:
            return self._call("scan_keys", RAISE, self._snapshot_page, pattern, cursor, count)  # type: ignore[no-any-return]
        nxt, raws = self._call(
            "scan_keys", RAISE, self._scan_page, start, self._match(pattern), count
        )
        return ("" if int(nxt) == 0 else str(nxt)), self._page_keys(pattern, raws)

    def _page_keys(self, pattern: str, raws: list[bytes]) -> list[str]:
        keep = self._keep(pattern)
        return [self._user_key(r) for r in raws if keep is None or keep(r)]

    def _scan_page(self, start: int, match: str, count: int) -> Any:
        # The client is got under _call (the breaker): a cluster client connects when built.
        return self._sync().scan(start, match, count)

    def _snapshot_page(self, pattern: str, cursor: str, count: int) -> tuple[str, list[str]]:
        keys = {self._user_key(raw) for raw in self._scan_matching(pattern)}
        return sorted_page(keys, cursor, count)

    async def _asnapshot_page(self, pattern: str, cursor: str, count: int) -> tuple[str, list[str]]:
        keys = {self._user_key(raw) async for raw in self._ascan_matching(pattern)}
        return sorted_page(keys, cursor, count)

    async def ascan_keys(
        self, pattern: str = "*", *, cursor: str = "", count: int = 100
    ) -> tuple[str, list[str]]:
        start = self._start(pattern, cursor, count)
        if not self._native_scan_cursor:  # cluster: a snapshot of every primary, awaited
            return await self._acall(  # type: ignore[no-any-return]
                "scan_keys", RAISE, self._asnapshot_page, pattern, cursor, count
            )
        client = self._clients.aclient()
        nxt, raws = await self._acall(
            "scan_keys", RAISE, client.scan, start, self._match(pattern), count
        )
        return ("" if int(nxt) == 0 else str(nxt)), self._page_keys(pattern, raws)

    def inspect(self, key: str) -> EntryInfo | None:
        key = self._check_key(key)
        raw, ms = self._call("inspect", RAISE, self._inspect_raw, self._kopen + key + self._kclose)
        return self._entry(key, raw, ms)

    def _inspect_raw(self, data: str) -> list[Any]:
        pipe = self._sync().pipeline(transaction=False)  # under _call: see _scan_page
        pipe.get(data)
        pipe.pttl(data)
        replies: list[Any] = pipe.execute()
        return replies

    async def ainspect(self, key: str) -> EntryInfo | None:
        key = self._check_key(key)
        pipe = self._clients.aclient().pipeline(transaction=False)
        data = self._kopen + key + self._kclose
        pipe.get(data)
        pipe.pttl(data)
        raw, ms = await self._acall("inspect", RAISE, pipe.execute)
        return self._entry(key, raw, ms)

    def _entry(self, key: str, raw: bytes | None, ms: int) -> EntryInfo | None:
        if raw is None:
            return None
        serializer, compression = describe_payload(raw)
        value_type = type(self._loads(raw)).__name__
        return EntryInfo(key, self._pttl(ms), len(raw), serializer, compression, value_type)

    def _get_with_ttl(self, key: str) -> tuple[Any, float | None]:
        key = self._check_key(key)
        found = self._get_many_with_ttl([key])
        return found.get(key, (MISSING, 0.0))

    def _get_many_with_ttl(self, keys: list[str]) -> dict[str, tuple[Any, float | None]]:
        keys = [self._check_key(k) for k in keys]
        if not keys:
            return {}
        return self._with_ttl(keys, self._call("get_many", None, self._read_with_ttl, keys))

    def _read_with_ttl(self, keys: list[str]) -> list[Any]:
        pipe = self._sync().pipeline(transaction=False)  # under _call: see _scan_page
        self._queue_with_ttl(pipe, keys)
        replies: list[Any] = pipe.execute()
        return replies

    async def _aget_with_ttl(self, key: str) -> tuple[Any, float | None]:
        key = self._check_key(key)
        found = await self._aget_many_with_ttl([key])
        return found.get(key, (MISSING, 0.0))

    async def _aget_many_with_ttl(self, keys: list[str]) -> dict[str, tuple[Any, float | None]]:
        keys = [self._check_key(k) for k in keys]
        if not keys:
            return {}
        pipe = self._clients.aclient().pipeline(transaction=False)
        self._queue_with_ttl(pipe, keys)
        return self._with_ttl(keys, await self._acall("get_many", None, pipe.execute))

    def _queue_with_ttl(self, pipe: Any, keys: list[str]) -> None:
        prefix, close = self._kopen, self._kclose
        for key in keys:
            pipe.get(prefix + key + close)
            pipe.pttl(prefix + key + close)

    def _with_ttl(
        self, keys: list[str], replies: list[Any] | None
    ) -> dict[str, tuple[Any, float | None]]:
        """The pipeline's ``GET``/``PTTL`` pairs as ``{key: (value, remaining seconds)}``."""
        if replies is None:  # failed open: every key missed
            self._count(misses=len(keys))
            return {}
        found: dict[str, tuple[Any, float | None]] = {}
        loads = self._loads
        for i, key in enumerate(keys):
            raw, ms = replies[2 * i], replies[2 * i + 1]
            if raw is not None and ms != -2:
                found[key] = (loads(raw), self._pttl(ms))
        self._count(hits=len(found), misses=len(keys) - len(found))
        return found
