"""The memcached provider: a consistent-hash pool of servers, spoken to with pymemcache.

Design (``docs/memcached.md`` is the user-facing account):

* **Placement.** Keys are spread by a ketama ring (:mod:`cachekit.providers.hashring`) over one
  pymemcache ``base.Client`` per server per thread (``no_delay=True``; values pass through as
  bytes, cachekit serializes; on Linux its socket waits with kernel timeouts, see
  :func:`.memcached_wire.kernel_timeouts`). Each server has its own :class:`CircuitBreaker`: a
  server whose breaker is open is skipped and its keys go to the next server on the ring until
  the breaker lets a probe through (libmemcached's "auto eject"). Multi-key operations are
  grouped per server, one round trip each.
* **Keys.** A stored key is ``{prefix}{ns_version}:{key}``. Keys memcached would refuse (over
  250 bytes once prefixed, whitespace or control characters) are replaced by
  ``{prefix}{ns_version}#{sha256(key)}`` (``key_policy="hash"``) or refused with
  :class:`InvalidKey` (``key_policy="reject"``). ``:`` and ``#`` after the digits of the version
  keep the two forms apart, so a client cannot forge a hashed key.
* **clear().** memcached cannot list keys, so ``clear()`` is the classic namespace trick: the
  version lives under ``{prefix}!ns`` and ``clear()`` increments it, orphaning every key of the
  old version (memcached's LRU reclaims them). Each client caches the version for
  ``namespace_refresh`` seconds, which bounds how long another process keeps using the old
  namespace. A missing version key is created from the wall clock in microseconds (a clear()
  takes longer than one), so a key lost to eviction never brings an old namespace back.
  ``flush_on_clear=True`` instead runs ``flush_all`` on every server (everything on them, not
  just this cache), each on its own: a server down (or whose breaker is open) is a failure
  after the others were flushed.
* **TTLs.** memcached counts whole seconds: a TTL is rounded *up* to whole seconds (0 would
  mean "never"); over 30 days it must be sent as an absolute unix time, which is done here,
  capped at ``2**31 - 1`` (2038-01-19): memcached reads exptime as a signed 32-bit number.
  ``ttl()`` asks the server with the meta command ``mg <key> t``; since memcached's clock
  ticks once a second, a reported ``r`` means between ``r - 1`` and ``r`` seconds are left, and
  ``ttl()`` returns ``r - 0.5``.
* **Counters.** Integers are stored as bare decimals (see :mod:`cachekit.serialization`), so
  ``incr`` with a non-negative delta is memcached's atomic ``incr``. memcached cannot go below
  zero (``decr`` floors at 0) nor increment a negative number, so negative deltas, and values
  memcached calls non-numeric, take an optimistic compare-and-swap loop over the meta commands
  (``mg v t c`` then ``ms C<cas> T<remaining ttl>``), which keeps the TTL. A missing key starts
  at 0 with the default TTL, created with ``add``. memcached's ``incr`` wraps past
  ``2**64 - 1``: a wrapped result is undone and raises ``NotAnInteger`` (Redis: overflow).
* **Large values.** A value whose item would exceed ``max_item_size`` (memcached's ``-I``)
  raises :class:`ValueTooLarge` (``set_many`` returns its key instead, as it does for an item
  the server refuses as too large), after deleting the key's previous value (``set``,
  ``set_many``, ``replace``; memcached itself drops a refused ``set``'s), or with
  ``large_values="chunk"`` is split into chunks stored under their own keys, with a manifest
  (client flag 1) under the key itself listing them and the SHA-256 of the whole; ``get``
  reassembles and verifies, and a missing or altered chunk is a miss, whose manifest the read
  deletes (compare-and-delete, ``mg c`` then ``md C<cas>``) so that the key is absent to every
  operation.
* **Failures.** Socket and protocol errors become :class:`BackendUnavailable` with the cause
  chained, after ``retry_attempts`` reconnects for idempotent operations; with
  ``fail_open=True`` reads miss and writes are dropped, counted and logged at a rate-limited
  warning by :class:`FailOpen` (a chunk on a failing server costs that one key). ``add`` then
  returns False (nothing was stored) and ``incr``/``decr`` always raise: neither pretends to
  have succeeded. A ``BaseException`` (KeyboardInterrupt, a signal handler's) mid-command
  closes that connection, whose reply could otherwise be read by the next command.
* **Async.** The async twins are the base class's, calling the sync code: pymemcache has no
  asyncio client and native async memcached I/O is not written yet.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from operator import methodcaller
from typing import Any, ClassVar, Final, NoReturn, TypeVar

from ..config import (
    Option,
    ParsedURL,
    bool_option,
    choice_option,
    int_option,
    parse_options,
    redact_url,
    seconds_option,
    size_option,
    text_option,
)
from ..entry import EntryInfo, describe_payload
from ..errors import (
    BackendUnavailable,
    ConfigurationError,
    InvalidKey,
    SerializationError,
    ValueTooLarge,
)
from ..interfaces import Cache, check_encodable, check_key
from ..metrics.latency import DEFAULT_SAMPLE_EVERY, MAX_SAMPLE_EVERY, GetTimer
from ..resilience import BreakerState, CircuitBreaker, FailOpen
from ..sentinels import DEFAULT, MISSING
from ..serialization import SERIALIZERS, Serializer, make_serializer
from ..serialization.header import Codec, pack_header, parse_decimal
from ..serialization.signing import secret_option
from ..stats import CacheStats
from ..ttl import TTL, TTLArg, check_default_ttl, resolve_ttl
from . import memcached_wire as wire
from .hashring import KetamaRing
from .memcached_async import MemcachedAsyncOps
from .memcached_errors import MemcachedNotAnInteger
from .memcached_wire import get_one, set_one

__all__ = ["MAX_EXPTIME", "MAX_KEY_LENGTH", "THIRTY_DAYS", "MemcachedCache"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: memcached refuses keys longer than this (bytes).
MAX_KEY_LENGTH: Final = 250
#: memcached reads an exptime above this as an absolute unix time, not a duration.
THIRTY_DAYS: Final = 2_592_000
#: The last absolute exptime memcached can hold (2038-01-19): it reads exptime as a signed
#: 32-bit number, so a later one wraps negative and the item expires at once.
MAX_EXPTIME: Final = 2**31 - 1
_DEFAULT_PORT: Final = 11211
#: Bytes an item costs beyond its key and value (item header, CAS, flags, ``\r\n``), rounded
#: up from memcached 1.6's ~56, so an item we accept is never refused by the server.
_ITEM_OVERHEAD: Final = 96
#: Room kept in every chunk for its key and the item header.
_CHUNK_HEADROOM: Final = 512
#: Client flags: 0 a plain value, 1 a chunk manifest.
_FLAG_CHUNKED: Final = 1
_MANIFEST_MAGIC: Final = b"CKCHUNK1"
_BAD_KEY_BYTES: Final = re.compile(rb"[\x00-\x20\x7f]")
#: Compare-and-swap rounds of the slow ``incr`` path before giving up on a very hot key.
_CAS_ATTEMPTS: Final = 100

# Filled in by _driver() the first time a client is built, which names the extra to install
# when pymemcache is missing (the ``memcached`` extra is optional; ``memcached_errors`` imports
# it when present, so that its error class can be pymemcache's too).
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError,)
_SERVER_ERROR: type[BaseException] = OSError
_CLIENT_ERROR: type[BaseException] = OSError
_driver_lock = threading.Lock()
_driver_module: Any = None
_client_class: Any = None


def _driver() -> Any:
    """Import pymemcache on first use, naming the extra to install if it is missing."""
    global _driver_module, _client_class, _NETWORK_ERRORS, _SERVER_ERROR, _CLIENT_ERROR  # noqa: PLW0603
    if _driver_module is not None:
        return _driver_module
    with _driver_lock:
        try:
            from pymemcache.client import base
            from pymemcache.exceptions import (
                MemcacheClientError,
                MemcacheServerError,
                MemcacheUnexpectedCloseError,
            )
        except ImportError as exc:  # pragma: no cover - the extra is installed in CI
            raise ConfigurationError(
                "the memcached provider needs pymemcache: pip install 'cachekit[memcached]'",
                key="url",
            ) from exc

        class Client(base.Client):  # type: ignore[misc]  # pymemcache has no type hints
            """pymemcache's client, whose sockets wait with kernel timeouts (half the system
            calls of Python's: see :func:`memcached_wire.kernel_timeouts`)."""

            def _connect(self) -> None:
                super()._connect()
                wire.kernel_timeouts(self.sock)

        _NETWORK_ERRORS = (OSError, MemcacheUnexpectedCloseError)
        _SERVER_ERROR = MemcacheServerError
        _CLIENT_ERROR = MemcacheClientError
        _client_class = Client
        _driver_module = base
    return base


class _Manifest(bytes):
    """A stored value with the chunked flag: the manifest of a value stored in chunks."""

    __slots__ = ()


class _BytesSerde:
    """pymemcache serde: values are already bytes; the chunk flag marks manifests on the way out."""

    __slots__ = ()

    def serialize(self, key: bytes, value: bytes) -> tuple[bytes, int]:
        return value, 0

    def deserialize(self, key: bytes, value: bytes, flags: int) -> bytes:
        return _Manifest(value) if flags & _FLAG_CHUNKED else value


_SERDE: Final = _BytesSerde()


# -- raw protocol (meta commands and pipelines pymemcache does not offer) -------------------------


def _raw(client: Any, *, payload: bytes, read: Callable[[Any, socket.socket, bytes], T]) -> T:
    """Send ``payload`` on this thread's connection and parse the reply with ``read``.

    ``read`` must consume the reply exactly; any error closes the connection so a half-read
    reply can never be mistaken for the next command's.
    """
    if client.sock is None:
        client._connect()
    try:
        client.sock.sendall(payload)
        return read(_driver(), client.sock, b"")
    except BaseException:
        client.close()
        raise


def _check_line(line: bytes) -> bytes:
    if line.startswith(b"SERVER_ERROR"):
        raise _SERVER_ERROR(line[13:].decode(errors="replace"))
    if line.startswith((b"CLIENT_ERROR", b"ERROR")):
        raise _CLIENT_ERROR(line.decode(errors="replace"))
    return line


def _read_meta(base: Any, sock: socket.socket, buf: bytes) -> tuple[bytes, bytes | None]:
    """One meta reply: its status line, and its value for a ``VA`` reply."""
    buf, line = base._readline(sock, buf)
    _check_line(line)
    if line.startswith(b"VA "):
        size = int(line.split(maxsplit=2)[1])
        buf, value = base._readvalue(sock, buf, size)
        return line, value
    return line, None


def _meta(command: bytes) -> Callable[[Any], tuple[bytes, bytes | None]]:
    """A call sending one meta command (with its ``\\r\\n``) and reading its reply."""
    return partial(_raw, payload=command, read=_read_meta)


def _meta_flags(line: bytes) -> dict[str, bytes]:
    """``b"HD t12 c5"`` -> ``{"t": b"12", "c": b"5"}`` (the value size of ``VA`` is skipped)."""
    parts = line.split()
    start = 2 if parts[0] == b"VA" else 1
    return {chr(part[0]): part[1:] for part in parts[start:]}


def _reader_of_lines(count: int) -> Callable[[Any, socket.socket, bytes], list[bytes]]:
    def read(base: Any, sock: socket.socket, buf: bytes) -> list[bytes]:
        lines = []
        for _ in range(count):
            buf, line = base._readline(sock, buf)
            lines.append(_check_line(line))
        return lines

    return read


# -- options ------------------------------------------------------------------------------------


def _prefix_option(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a str")
    raw = value.encode()
    if _BAD_KEY_BYTES.search(raw) or len(raw) > 128:
        raise ValueError("must be at most 128 bytes without whitespace or control characters")
    return value


class _Slot:
    """One thread's connection to one server, closed when the thread (or the cache) goes away."""

    __slots__ = ("__weakref__", "client")

    def __init__(self, client: Any) -> None:
        self.client = client

    def __del__(self) -> None:
        self.client.close()  # pymemcache's close() never raises


class _Counts:
    """One thread's stats counters ``[hits, misses, sets, deletes]``, updated by that thread only
    (no lock on the hot path); folded into the cache's retired totals when the thread ends."""

    __slots__ = ("__weakref__", "lock", "n", "retired")

    def __init__(self, retired: list[int], lock: threading.RLock) -> None:
        self.n = [0, 0, 0, 0]
        self.retired = retired
        self.lock = lock

    def __del__(self) -> None:
        with self.lock:
            for i, count in enumerate(self.n):
                self.retired[i] += count
            self.n[:] = (0, 0, 0, 0)  # a get_stats() racing this must not count them twice


class _Node:
    """One server: its address, its breaker and one pymemcache ``base.Client`` per thread."""

    __slots__ = (
        "_factory", "_local", "_lock", "_slots", "address", "breaker", "host", "max_clients",
        "port",
    )  # fmt: skip

    def __init__(
        self,
        host: str,
        port: int,
        breaker: CircuitBreaker,
        factory: Callable[[_Node], Any],
        max_clients: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.address = f"{host}:{port}"
        self.breaker = breaker
        self.max_clients = max_clients
        self._factory = factory
        self._local = threading.local()
        self._slots: weakref.WeakSet[_Slot] = weakref.WeakSet()
        self._lock = threading.Lock()

    def client(self) -> Any:
        """This thread's client (built, not yet connected, on first use)."""
        try:
            return self._local.slot.client
        except AttributeError:
            return self._new_client()

    def _new_client(self) -> Any:
        with self._lock:
            if self.max_clients is not None and len(self._slots) >= self.max_clients:
                raise BackendUnavailable(
                    f"memcached {self.address}: max_pool_size={self.max_clients} connections "
                    "are held by other threads"
                )
            slot = _Slot(self._factory(self))
            self._slots.add(slot)
        self._local.slot = slot
        return slot.client

    def interrupted(self) -> None:
        """A BaseException (KeyboardInterrupt, a signal handler's, gevent.Timeout) stopped a
        command midway: pymemcache closes its socket only on an ``Exception``, and the reply
        still to come would be read as the next command's. Close this thread's connection, and
        give back a half-open probe the call may hold (it reached no verdict)."""
        slot = getattr(self._local, "slot", None)
        if slot is not None:
            slot.client.close()
        self.breaker.release()

    def _after_fork(self) -> None:
        """Forget the parent's connections, unclosed (see :mod:`cachekit.forking`)."""
        self._local = threading.local()
        self._slots = weakref.WeakSet()
        self._lock = threading.Lock()
        self.breaker._after_fork()

    def close(self) -> None:
        """Close every thread's connection (a later call from a thread reconnects it)."""
        with self._lock:
            slots = list(self._slots)
        for slot in slots:
            slot.client.close()


class MemcachedCache(MemcachedAsyncOps, Cache):
    """A cache over one or more memcached servers; see the module docstring for the design."""

    provider_name = "memcached"
    _not_an_integer = MemcachedNotAnInteger

    #: Options accepted in ``memcached://host:port,...?option=value`` URLs and config dicts.
    options: ClassVar[dict[str, Option]] = {
        "name": text_option("a name for stats and metrics"),
        "prefix": Option(_prefix_option, "a key prefix without spaces or control characters"),
        "default_ttl": seconds_option(),
        "serializer": choice_option(SERIALIZERS),
        "compression": text_option("auto, zlib, zstd or none"),
        "compress_threshold": int_option(minimum=0),
        "secret": Option(secret_option, "an HMAC key (str or bytes)"),
        "connect_timeout": seconds_option(allow_none=False),
        "timeout": seconds_option(allow_none=False),
        "max_pool_size": int_option(minimum=1, allow_none=True),
        "retry_attempts": int_option(minimum=0, maximum=10),
        "dead_retry": seconds_option(allow_none=False),
        "fail_open": bool_option(),
        "breaker_failures": int_option(minimum=1),
        "breaker_recovery": seconds_option(allow_none=False),
        "key_policy": choice_option(("hash", "reject")),
        "max_item_size": size_option(),
        "large_values": choice_option(("reject", "chunk")),
        "flush_on_clear": bool_option(),
        "namespace_refresh": seconds_option(allow_none=False, positive=False),
        "stats_sample_every": int_option(minimum=1, maximum=MAX_SAMPLE_EVERY),
    }

    def __init__(
        self,
        servers: Iterable[str | tuple[str, int]] = (("127.0.0.1", _DEFAULT_PORT),),
        *,
        name: str = "default",
        prefix: str = "",
        default_ttl: TTL = None,
        serializer: str | Serializer = "pickle",
        compression: str | None = None,
        compress_threshold: int | None = None,
        secret: str | bytes | None = None,
        connect_timeout: float = 1.0,
        timeout: float = 1.0,
        max_pool_size: int | None = None,
        retry_attempts: int = 1,
        dead_retry: float | None = None,
        fail_open: bool = False,
        breaker_failures: int = 5,
        breaker_recovery: float | None = None,
        key_policy: str = "hash",
        max_item_size: int = 1024 * 1024,
        large_values: str = "reject",
        flush_on_clear: bool = False,
        namespace_refresh: float = 1.0,
        stats_sample_every: int = DEFAULT_SAMPLE_EVERY,
    ) -> None:
        super().__init__(name=name)
        self.default_ttl = check_default_ttl(default_ttl)
        # Codec options build a serializer given by name; beside an instance they would be
        # silently dropped (a cache given secret= reading unsigned pickles), so they raise, as
        # RedisCache's and FileCache's do. None is "not given", so an explicit default counts.
        codec_options: dict[str, Any] = {
            option: value
            for option, value in (
                ("compression", compression),
                ("compress_threshold", compress_threshold),
                ("secret", secret),
            )
            if value is not None
        }
        if isinstance(serializer, Serializer):
            if codec_options:
                raise ConfigurationError(
                    "compression/secret options apply to a serializer given by name",
                    key=next(iter(codec_options)),
                )
            self._serializer = serializer
        else:
            self._serializer = make_serializer(serializer, **codec_options)
        self._dumps = self._serializer.dumps
        self._dumps_parts = self._serializer.dumps_parts
        self._loads = self._serializer.loads
        if key_policy not in ("hash", "reject"):
            raise ConfigurationError(f"key_policy must be hash or reject, got {key_policy!r}")
        if large_values not in ("reject", "chunk"):
            raise ConfigurationError(
                f"large_values must be reject or chunk, got {large_values!r}", key="large_values"
            )
        if max_item_size < 4 * _CHUNK_HEADROOM:
            raise ConfigurationError(
                f"max_item_size must be at least {4 * _CHUNK_HEADROOM} bytes", key="max_item_size"
            )
        if namespace_refresh < 0:
            raise ConfigurationError("namespace_refresh must be >= 0", key="namespace_refresh")
        if (
            dead_retry is not None
            and breaker_recovery is not None
            and (dead_retry != breaker_recovery)
        ):
            raise ConfigurationError(
                "dead_retry and breaker_recovery are the same setting; give one of them",
                key="dead_retry",
            )
        recovery = dead_retry if dead_retry is not None else breaker_recovery
        self.key_policy = key_policy
        self.large_values = large_values
        self.max_item_size = max_item_size
        self.flush_on_clear = flush_on_clear
        self.namespace_refresh = namespace_refresh
        self._prefix = _prefix_option(prefix).encode()
        self._ns_key = self._prefix + b"!ns"
        self._ns_version = 0
        self._ns_bytes = b""
        self._ns_colon = b":"
        self._ns_fresh_until = float("-inf")
        self._ns_lock = threading.Lock()
        self._retry_attempts = retry_attempts
        self._client_options = {"connect_timeout": connect_timeout, "timeout": timeout}
        self._failure = FailOpen(fail_open, name=name)
        self._get_timer = GetTimer(stats_sample_every)
        self.fail_open = fail_open
        nodes: list[_Node] = []
        for server in servers:
            host, port = _parse_server(server)
            breaker = CircuitBreaker(
                failure_threshold=breaker_failures,
                recovery_timeout=5.0 if recovery is None else recovery,
                name=f"{name}@{host}:{port}",
            )
            nodes.append(_Node(host, port, breaker, self._make_client, max_pool_size))
        if not nodes:
            raise ConfigurationError("give at least one memcached server", key="url")
        self._nodes = {node.address: node for node in nodes}
        if len(self._nodes) != len(nodes):
            raise ConfigurationError("a memcached server is listed twice", key="url")
        self._ring = KetamaRing(self._nodes)
        self._single = nodes[0] if len(nodes) == 1 else None
        self._stats_local = threading.local()
        # Reentrant: a _Counts.__del__ run by the garbage collector while this thread holds it
        # (in _counts or _totals) folds its counts instead of deadlocking.
        self._stats_lock = threading.RLock()
        self._retired = [0, 0, 0, 0]
        self._all_counts: weakref.WeakSet[_Counts] = weakref.WeakSet()
        self._raw_header: bytes | None = (
            None if getattr(self._serializer, "signed", True) else pack_header(Codec.RAW, 0)
        )
        self._started_wall = time.time()
        self._started = time.monotonic()

    @classmethod
    def from_url(cls, url: ParsedURL, options: Mapping[str, Any]) -> MemcachedCache:
        """Build from ``memcached://host:port[,host2:port2...]?option=value``."""
        if url.path or url.username is not None or url.password is not None or not url.hosts:
            raise ConfigurationError(
                "memcached:// takes servers only (memcached://host:port,host2:port2?option=v); "
                f"got {redact_url(url.raw)!r}",
                key="url",
            )
        merged: dict[str, Any] = {**url.options, **options}
        parsed = parse_options("memcached://", merged, cls.options)
        servers = [(host, _DEFAULT_PORT if port is None else port) for host, port in url.hosts]
        return cls(servers, **parsed)

    def _make_client(self, node: _Node) -> Any:
        _driver()
        return _client_class(
            (node.host, node.port),
            serde=_SERDE,
            no_delay=True,
            default_noreply=False,
            allow_unicode_keys=True,
            **self._client_options,
        )

    # -- stats ------------------------------------------------------------------------------------

    def _counts(self) -> list[int]:
        """This thread's ``[hits, misses, sets, deletes]``."""
        try:
            counts: list[int] = self._stats_local.c.n
        except AttributeError:
            owner = _Counts(self._retired, self._stats_lock)
            with self._stats_lock:
                self._all_counts.add(owner)
            self._stats_local.c = owner
            counts = owner.n
        return counts

    def _totals(self) -> list[int]:
        with self._stats_lock:
            totals = list(self._retired)
            owners = list(self._all_counts)
            for owner in owners:
                for i, count in enumerate(owner.n):
                    totals[i] += count
        # Dropped after the lock: the list may hold the last reference to the counts of a
        # thread that ended meanwhile, whose __del__ takes the lock to fold them.
        del owners
        return totals

    # -- keys, routing and calls -------------------------------------------------------------------

    def _namespace(self) -> bytes:
        """``{prefix}{version}``, re-read from the server every ``namespace_refresh`` seconds."""
        if time.monotonic() < self._ns_fresh_until:
            return self._ns_bytes
        with self._ns_lock:
            if time.monotonic() >= self._ns_fresh_until:
                self._refresh_namespace()
            return self._ns_bytes

    def _refresh_namespace(self, bump: bool = False) -> None:
        key = self._ns_key
        node = self._route(key)

        def read_or_create(client: Any) -> int:
            counter = True
            if bump:
                try:
                    value = client.incr(key, 1, noreply=False)
                except _CLIENT_ERROR:
                    counter = False  # a value memcached cannot increment: replaced below
                else:
                    if value is not None:
                        return int(value)
            raw = client.get(key)
            # Missing (never created, evicted, or on a failover node): a fresh version from the
            # clock is above any earlier one, so an evicted version never revives old keys.
            fresh = max(time.time_ns() // 1_000, self._ns_version + 1)
            if raw is None:
                if client.add(key, b"%d" % fresh, 0, noreply=False):
                    return fresh
                raw = client.get(key)  # created by another client meanwhile
                if raw is None:
                    return fresh
            try:
                version = parse_decimal(bytes(raw))
            except SerializationError:
                version = None  # not ours (another program on a shared server)
            if version is not None and counter:
                return version
            # Overwritten, not added (the key is there): left in place, it failed every call
            # and clear() could not increment it.
            if version is not None:
                fresh = max(fresh, version + 1)
            client.set(key, b"%d" % fresh, 0, noreply=False)
            return fresh

        version = self._call(node, read_or_create, retry=not bump)
        # Never step back: a version lower than ours means the key was lost and re-created by
        # a client that had not seen our clear().
        if version < self._ns_version or (bump and version == self._ns_version):
            version = self._ns_version + (1 if bump else 0)
            self._call(node, lambda c: c.set(key, b"%d" % version, 0, noreply=False))
        self._ns_version = version
        self._ns_bytes = self._prefix + b"%d" % version
        self._ns_colon = self._ns_bytes + b":"
        self._ns_fresh_until = time.monotonic() + self.namespace_refresh

    def _keyspace(self) -> bytes:
        """``{prefix}{version}:``, the start of every plain stored key (see :meth:`_namespace`)."""
        if time.monotonic() < self._ns_fresh_until:
            return self._ns_colon
        self._namespace()
        return self._ns_colon

    def _key(self, key: str, keyspace: bytes | None = None) -> bytes:
        """The stored form of a checked user key, under the current namespace (``keyspace``,
        from :meth:`_keyspace`, when the caller already has it)."""
        if keyspace is None:
            keyspace = self._keyspace()
        # Fast path: a printable str without spaces has no byte memcached refuses (anything
        # below 0x21 or 0x7f comes from an ASCII control character or the space; non-ASCII
        # characters encode to bytes >= 0x80), so only the length is left to check.
        if key.isprintable() and " " not in key:
            stored = keyspace + key.encode()
            if len(stored) <= MAX_KEY_LENGTH:
                return stored
        return self._key_slow(key, keyspace[:-1])

    def _key_slow(self, key: str, namespace: bytes) -> bytes:
        check_encodable(key)  # a lone surrogate: no bytes every backend (and gRPC) agrees on
        raw = key.encode()
        bad = _BAD_KEY_BYTES.search(raw) is not None
        stored = namespace + b":" + raw
        if bad or len(stored) > MAX_KEY_LENGTH:
            if self.key_policy == "reject":
                raise InvalidKey(
                    f"memcached cannot store key {key[:60]!r}: over {MAX_KEY_LENGTH} bytes with "
                    "its prefix, or has whitespace or control characters (key_policy=reject)"
                )
            stored = namespace + b"#" + hashlib.sha256(raw).hexdigest().encode()
        return stored

    def _route(self, stored: bytes, checked: _Node | None = None) -> _Node:
        """The node for a stored key: its ring owner, or the next one whose breaker allows.

        ``checked`` is the single node when the caller has already asked its breaker (and
        been refused): a half-open breaker lets one probe through, so it is asked once.
        """
        single = self._single
        if single is not None:
            if checked is None and single.breaker.allow():
                return single
            raise BackendUnavailable(
                f"memcached {single.address} is unavailable (circuit open, retry in "
                f"{single.breaker.retry_in():.1f}s)"
            )
        owner = self._nodes[self._ring.get_node(stored)]
        if owner.breaker.allow():
            return owner
        for address in self._ring.iter_nodes(stored):
            node = self._nodes[address]
            if node is not owner and node.breaker.allow():
                return node
        raise BackendUnavailable("every memcached server is unavailable (circuits open)")

    def _call(
        self,
        node: _Node,
        fn: Callable[[Any], T],
        *,
        retry: bool = True,
        client_errors: bool = False,
    ) -> T:
        """Run ``fn(client)`` against ``node``, translating errors and feeding its breaker.

        Network errors are retried ``retry_attempts`` times on a fresh connection (a server
        restart leaves every pooled connection broken) when ``retry`` says the operation is
        idempotent; ``incr`` and ``add`` are not retried, since their first attempt may have
        been applied before the reply was lost. A ``CLIENT_ERROR`` reply is re-raised as it is
        when ``client_errors`` is set (``incr`` on a non-numeric value), else translated.
        """
        try:
            result = fn(node.client())
        except Exception as exc:
            return self._call_failed(node, fn, exc, retry=retry, client_errors=client_errors)
        except BaseException:
            node.interrupted()
            raise
        node.breaker.success()
        return result

    def _call_failed(
        self,
        node: _Node,
        fn: Callable[[Any], T],
        error: Exception,
        *,
        retry: bool = True,
        client_errors: bool = False,
    ) -> T:
        """The rest of :meth:`_call` once its first attempt raised ``error`` (the hot paths
        make that attempt inline and come here only on an error)."""
        retries = self._retry_attempts if retry else 0
        while True:
            if isinstance(error, _NETWORK_ERRORS):
                if retries <= 0:
                    break
                retries -= 1
                try:
                    result = fn(node.client())
                except Exception as exc:
                    error = exc
                    continue
                except BaseException:
                    node.interrupted()
                    raise
                node.breaker.success()
                return result
            if isinstance(error, _SERVER_ERROR):
                node.breaker.success()  # it answered: the server is up
                if "too large" in str(error):
                    raise ValueTooLarge(
                        f"memcached {node.address} refused an item as too large ({error}); "
                        "is max_item_size above the server's -I?"
                    ) from error
                raise BackendUnavailable(f"memcached {node.address}: {error}") from error
            if isinstance(error, _CLIENT_ERROR):
                node.breaker.success()
                if client_errors:
                    raise error
                raise BackendUnavailable(
                    f"memcached {node.address} refused a command: {error}"
                ) from error
            node.breaker.release()  # not the server's doing: no verdict on it
            raise error
        node.breaker.failure()
        # A kernel timeout (memcached_wire.kernel_timeouts) surfaces as EAGAIN: say what it is.
        reason = "timed out" if isinstance(error, BlockingIOError) else error
        raise BackendUnavailable(f"memcached {node.address}: {reason}") from error

    def _group(self, stored_keys: Iterable[bytes]) -> dict[_Node, list[bytes]]:
        single = self._single
        if single is not None:  # one server: no per-key routing
            keys = list(stored_keys)
            return {self._route(keys[0]): keys} if keys else {}
        # Each node's breaker is asked once per call: a half-open breaker grants one probe,
        # and every key that node owns rides on it. Asked per key, it gave the probe to the
        # first key and refused the next, whose failed routing then dropped the call with the
        # granted probe unrun. (Once any node is granted, every key can fall back to it.)
        groups: dict[_Node, list[bytes]] = {}
        allowed: dict[_Node, bool] = {}
        nodes, ring = self._nodes, self._ring
        for stored in stored_keys:
            node = nodes[ring.get_node(stored)]
            verdict = allowed.get(node)
            if verdict is None:
                verdict = allowed[node] = node.breaker.allow()
            if not verdict:
                node = self._fallback(stored, node, allowed)
            groups.setdefault(node, []).append(stored)
        return groups

    def _owners(self, stored_keys: list[bytes]) -> dict[_Node, list[bytes]]:
        """The keys grouped by their ring owners, with no fallback: a chunk is only where it
        was written, and looked for on the next server it would be "missing", and its value
        deleted as if evicted. An owner whose breaker refuses is an outage of the read."""
        if self._single is not None:
            groups = {self._single: stored_keys}
        else:
            groups = {}
            nodes, ring = self._nodes, self._ring
            for stored in stored_keys:
                groups.setdefault(nodes[ring.get_node(stored)], []).append(stored)
        granted: list[_Node] = []
        for node in groups:
            if not node.breaker.allow():
                for other in granted:  # a half-open probe granted and not run goes back
                    other.breaker.release()
                raise BackendUnavailable(
                    f"memcached {node.address} holds chunks of the value and is unavailable "
                    f"(circuit open, retry in {node.breaker.retry_in():.1f}s)"
                )
            granted.append(node)
        return groups

    def _fallback(self, stored: bytes, owner: _Node, allowed: dict[_Node, bool]) -> _Node:
        """The next node on the ring that allows a call, asking each breaker once per call."""
        for address in self._ring.iter_nodes(stored):
            node = self._nodes[address]
            if node is owner:
                continue
            verdict = allowed.get(node)
            if verdict is None:
                verdict = allowed[node] = node.breaker.allow()
            if verdict:
                return node
        raise BackendUnavailable("every memcached server is unavailable (circuits open)")

    def _exptime(self, seconds: float | None) -> int:
        """memcached's exptime for a positive TTL (see the module docstring)."""
        if seconds is None:
            return 0
        whole = math.ceil(seconds)
        if whole > THIRTY_DAYS:
            return min(math.ceil(time.time() + seconds), MAX_EXPTIME)
        return whole

    def _failed(self, operation: str, error: BackendUnavailable) -> None:
        """Raise (fail-closed) or count and log (fail-open)."""
        self._failure.handle(operation, error)

    # -- values -----------------------------------------------------------------------------------

    def _encode(self, stored: bytes, value: Any, exptime: int) -> tuple[bytes, int]:
        """``(payload, flags)`` for one key, writing chunks first when the value is chunked."""
        data = self._dumps(value)
        if len(data) + len(stored) + _ITEM_OVERHEAD <= self.max_item_size:
            return data, 0
        return self._encode_large(data, exptime)

    def _encode_large(self, data: bytes, exptime: int) -> tuple[bytes, int]:
        """A payload over the item size limit: refused, or written as chunks (their manifest)."""
        if self.large_values == "reject":
            raise ValueTooLarge(
                f"value of {len(data)} bytes exceeds memcached's item size limit "
                f"(max_item_size={self.max_item_size}); large_values=chunk would split it"
            )
        return self._write_chunks(data, exptime), _FLAG_CHUNKED

    def _write_chunks(self, data: bytes, exptime: int) -> bytes:
        size = self.max_item_size - _CHUNK_HEADROOM
        base = self._namespace() + b"~" + os.urandom(8).hex().encode() + b":"
        chunks = {
            base + b"%d" % i: data[offset : offset + size]
            for i, offset in enumerate(range(0, len(data), size))
        }
        for node, keys in self._group(chunks).items():
            batch = {key: chunks[key] for key in keys}
            failed = self._call(node, methodcaller("set_many", batch, exptime, noreply=False))
            if failed:
                raise BackendUnavailable(f"memcached {node.address}: chunks not stored")
        digest = hashlib.sha256(data).hexdigest().encode()
        return b" ".join((_MANIFEST_MAGIC, b"%d" % len(chunks), b"%d" % len(data), digest, base))

    def _decode(self, raw: bytes, node: _Node, stored: bytes) -> Any:
        """The payload read from ``stored`` on ``node`` as a value (``MISSING`` for a chunked
        value that cannot be rebuilt)."""
        if type(raw) is _Manifest:
            data = self._assemble(raw)
            if data is None:
                self._drop_manifest(node, stored, raw)
                return MISSING
            raw = data
        return self._loads(raw)

    def _drop_manifest(self, node: _Node, stored: bytes, manifest: bytes) -> None:
        """Delete the manifest of a value that lost a chunk, if it is still this one.

        Left in place, the key is present to ``add``, ``exists``, ``ttl`` and ``touch`` while
        every ``get`` misses (``get_or_set`` ran its factory on every call and stored nothing).
        The compare-and-delete spares a value written since it was read.
        """
        line, current = self._call(node, _meta(b"mg " + stored + b" c v\r\n"))
        if current == manifest:
            cas = _meta_flags(line)["c"]
            self._call(node, _meta(b"md " + stored + b" C" + cas + b"\r\n"))

    def _assemble(self, manifest: bytes) -> bytes | None:
        try:
            magic, count, length, digest, base = manifest.split(b" ")
            if magic != _MANIFEST_MAGIC:
                raise ValueError(magic)
            keys = [base + b"%d" % i for i in range(int(count))]
        except ValueError:
            log.warning("cache %r: ignoring a malformed chunk manifest", self.name)
            return None
        found: dict[bytes, bytes] = {}
        for node, group in self._owners(keys).items():
            found.update(self._call(node, methodcaller("get_many", group)))
        if len(found) != len(keys):
            return None  # a chunk was evicted or expired: the value is gone
        data = b"".join(bytes(found[key]) for key in keys)
        if len(data) != int(length) or hashlib.sha256(data).hexdigest().encode() != digest:
            log.warning("cache %r: chunked value failed verification; treated as a miss", self.name)
            return None
        return data

    # -- reads ------------------------------------------------------------------------------------

    def _read(self, key: str) -> Any:
        if type(key) is not str or not key:
            key = check_key(key)
        try:
            stored = self._key(key)
            node = self._single
            if node is None or not node.breaker.allow():
                node = self._route(stored, checked=node)
            try:
                raw = get_one(node.client(), stored, _check_line, _SERDE.deserialize)
            except Exception as exc:
                get = partial(
                    get_one, stored=stored, check_line=_check_line, deserialize=_SERDE.deserialize
                )
                raw = self._call_failed(node, get, exc)
            except BaseException:
                node.interrupted()
                raise
            else:
                node.breaker.success()
        except BackendUnavailable as exc:
            self._failed("get", exc)
            return MISSING
        if raw is None:
            return MISSING
        # Unsigned, uncompressed bytes (the header is exactly RAW without flags) need no
        # decoder: slice the body. A chunk manifest starts with its magic, never this header.
        if raw[:4] == self._raw_header:
            return raw[4:]
        try:
            return self._decode(raw, node, stored)
        except BackendUnavailable as exc:  # a chunk's server (or the manifest's) failed
            self._failed("get", exc)
            return MISSING

    def _get(self, key: str, default: Any) -> Any:
        value = self._read(key)
        try:
            counts = self._stats_local.c.n
        except AttributeError:
            counts = self._counts()
        if value is MISSING:
            counts[1] += 1
            return default
        counts[0] += 1
        return value

    def _peek(self, key: str) -> Any:
        return self._read(key)

    def exists(self, key: str) -> bool:
        key = check_key(key)
        try:
            stored = self._key(key)
            node = self._route(stored)
            line, _ = self._call(node, _meta(b"mg " + stored + b"\r\n"))
        except BackendUnavailable as exc:
            self._failed("exists", exc)
            return False
        return line.startswith(b"HD")

    def _stored_keys(self, keys: Iterable[str]) -> dict[bytes, str]:
        """``{stored key: user key}`` for checked keys, under one namespace read."""
        keyspace = self._keyspace()
        slow = self._key_slow
        wanted: dict[bytes, str] = {}
        for key in keys:
            if key.isprintable() and " " not in key:  # see _key
                stored = keyspace + key.encode()
                if len(stored) > MAX_KEY_LENGTH:
                    stored = slow(key, keyspace[:-1])
            else:
                stored = slow(key, keyspace[:-1])
            wanted[stored] = key
        return wanted

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        checked = [key if type(key) is str and key else check_key(key) for key in keys]
        if not checked:
            return {}
        found: dict[str, Any] = {}
        try:
            wanted = self._stored_keys(checked)
            groups = self._group(wanted)
        except BackendUnavailable as exc:
            self._failed("get_many", exc)
            self._counts()[1] += len(checked)
            return found
        decode = self._decode
        for node, group in groups.items():
            try:
                bodies, raw = self._call(
                    node,
                    partial(
                        wire.get_many,
                        stored=group,
                        check_line=_check_line,
                        deserialize=_SERDE.deserialize,
                        header=self._raw_header,  # see _read
                    ),
                )
            except BackendUnavailable as exc:
                self._failed("get_many", exc)
                continue
            for stored, body in bodies.items():
                found[wanted[stored]] = body
            for stored, payload in raw.items():
                try:
                    value = decode(payload, node, stored)
                except BackendUnavailable as exc:  # a chunk's server: only this key is lost
                    self._failed("get_many", exc)
                    continue
                if value is not MISSING:
                    found[wanted[stored]] = value
        counts = self._counts()
        counts[0] += len(found)
        counts[1] += len(wanted) - len(found)
        return found

    def ttl(self, key: str) -> float | None:
        key = check_key(key)
        try:
            stored = self._key(key)
            node = self._route(stored)
            line, _ = self._call(node, _meta(b"mg " + stored + b" t\r\n"))
        except BackendUnavailable as exc:
            self._failed("ttl", exc)
            return 0.0
        if not line.startswith(b"HD"):
            return 0.0
        remaining = int(_meta_flags(line)["t"])
        if remaining < 0:
            return None
        # memcached's clock ticks once a second, so an item it reports as having r seconds
        # left has between r - 1 and r: report the middle, never 0 for a live key.
        return max(remaining - 0.5, 0.5)

    def inspect(self, key: str) -> EntryInfo | None:
        """Value bytes and TTL in one meta command; fails closed (a tool must not read "absent"),
        even with ``fail_open``: a chunk's server failing raises too."""
        key = check_key(key)
        stored = self._key(key)
        node = self._route(stored)
        line, data = self._call(node, _meta(b"mg " + stored + b" v t f\r\n"))
        if not line.startswith(b"VA") or data is None:
            return None
        flags = _meta_flags(line)
        chunked = int(flags.get("f", b"0")) & _FLAG_CHUNKED
        value = self._decode(_Manifest(data) if chunked else data, node, stored)
        if value is MISSING:  # a chunked value that lost a chunk
            return None
        remaining = int(flags["t"])
        ttl = None if remaining < 0 else max(remaining - 0.5, 0.5)  # see ttl()
        if chunked:  # the manifest records the whole size
            size = int(data.split()[2])
            return EntryInfo(key, ttl, size, "chunked", None, type(value).__name__)
        serializer, compression = describe_payload(data)
        return EntryInfo(key, ttl, len(data), serializer, compression, type(value).__name__)

    # -- writes -----------------------------------------------------------------------------------

    def set(self, key: str, value: Any, ttl: TTLArg = DEFAULT) -> None:
        if type(key) is not str or not key:
            key = check_key(key)
        if type(ttl) is int and 0 < ttl <= THIRTY_DAYS:  # the usual TTL: its own exptime
            exptime = ttl
        else:
            seconds = resolve_ttl(ttl, self.default_ttl)
            if seconds is not None and seconds <= 0:
                self.delete(key)
                return
            exptime = self._exptime(seconds)
        try:
            stored = self._key(key)
            data = self._dumps_parts(value)
            if len(data[0]) + len(data[1]) + len(stored) + _ITEM_OVERHEAD <= self.max_item_size:
                flags = 0
            else:
                try:
                    manifest, flags = self._encode_large(b"".join(data), exptime)
                except ValueTooLarge as refusal:
                    self._drop_refused(key, refusal)
                    raise
                data = (b"", manifest)
            node = self._single
            if node is None or not node.breaker.allow():
                node = self._route(stored, checked=node)
            try:
                set_one(node.client(), stored, data, exptime, flags, check_line=_check_line)
            except Exception as exc:
                put = partial(
                    set_one,
                    stored=stored,
                    data=data,
                    exptime=exptime,
                    flags=flags,
                    check_line=_check_line,
                )
                self._call_failed(node, put, exc)
            except BaseException:
                node.interrupted()
                raise
            else:
                node.breaker.success()
        except BackendUnavailable as exc:
            self._failed("set", exc)
            return
        try:
            self._stats_local.c.n[2] += 1
        except AttributeError:
            self._counts()[2] += 1

    def add(self, key: str, value: Any, ttl: TTLArg = DEFAULT) -> bool:
        key = check_key(key)
        seconds = resolve_ttl(ttl, self.default_ttl)
        if seconds is not None and seconds <= 0:
            return not self.exists(key)
        return self._store_if("add", key, value, seconds)

    def replace(self, key: str, value: Any, ttl: TTLArg = DEFAULT) -> bool:
        """memcached's own ``replace``: stored only over a present item, atomically."""
        key = check_key(key)
        seconds = resolve_ttl(ttl, self.default_ttl)
        if seconds is not None and seconds <= 0:
            return self.delete(key)
        return self._store_if("replace", key, value, seconds)

    def _store_if(self, command: str, key: str, value: Any, seconds: float | None) -> bool:
        """memcached's conditional ``add``/``replace``; whether it stored (never claimed when
        the server could not be asked)."""
        exptime = self._exptime(seconds)
        try:
            stored = self._key(key)
            data, flags = self._encode(stored, value, exptime)
            node = self._route(stored)
            done = self._call(
                node,
                lambda c: getattr(c, command)(stored, data, exptime, noreply=False, flags=flags),
                retry=False,
            )
        except BackendUnavailable as exc:
            self._failed(command, exc)
            return False
        except ValueTooLarge as refusal:
            # A refused replace leaves the value it was to replace (memcached keeps it too: it
            # drops only a refused set's). A refused add leaves a present value: add would not
            # have replaced it, so it is not stale.
            if command == "replace":
                self._drop_refused(key, refusal)
            raise
        if done:
            self._counts()[2] += 1
        return bool(done)

    def set_many(self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT) -> list[str]:
        """Store every item, one ``set_many`` round trip per server; returns the keys not stored
        (values over the item size limit, and, when failing open, keys of unreachable servers)."""
        items = [
            (key if type(key) is str and key else check_key(key), value)
            for key, value in mapping.items()
        ]
        seconds = resolve_ttl(ttl, self.default_ttl)
        if seconds is not None and seconds <= 0:
            self.delete_many(key for key, _ in items)
            return []
        exptime = self._exptime(seconds)
        failed: list[str] = []
        # Refused before sending: their old values go, as memcached drops a value it refuses.
        refused_here: list[str] = []
        by_stored: dict[bytes, str] = {}
        payloads: dict[int, dict[bytes, wire.Payload]] = {0: {}, _FLAG_CHUNKED: {}}
        plain = payloads[0]
        dumps = self._dumps_parts
        limit = self.max_item_size - _ITEM_OVERHEAD
        try:
            stored_keys = self._stored_keys([key for key, _ in items])
            for (stored, key), (_, value) in zip(stored_keys.items(), items, strict=True):
                data = dumps(value)
                if len(data[0]) + len(data[1]) + len(stored) <= limit:
                    plain[stored] = data
                else:
                    try:
                        manifest, flags = self._encode_large(b"".join(data), exptime)
                    except ValueTooLarge:
                        failed.append(key)
                        refused_here.append(key)
                        continue
                    payloads[flags][stored] = (b"", manifest)
                by_stored[stored] = key
        except BackendUnavailable as exc:
            self._failed("set_many", exc)
            return [key for key, _ in items]
        for flags, batch in payloads.items():
            if not batch:
                continue
            try:
                groups = self._group(batch)
            except BackendUnavailable as exc:
                self._failed("set_many", exc)
                failed.extend(by_stored[stored] for stored in batch)
                continue
            for node, group in groups.items():
                values = (
                    batch
                    if len(group) == len(batch)
                    else {stored: batch[stored] for stored in group}
                )
                try:
                    refused = self._call(
                        node,
                        partial(
                            wire.set_many,
                            values=values,
                            exptime=exptime,
                            flags=flags,
                            check_line=_check_line,
                        ),
                    )
                except BackendUnavailable as exc:
                    self._failed("set_many", exc)
                    failed.extend(by_stored[stored] for stored in group)
                    continue
                failed.extend(by_stored[stored] for stored in refused)
                self._counts()[2] += len(group) - len(refused)
        if refused_here:
            self.delete_many(refused_here)
        return failed

    def _drop_refused(self, key: str, refusal: ValueTooLarge) -> None:
        """Delete ``key``'s previous value after a write of it was refused as too large, as
        memcached does for a ``set`` it refuses and ``set_many`` for one refused here: no stale
        value is read afterwards. The refusal is what the caller gets either way: a delete that
        fails is counted when failing open, else noted on the refusal (the value may remain)."""
        try:
            self.delete(key)
        except BackendUnavailable as outage:
            refusal.add_note(f"its previous value could not be deleted, and may remain: {outage}")

    def delete(self, key: str) -> bool:
        key = check_key(key)
        try:
            stored = self._key(key)
            node = self._route(stored)
            deleted = bool(self._call(node, lambda c: c.delete(stored, noreply=False)))
        except BackendUnavailable as exc:
            self._failed("delete", exc)
            return False
        if deleted:
            self._counts()[3] += 1
        return deleted

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove the keys with one pipelined round trip per server; return how many existed."""
        checked = [check_key(key) for key in keys]
        if not checked:
            return 0
        count = 0
        try:
            groups = self._group(dict.fromkeys(self._key(key) for key in checked))
        except BackendUnavailable as exc:
            self._failed("delete_many", exc)
            return 0
        for node, group in groups.items():
            payload = b"".join(b"delete " + stored + b"\r\n" for stored in group)
            try:
                lines = self._call(
                    node, partial(_raw, payload=payload, read=_reader_of_lines(len(group)))
                )
            except BackendUnavailable as exc:
                self._failed("delete_many", exc)
                continue
            count += sum(1 for line in lines if line == b"DELETED")
        self._counts()[3] += count
        return count

    def touch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        key = check_key(key)
        seconds = resolve_ttl(ttl, self.default_ttl)
        if seconds is not None and seconds <= 0:
            return self.delete(key)
        exptime = self._exptime(seconds)
        try:
            stored = self._key(key)
            node = self._route(stored)
            # Meta get with T: sets the TTL and returns the client flags, in one round trip.
            command = b"mg %s T%d f\r\n" % (stored, exptime)
            line, _ = self._call(node, _meta(command))
            if not line.startswith(b"HD"):
                return False
            if int(_meta_flags(line).get("f", b"0")) & _FLAG_CHUNKED:
                self._touch_chunks(node, stored, exptime)
        except BackendUnavailable as exc:
            self._failed("touch", exc)
            return False
        return True

    def _touch_chunks(self, node: _Node, stored: bytes, exptime: int) -> None:
        manifest = self._call(node, lambda c: c.get(stored))
        if manifest is None:
            return
        parts = bytes(manifest).split(b" ")
        if len(parts) != 5 or parts[0] != _MANIFEST_MAGIC:
            return
        base, count = parts[4], int(parts[1])
        for i in range(count):
            chunk = base + b"%d" % i
            self._call(self._route(chunk), methodcaller("touch", chunk, exptime, noreply=False))

    # -- counters ---------------------------------------------------------------------------------

    def incr(self, key: str, delta: int = 1) -> int:
        """Atomic on the server; see the module docstring for how negatives are handled."""
        key = check_key(key)
        if type(delta) is not int:
            raise MemcachedNotAnInteger(f"delta must be an int, got {delta!r}")
        try:
            return self._incr(key, delta)
        except BackendUnavailable as exc:
            # Not even fail-open invents a counter value: record the failure, then raise.
            if self.fail_open:
                self._failure.handle("incr", exc)
            raise

    def _incr(self, key: str, delta: int) -> int:
        stored = self._key(key)
        node = self._route(stored)
        for _ in range(_CAS_ATTEMPTS):
            result: int | None
            if 0 <= delta < 2**64:
                try:
                    reply: Any = self._call(
                        node,
                        lambda c: c.incr(stored, delta, noreply=False),
                        retry=False,
                        client_errors=True,
                    )
                except _CLIENT_ERROR:
                    result = self._incr_cas(node, stored, delta)  # non-numeric for memcached
                else:
                    if reply is None:
                        result = self._start_counter(node, stored, delta)
                    else:
                        result = int(reply)
                        if result < delta:  # memcached wrapped past 2**64 - 1 and said nothing
                            self._unwrap(node, stored, delta)
            else:
                result = self._incr_cas(node, stored, delta)
            if result is not None:
                return result
        raise BackendUnavailable(f"incr of {key!r} lost {_CAS_ATTEMPTS} races in a row")

    def _unwrap(self, node: _Node, stored: bytes, delta: int) -> NoReturn:
        """Undo an ``incr`` that wrapped modulo 2**64, then refuse it as Redis does an overflow.

        memcached's ``incr`` is modular: ``2**64 - 3`` plus 5 silently became 2. Adding
        ``2**64 - delta`` wraps the counter back (additions commute, so one made meanwhile by
        another client is kept); the caller gets the typed error, nothing changed.
        """
        self._call(node, lambda c: c.incr(stored, 2**64 - delta, noreply=False), retry=False)
        raise MemcachedNotAnInteger(
            f"increment or decrement would overflow: adding {delta} passes 2**64 - 1, "
            "memcached's largest counter (nothing was changed)"
        )

    def _start_counter(self, node: _Node, stored: bytes, delta: int) -> int | None:
        """Create a missing counter at ``delta``; ``None`` if someone created it first."""
        exptime = self._exptime(self.default_ttl)
        added = self._call(
            node, lambda c: c.add(stored, b"%d" % delta, exptime, noreply=False), retry=False
        )
        return delta if added else None

    def _incr_cas(self, node: _Node, stored: bytes, delta: int) -> int | None:
        """One compare-and-swap round; ``None`` when it lost a race and must be retried."""
        line, raw = self._call(node, _meta(b"mg " + stored + b" v t c f\r\n"))
        if raw is None:
            return self._start_counter(node, stored, delta)
        flags = _meta_flags(line)
        if int(flags.get("f", b"0")) & _FLAG_CHUNKED or raw[:1] == b"\xc1":
            raise MemcachedNotAnInteger("the value is not an integer")
        try:
            current = parse_decimal(raw)
        except SerializationError:
            raise MemcachedNotAnInteger("the stored value is not an integer") from None
        new = current + delta
        remaining = int(flags["t"])
        # The remaining TTL, so that incr keeps the expiry (0 = never); it is already whole
        # seconds, and a key about to expire gets at least 1.
        exptime = 0 if remaining < 0 else self._exptime(max(remaining, 1))
        data = b"%d" % new
        command = b"ms %s %d C%s T%d F0\r\n%s\r\n" % (stored, len(data), flags["c"], exptime, data)
        reply, _ = self._call(node, _meta(command), retry=False)
        return new if reply.startswith(b"HD") else None

    # -- whole cache ------------------------------------------------------------------------------

    def clear(self) -> None:
        """Start a new namespace (or ``flush_all`` every server with ``flush_on_clear``)."""
        if self.flush_on_clear:
            self._flush_all()
            return
        try:
            with self._ns_lock:
                self._refresh_namespace(bump=True)
        except BackendUnavailable as exc:
            self._failed("clear", exc)

    def _flush_all(self) -> None:
        """``flush_all`` on every server, each on its own: one down must not spare the others.
        A server whose breaker is open is skipped, not waited for; each one not flushed is a
        failure, raised (fail-closed) or counted (fail-open) once all were tried."""
        errors: list[BackendUnavailable] = []
        for node in self._nodes.values():
            if not node.breaker.allow():
                errors.append(
                    BackendUnavailable(
                        f"memcached {node.address} not flushed (circuit open, retry in "
                        f"{node.breaker.retry_in():.1f}s)"
                    )
                )
                continue
            try:
                self._call(node, methodcaller("flush_all", noreply=False))
            except BackendUnavailable as exc:
                errors.append(exc)
        if not errors:
            return
        if self.fail_open or len(errors) == 1:
            for error in errors:
                self._failed("clear", error)
            return
        combined = BackendUnavailable(
            f"clear: {len(errors)} of {len(self._nodes)} memcached servers not flushed: "
            + "; ".join(str(error) for error in errors)
        )
        combined.__cause__ = errors[0]
        self._failed("clear", combined)

    def get_stats(self) -> CacheStats:
        """Client-side counters; items, memory and evictions are server-wide, summed over nodes.

        ``items`` leaves out this cache's namespace-version key.
        """
        totals = {b"curr_items": 0, b"bytes": 0, b"evictions": 0, b"limit_maxbytes": 0}
        nodes: dict[str, Any] = {}
        for node in self._nodes.values():
            entry: dict[str, Any] = {"up": False}
            if node.breaker.state is not BreakerState.OPEN:
                try:
                    stats = self._call(node, lambda c: c.stats(), retry=False)
                except BackendUnavailable:
                    pass
                else:
                    entry["up"] = True
                    for name in totals:
                        totals[name] += int(stats.get(name, 0))
            entry.update(node.breaker.snapshot())
            nodes[node.address] = entry
        # The version key exists once any client wrote here, whether or not this one has read
        # it yet (a fresh process that only asks for stats): probe it either way.
        if not self.flush_on_clear:
            try:
                ns_node = self._route(self._ns_key)
                line, _ = self._call(ns_node, _meta(b"mg " + self._ns_key + b"\r\n"))
                if line.startswith(b"HD"):
                    totals[b"curr_items"] -= 1
            except BackendUnavailable:
                pass
        hits, misses, sets, deletes = self._totals()
        return CacheStats(
            name=self.name,
            provider=self.provider_name,
            items=max(totals[b"curr_items"], 0),
            hits=hits,
            misses=misses,
            sets=sets,
            deletes=deletes,
            evictions=totals[b"evictions"],
            expirations=0,
            memory_bytes=totals[b"bytes"],
            memory_limit=totals[b"limit_maxbytes"] or None,
            max_entries=None,
            started_at=self._started_wall,
            uptime=time.monotonic() - self._started,
            extra={
                "nodes": nodes,
                "nodes_up": sum(1 for entry in nodes.values() if entry["up"]),
                "namespace_version": self._ns_version,
                **self._failure.snapshot(),
            },
            **self._get_timer.fields(),
        )

    def close(self) -> None:
        for node in self._nodes.values():
            node.close()

    def _after_fork(self) -> None:
        super()._after_fork()
        for node in self._nodes.values():
            node._after_fork()
        self._ns_lock = threading.Lock()
        self._failure._after_fork()
        self._get_timer._after_fork()
        self._stats_lock = lock = threading.RLock()
        for counts in list(self._all_counts):  # they fold into the totals under it
            counts.lock = lock

    def reset_stats(self) -> None:
        """Zero the client-side counters (not the data); ``started_at`` restarts too. Each
        thread's counts are its own to update: one it bumps meanwhile may survive the reset."""
        with self._stats_lock:
            self._retired[:] = (0, 0, 0, 0)
            for counts in list(self._all_counts):
                counts.n[:] = (0, 0, 0, 0)
            self._started_wall = time.time()
            self._started = time.monotonic()
        self._get_timer.reset()

    def __repr__(self) -> str:
        return f"<MemcachedCache name={self.name!r} servers={list(self._nodes)!r}>"


def _parse_server(server: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(server, tuple):
        host, port = server
    else:
        host, _, port_text = server.rpartition(":")
        if not host:
            host, port_text = port_text, str(_DEFAULT_PORT)
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigurationError(f"bad memcached server {server!r}", key="url") from None
    if not host or type(port) is not int or not 0 < port < 65536:
        raise ConfigurationError(f"bad memcached server {server!r}", key="url")
    return host, port
