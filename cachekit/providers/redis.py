"""The Redis provider: ``redis://``, ``rediss://``, ``unix://`` and ``redis+sentinel://``.

(``redis+cluster://`` is :class:`.redis_cluster.RedisClusterCache`, a subclass that replaces the
multi-key primitives - the ``_*_raw`` methods - with per-slot ones. The async twins are in
:mod:`.redis_async`.)

Each contract operation is one round trip with the cheapest correct command (see the table in
``docs/redis.md``): ``get`` is ``GET``, ``get_many`` one ``MGET``, ``exists`` ``EXISTS``, ``ttl``
``PTTL``; writes that must keep tags consistent (tagged ``set``/``set_many``, ``add``,
``delete``, ``touch``, ``invalidate_tags``) and ``incr`` (which gives a key it creates the
default TTL) are single Lua scripts from :mod:`.redis_scripts`, which also documents the key
layout and the tag design. An untagged ``set`` (and ``set_many`` of large values) needs no Lua:
``DEL <side key>; SET ... PX`` in one send (``_set_plain`` says why that is safe). ``clear`` and
``delete_pattern`` walk only this cache's prefix with ``SCAN MATCH`` and remove in batches;
never ``KEYS``, and ``FLUSHDB`` only with ``flushdb_on_clear=true``.

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

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

import redis.exceptions

from ..config import Option, ParsedURL, parse_options, parse_url
from ..errors import CacheError, ConfigurationError, InvalidKey
from ..glob import compile_glob, open_ended
from ..interfaces import DistributedCache, check_key, check_tags
from ..metrics.latency import DEFAULT_SAMPLE_EVERY, GetTimer
from ..resilience import CircuitBreaker, FailOpen
from ..sentinels import DEFAULT, MISSING
from ..serialization import Serializer, make_serializer
from ..serialization.header import Codec, pack_header
from ..stats import CacheStats
from ..ttl import TTLArg, check_default_ttl, resolve_ttl
from . import redis_scripts as lua
from . import redis_wire as wire
from .redis_async import NOT_RELEASED, NOT_TAKEN, RAISE, RedisAsyncOps
from .redis_conn import OPTIONS, UNAVAILABLE, RedisClients, settings_from_url
from .redis_errors import RedisNotAnInteger, RedisUnavailable
from .redis_inspect import RedisInspectOps
from .redis_lock import CacheLock
from .redis_scripts import SCAN_BATCH, escape_glob, meta_prefix, px
from .timed import TimedGets

logger = logging.getLogger(__name__)

__all__ = ["SCAN_BATCH", "RedisCache"]

_UNAVAILABLE = UNAVAILABLE
#: A server that answers but refuses writes, ``OOM`` (``maxmemory`` reached under
#: ``noeviction``) or ``MISCONF`` (a failing RDB save with ``stop-writes-on-bgsave-error``), is
#: an outage of writes: it raises ``BackendUnavailable``, or with ``fail_open`` the write is
#: dropped and counted. It does not trip the breaker: reads still work, and the answer was fast.
_REFUSING_WRITES = (redis.exceptions.OutOfMemoryError,)
_RAISE = RAISE
_NOTHING = (None, True)  # GET's fallback when failing open: a miss
_READ_FROM = wire.READ_FROM


class RedisCache(RedisInspectOps, RedisAsyncOps, TimedGets, DistributedCache):
    """A cache on a Redis server (standalone, TLS, unix socket or behind Sentinel)."""

    provider_name = "redis"
    _not_an_integer = RedisNotAnInteger
    #: URL schemes this class serves.
    schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss", "unix", "redis+sentinel")
    #: Wrap user keys in a ``{...}`` hash tag (Redis Cluster: an entry's keys share a slot).
    hash_tags: ClassVar[bool] = False

    #: ``set_many`` of untagged values at least this large (bytes, mean per key) skips the store
    #: script for ``DEL``/``SET`` (values copied into Lua cost the server more than the extra
    #: commands; for small values one script call beats a batch of SETs; ``docs/redis.md``).
    plain_write_min: ClassVar[int] = 2048
    #: Whether untagged writes may skip the script (the cluster subclass keeps it: per slot).
    plain_writes: ClassVar[bool] = True

    #: Options accepted in the URL's query string and in config dicts (see redis_conn.py).
    options: ClassVar[dict[str, Option]] = OPTIONS

    __slots__ = (
        "_breaker",
        "_client",
        "_clients",
        "_deletes",
        "_dumps",
        "_fail_open",
        "_flushdb",
        "_get_timer",
        "_hits",
        "_kclose",
        "_kopen",
        "_large_gets",
        "_large_mgets",
        "_loads",
        "_meta",
        "_misses",
        "_pool",
        "_prefix",
        "_prefix_len",
        "_raw_header",
        "_sets",
        "_side_prefix",
        "_stamp_prefix",
        "_stampede_timeout",
        "_started",
        "_started_wall",
        "_stats_lock",
        "_tag_prefix",
        "_unlock_errors",
        "default_ttl",
        "prefix",
        "serializer",
    )  # fmt: skip

    def __init__(self, url: str | ParsedURL = "redis://127.0.0.1:6379/0", **options: Any) -> None:
        parsed = parse_url(url) if isinstance(url, str) else url
        if parsed.scheme not in self.schemes:
            raise ConfigurationError(
                f"not a {'/'.join(self.schemes)} URL: {parsed.raw!r}", key="url"
            )
        opts = parse_options(f"{parsed.scheme}://", {**parsed.options, **options}, self.options)
        name = opts.pop("name", "default")
        super().__init__(name=name)
        prefix = opts.pop("prefix", f"cachekit:{name}:")
        if not prefix:
            raise ConfigurationError("prefix must not be empty", key="prefix")
        self.prefix: str = prefix
        self._prefix = prefix
        self._prefix_len = len(prefix.encode())
        self._meta = meta = meta_prefix(prefix)
        # An entry's keys: value kopen+key+kclose, tags side_prefix+key+kclose, stampede lock
        # stamp_prefix+key+kclose (with hash tags, "{key}": one slot; see redis_scripts.py).
        brace = "{" if self.hash_tags else ""
        self._kopen = prefix + brace
        self._kclose = "}" if self.hash_tags else ""
        self._side_prefix = meta + "k:" + brace
        self._stamp_prefix = meta + "s:" + brace
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
        # The header of an unsigned, uncompressed bytes payload: get/get_many slice those.
        self._raw_header: bytes | None = (
            None if getattr(serializer, "signed", True) else pack_header(Codec.RAW, 0)
        )
        # Whether the last GET/MGET read large values, which redis_wire then reads itself (a
        # hint: a wrong one costs one call a copy, never changes a result).
        self._large_gets = self._large_mgets = False
        self._flushdb: bool = opts.pop("flushdb_on_clear", False)
        self._stampede_timeout: float | None = opts.pop("stampede_timeout", 10.0)
        if self._stampede_timeout is not None:
            self._bound_flights(self._stampede_timeout)
        self._breaker = CircuitBreaker(
            failure_threshold=opts.pop("breaker_failures", 5),
            recovery_timeout=opts.pop("breaker_recovery", 5.0),
            name=name,
        )
        self._fail_open = FailOpen(opts.pop("fail_open", False), name=name, error=RedisUnavailable)
        self._get_timer = GetTimer(opts.pop("stats_sample_every", DEFAULT_SAMPLE_EVERY))
        # What is left are connection options; the URL and them are checked now, used later.
        self._clients = RedisClients(settings_from_url(parsed, opts))
        self._client: Any = None
        self._pool: Any = None
        self._stats_lock = threading.Lock()
        self._hits = self._misses = self._sets = self._deletes = 0
        self._unlock_errors = 0
        self._started_wall = time.time()
        self._started = time.monotonic()

    @classmethod
    def from_url(cls, url: ParsedURL, options: Mapping[str, Any]) -> RedisCache:
        """Build from a parsed URL; ``options`` override its query string."""
        return cls(url, **options)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} {self._clients.settings.describe()}>"

    # -- plumbing ---------------------------------------------------------------------------

    def _sync(self) -> Any:
        client = self._client
        if client is None:
            client = self._client = self._clients.sync()
        return client

    def redis_client(self) -> Any:
        """The redis-py client on this cache's own pool (``redis.Redis``; ``RedisCluster`` for a
        cluster), for commands cachekit does not wrap. It sees keys as the server does (with
        ``prefix``) and values as stored (cachekit's envelope, except plain ``bytes`` and ints),
        and bypasses the circuit breaker and fail-open."""
        return self._sync()

    def _count(self, hits: int = 0, misses: int = 0, sets: int = 0, deletes: int = 0) -> None:
        with self._stats_lock:
            self._hits += hits
            self._misses += misses
            self._sets += sets
            self._deletes += deletes

    def _failed(self, op: str, exc: BaseException, fallback: Any) -> Any:
        """A failure: raise (fail-closed, or no honest fallback) or count it and fall back."""
        if isinstance(exc, _REFUSING_WRITES) or (
            isinstance(exc, redis.exceptions.ResponseError) and "MISCONF " in str(exc)
        ):
            pass  # up but refusing writes (see _REFUSING_WRITES): fail-open applies
        elif isinstance(exc, redis.exceptions.ResponseError) and not isinstance(exc, _UNAVAILABLE):
            message = str(exc)
            if "not an integer" in message or "overflow" in message:
                raise RedisNotAnInteger(f"cache {self.name!r}: {op}: {message}") from exc
            raise CacheError(f"cache {self.name!r}: {op}: server error: {message}") from exc
        elif isinstance(exc, redis.exceptions.RedisError) and not isinstance(exc, _UNAVAILABLE):
            raise CacheError(f"cache {self.name!r}: {op}: {exc}") from exc
        self._fail_open.handle(op, exc)  # raises BackendUnavailable unless failing open
        if fallback is _RAISE:
            raise RedisUnavailable(f"cache {self.name!r}: {op} failed: {exc}") from exc
        return fallback

    def _open(self, op: str, fallback: Any) -> Any:
        retry_in = self._breaker.retry_in()
        error = RedisUnavailable(
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

    def _script(
        self, op: str, fallback: Any, script: lua.Script, keys: list[str], args: list[Any]
    ) -> Any:
        return self._call(op, fallback, self._run_script, script, keys, args)

    def _run_script(self, script: lua.Script, keys: list[str], args: list[Any]) -> Any:
        # The client is got under _call: a cluster client connects when it is built.
        return script(self._sync(), keys, args)

    # -- argument builders shared by the sync and async paths ----------------------------------

    def _store_args(
        self, mapping: Mapping[str, Any], seconds: float, mode: str, tags: frozenset[str] | None
    ) -> tuple[list[str], list[Any]]:
        prefix, side, close = self._kopen, self._side_prefix, self._kclose
        keys: list[str] = []
        values: list[bytes] = []
        dumps = self._dumps
        for raw_key, value in mapping.items():
            key = (
                raw_key
                if type(raw_key) is str and raw_key and raw_key[0] != "}"
                else self._check_key(raw_key)
            )
            keys.append(prefix + key + close)
            keys.append(side + key + close)
            values.append(dumps(value))
        tag_list = sorted(tags) if tags else []
        ms = 0 if seconds is None else px(seconds)
        tprefix = "" if self.hash_tags else self._tag_prefix  # cluster: tag sets apart
        args: list[Any] = [ms, mode, tprefix, self._prefix_len]
        return keys, [*args, len(tag_list), *tag_list, *values]

    def _delete_args(self, keys: Iterable[str]) -> list[str]:
        out: list[str] = []
        prefix, side, close = self._kopen, self._side_prefix, self._kclose
        for raw_key in keys:
            key = (
                raw_key
                if type(raw_key) is str and raw_key and raw_key[0] != "}"
                else self._check_key(raw_key)
            )
            out.append(prefix + key + close)
            out.append(side + key + close)
        return out

    def _check_key(self, key: Any) -> str:
        """A key's validation (a subclass may refuse more keys than the base does)."""
        return check_key(key)

    def _user_key(self, raw: bytes) -> str:
        """The user's key of a data key found by ``SCAN``."""
        text = raw.decode("utf-8", "surrogateescape")
        return text[len(self._kopen) : len(text) - len(self._kclose)]

    def _match(self, pattern: str) -> str:
        """``SCAN MATCH`` pattern of the data keys whose user key matches ``pattern``."""
        if self._kclose and open_ended(pattern):  # the "}" after it would change its meaning
            return escape_glob(self._kopen) + "*"  # every data key; _keep picks
        return escape_glob(self._kopen) + pattern + escape_glob(self._kclose)

    def _keep(self, pattern: str) -> Callable[[bytes], bool] | None:
        """The client-side test of the keys :meth:`_match` lets through, if it needs one."""
        if not (self._kclose and open_ended(pattern)):
            return None
        matches = compile_glob(pattern)
        return lambda raw: matches(self._user_key(raw))

    def _scan_matching(self, pattern: str) -> Iterable[bytes]:
        """The raw data keys whose user key matches ``pattern``."""
        keep = self._keep(pattern)
        raws = self._scan(self._match(pattern))
        return raws if keep is None else filter(keep, raws)

    # -- multi-key primitives, run inside _call: the cluster subclass does them per slot ----------

    def _store_raw(
        self, mapping: Mapping[str, Any], seconds: float | None, mode: str, tags: frozenset[str]
    ) -> int:
        if mode == lua.PLAIN and not tags and self.plain_writes and len(mapping) > 1:
            dumps, check = self._dumps, self._check_key
            items = [
                (k if type(k) is str and k and k[0] != "}" else check(k), dumps(v))
                for k, v in mapping.items()
            ]
            if sum(len(blob) for _, blob in items) >= self.plain_write_min * len(items):
                return self._set_plain(items, 0 if seconds is None else px(seconds))
            # small values: the script (one command for all keys beats a pipeline of SETs)
            keys: list[str] = []
            prefix, side, close = self._kopen, self._side_prefix, self._kclose
            for key, _ in items:
                keys.append(prefix + key + close)
                keys.append(side + key + close)
            ms = 0 if seconds is None else px(seconds)
            args = [ms, "0", self._tag_prefix, self._prefix_len, 0, *(b for _, b in items)]
            return int(lua.STORE(self._sync(), keys, args))
        keys, args = self._store_args(mapping, seconds, mode, tags)  # type: ignore[arg-type]
        return int(lua.STORE(self._sync(), keys, args))

    def _store_one(self, key: str, blob: bytes, ms: int) -> int:
        """Store one encoded, untagged value (``set``): no Lua, see :meth:`_set_plain`."""
        return self._set_plain([(key, blob)], ms)

    def _set_plain(self, items: list[tuple[str, bytes]], ms: int) -> int:
        """Untagged writes without Lua in one round trip:
        ``MULTI; DEL <side keys>; SET <data> <value> PX ms ...; EXEC``.

        An untagged write must drop the key's old tags, which its side key lists. The tag sets
        themselves need no cleanup: INVALIDATE removes a member only while its side key still
        lists the tag, and drops the whole set (stale members too) once it has run. The
        transaction makes the pair all or nothing: a SET refused at queue time (over
        ``maxmemory``) aborts the DEL with it, so a failed write never leaves a value that
        tag invalidation would miss, and no other client's command runs between them. Its
        replies are pipelined, so MULTI/EXEC cost no round trip.
        """
        prefix, side, close = self._kopen, self._side_prefix, self._kclose
        commands: list[tuple[Any, ...]] = [("DEL", *(side + key + close for key, _ in items))]
        for key, blob in items:
            if ms:
                commands.append(("SET", prefix + key + close, blob, "PX", ms))
            else:
                commands.append(("SET", prefix + key + close, blob))
        self._send(commands, atomic=True)
        return len(items)

    def _send(self, commands: list[tuple[Any, ...]], *, atomic: bool) -> list[Any]:
        return wire.send(self._sync().connection_pool, commands, atomic=atomic)

    def _execute(self, *args: Any) -> Any:
        """One hot command, hand-packed (:mod:`.redis_wire`); the cluster sends it through
        ``RedisCluster``, which routes it by key."""
        pool = self._pool
        if pool is None:
            pool = self._pool = self._sync().connection_pool
        return wire.execute(pool, args)

    def _delete_raw(self, keys: Iterable[str]) -> int:
        args = self._delete_args(keys)
        if not args:
            return 0
        return int(lua.DELETE(self._sync(), args, [self._tag_prefix, self._prefix_len]))

    def _touch_raw(self, key: str, px_: int) -> bool:
        keys = [self._kopen + key + self._kclose, self._side_prefix + key + self._kclose]
        return bool(lua.TOUCH(self._sync(), keys, [px_, self._tag_prefix]))

    def _invalidate_raw(self, tags: list[str]) -> int:
        """INVALIDATE in scripts of at most ``INVALIDATE_BATCH`` tags: Redis serves nobody while
        a script runs, and one over a bulk delete's tags (200,000 rows: 0.8 s) stalled every
        client. Each batch is atomic; a failure leaves the batches before it done."""
        client, head = self._sync(), [self._tag_prefix, self._side_prefix, self._prefix]
        size = lua.INVALIDATE_BATCH
        return sum(
            int(lua.INVALIDATE(client, [], [*head, *tags[i : i + size]]))
            for i in range(0, len(tags), size)
        )

    def _mget_raw(self, keys: list[str], data: list[str] | None = None) -> wire.Values:
        """The stored values of ``keys`` (``data``: their wire keys, when already built), as
        :func:`.redis_wire.mget` returns them: unsigned ``bytes`` read without a copy of their
        envelope header where that pays (large values)."""
        if data is None:
            prefix, close = self._kopen, self._kclose
            data = [prefix + k + close for k in keys]
        pool = self._pool
        if pool is None:
            pool = self._pool = self._sync().connection_pool
        return wire.mget(pool, ("MGET", *data), self._raw_header, self._large_mgets)

    def _get_large(self, data: str) -> tuple[bytes | None, bool]:
        """GET of a value expected to be large: the value and whether it still carries its
        envelope (:func:`.redis_wire.get`; the cluster's always does)."""
        pool = self._pool
        if pool is None:
            pool = self._pool = self._sync().connection_pool
        return wire.get(pool, ("GET", data), self._raw_header)

    def _scan(self, match: str) -> Iterator[bytes]:
        """Keys matching ``match`` (on every primary of a cluster), in pages of SCAN_BATCH."""
        return self._sync().scan_iter(match=match, count=SCAN_BATCH)  # type: ignore[no-any-return]

    def _ttl(self, ttl: TTLArg) -> float | None:
        return resolve_ttl(ttl, self.default_ttl)

    # -- reads --------------------------------------------------------------------------------

    def _get(self, key: str, default: Any) -> Any:
        if type(key) is not str or not key or key[0] == "}":  # "}": see RedisClusterCache
            key = self._check_key(key)
        if self._large_gets:
            return self._get_large_value(self._kopen + key + self._kclose, default)
        raw = self._call("get", None, self._execute, "GET", self._kopen + key + self._kclose)
        self._count(hits=raw is not None, misses=raw is None)
        if raw is None:
            return default
        if len(raw) >= _READ_FROM:  # the next GET is read by redis_wire
            self._large_gets = True
        return raw[4:] if raw[:4] == self._raw_header else self._loads(raw)

    def _get_large_value(self, data: str, default: Any) -> Any:
        """``get`` while values are large: read without copying their header (or by hiredis,
        if this one is small, which makes the next ``get`` the usual one again)."""
        raw, enveloped = self._call("get", _NOTHING, self._get_large, data)
        self._count(hits=raw is not None, misses=raw is None)
        if raw is None:
            return default
        if not enveloped:  # read by redis_wire, without its header
            return raw
        if len(raw) < _READ_FROM:
            self._large_gets = False
        return raw[4:] if raw[:4] == self._raw_header else self._loads(raw)

    def _peek(self, key: str) -> Any:
        raw = self._call("get", None, self._execute, "GET", self._kopen + key + self._kclose)
        return MISSING if raw is None else self._loads(raw)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = keys if type(keys) is list else list(keys)
        prefix, close = self._kopen, self._kclose
        # One pass builds the wire keys of plain keys; any other key (not a str, empty, or a
        # "}" the cluster refuses) shortens the list and sends every key through the check.
        if close:
            data = [prefix + k + close for k in keys if type(k) is str and k and k[0] != "}"]
        else:  # the usual layout: one concatenation per key
            data = [prefix + k for k in keys if type(k) is str and k]
        if len(data) != len(keys):
            keys = [self._check_key(k) for k in keys]
            data = [prefix + k + close for k in keys]
        if not keys:
            return {}
        reply = self._call("get_many", None, self._mget_raw, keys, data)
        if reply is None:  # failed open: every key missed
            self._count(misses=len(keys))
            return {}
        raws, enveloped = reply
        if enveloped is None:  # read by hiredis
            self._large_mgets = wire.large(raws)
            return self._found(keys, raws)
        # Read by redis_wire: the values without an envelope are the user's bytes already.
        if not enveloped:
            found = {k: raw for k, raw in zip(keys, raws, strict=True) if raw is not None}
        else:  # the others are decoded, and come after (in key order), as _found has them
            skip = set(enveloped)
            found = {
                k: raw
                for i, (k, raw) in enumerate(zip(keys, raws, strict=True))
                if raw is not None and i not in skip
            }
            loads = self._loads
            for i in enveloped:
                found[keys[i]] = loads(raws[i])
        self._count(hits=len(found), misses=len(keys) - len(found))
        return found

    def _found(self, keys: list[str], raws: list[bytes | None] | None) -> dict[str, Any]:
        """``get_many``'s result from the stored payloads of ``keys`` (``None``: failed open)."""
        if raws is None:  # failed open: every key missed
            self._count(misses=len(keys))
            return {}
        loads = self._loads
        raw_header = self._raw_header
        if raw_header is None:  # signed: every payload must be verified by loads
            found = {k: loads(raw) for k, raw in zip(keys, raws, strict=True) if raw is not None}
        else:
            # Unsigned, uncompressed bytes (the header is exactly RAW/no flags) need no decoder:
            # slice the body. Anything else, compressed or another codec, goes to loads.
            found = {
                k: raw[4:]
                for k, raw in zip(keys, raws, strict=True)
                if raw is not None and raw[:4] == raw_header
            }
            if len(found) + raws.count(None) != len(keys):  # some need the decoder
                for key, raw in zip(keys, raws, strict=True):
                    if raw is not None and raw[:4] != raw_header:
                        found[key] = loads(raw)
        self._count(hits=len(found), misses=len(keys) - len(found))
        return found

    def exists(self, key: str) -> bool:
        key = self._check_key(key)
        data = self._kopen + key + self._kclose
        return bool(self._call("exists", 0, self._execute, "EXISTS", data))

    def ttl(self, key: str) -> float | None:
        key = self._check_key(key)
        data = self._kopen + key + self._kclose
        return self._pttl(self._call("ttl", -2, self._execute, "PTTL", data))

    @staticmethod
    def _pttl(ms: int) -> float | None:
        if ms == -1:
            return None
        return 0.0 if ms < 0 else ms / 1000.0

    # -- writes --------------------------------------------------------------------------------

    def set(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> None:
        if tags or isinstance(tags, str) or not self.plain_writes:  # tagged, cluster: generic
            self.set_many({key: value}, ttl, tags=tags)
            return
        if type(key) is not str or not key or key[0] == "}":
            key = self._check_key(key)
        seconds = self._ttl(ttl)
        if seconds is not None and seconds <= 0:
            self.delete(key)
            return
        ms = 0 if seconds is None else px(seconds)
        if self._call("set", None, self._store_one, key, self._dumps(value), ms) is not None:
            self._count(sets=1)

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
        stored = self._call("set", None, self._store_raw, mapping, seconds, lua.PLAIN, tagset)
        if stored is None:
            return list(mapping)
        self._count(sets=stored)
        return []

    def add(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> bool:
        return self._store_if(lua.ONLY_ABSENT, key, value, ttl, tags)

    def replace(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        return self._store_if(lua.ONLY_PRESENT, key, value, ttl, tags)

    def _store_if(self, mode: str, key: str, value: Any, ttl: TTLArg, tags: Iterable[str]) -> bool:
        """``add`` (``ONLY_ABSENT``) or ``replace`` (``ONLY_PRESENT``), atomic in the STORE
        script; a non-positive TTL stores nothing (and removes a replaced key)."""
        key = self._check_key(key)
        seconds = self._ttl(ttl)
        tagset = check_tags(tags)
        present = mode == lua.ONLY_PRESENT
        if seconds is not None and seconds <= 0:
            return self.delete(key) if present else not self.exists(key)
        op = "replace" if present else "add"
        stored = self._call(op, 0, self._store_raw, {key: value}, seconds, mode, tagset)
        self._count(sets=stored)
        return bool(stored)

    def delete(self, key: str) -> bool:
        return self.delete_many([key]) > 0

    def delete_many(self, keys: Iterable[str]) -> int:
        keys = [k if type(k) is str and k and k[0] != "}" else self._check_key(k) for k in keys]
        if not keys:
            return 0
        removed = int(self._call("delete", 0, self._delete_raw, keys))
        self._count(deletes=removed)
        return removed

    def touch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        key = self._check_key(key)
        seconds = self._ttl(ttl)
        if seconds is not None and seconds <= 0:
            return self.delete(key)
        return bool(
            self._call("touch", 0, self._touch_raw, key, 0 if seconds is None else px(seconds))
        )

    def incr(self, key: str, delta: int = 1) -> int:
        key = self._check_key(key)
        if type(delta) is not int:
            raise RedisNotAnInteger(f"delta must be an int, got {delta!r}")
        ms = 0 if self.default_ttl is None else px(self.default_ttl)
        data = self._kopen + key + self._kclose
        return int(self._script("incr", RAISE, lua.INCR, [data], [delta, ms]))

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        tagset = check_tags(tags)
        if not tagset:
            return 0
        removed = int(self._call("invalidate_tags", 0, self._invalidate_raw, sorted(tagset)))
        self._count(deletes=removed)
        return removed

    def tagged_keys(self, tags: Iterable[str]) -> list[str]:
        tagset = check_tags(tags)
        if not tagset:
            return []
        return list(self._call("tagged_keys", [], self._tagged_raw, sorted(tagset)))

    def _tagged_raw(self, tags: list[str]) -> list[str]:
        """Members of the tag sets whose side key still lists the tag and whose value exists:
        the members :data:`.redis_scripts.INVALIDATE` would remove, read without a script."""
        client = self._sync()
        checks = [
            (tag, member)
            for tag in tags
            for member in self._members(client.smembers(self._tag_prefix + tag))
        ]
        if not checks:
            return []
        pipe = client.pipeline(transaction=False)
        self._tag_checks(pipe, checks)
        return _still_tagged(checks, pipe.execute())

    def _tag_checks(self, pipe: Any, checks: list[tuple[str, str]]) -> None:
        """Queue, per (tag, member): does the member's side key still list the tag, and does
        its value exist."""
        for tag, member in checks:
            pipe.sismember(self._side_prefix + member + self._kclose, tag)
            pipe.exists(self._kopen + member + self._kclose)

    @staticmethod
    def _members(raw: Iterable[bytes]) -> list[str]:
        """A tag set's members as the keys they are (stored as their UTF-8 bytes)."""
        return [m.decode("utf-8", "surrogateescape") for m in raw]

    def delete_pattern(self, pattern: str) -> int:
        if not isinstance(pattern, str) or not pattern:
            raise InvalidKey(f"pattern must be a non-empty str, got {pattern!r}")
        return int(self._call("delete_pattern", 0, self._delete_matching, pattern))

    def _delete_matching(self, pattern: str) -> int:
        removed = 0
        batch: list[str] = []
        for raw in self._scan_matching(pattern):
            batch.append(self._user_key(raw))
            if len(batch) >= SCAN_BATCH:
                removed += self._delete_raw(batch)
                batch.clear()
        if batch:
            removed += self._delete_raw(batch)
        self._count(deletes=removed)
        return removed

    def clear(self) -> None:
        self._call("clear", None, self._clear)

    def _clear(self) -> None:
        client = self._sync()
        if self._flushdb:
            client.flushdb(asynchronous=True)
            return
        # The data keys, then the meta namespace. A cluster's data keys are all "P{...}": "P*"
        # would also reach a cache whose prefix extends this one's ("app:" and "app:sessions:").
        for match in (escape_glob(self._kopen) + "*", escape_glob(self._meta) + "*"):
            batch: list[bytes] = []
            for raw in self._scan(match):
                batch.append(raw)
                if len(batch) >= SCAN_BATCH:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)

    # -- get_or_set with stampede protection across processes -------------------------------------

    def _lead(self, key: str, factory: Callable[[], Any], add: Callable[[str, Any], bool]) -> Any:
        """The process-wide leader: compute under a short Redis lock, or wait for its holder."""
        timeout = self._stampede_timeout
        if timeout is None:
            return self._compute_alone(key, factory, add)
        lock_key, token = self._stamp_prefix + key + self._kclose, uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            current = self._fill_peek(key)
            if current is not MISSING:
                return current
            took = self._call("lock", NOT_TAKEN, self._take, lock_key, token, px(timeout))
            if took is NOT_TAKEN:  # failed open (server down): compute without the lock
                return self._add_or_current(key, factory(), add)
            if took:
                try:
                    return self._add_or_current(key, factory(), add)
                finally:
                    self._unlock_stampede(lock_key, token)
            if time.monotonic() + delay > deadline:  # the holder is too slow: compute too
                return self._add_or_current(key, factory(), add)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _unlock_stampede(self, lock_key: str, token: str) -> None:
        """Release the stampede lock without raising: its failure must not replace the value or
        the exception in flight (the view's own error, a value computed while Redis went away),
        and the lock expires by itself after ``stampede_timeout``."""
        try:
            sent = self._script("unlock", NOT_RELEASED, lua.RELEASE, [lock_key], [token])
        except CacheError as exc:
            self._unlock_failed(exc)
        else:
            if sent is NOT_RELEASED:
                self._unlock_failed(None)

    def _unlock_failed(self, exc: BaseException | None) -> None:
        """Count a stampede-lock release that did not reach the server: until it expires, the
        lock holds every other process's ``get_or_set`` of that key off (they wait, then compute
        without it). ``exc`` is logged; a failure swallowed by fail-open (None) was already."""
        with self._stats_lock:
            self._unlock_errors += 1
        if exc is not None:
            logger.warning("cache %r: stampede lock not released (it expires): %s", self.name, exc)

    def _take(self, lock_key: str, token: str, ms: int) -> Any:
        """``SET NX PX`` of the stampede lock (the client is got under ``_call``, see
        ``_run_script``)."""
        return self._sync().set(lock_key, token, px=ms, nx=True)

    # -- locks ----------------------------------------------------------------------------------

    def lock(
        self,
        name: str,
        *,
        timeout: float | None = 10.0,
        blocking_timeout: float | None = None,
        sleep: float = 0.05,
        blocking: bool = True,
        thread_local: bool = False,
    ) -> CacheLock:
        """A distributed lock named ``name`` in this cache's namespace (see :mod:`.redis_lock`).

        ``blocking=False``: ``acquire()`` returns at once. ``thread_local``: the token is kept
        per thread (redis-py's default; here off, so a lock may be released by another thread
        of its holder, as a ``threading.Lock`` can)."""
        name = check_key(name)
        try:
            client = self._sync()
        except _UNAVAILABLE as exc:  # a cluster client connects when it is built
            raise RedisUnavailable(f"lock {name!r}: {exc}") from exc
        lock = client.lock(
            self._meta + "l:" + name,
            timeout=timeout,
            sleep=sleep,
            blocking=blocking,
            blocking_timeout=blocking_timeout,
            thread_local=thread_local,
        )
        return CacheLock(lock, name)

    # -- stats and life cycle -----------------------------------------------------------------

    def get_stats(self) -> CacheStats:
        """Client-side counters, plus server figures read now (see ``docs/redis.md``)."""
        extra = self._stats_extra()
        read: tuple[int, dict[str, Any]] | None = None
        if self._breaker.allow_uncounted():  # a stats read is no refused call
            try:
                client = self._sync()
                items = sum(1 for _ in self._scan(escape_glob(self._kopen) + "*"))  # see _clear
                read = items, self._server_info(client)
            except BaseException as exc:
                self._stats_failed(exc, extra)
            else:
                self._breaker.success()
        else:
            extra["server_error"] = "not read: the circuit breaker is open"
        return self._stats(extra, read)

    async def aget_stats(self) -> CacheStats:
        """:meth:`get_stats` on the asyncio client: a stalled server stalls this call only,
        not the event loop."""
        extra = self._stats_extra()
        read: tuple[int, dict[str, Any]] | None = None
        if self._breaker.allow_uncounted():  # a stats read is no refused call
            try:
                client = self._clients.aclient()
                items = 0
                async for _ in client.scan_iter(
                    match=escape_glob(self._kopen) + "*", count=SCAN_BATCH
                ):
                    items += 1
                read = items, await self._aserver_info(client)
            except BaseException as exc:
                self._stats_failed(exc, extra)
            else:
                self._breaker.success()
        else:
            extra["server_error"] = "not read: the circuit breaker is open"
        return self._stats(extra, read)

    def _stats_extra(self) -> dict[str, Any]:
        with self._stats_lock:
            unlock_errors = self._unlock_errors
        return {
            **self._breaker.snapshot(),
            **self._fail_open.snapshot(),
            "stampede_unlock_errors_total": unlock_errors,
            "server": self._clients.settings.describe(),
        }

    def _stats_failed(self, exc: BaseException, extra: dict[str, Any]) -> None:
        """Stats never raise for the server: its error goes into ``extra`` (and the breaker)."""
        if isinstance(exc, _UNAVAILABLE):
            self._breaker.failure()
        elif isinstance(exc, redis.exceptions.RedisError):  # it answered: INFO or SCAN refused
            self._breaker.success()
        else:  # no verdict on the server (cancelled, interrupted)
            self._breaker.release()
            raise exc
        extra["server_error"] = str(exc)

    def _stats(self, extra: dict[str, Any], read: tuple[int, dict[str, Any]] | None) -> CacheStats:
        items = memory = evictions = expirations = 0
        if read is not None:
            items, info = read
            memory = int(info.get("used_memory", 0))
            evictions = int(info.get("evicted_keys", 0))
            expirations = int(info.get("expired_keys", 0))
            extra["db_keys"] = int(info.get(f"db{self._clients.settings.db}", {}).get("keys", 0))
            extra["server_version"] = str(info.get("redis_version", ""))
        with self._stats_lock:
            hits, misses, sets, deletes = self._hits, self._misses, self._sets, self._deletes
        return CacheStats(
            name=self.name, provider=self.provider_name, items=items, hits=hits, misses=misses,
            sets=sets, deletes=deletes, evictions=evictions, expirations=expirations,
            memory_bytes=memory, memory_limit=None, max_entries=None,
            started_at=self._started_wall, uptime=time.monotonic() - self._started, extra=extra,
            **self._get_timer.fields(),
        )  # fmt: skip

    def _server_info(self, client: Any) -> dict[str, Any]:
        """``INFO all`` of the server (summed over the primaries of a cluster)."""
        info: dict[str, Any] = client.info("all")
        return info

    async def _aserver_info(self, client: Any) -> dict[str, Any]:
        info: dict[str, Any] = await client.info("all")
        return info

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._hits = self._misses = self._sets = self._deletes = 0
            self._unlock_errors = 0
            self._started_wall = time.time()
            self._started = time.monotonic()
        self._get_timer.reset()

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    @property
    def fail_open(self) -> FailOpen:
        return self._fail_open

    def close(self) -> None:
        self._client = self._pool = None
        self._clients.close()

    def _after_fork(self) -> None:
        super()._after_fork()
        self._clients._after_fork()
        self._stats_lock = threading.Lock()
        self._breaker._after_fork()
        self._fail_open._after_fork()
        self._get_timer._after_fork()


def _still_tagged(checks: list[tuple[str, str]], replies: list[Any]) -> list[str]:
    """The members of ``checks`` whose two replies (see ``_tag_checks``) are both true."""
    return sorted({m for i, (_, m) in enumerate(checks) if replies[2 * i] and replies[2 * i + 1]})
