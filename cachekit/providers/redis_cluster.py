"""Redis Cluster: ``redis+cluster://h1:7000,h2:7001[?options]`` (redis-py's ``RedisCluster``).

Same semantics and options as :class:`~cachekit.providers.redis.RedisCache`; what differs is
where keys live. A Lua script on a cluster may only touch keys of one hash slot, declared in
``KEYS``; the standalone scripts touch tag sets of other slots. So (see ``docs/redis.md``):

Key layout. Each user key ``K`` is wrapped in a hash tag, so that everything about one entry
lives in one slot (``P`` the prefix, ``M`` the meta namespace)::

    P{K}            the value
    M k:{K}         SET of K's tags            (same PX as the value)
    M s:{K}         get_or_set stampede lock
    M t:TAG         SET of the keys with TAG   (anywhere: the tag's own slot)
    M l:NAME        cache.lock(NAME)

An entry's writes (value + side set) are therefore still one atomic script. Keys whose first
character is ``}`` are refused (``InvalidKey``): ``P{}...`` would have an empty hash tag and its
keys would hash apart. A prefix may not contain braces (it would capture the hash tag).

Tags span slots, so tag sets are maintained in two steps, ordered so that no interleaving
loses a tagged entry:

* a write runs the entry's script first, then ``TAG_SET`` on each tag set (add the key, extend
  the set's TTL). A write is complete when both are done.
* ``invalidate_tags`` reads each tag set (``SMEMBERS``, and its ``PTTL``), removes exactly the
  members it read (``SREM``, so a member added meanwhile stays), then deletes, per slot, the
  entries whose side set still lists the tag (``INVALIDATE_SLOT``). A write racing with it is
  either deleted or keeps its membership (its ``TAG_SET`` comes after its value). The ``SREM``
  must come first (after the deletions, it could drop a member re-written meanwhile); so if a
  deletion fails, the members read are put back (``TAG_SET``, with the set's TTL) before the
  error is raised, and a retry finds them.

Tag sets are not cleaned on delete or overwrite (that would race with a concurrent re-tag):
stale members cost their name until the set expires or the tag is invalidated, and never
delete anything (the side set is checked).

Multi-key operations go per slot: ``get_many`` is ``MGET`` per slot (redis-py's
``mget_nonatomic``), ``set_many``/``delete_many`` one script per slot; all through a cluster
pipeline, which sends one batch per node - round trips are bounded by the number of primaries,
not of keys. ``clear``/``delete_pattern`` ``SCAN`` every primary.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import redis.exceptions
from redis.crc import key_slot

from ..config import ParsedURL
from ..errors import ConfigurationError, InvalidKey
from ..interfaces import check_key
from . import redis_scripts as lua
from .redis import RedisCache
from .redis_conn import UNAVAILABLE
from .redis_wire import Values

__all__ = ["RedisClusterCache"]

_Call = tuple[lua.Script, list[str], list[Any]]

log = logging.getLogger(__name__)
#: What a failed restore of tag sets may raise (logged: the invalidation's own error is raised).
_RESTORE_ERRORS: tuple[type[Exception], ...] = (*UNAVAILABLE, redis.exceptions.RedisError)


class RedisClusterCache(RedisCache):
    """A cache on a Redis Cluster; every entry's keys share one hash slot."""

    provider_name = "redis+cluster"
    schemes: ClassVar[tuple[str, ...]] = ("redis+cluster",)
    hash_tags: ClassVar[bool] = True
    plain_writes: ClassVar[bool] = False  # MULTI spans one node only: keep the per-slot script
    _native_scan_cursor = False  # one SCAN cursor per primary: page over a sorted snapshot

    __slots__ = ()

    def __init__(
        self, url: str | ParsedURL = "redis+cluster://127.0.0.1:7000", **options: Any
    ) -> None:
        super().__init__(url, **options)
        if "{" in self._prefix or "}" in self._prefix:
            raise ConfigurationError(
                f"a cluster cache's prefix may not contain braces (hash tags): {self._prefix!r}",
                key="prefix",
            )

    def _check_key(self, key: Any) -> str:
        checked: str = check_key(key)
        if checked[0] == "}":
            raise InvalidKey(f"a Redis Cluster key may not start with '}}': {checked!r}")
        return checked

    # -- grouping by slot ------------------------------------------------------------------------

    def _slot(self, key: str) -> int:
        return int(key_slot((self._kopen + key + self._kclose).encode()))

    def _by_slot(self, keys: Iterable[str]) -> dict[int, list[str]]:
        groups: dict[int, list[str]] = defaultdict(list)
        for key in keys:
            if type(key) is not str or not key or key[0] == "}":
                self._check_key(key)  # raises InvalidKey
            groups[self._slot(key)].append(key)
        return groups

    def _store_calls(
        self, mapping: Mapping[str, Any], seconds: float | None, mode: str, tags: frozenset[str]
    ) -> list[_Call]:
        calls: list[_Call] = []
        for group in self._by_slot(mapping).values():
            sub = {key: mapping[key] for key in group}
            keys, args = self._store_args(sub, seconds, mode, tags)  # type: ignore[arg-type]
            calls.append((lua.STORE, keys, args))
        return calls

    def _tag_calls(self, tags: Iterable[str], ms: int, members: list[str]) -> list[_Call]:
        return [(lua.TAG_SET, [self._tag_prefix + tag], [ms, *members]) for tag in tags]

    def _delete_calls(self, keys: Iterable[str]) -> list[_Call]:
        extra: list[Any] = ["", self._prefix_len]  # "": leave the tag sets alone
        return [
            (lua.DELETE, self._delete_args(group), extra) for group in self._by_slot(keys).values()
        ]

    def _invalidate_calls(self, members: dict[str, list[str]]) -> list[_Call]:
        calls: list[_Call] = []
        for tag, keys in members.items():
            for group in self._by_slot(keys).values():
                calls.append((lua.INVALIDATE_SLOT, self._delete_args(group), [tag]))
        return calls

    # -- running scripts: one pipeline, one batch per node -----------------------------------------

    def _run(self, calls: list[_Call]) -> list[Any]:
        client = self._sync()
        if len(calls) == 1:
            script, keys, args = calls[0]
            return [script(client, keys, args)]
        pipe = client.pipeline(transaction=False)
        for script, keys, args in calls:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        results: list[Any] = pipe.execute(raise_on_error=False)
        for i, result in enumerate(results):
            if isinstance(result, redis.exceptions.NoScriptError):  # first use on that node
                script, keys, args = calls[i]
                results[i] = script(client, keys, args)
            elif isinstance(result, Exception):
                raise result
        return results

    async def _arun(self, calls: list[_Call]) -> list[Any]:
        client = self._clients.aclient()
        if len(calls) == 1:
            script, keys, args = calls[0]
            return [await script.acall(client, keys, args)]
        pipe = client.pipeline(transaction=False)
        for script, keys, args in calls:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        for i, result in enumerate(results):
            if isinstance(result, redis.exceptions.NoScriptError):
                script, keys, args = calls[i]
                results[i] = await script.acall(client, keys, args)
            elif isinstance(result, Exception):
                raise result
        return results

    # -- the multi-key primitives, per slot ------------------------------------------------------

    def _store_raw(
        self, mapping: Mapping[str, Any], seconds: float | None, mode: str, tags: frozenset[str]
    ) -> int:
        stored = sum(self._run(self._store_calls(mapping, seconds, mode, tags)))
        if tags and stored:  # after the values: see the module docstring
            ms = 0 if seconds is None else lua.px(seconds)
            self._run(self._tag_calls(sorted(tags), ms, list(mapping)))
        return int(stored)

    async def _astore_raw(
        self, mapping: Mapping[str, Any], seconds: float | None, mode: str, tags: frozenset[str]
    ) -> int:
        stored = sum(await self._arun(self._store_calls(mapping, seconds, mode, tags)))
        if tags and stored:
            ms = 0 if seconds is None else lua.px(seconds)
            await self._arun(self._tag_calls(sorted(tags), ms, list(mapping)))
        return int(stored)

    def _delete_raw(self, keys: Iterable[str]) -> int:
        calls = self._delete_calls(keys)
        return sum(self._run(calls)) if calls else 0

    async def _adelete_raw(self, keys: Iterable[str]) -> int:
        calls = self._delete_calls(keys)
        return sum(await self._arun(calls)) if calls else 0

    def _touch_raw(self, key: str, px_: int) -> bool:
        keys = [self._kopen + key + self._kclose, self._side_prefix + key + self._kclose]
        tags = lua.TOUCH_SLOT(self._sync(), keys, [px_])
        if tags == 0:
            return False
        if tags:
            self._run(self._tag_calls(self._members(tags), px_, []))
        return True

    async def _atouch_raw(self, key: str, px_: int) -> bool:
        keys = [self._kopen + key + self._kclose, self._side_prefix + key + self._kclose]
        tags = await lua.TOUCH_SLOT.acall(self._clients.aclient(), keys, [px_])
        if tags == 0:
            return False
        if tags:
            await self._arun(self._tag_calls(self._members(tags), px_, []))
        return True

    def _invalidate_raw(self, tags: list[str]) -> int:
        client = self._sync()
        pipe = client.pipeline(transaction=False)
        self._queue_tag_reads(pipe, tags)
        read = self._tag_sets(tags, pipe.execute())
        if not read:
            return 0
        pipe = client.pipeline(transaction=False)
        for tag, (raw, _) in read.items():
            pipe.srem(self._tag_prefix + tag, *raw)  # exactly what was read (see the docstring)
        try:
            pipe.execute()
            calls = self._invalidate_calls(
                {tag: self._members(raw) for tag, (raw, _) in read.items()}
            )
            return sum(self._run(calls))
        except BaseException:
            # Put the members back, or a retry would find nothing while the entries live on.
            try:
                self._run(self._restore_calls(read))
            except _RESTORE_ERRORS as exc:
                self._restore_failed(read, exc)
            raise

    async def _ainvalidate_raw(self, tags: list[str]) -> int:
        client = self._clients.aclient()
        pipe = client.pipeline(transaction=False)
        self._queue_tag_reads(pipe, tags)
        read = self._tag_sets(tags, await pipe.execute())
        if not read:
            return 0
        pipe = client.pipeline(transaction=False)
        for tag, (raw, _) in read.items():
            pipe.srem(self._tag_prefix + tag, *raw)
        try:
            await pipe.execute()
            calls = self._invalidate_calls(
                {tag: self._members(raw) for tag, (raw, _) in read.items()}
            )
            return sum(await self._arun(calls))
        except BaseException:
            try:
                await self._arun(self._restore_calls(read))
            except _RESTORE_ERRORS as exc:
                self._restore_failed(read, exc)
            raise

    def _queue_tag_reads(self, pipe: Any, tags: list[str]) -> None:
        """Per tag: its members and its TTL (one slot: one batch per node)."""
        for tag in tags:
            pipe.smembers(self._tag_prefix + tag)
            pipe.pttl(self._tag_prefix + tag)

    @staticmethod
    def _tag_sets(tags: list[str], replies: list[Any]) -> dict[str, tuple[list[bytes], int]]:
        """The non-empty tag sets read by ``_queue_tag_reads``: members as stored, and the
        ``px`` that gives a re-created set its TTL back (0: it had none)."""
        read: dict[str, tuple[list[bytes], int]] = {}
        for i, tag in enumerate(tags):
            members, ms = replies[2 * i], replies[2 * i + 1]
            if members:
                read[tag] = (sorted(members), 0 if ms == -1 else max(int(ms), 1))
        return read

    def _restore_calls(self, read: dict[str, tuple[list[bytes], int]]) -> list[_Call]:
        # TAG_SET re-creates an emptied set with its TTL and only extends one written meanwhile;
        # stale members are harmless (every deletion checks the entry's side set).
        return [
            (lua.TAG_SET, [self._tag_prefix + tag], [ms, *raw]) for tag, (raw, ms) in read.items()
        ]

    def _restore_failed(self, read: dict[str, tuple[list[bytes], int]], exc: BaseException) -> None:
        log.warning(
            "cache %r: invalidate_tags failed and its tag sets could not be restored (%s): "
            "%d member(s) of %s are no longer found by tag and live until their TTL",
            self.name,
            exc,
            sum(len(raw) for raw, _ in read.values()),
            sorted(read),
        )

    def _execute(self, *args: Any) -> Any:
        return self._sync().execute_command(*args)

    def _get_large(self, data: str) -> tuple[bytes | None, bool]:
        return self._sync().execute_command("GET", data), True

    def _mget_raw(self, keys: list[str], data: list[str] | None = None) -> Values:
        prefix, close = self._kopen, self._kclose
        result: list[bytes | None] = self._sync().mget_nonatomic([prefix + k + close for k in keys])
        return result, None  # every payload with its envelope

    async def _amget_raw(self, keys: list[str]) -> list[bytes | None]:
        prefix, close = self._kopen, self._kclose
        client = self._clients.aclient()
        result: list[bytes | None] = await client.mget_nonatomic([prefix + k + close for k in keys])
        return result

    # -- stats -------------------------------------------------------------------------------------

    def _server_info(self, client: Any) -> dict[str, Any]:
        """``INFO all`` of every primary, summed (``redis_version`` of one of them)."""
        return _summed(client.info("all", target_nodes=client.PRIMARIES))

    async def _aserver_info(self, client: Any) -> dict[str, Any]:
        return _summed(await client.info("all", target_nodes=client.PRIMARIES))


def _summed(per_node: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-primary ``INFO`` figures as one server's."""
    total: dict[str, Any] = {"used_memory": 0, "evicted_keys": 0, "expired_keys": 0}
    keys = 0
    for info in per_node.values():
        for name in ("used_memory", "evicted_keys", "expired_keys"):
            total[name] += int(info.get(name, 0))
        keys += int(info.get("db0", {}).get("keys", 0))
        total["redis_version"] = info.get("redis_version", "")
    total["db0"] = {"keys": keys}
    total["cluster_primaries"] = len(per_node)
    return total
