"""The Redis provider: ``redis://``, ``rediss://``, ``unix://`` and ``redis+sentinel://``.

Each contract operation is one round trip with the cheapest correct command (see the table in
``docs/redis.md``): ``get`` is ``GET``, ``get_many`` one ``MGET``, ``exists`` ``EXISTS``, ``ttl``
``PTTL``; writes that must keep tags consistent (``set``, ``add``, ``set_many``, ``delete``,
``touch``, ``invalidate_tags``) and ``incr`` (which gives a key it creates the default TTL) are
single Lua scripts from :mod:`.redis_scripts`, which also documents the key layout and the tag
design. ``clear`` and ``delete_pattern`` walk only this cache's prefix with ``SCAN MATCH`` and
remove in batches; never ``KEYS``, and ``FLUSHDB`` only with ``flushdb_on_clear=true``.

Failures: every driver error that means "the server is not there" (connection, timeout, a
read-only replica after a failover) goes through a :class:`~cachekit.resilience.CircuitBreaker`
and then :class:`~cachekit.resilience.FailOpen`: it raises
:class:`~cachekit.errors.BackendUnavailable` with the cause chained, or, with ``fail_open=true``,
is counted and logged and the call answers "miss"/"nothing done". While the breaker is open,
calls fail at once without touching the network. ``incr`` never fails open: there is no honest
number to return.

Connections live in :class:`.redis_conn.RedisClients`, built lazily: constructing a cache never
connects.
"""

from __future__ import annotations

import inspect
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, ClassVar

import redis.exceptions

from ..config import (
    Option,
    ParsedURL,
    bool_option,
    int_option,
    parse_options,
    parse_url,
    seconds_option,
)
from ..errors import BackendUnavailable, CacheError, ConfigurationError, InvalidKey, NotAnInteger
from ..interfaces import DistributedCache, check_key, check_tags
from ..resilience import CircuitBreaker, FailOpen
from ..sentinels import DEFAULT, MISSING
from ..serialization import SERIALIZERS, Serializer, make_serializer
from ..stats import CacheStats
from ..ttl import TTLArg, check_default_ttl, resolve_ttl, to_seconds
from . import redis_scripts as lua
from .redis_conn import RedisClients, cert_reqs_option, settings_from_url
from .redis_lock import AsyncCacheLock, CacheLock

__all__ = ["RedisCache"]

#: Errors meaning the server cannot be used now: they feed the breaker and fail-open.
_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
)
#: Keys per SCAN page and per UNLINK/DELETE batch in clear() and delete_pattern().
SCAN_BATCH = 1000
_RAISE: Any = object()  # fallback meaning "fail closed even when fail_open is set"
_GLOB_SPECIALS = str.maketrans({c: "\\" + c for c in "*?[]\\"})


def _str_option(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _serializer_option(value: Any) -> Any:
    if isinstance(value, Serializer) or (isinstance(value, str) and value in SERIALIZERS):
        return value
    raise ValueError(f"expected one of {', '.join(sorted(SERIALIZERS))} or a Serializer")


def _px(seconds: float) -> int:
    """Seconds as Redis milliseconds; a positive TTL never rounds down to 0 (= no expiry)."""
    return max(1, round(seconds * 1000))


def _escape_glob(text: str) -> str:
    return text.translate(_GLOB_SPECIALS)


def _meta_prefix(prefix: str) -> str:
    """The prefix's last character replaced: no ``prefix + key`` can start with the result."""
    return prefix[:-1] + ("#" if prefix[-1] != "#" else "%")


class RedisCache(DistributedCache):
    """A cache on a Redis server (standalone, TLS, unix socket or behind Sentinel)."""

    provider_name = "redis"

    #: Options accepted in the URL's query string and in config dicts.
    options: ClassVar[dict[str, Option]] = {
        "name": Option(_str_option, "a name for stats, metrics and the default prefix"),
        "prefix": Option(_str_option, "a non-empty key prefix (namespace)"),
        "default_ttl": seconds_option(),
        "serializer": Option(_serializer_option, "a serializer name or a Serializer"),
        "compression": Option(_str_option, "auto, none, zlib, zstd..."),
        "compress_threshold": int_option(minimum=0),
        "secret": Option(_str_option, "an HMAC key signing stored values"),
        "max_connections": int_option(minimum=1, allow_none=True),
        "socket_timeout": seconds_option(),
        "socket_connect_timeout": seconds_option(),
        "retries": int_option(minimum=0, maximum=10),
        "health_check_interval": seconds_option(allow_none=False, positive=False),
        "fail_open": bool_option(),
        "breaker_failures": int_option(minimum=1),
        "breaker_recovery": seconds_option(allow_none=False),
        "flushdb_on_clear": bool_option(),
        "stampede_timeout": seconds_option(),
        "db": int_option(minimum=0),
        "ssl_ca_certs": Option(_str_option, "a CA bundle path"),
        "ssl_certfile": Option(_str_option, "a client certificate path"),
        "ssl_keyfile": Option(_str_option, "a client key path"),
        "ssl_cert_reqs": Option(cert_reqs_option, "required, optional or none"),
        "ssl_check_hostname": bool_option(),
    }

    __slots__ = (
        "_breaker", "_client", "_clients", "_deletes", "_dumps", "_fail_open", "_flushdb",
        "_hits", "_loads", "_meta", "_misses", "_prefix", "_prefix_len", "_sets",
        "_side_prefix", "_stampede_timeout", "_started", "_started_wall", "_stats_lock",
        "_tag_prefix", "default_ttl", "prefix", "serializer",
    )  # fmt: skip

    def __init__(self, url: str | ParsedURL = "redis://127.0.0.1:6379/0", **options: Any) -> None:
        parsed = parse_url(url) if isinstance(url, str) else url
        if parsed.scheme not in ("redis", "rediss", "unix", "redis+sentinel"):
            raise ConfigurationError(f"not a Redis URL: {parsed.raw!r}", key="url")
        opts = parse_options(f"{parsed.scheme}://", {**parsed.options, **options}, self.options)
        name = opts.pop("name", "default")
        super().__init__(name=name)
        prefix = opts.pop("prefix", f"cachekit:{name}:")
        if not prefix:
            raise ConfigurationError("prefix must not be empty", key="prefix")
        self.prefix: str = prefix
        self._prefix = prefix
        self._prefix_len = len(prefix.encode())
        self._meta = meta = _meta_prefix(prefix)
        self._side_prefix = meta + "k:"
        self._tag_prefix = meta + "t:"
        self.default_ttl = check_default_ttl(opts.pop("default_ttl", None))
        serializer = opts.pop("serializer", "pickle")
        codec_options = {
            k: opts.pop(k) for k in ("compression", "compress_threshold", "secret") if k in opts
        }
        if isinstance(serializer, str):
            serializer = make_serializer(serializer, **codec_options)
        elif codec_options:
            raise ConfigurationError(
                "compression/secret options apply to a serializer given by name",
                key=next(iter(codec_options)),
            )
        self.serializer: Serializer = serializer
        self._dumps = serializer.dumps
        self._loads = serializer.loads
        self._flushdb: bool = opts.pop("flushdb_on_clear", False)
        self._stampede_timeout: float | None = opts.pop("stampede_timeout", 10.0)
        self._breaker = CircuitBreaker(
            failure_threshold=opts.pop("breaker_failures", 5),
            recovery_timeout=opts.pop("breaker_recovery", 5.0),
            name=name,
        )
        self._fail_open = FailOpen(opts.pop("fail_open", False), name=name)
        # What is left are connection options; the URL and them are checked now, used later.
        self._clients = RedisClients(settings_from_url(parsed, opts))
        self._client: Any = None
        self._stats_lock = threading.Lock()
        self._hits = self._misses = self._sets = self._deletes = 0
        self._started_wall = time.time()
        self._started = time.monotonic()

    @classmethod
    def from_url(cls, url: ParsedURL, options: Mapping[str, Any]) -> RedisCache:
        """Build from a parsed URL; ``options`` override its query string."""
        return cls(url, **options)

    def __repr__(self) -> str:
        return f"<RedisCache name={self.name!r} {self._clients.settings.describe()}>"

    # -- plumbing ---------------------------------------------------------------------------

    def _sync(self) -> Any:
        client = self._client
        if client is None:
            client = self._client = self._clients.sync()
        return client

    def _count(self, hits: int = 0, misses: int = 0, sets: int = 0, deletes: int = 0) -> None:
        with self._stats_lock:
            self._hits += hits
            self._misses += misses
            self._sets += sets
            self._deletes += deletes

    def _failed(self, op: str, exc: BaseException, fallback: Any) -> Any:
        """A failure: raise (fail-closed, or no honest fallback) or count it and fall back."""
        if isinstance(exc, redis.exceptions.ResponseError) and not isinstance(exc, _UNAVAILABLE):
            message = str(exc)
            if "not an integer" in message or "overflow" in message:
                raise NotAnInteger(f"cache {self.name!r}: {op}: {message}") from exc
            raise CacheError(f"cache {self.name!r}: {op}: server error: {message}") from exc
        if isinstance(exc, redis.exceptions.RedisError) and not isinstance(exc, _UNAVAILABLE):
            raise CacheError(f"cache {self.name!r}: {op}: {exc}") from exc
        self._fail_open.handle(op, exc)  # raises BackendUnavailable unless failing open
        if fallback is _RAISE:
            raise BackendUnavailable(f"cache {self.name!r}: {op} failed: {exc}") from exc
        return fallback

    def _open(self, op: str, fallback: Any) -> Any:
        retry_in = self._breaker.retry_in()
        error = BackendUnavailable(
            f"cache {self.name!r}: circuit breaker open, {op} not attempted "
            f"(next probe in {retry_in:.1f}s)"
        )
        return self._failed(op, error, fallback)

    def _call(self, op: str, fallback: Any, fn: Callable[..., Any], *args: Any) -> Any:
        breaker = self._breaker
        if not breaker.allow():
            return self._open(op, fallback)
        try:
            result = fn(*args)
        except _UNAVAILABLE as exc:
            breaker.failure()
            return self._failed(op, exc, fallback)
        except redis.exceptions.RedisError as exc:
            breaker.success()
            return self._failed(op, exc, fallback)
        breaker.success()
        return result

    async def _acall(self, op: str, fallback: Any, fn: Callable[..., Any], *args: Any) -> Any:
        breaker = self._breaker
        if not breaker.allow():
            return self._open(op, fallback)
        try:
            result = await fn(*args)
        except _UNAVAILABLE as exc:
            breaker.failure()
            return self._failed(op, exc, fallback)
        except redis.exceptions.RedisError as exc:
            breaker.success()
            return self._failed(op, exc, fallback)
        breaker.success()
        return result

    def _script(
        self, op: str, fallback: Any, script: lua.Script, keys: list[str], args: list[Any]
    ) -> Any:
        return self._call(op, fallback, script, self._sync(), keys, args)

    async def _ascript(
        self, op: str, fallback: Any, script: lua.Script, keys: list[str], args: list[Any]
    ) -> Any:
        return await self._acall(op, fallback, script.acall, self._clients.aclient(), keys, args)

    # -- argument builders shared by the sync and async paths ----------------------------------

    def _store_args(
        self, mapping: Mapping[str, Any], seconds: float, nx: bool, tags: frozenset[str] | None
    ) -> tuple[list[str], list[Any]]:
        prefix, side = self._prefix, self._side_prefix
        keys: list[str] = []
        values: list[bytes] = []
        dumps = self._dumps
        for raw_key, value in mapping.items():
            key = raw_key if type(raw_key) is str and raw_key else check_key(raw_key)
            keys.append(prefix + key)
            keys.append(side + key)
            values.append(dumps(value))
        tag_list = sorted(tags) if tags else []
        px = 0 if seconds is None else _px(seconds)
        args: list[Any] = [px, "1" if nx else "0", self._tag_prefix, self._prefix_len]
        return keys, [*args, len(tag_list), *tag_list, *values]

    def _delete_args(self, keys: Iterable[str]) -> list[str]:
        out: list[str] = []
        for raw_key in keys:
            key = raw_key if type(raw_key) is str and raw_key else check_key(raw_key)
            out.append(self._prefix + key)
            out.append(self._side_prefix + key)
        return out

    def _ttl(self, ttl: TTLArg) -> float | None:
        return resolve_ttl(ttl, self.default_ttl)

    def _decode(self, raw: bytes | None, default: Any) -> Any:
        return default if raw is None else self._loads(raw)

    # -- reads --------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        if type(key) is not str or not key:
            key = check_key(key)
        raw = self._call("get", None, self._sync().get, self._prefix + key)
        self._count(hits=raw is not None, misses=raw is None)
        return default if raw is None else self._loads(raw)

    def _peek(self, key: str) -> Any:
        raw = self._call("get", None, self._sync().get, self._prefix + key)
        return MISSING if raw is None else self._loads(raw)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = [k if type(k) is str and k else check_key(k) for k in keys]
        if not keys:
            return {}
        prefix = self._prefix
        raws = self._call("get_many", None, self._sync().mget, [prefix + k for k in keys])
        return self._found(keys, raws)

    def _found(self, keys: list[str], raws: list[bytes | None] | None) -> dict[str, Any]:
        if raws is None:  # failed open: every key missed
            self._count(misses=len(keys))
            return {}
        loads = self._loads
        found = {key: loads(raw) for key, raw in zip(keys, raws, strict=True) if raw is not None}
        self._count(hits=len(found), misses=len(keys) - len(found))
        return found

    def exists(self, key: str) -> bool:
        key = check_key(key)
        return bool(self._call("exists", 0, self._sync().exists, self._prefix + key))

    def ttl(self, key: str) -> float | None:
        key = check_key(key)
        return self._pttl(self._call("ttl", -2, self._sync().pttl, self._prefix + key))

    @staticmethod
    def _pttl(ms: int) -> float | None:
        if ms == -1:
            return None
        return 0.0 if ms < 0 else ms / 1000.0

    # -- writes --------------------------------------------------------------------------------

    def set(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> None:
        self.set_many({key: value}, ttl, tags=tags)

    def set_many(
        self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> list[str]:
        seconds = self._ttl(ttl)
        tagset = check_tags(tags)
        if seconds is not None and seconds <= 0:
            self.delete_many(mapping)
            return []
        if not mapping:
            return []
        keys, args = self._store_args(mapping, seconds, False, tagset)  # type: ignore[arg-type]
        stored = self._script("set", None, lua.STORE, keys, args)
        if stored is None:
            return list(mapping)
        self._count(sets=stored)
        return []

    def add(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> bool:
        key = check_key(key)
        seconds = self._ttl(ttl)
        tagset = check_tags(tags)
        if seconds is not None and seconds <= 0:
            return not self.exists(key)
        keys, args = self._store_args({key: value}, seconds, True, tagset)  # type: ignore[arg-type]
        stored = self._script("add", 0, lua.STORE, keys, args)
        self._count(sets=stored)
        return bool(stored)

    def delete(self, key: str) -> bool:
        return self.delete_many([key]) > 0

    def delete_many(self, keys: Iterable[str]) -> int:
        args = self._delete_args(keys)
        if not args:
            return 0
        removed = int(
            self._script("delete", 0, lua.DELETE, args, [self._tag_prefix, self._prefix_len])
        )
        self._count(deletes=removed)
        return removed

    def touch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        key = check_key(key)
        seconds = self._ttl(ttl)
        if seconds is not None and seconds <= 0:
            return self.delete(key)
        px = 0 if seconds is None else _px(seconds)
        keys = [self._prefix + key, self._side_prefix + key]
        return bool(self._script("touch", 0, lua.TOUCH, keys, [px, self._tag_prefix]))

    def incr(self, key: str, delta: int = 1) -> int:
        key = check_key(key)
        if type(delta) is not int:
            raise NotAnInteger(f"delta must be an int, got {delta!r}")
        px = 0 if self.default_ttl is None else _px(self.default_ttl)
        return int(self._script("incr", _RAISE, lua.INCR, [self._prefix + key], [delta, px]))

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        tagset = check_tags(tags)
        if not tagset:
            return 0
        args = [self._tag_prefix, self._side_prefix, self._prefix, *sorted(tagset)]
        removed = int(self._script("invalidate_tags", 0, lua.INVALIDATE, [], args))
        self._count(deletes=removed)
        return removed

    def delete_pattern(self, pattern: str) -> int:
        if not isinstance(pattern, str) or not pattern:
            raise InvalidKey(f"pattern must be a non-empty str, got {pattern!r}")
        return int(self._call("delete_pattern", 0, self._delete_matching, pattern))

    def _delete_matching(self, pattern: str) -> int:
        client, plen, removed = self._sync(), len(self._prefix), 0
        batch: list[str] = []
        match = _escape_glob(self._prefix) + pattern
        for raw in client.scan_iter(match=match, count=SCAN_BATCH):
            batch.append(raw.decode("utf-8", "surrogateescape")[plen:])
            if len(batch) >= SCAN_BATCH:
                removed += lua.DELETE(
                    client, self._delete_args(batch), [self._tag_prefix, self._prefix_len]
                )
                batch.clear()
        if batch:
            removed += lua.DELETE(
                client, self._delete_args(batch), [self._tag_prefix, self._prefix_len]
            )
        self._count(deletes=removed)
        return removed

    def clear(self) -> None:
        self._call("clear", None, self._clear)

    def _clear(self) -> None:
        client = self._sync()
        if self._flushdb:
            client.flushdb(asynchronous=True)
            return
        for namespace in (self._prefix, self._meta):
            batch: list[bytes] = []
            for raw in client.scan_iter(match=_escape_glob(namespace) + "*", count=SCAN_BATCH):
                batch.append(raw)
                if len(batch) >= SCAN_BATCH:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)

    # -- get_or_set with stampede protection across processes -------------------------------------

    def _get_or_set(
        self, key: str, default_or_factory: Any, ttl: TTLArg, add: Callable[[str, Any], bool]
    ) -> Any:
        if not callable(default_or_factory) or self._stampede_timeout is None:
            return super()._get_or_set(key, default_or_factory, ttl, add)
        if ttl is not DEFAULT:
            to_seconds(ttl)
        value = self.get(key, MISSING)
        if value is not MISSING:
            return value
        factory: Callable[[], Any] = default_or_factory
        return self._single_flight.do(key, lambda: self._compute_once(key, factory, add))

    def _compute_once(
        self, key: str, factory: Callable[[], Any], add: Callable[[str, Any], bool]
    ) -> Any:
        """The process-wide leader: compute under a short Redis lock, or wait for its holder."""
        timeout = self._stampede_timeout
        assert timeout is not None
        lock_key, token = self._meta + "s:" + key, uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            current = self._peek(key)
            if current is not MISSING:
                return current
            # Failing open (server down): compute without the lock rather than not at all.
            lock = partial(self._sync().set, lock_key, token, px=_px(timeout), nx=True)
            if self._call("lock", True, lock):
                try:
                    return self._add_or_current(key, factory(), add)
                finally:
                    self._script("unlock", None, lua.RELEASE, [lock_key], [token])
            if time.monotonic() + delay > deadline:  # the holder is too slow: compute too
                return self._add_or_current(key, factory(), add)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    # -- locks ----------------------------------------------------------------------------------

    def lock(
        self,
        name: str,
        *,
        timeout: float | None = 10.0,
        blocking_timeout: float | None = None,
        sleep: float = 0.05,
    ) -> CacheLock:
        """A distributed lock named ``name`` in this cache's namespace (see :mod:`.redis_lock`)."""
        name = check_key(name)
        lock = self._sync().lock(
            self._meta + "l:" + name,
            timeout=timeout,
            sleep=sleep,
            blocking_timeout=blocking_timeout,
            thread_local=False,
        )
        return CacheLock(lock, name)

    def alock(
        self,
        name: str,
        *,
        timeout: float | None = 10.0,
        blocking_timeout: float | None = None,
        sleep: float = 0.05,
    ) -> AsyncCacheLock:
        """The async twin of :meth:`lock` (use it inside the event loop that runs it)."""
        name = check_key(name)
        lock = self._clients.aclient().lock(
            self._meta + "l:" + name,
            timeout=timeout,
            sleep=sleep,
            blocking_timeout=blocking_timeout,
            thread_local=False,
        )
        return AsyncCacheLock(lock, name)

    # -- stats and life cycle -----------------------------------------------------------------

    def get_stats(self) -> CacheStats:
        """Client-side counters, plus server figures read now (see ``docs/redis.md``)."""
        items = memory = evictions = expirations = 0
        extra: dict[str, Any] = {
            **self._breaker.snapshot(),
            **self._fail_open.snapshot(),
            "server": self._clients.settings.describe(),
        }
        if self._breaker.allow():
            try:
                client = self._sync()
                items = sum(
                    1
                    for _ in client.scan_iter(
                        match=_escape_glob(self._prefix) + "*", count=SCAN_BATCH
                    )
                )
                info = client.info("all")
            except _UNAVAILABLE as exc:
                self._breaker.failure()
                extra["server_error"] = str(exc)
            else:
                self._breaker.success()
                memory = int(info.get("used_memory", 0))
                evictions = int(info.get("evicted_keys", 0))
                expirations = int(info.get("expired_keys", 0))
                extra["db_keys"] = int(
                    info.get(f"db{self._clients.settings.db}", {}).get("keys", 0)
                )
                extra["server_version"] = str(info.get("redis_version", ""))
        with self._stats_lock:
            hits, misses, sets, deletes = self._hits, self._misses, self._sets, self._deletes
        return CacheStats(
            name=self.name, provider=self.provider_name, items=items, hits=hits, misses=misses,
            sets=sets, deletes=deletes, evictions=evictions, expirations=expirations,
            memory_bytes=memory, memory_limit=None, max_entries=None, avg_get_seconds=None,
            started_at=self._started_wall, uptime=time.monotonic() - self._started, extra=extra,
        )  # fmt: skip

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._hits = self._misses = self._sets = self._deletes = 0
            self._started_wall = time.time()
            self._started = time.monotonic()

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    @property
    def fail_open(self) -> FailOpen:
        return self._fail_open

    def close(self) -> None:
        self._client = None
        self._clients.close()

    async def aclose(self) -> None:
        await self._clients.aclose()

    # -- async twins (redis.asyncio, one client per event loop) -------------------------------

    async def aget(self, key: str, default: Any = None) -> Any:
        key = check_key(key)
        raw = await self._acall("get", None, self._clients.aclient().get, self._prefix + key)
        self._count(hits=raw is not None, misses=raw is None)
        return default if raw is None else self._loads(raw)

    async def _apeek(self, key: str) -> Any:
        raw = await self._acall("get", None, self._clients.aclient().get, self._prefix + key)
        return MISSING if raw is None else self._loads(raw)

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = [check_key(k) for k in keys]
        if not keys:
            return {}
        mget = self._clients.aclient().mget
        raws = await self._acall("get_many", None, mget, [self._prefix + k for k in keys])
        return self._found(keys, raws)

    async def aexists(self, key: str) -> bool:
        key = check_key(key)
        client = self._clients.aclient()
        return bool(await self._acall("exists", 0, client.exists, self._prefix + key))

    async def attl(self, key: str) -> float | None:
        key = check_key(key)
        client = self._clients.aclient()
        return self._pttl(await self._acall("ttl", -2, client.pttl, self._prefix + key))

    async def aset(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> None:
        await self.aset_many({key: value}, ttl, tags=tags)

    async def aset_many(
        self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> list[str]:
        seconds = self._ttl(ttl)
        tagset = check_tags(tags)
        if seconds is not None and seconds <= 0:
            await self.adelete_many(mapping)
            return []
        if not mapping:
            return []
        keys, args = self._store_args(mapping, seconds, False, tagset)  # type: ignore[arg-type]
        stored = await self._ascript("set", None, lua.STORE, keys, args)
        if stored is None:
            return list(mapping)
        self._count(sets=stored)
        return []

    async def aadd(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        key = check_key(key)
        seconds = self._ttl(ttl)
        tagset = check_tags(tags)
        if seconds is not None and seconds <= 0:
            return not await self.aexists(key)
        keys, args = self._store_args({key: value}, seconds, True, tagset)  # type: ignore[arg-type]
        stored = await self._ascript("add", 0, lua.STORE, keys, args)
        self._count(sets=stored)
        return bool(stored)

    async def adelete(self, key: str) -> bool:
        return await self.adelete_many([key]) > 0

    async def adelete_many(self, keys: Iterable[str]) -> int:
        args = self._delete_args(keys)
        if not args:
            return 0
        extra = [self._tag_prefix, self._prefix_len]
        removed = int(await self._ascript("delete", 0, lua.DELETE, args, extra))
        self._count(deletes=removed)
        return removed

    async def atouch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        key = check_key(key)
        seconds = self._ttl(ttl)
        if seconds is not None and seconds <= 0:
            return await self.adelete(key)
        px = 0 if seconds is None else _px(seconds)
        keys = [self._prefix + key, self._side_prefix + key]
        return bool(await self._ascript("touch", 0, lua.TOUCH, keys, [px, self._tag_prefix]))

    async def aincr(self, key: str, delta: int = 1) -> int:
        key = check_key(key)
        if type(delta) is not int:
            raise NotAnInteger(f"delta must be an int, got {delta!r}")
        px = 0 if self.default_ttl is None else _px(self.default_ttl)
        return int(await self._ascript("incr", _RAISE, lua.INCR, [self._prefix + key], [delta, px]))

    async def adecr(self, key: str, delta: int = 1) -> int:
        if type(delta) is not int:
            raise NotAnInteger(f"delta must be an int, got {delta!r}")
        return await self.aincr(key, -delta)

    async def ainvalidate_tags(self, tags: Iterable[str]) -> int:
        tagset = check_tags(tags)
        if not tagset:
            return 0
        args = [self._tag_prefix, self._side_prefix, self._prefix, *sorted(tagset)]
        removed = int(await self._ascript("invalidate_tags", 0, lua.INVALIDATE, [], args))
        self._count(deletes=removed)
        return removed

    async def adelete_pattern(self, pattern: str) -> int:
        if not isinstance(pattern, str) or not pattern:
            raise InvalidKey(f"pattern must be a non-empty str, got {pattern!r}")
        return int(await self._acall("delete_pattern", 0, self._adelete_matching, pattern))

    async def _adelete_matching(self, pattern: str) -> int:
        client, plen, removed = self._clients.aclient(), len(self._prefix), 0
        extra = [self._tag_prefix, self._prefix_len]
        batch: list[str] = []
        async for raw in client.scan_iter(
            match=_escape_glob(self._prefix) + pattern, count=SCAN_BATCH
        ):
            batch.append(raw.decode("utf-8", "surrogateescape")[plen:])
            if len(batch) >= SCAN_BATCH:
                removed += await lua.DELETE.acall(client, self._delete_args(batch), extra)
                batch.clear()
        if batch:
            removed += await lua.DELETE.acall(client, self._delete_args(batch), extra)
        self._count(deletes=removed)
        return removed

    async def aclear(self) -> None:
        await self._acall("clear", None, self._aclear)

    async def _aclear(self) -> None:
        client = self._clients.aclient()
        if self._flushdb:
            await client.flushdb(asynchronous=True)
            return
        for namespace in (self._prefix, self._meta):
            batch: list[bytes] = []
            async for raw in client.scan_iter(
                match=_escape_glob(namespace) + "*", count=SCAN_BATCH
            ):
                batch.append(raw)
                if len(batch) >= SCAN_BATCH:
                    await client.unlink(*batch)
                    batch.clear()
            if batch:
                await client.unlink(*batch)

    async def _aget_or_set(
        self, key: str, default_or_factory: Any, ttl: TTLArg, add: Callable[[str, Any], Any]
    ) -> Any:
        if not callable(default_or_factory) or self._stampede_timeout is None:
            return await super()._aget_or_set(key, default_or_factory, ttl, add)
        if ttl is not DEFAULT:
            to_seconds(ttl)
        value = await self.aget(key, MISSING)
        if value is not MISSING:
            return value
        factory: Callable[[], Any] = default_or_factory
        return await self._async_single_flight.do(
            key, lambda: self._acompute_once(key, factory, add)
        )

    async def _acompute_once(
        self, key: str, factory: Callable[[], Any], add: Callable[[str, Any], Any]
    ) -> Any:
        import asyncio

        timeout = self._stampede_timeout
        assert timeout is not None
        lock_key, token = self._meta + "s:" + key, uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        delay = 0.005

        async def produce() -> Any:
            result = factory()
            if inspect.isawaitable(result):
                result = await result
            return await self._aadd_or_current(key, result, add)

        while True:
            current = await self._apeek(key)
            if current is not MISSING:
                return current
            lock = partial(self._clients.aclient().set, lock_key, token, px=_px(timeout), nx=True)
            if await self._acall("lock", True, lock):
                try:
                    return await produce()
                finally:
                    await self._ascript("unlock", None, lua.RELEASE, [lock_key], [token])
            if time.monotonic() + delay > deadline:
                return await produce()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
