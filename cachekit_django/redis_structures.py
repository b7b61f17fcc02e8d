"""django-redis 7's data-structure methods on the Redis backends: hashes, sets, sorted sets.

Same names, signatures, return types and encoding as django-redis's ``DefaultClient``: keys are
made as any other (``KEY_PREFIX``, ``VERSION``, ``KEY_FUNCTION``) and stored under the provider's
``prefix`` (so ``clear()``, ``delete_pattern``, ``ttl``/``expire``/``persist`` and ``delete``
cover them), set and sorted-set members and hash values are encoded with the provider's
serializer (ints as bare decimals), hash fields are plain, scores are numbers. Each command runs
on the provider's redis-py client behind its circuit breaker (an outage raises
``RedisUnavailable``, or returns ``None`` with ``fail_open``, as django-redis's
``IGNORE_EXCEPTIONS`` does). django-redis's ``client=`` argument is not taken.

Differences: ``smove`` makes the destination key with ``version`` too (django-redis: the default
version); ``sscan``/``sscan_iter`` ``match`` globs str members under any compressor (members
long enough to be compressed do not match) and is refused with a signing ``secret``; on
Redis Cluster the commands over several keys (``sdiff``, ``sinter``, ``sunion``, their
``...store``, ``smove``) raise :class:`~cachekit.errors.UnsupportedOperation`, as every key has
a slot of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from cachekit.errors import UnsupportedOperation

if TYPE_CHECKING:
    from cachekit.providers.redis import RedisCache as RedisProvider

__all__ = ["RedisStructuresMixin"]


class RedisStructuresMixin:
    """django-redis's hash, set and sorted-set methods, for a backend over a Redis provider."""

    _cachekit: Any

    if TYPE_CHECKING:

        def make_and_validate_key(self, key: Any, version: int | None = None) -> str: ...

    # -- plumbing ---------------------------------------------------------------------------------

    def _redis(self) -> RedisProvider:
        from cachekit.providers.redis import RedisCache as RedisProvider

        core = self._cachekit
        if not isinstance(core, RedisProvider):
            error = getattr(core, "_error", None)  # an unconfigured entry: its own error
            if isinstance(error, Exception):
                raise error
            raise UnsupportedOperation(f"{core.provider_name}:// caches have no Redis data types")
        return core

    def _rkey(self, key: Any, version: int | None) -> str:
        from cachekit.providers import redis_raw

        return redis_raw.data_key(self._redis(), self.make_and_validate_key(key, version))

    def _rkeys(self, op: str, keys: tuple[Any, ...], version: int | None) -> list[str]:
        from cachekit.providers import redis_raw

        made = [self.make_and_validate_key(key, version) for key in keys]
        return redis_raw.data_keys(self._redis(), made, op)

    def _run(self, op: str, fn: Callable[[Any], Any]) -> Any:
        from cachekit.providers import redis_raw

        return redis_raw.call(self._redis(), op, fn)

    def _enc(self, value: Any) -> bytes:
        from cachekit.providers import redis_raw

        return redis_raw.encode(self._redis(), value)

    def _dec(self, raw: bytes) -> Any:
        from cachekit.providers import redis_raw

        return redis_raw.decode(self._redis(), raw)

    def _decoded_set(self, raws: Any) -> Any:
        return None if raws is None else {self._dec(raw) for raw in raws}

    def _scored(self, result: Any, withscores: bool) -> Any:
        if result is None:
            return None
        if withscores:
            return [(self._dec(member), score) for member, score in result]
        return [self._dec(member) for member in result]

    # -- hashes -----------------------------------------------------------------------------------

    def hset(
        self,
        key: Any,
        field: Any = None,
        value: Any = None,
        mapping: Mapping[Any, Any] | None = None,
        version: int | None = None,
    ) -> int | None:
        """Set ``field`` (plain, not encoded) to ``value`` (encoded), and/or every item of
        ``mapping``; how many fields were added."""
        rkey = self._rkey(key, version)
        encoded = None if value is None else self._enc(value)
        items = None if mapping is None else {f: self._enc(v) for f, v in mapping.items()}
        return self._run("hset", lambda c: int(c.hset(rkey, field, encoded, items)))

    def hdel(self, key: Any, field: Any, version: int | None = None) -> int | None:
        """Remove ``field``; how many fields were removed (0 or 1)."""
        rkey = self._rkey(key, version)
        return self._run("hdel", lambda c: int(c.hdel(rkey, field)))

    def hlen(self, key: Any, version: int | None = None) -> int | None:
        rkey = self._rkey(key, version)
        return self._run("hlen", lambda c: int(c.hlen(rkey)))

    def hkeys(self, key: Any, version: int | None = None) -> list[str] | None:
        """The hash's fields, as str."""
        rkey = self._rkey(key, version)
        return self._run(
            "hkeys",
            lambda c: [f.decode() if isinstance(f, bytes) else f for f in c.hkeys(rkey)],
        )

    def hexists(self, key: Any, field: Any, version: int | None = None) -> bool | None:
        rkey = self._rkey(key, version)
        return self._run("hexists", lambda c: bool(c.hexists(rkey, field)))

    # -- sets -------------------------------------------------------------------------------------

    def sadd(self, key: Any, *values: Any, version: int | None = None) -> int | None:
        """Add ``values`` (encoded); how many were not there yet."""
        rkey = self._rkey(key, version)
        members = [self._enc(v) for v in values]
        return self._run("sadd", lambda c: int(c.sadd(rkey, *members)))

    def scard(self, key: Any, version: int | None = None) -> int | None:
        rkey = self._rkey(key, version)
        return self._run("scard", lambda c: int(c.scard(rkey)))

    def sdiff(self, *keys: Any, version: int | None = None) -> set[Any] | None:
        rkeys = self._rkeys("sdiff", keys, version)
        return self._run("sdiff", lambda c: self._decoded_set(c.sdiff(*rkeys)))

    def sdiffstore(
        self,
        dest: Any,
        *keys: Any,
        version_dest: int | None = None,
        version_keys: int | None = None,
    ) -> int | None:
        """Store the difference of ``keys`` (at ``version_keys``) in ``dest`` (at
        ``version_dest``); its size."""
        rdest = self._rkey(dest, version_dest)
        rkeys = self._rkeys("sdiffstore", keys, version_keys)
        self._same_slot("sdiffstore", rdest, rkeys)
        return self._run("sdiffstore", lambda c: int(c.sdiffstore(rdest, *rkeys)))

    def sinter(self, *keys: Any, version: int | None = None) -> set[Any] | None:
        rkeys = self._rkeys("sinter", keys, version)
        return self._run("sinter", lambda c: self._decoded_set(c.sinter(*rkeys)))

    def sinterstore(self, dest: Any, *keys: Any, version: int | None = None) -> int | None:
        rdest = self._rkey(dest, version)
        rkeys = self._rkeys("sinterstore", keys, version)
        self._same_slot("sinterstore", rdest, rkeys)
        return self._run("sinterstore", lambda c: int(c.sinterstore(rdest, *rkeys)))

    def smismember(self, key: Any, *members: Any, version: int | None = None) -> list[bool] | None:
        rkey = self._rkey(key, version)
        encoded = [self._enc(m) for m in members]
        return self._run("smismember", lambda c: [bool(v) for v in c.smismember(rkey, *encoded)])

    def sismember(self, key: Any, member: Any, version: int | None = None) -> bool | None:
        rkey = self._rkey(key, version)
        encoded = self._enc(member)
        return self._run("sismember", lambda c: bool(c.sismember(rkey, encoded)))

    def smembers(self, key: Any, version: int | None = None) -> set[Any] | None:
        rkey = self._rkey(key, version)
        return self._run("smembers", lambda c: self._decoded_set(c.smembers(rkey)))

    def smove(
        self, source: Any, destination: Any, member: Any, version: int | None = None
    ) -> bool | None:
        """Move ``member`` from ``source`` to ``destination`` (both at ``version``); whether it
        was in ``source``."""
        rsource = self._rkey(source, version)
        rdest = self._rkey(destination, version)
        self._same_slot("smove", rdest, [rsource])
        encoded = self._enc(member)
        return self._run("smove", lambda c: bool(c.smove(rsource, rdest, encoded)))

    def spop(self, key: Any, count: int | None = None, version: int | None = None) -> Any:
        """Remove and return a random member (``count=None``; ``None`` if empty) or a set of up
        to ``count`` members."""
        rkey = self._rkey(key, version)
        return self._run("spop", lambda c: self._one_or_many(c.spop(rkey, count), set))

    def srandmember(self, key: Any, count: int | None = None, version: int | None = None) -> Any:
        """A random member (``count=None``) or a list of ``count`` members, not removed."""
        rkey = self._rkey(key, version)
        return self._run(
            "srandmember", lambda c: self._one_or_many(c.srandmember(rkey, count), list)
        )

    def _one_or_many(self, result: Any, container: type) -> Any:
        if result is None:
            return None
        if isinstance(result, list | set):
            return container(self._dec(raw) for raw in result)
        return self._dec(result)

    def srem(self, key: Any, *members: Any, version: int | None = None) -> int | None:
        rkey = self._rkey(key, version)
        encoded = [self._enc(m) for m in members]
        return self._run("srem", lambda c: int(c.srem(rkey, *encoded)))

    def sscan(
        self,
        key: Any,
        match: str | None = None,
        count: int | None = 10,
        version: int | None = None,
    ) -> set[Any] | None:
        """One ``SSCAN`` page from the start (as django-redis's): the members it returns,
        filtered by ``match``, a glob over str members."""
        rkey = self._rkey(key, version)
        pattern = self._match(match)
        return self._run(
            "sscan",
            lambda c: self._decoded_set(c.sscan(rkey, 0, match=pattern, count=count)[1]),
        )

    def sscan_iter(
        self,
        key: Any,
        match: str | None = None,
        count: int | None = 10,
        version: int | None = None,
    ) -> Iterator[Any]:
        """Every member (matching ``match``), read page by page."""
        rkey = self._rkey(key, version)
        pattern = self._match(match)
        cursor: int | None = None
        while cursor != 0:
            page = self._run(
                "sscan_iter",
                lambda c, at=cursor or 0: c.sscan(rkey, at, match=pattern, count=count),
            )
            if page is None:  # failing open
                return
            cursor, raws = page
            for raw in raws:
                yield self._dec(raw)

    def _match(self, match: str | None) -> bytes | None:
        if not match:
            return None
        from cachekit.providers import redis_raw

        return redis_raw.match_pattern(self._redis(), match)

    def sunion(self, *keys: Any, version: int | None = None) -> set[Any] | None:
        rkeys = self._rkeys("sunion", keys, version)
        return self._run("sunion", lambda c: self._decoded_set(c.sunion(*rkeys)))

    def sunionstore(self, destination: Any, *keys: Any, version: int | None = None) -> int | None:
        rdest = self._rkey(destination, version)
        rkeys = self._rkeys("sunionstore", keys, version)
        self._same_slot("sunionstore", rdest, rkeys)
        return self._run("sunionstore", lambda c: int(c.sunionstore(rdest, *rkeys)))

    def _same_slot(self, op: str, dest: str, keys: list[str]) -> None:
        if self._redis().hash_tags and any(k != dest for k in keys):
            raise UnsupportedOperation(
                f"{op}: on Redis Cluster each key has a slot of its own (cachekit hash-tags the "
                "whole key), so a command over several keys cannot run"
            )

    # -- sorted sets ------------------------------------------------------------------------------

    def zadd(  # noqa: PLR0917 - django-redis's positional signature
        self,
        key: Any,
        mapping: Mapping[Any, float],
        nx: bool = False,
        xx: bool = False,
        ch: bool = False,
        incr: bool = False,
        gt: bool = False,
        lt: bool = False,
        version: int | None = None,
    ) -> int | float | None:
        """Add ``mapping``'s members (encoded) with their scores; redis-py's ``zadd`` result (how
        many were added, or the new score with ``incr=True``)."""
        rkey = self._rkey(key, version)
        encoded = {self._enc(member): score for member, score in mapping.items()}
        return self._run(
            "zadd",
            lambda c: c.zadd(rkey, encoded, nx=nx, xx=xx, ch=ch, incr=incr, gt=gt, lt=lt),
        )

    def zcard(self, key: Any, version: int | None = None) -> int | None:
        rkey = self._rkey(key, version)
        return self._run("zcard", lambda c: c.zcard(rkey))

    def zcount(
        self, key: Any, min: float | str, max: float | str, version: int | None = None
    ) -> int | None:
        rkey = self._rkey(key, version)
        return self._run("zcount", lambda c: c.zcount(rkey, min, max))

    def zincrby(
        self, key: Any, amount: float, value: Any, version: int | None = None
    ) -> float | None:
        rkey = self._rkey(key, version)
        encoded = self._enc(value)
        return self._run("zincrby", lambda c: c.zincrby(rkey, amount, encoded))

    def zpopmax(self, key: Any, count: int | None = None, version: int | None = None) -> Any:
        """Remove and return the highest-scored ``(member, score)`` (``count=None``; ``None`` if
        empty) or a list of up to ``count`` of them."""
        return self._zpop("zpopmax", key, count, version)

    def zpopmin(self, key: Any, count: int | None = None, version: int | None = None) -> Any:
        """As :meth:`zpopmax`, lowest scores first."""
        return self._zpop("zpopmin", key, count, version)

    def _zpop(self, op: str, key: Any, count: int | None, version: int | None) -> Any:
        rkey = self._rkey(key, version)
        result = self._run(op, lambda c: getattr(c, op)(rkey, count))
        if not result:
            return None if count is None else []
        decoded = [(self._dec(member), score) for member, score in result]
        return decoded[0] if count is None else decoded

    def zrange(  # noqa: PLR0917 - django-redis's positional signature
        self,
        key: Any,
        start: int,
        end: int,
        desc: bool = False,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
    ) -> list[Any] | None:
        rkey = self._rkey(key, version)
        result = self._run(
            "zrange",
            lambda c: c.zrange(
                rkey, start, end, desc=desc, withscores=withscores, score_cast_func=score_cast_func
            ),
        )
        return self._scored(result, withscores)

    def zrangebyscore(  # noqa: PLR0917 - django-redis's positional signature
        self,
        key: Any,
        min: float | str,
        max: float | str,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
    ) -> list[Any] | None:
        bounds = (min, max)
        return self._by_score(
            "zrangebyscore", key, bounds, start, num, withscores, score_cast_func, version
        )

    def zrank(
        self, key: Any, value: Any, withscore: bool = False, version: int | None = None
    ) -> Any:
        """The member's 0-based rank by ascending score (``None`` if absent); with
        ``withscore=True``, ``[rank, score]``."""
        rkey = self._rkey(key, version)
        encoded = self._enc(value)
        if withscore:
            return self._run("zrank", lambda c: c.zrank(rkey, encoded, withscore=True))
        return self._run("zrank", lambda c: c.zrank(rkey, encoded))

    def zrem(self, key: Any, *values: Any, version: int | None = None) -> int | None:
        rkey = self._rkey(key, version)
        encoded = [self._enc(v) for v in values]
        return self._run("zrem", lambda c: c.zrem(rkey, *encoded))

    def zremrangebyscore(
        self, key: Any, min: float | str, max: float | str, version: int | None = None
    ) -> int | None:
        rkey = self._rkey(key, version)
        return self._run("zremrangebyscore", lambda c: c.zremrangebyscore(rkey, min, max))

    def zrevrange(  # noqa: PLR0917 - django-redis's positional signature
        self,
        key: Any,
        start: int,
        end: int,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
    ) -> list[Any] | None:
        rkey = self._rkey(key, version)
        result = self._run(
            "zrevrange",
            lambda c: c.zrevrange(
                rkey, start, end, withscores=withscores, score_cast_func=score_cast_func
            ),
        )
        return self._scored(result, withscores)

    def zrevrangebyscore(  # noqa: PLR0917 - django-redis's positional signature
        self,
        key: Any,
        max: float | str,
        min: float | str,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
    ) -> list[Any] | None:
        bounds = (max, min)
        return self._by_score(
            "zrevrangebyscore", key, bounds, start, num, withscores, score_cast_func, version
        )

    def _by_score(  # noqa: PLR0917 - the two methods' arguments, passed on
        self,
        op: str,
        key: Any,
        bounds: tuple[float | str, float | str],
        start: int | None,
        num: int | None,
        withscores: bool,
        score_cast_func: type,
        version: int | None,
    ) -> list[Any] | None:
        """``ZRANGEBYSCORE``/``ZREVRANGEBYSCORE`` (``bounds`` in the command's own order)."""
        rkey = self._rkey(key, version)
        result = self._run(
            op,
            lambda c: getattr(c, op)(
                rkey,
                *bounds,
                start=start,
                num=num,
                withscores=withscores,
                score_cast_func=score_cast_func,
            ),
        )
        return self._scored(result, withscores)

    def zscore(self, key: Any, value: Any, version: int | None = None) -> float | None:
        rkey = self._rkey(key, version)
        encoded = self._enc(value)
        return self._run("zscore", lambda c: c.zscore(rkey, encoded))
