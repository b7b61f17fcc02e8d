"""Connections of the Redis provider: URL -> settings -> lazily built sync and async clients.

``redis+cluster://h1:7000,h2:7001`` builds redis-py's ``RedisCluster`` (and its asyncio twin)
from the listed startup nodes; the slot map is discovered on first use and refreshed by
redis-py on ``MOVED`` and on connection errors (after a failover).

Kept apart from the cache semantics (as Django's ``RedisCacheClient`` is): :class:`RedisClients`
owns the connection pools and builds them on first use, never in the constructor, so building
a cache never connects.

Async clients are bound to an event loop (their sockets belong to it), and ``asyncio.run()``
gives every call its own loop. One async client is kept per running loop; it is closed when
that loop shuts down: the first time a loop asks for its client, a tiny async generator is
started in it and parked on a ``yield``. ``asyncio.run()`` (and every loop runner that calls
``loop.shutdown_asyncgens()``) closes live async generators before closing the loop, which
runs the generator's ``finally`` - where the client's connections are closed, inside the loop
that owns them. Without this, the sockets of a finished loop would leak (and warn).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Coroutine
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.backoff import ExponentialBackoff

from ..config import Option, ParsedURL, bool_option, int_option, redact_url, seconds_option
from ..errors import ConfigurationError
from ..metrics.latency import MAX_SAMPLE_EVERY
from ..serialization import SERIALIZERS, Serializer
from ..serialization.signing import secret_option

__all__ = ["OPTIONS", "UNAVAILABLE", "ConnectionSettings", "RedisClients", "settings_from_url"]

#: URL schemes this module understands.
SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster")
#: Errors meaning the server cannot be used now: they feed the breaker and fail-open. The
#: cluster ones: slots not served during a failover (``CLUSTERDOWN``, ``TRYAGAIN``), redis-py's
#: retries exhausted (``ClusterError``) and "no reachable node" (``RedisClusterException``,
#: which is not a ``RedisError``).
UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
    redis.exceptions.RedisClusterException,
)
_CERT_REQS = ("required", "optional", "none")
_SENTINEL_AUTH = ("sentinel_username", "sentinel_password")


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Where the server is and how to talk to it; everything a pool needs."""

    scheme: str
    hosts: tuple[tuple[str, int], ...] = (("127.0.0.1", 6379),)
    db: int = 0
    username: str | None = None
    password: str | None = None
    unix_path: str | None = None
    service: str | None = None  # sentinel: the monitored master's name
    # sentinel: the sentinels' own credentials (the URL's are the master's, as in redis-py)
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    max_connections: int | None = None
    socket_timeout: float | None = 5.0
    socket_connect_timeout: float | None = 2.0
    retries: int = 1
    health_check_interval: float = 0.0
    ssl: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """Where this cache connects, without credentials (for logs and errors)."""
        if self.unix_path:
            return f"unix://{self.unix_path}?db={self.db}"
        hosts = ",".join(f"{h}:{p}" for h, p in self.hosts)
        service = f"/{self.service}" if self.service else ""
        return f"{self.scheme}://{hosts}{service}/{self.db}"


def _db(text: str, where: str) -> int:
    try:
        db = int(text)
    except ValueError:
        raise ConfigurationError(
            f"bad database number {text!r} in {redact_url(where)!r}", key="url"
        ) from None
    if db < 0:
        raise ConfigurationError(
            f"database number must be >= 0 in {redact_url(where)!r}", key="url"
        )
    return db


def settings_from_url(url: ParsedURL, options: dict[str, Any]) -> ConnectionSettings:
    """Build :class:`ConnectionSettings` from a parsed URL and already-validated options.

    ``options`` holds the connection options popped from the provider's option table (``db``
    for ``unix://`` URLs, pool and socket settings, TLS files).
    """
    scheme = url.scheme
    common: dict[str, Any] = {
        key: options.pop(key)
        for key in (
            "max_connections",
            "socket_timeout",
            "socket_connect_timeout",
            "retries",
            "health_check_interval",
        )
        if key in options
    }
    ssl = {key: options.pop(key) for key in list(options) if key.startswith("ssl_")}
    if ssl and scheme != "rediss":
        raise ConfigurationError(
            f"TLS options ({', '.join(sorted(ssl))}) need a rediss:// URL, got {scheme}://",
            key=sorted(ssl)[0],
        )
    db_option = options.pop("db", None)
    sentinel_auth = {key: options.pop(key) for key in _SENTINEL_AUTH if key in options}
    if sentinel_auth and scheme != "redis+sentinel":
        raise ConfigurationError(
            f"{', '.join(sorted(sentinel_auth))} need a redis+sentinel:// URL, got {scheme}://",
            key=sorted(sentinel_auth)[0],
        )
    auth: dict[str, Any] = {"username": url.username, "password": url.password}
    if scheme == "unix":
        if url.hosts or not url.path:
            raise ConfigurationError(
                "a unix socket URL looks like unix:///path/to/redis.sock?db=0, "
                f"got {redact_url(url.raw)!r}",
                key="url",
            )
        path = "/" + url.path.lstrip("/")
        return ConnectionSettings(scheme, (), db_option or 0, unix_path=path, **auth, **common)
    parts = [part for part in url.path.split("/") if part]
    if db_option is not None and not (scheme in ("redis", "rediss") and not parts):
        # redis-py reads redis://host:6379?db=2 too; a database in both places is ambiguous.
        raise ConfigurationError(
            f"{scheme}:// URLs name the database in the path ({scheme}://host:port/DB)", key="db"
        )
    default_port = 26379 if scheme == "redis+sentinel" else 6379
    hosts = tuple((host or "127.0.0.1", port or default_port) for host, port in url.hosts)
    if scheme == "redis+cluster":
        if not hosts or parts not in ([], ["0"]):
            raise ConfigurationError(
                "a cluster URL looks like redis+cluster://[user:pass@]h1:7000,h2:7001 "
                f"(a cluster has database 0 only), got {redact_url(url.raw)!r}",
                key="url",
            )
        return ConnectionSettings(scheme, hosts, 0, **auth, **common)
    if scheme == "redis+sentinel":
        if not hosts or not parts or len(parts) > 2:
            raise ConfigurationError(
                "a sentinel URL looks like redis+sentinel://h1:26379,h2:26379/SERVICE/DB, "
                f"got {redact_url(url.raw)!r}",
                key="url",
            )
        db = _db(parts[1], url.raw) if len(parts) == 2 else 0
        return ConnectionSettings(
            scheme, hosts, db, service=parts[0], **auth, **sentinel_auth, **common
        )
    if len(hosts) > 1 or len(parts) > 1:
        raise ConfigurationError(
            f"a {scheme} URL looks like {scheme}://[user:pass@]host:port/DB, "
            f"got {redact_url(url.raw)!r}",
            key="url",
        )
    db = _db(parts[0], url.raw) if parts else (db_option or 0)
    return ConnectionSettings(
        scheme, hosts or (("127.0.0.1", 6379),), db, ssl=ssl, **auth, **common
    )


def cert_reqs_option(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in _CERT_REQS:
        raise ValueError(f"expected one of {', '.join(_CERT_REQS)}")
    return value.lower()


def _str_option(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _serializer_option(value: Any) -> Any:
    if isinstance(value, Serializer) or (isinstance(value, str) and value in SERIALIZERS):
        return value
    raise ValueError(f"expected one of {', '.join(sorted(SERIALIZERS))} or a Serializer")


#: Options of the Redis provider, in the URL's query string or a config dict (validated up front).
OPTIONS: dict[str, Option] = {
    "name": Option(_str_option, "a name for stats, metrics and the default prefix"),
    "prefix": Option(_str_option, "a non-empty key prefix (namespace)"),
    "default_ttl": seconds_option(),
    "serializer": Option(_serializer_option, "a serializer name or a Serializer"),
    "compression": Option(_str_option, "auto, none, zlib, zstd..."),
    "compress_threshold": int_option(minimum=0),
    "secret": Option(secret_option, "an HMAC key (str or bytes) signing stored values"),
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
    "stats_sample_every": int_option(minimum=1, maximum=MAX_SAMPLE_EVERY),
    "db": int_option(minimum=0),
    "ssl_ca_certs": Option(_str_option, "a CA bundle path"),
    "ssl_certfile": Option(_str_option, "a client certificate path"),
    "ssl_keyfile": Option(_str_option, "a client key path"),
    "ssl_cert_reqs": Option(cert_reqs_option, "required, optional or none"),
    "ssl_check_hostname": bool_option(),
    "sentinel_username": Option(_str_option, "the sentinels' ACL user (redis+sentinel:// only)"),
    "sentinel_password": Option(_str_option, "the sentinels' password (redis+sentinel:// only)"),
}


class RedisClients:
    """Lazily built, thread-safe owner of one sync client and one async client per loop."""

    __slots__ = ("_async", "_lock", "_sync", "settings")

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._sync: redis.Redis | None = None
        # id(loop) -> (loop, client, the parked guard generator that closes it)
        self._async: dict[
            int, tuple[asyncio.AbstractEventLoop, Any, AsyncGenerator[None, None]]
        ] = {}

    # -- connection keyword arguments ------------------------------------------------------------

    def _connection_kwargs(self) -> dict[str, Any]:
        s = self.settings
        kwargs: dict[str, Any] = {
            "db": s.db,
            "username": s.username,
            "password": s.password,
            "socket_timeout": s.socket_timeout,
            "socket_connect_timeout": s.socket_connect_timeout,
            "health_check_interval": s.health_check_interval,
        }
        return kwargs

    def _retry(self, asynchronous: bool) -> Any:
        backoff = ExponentialBackoff(cap=0.5, base=0.01)
        if asynchronous:
            from redis.asyncio.retry import Retry as AsyncRetry

            return AsyncRetry(backoff, self.settings.retries)
        from redis.retry import Retry

        return Retry(backoff, self.settings.retries)

    def _sentinel_kwargs(self, asynchronous: bool) -> dict[str, Any]:
        s = self.settings
        kwargs: dict[str, Any] = {
            "socket_timeout": s.socket_timeout,
            "socket_connect_timeout": s.socket_connect_timeout,
            # cachekit's retry policy, not redis-py's default (3 retries backing off from 1 s:
            # seconds per call while a sentinel is down or refuses us)
            "retry": self._retry(asynchronous),
        }
        if s.sentinel_username is not None:
            kwargs["username"] = s.sentinel_username
        if s.sentinel_password is not None:
            kwargs["password"] = s.sentinel_password
        return kwargs

    def _ssl_kwargs(self) -> dict[str, Any]:
        ssl = dict(self.settings.ssl)
        if "ssl_cert_reqs" in ssl and ssl["ssl_cert_reqs"] == "none":
            ssl.setdefault("ssl_check_hostname", False)
        return ssl

    # -- sync ----------------------------------------------------------------------------------

    def sync(self) -> redis.Redis:
        client = self._sync
        if client is None:
            with self._lock:
                client = self._sync
                if client is None:
                    client = self._sync = self._build_sync()
        return client

    def _build_sync(self) -> redis.Redis:
        s = self.settings
        kwargs = self._connection_kwargs()
        kwargs["retry"] = self._retry(False)
        if s.scheme == "redis+cluster":
            # A RedisCluster: not a redis.Redis, but the same command API for our uses.
            cluster: redis.Redis = self._build_cluster(kwargs)
            return cluster
        if s.scheme == "redis+sentinel":
            assert s.service is not None
            sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
                list(s.hosts),
                sentinel_kwargs=self._sentinel_kwargs(False),
                **kwargs,
            )
            master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
                s.service, max_connections=s.max_connections
            )
            master.cachekit_sentinels = list(sentinel.sentinels)  # type: ignore[attr-defined]
            return master
        connection_class: type[Any]
        if s.unix_path is not None:
            connection_class = redis.UnixDomainSocketConnection
            kwargs["path"] = s.unix_path
        else:
            connection_class = redis.SSLConnection if s.scheme == "rediss" else redis.Connection
            kwargs["host"], kwargs["port"] = s.hosts[0]
            if s.scheme == "rediss":
                kwargs.update(self._ssl_kwargs())
        pool = redis.ConnectionPool(
            connection_class=connection_class, max_connections=s.max_connections, **kwargs
        )
        return redis.Redis(connection_pool=pool)

    def _build_cluster(self, kwargs: dict[str, Any]) -> Any:
        from redis.cluster import ClusterNode, RedisCluster

        s = self.settings
        del kwargs["db"]
        if s.max_connections is not None:
            kwargs["max_connections"] = s.max_connections
        nodes = [ClusterNode(host, port) for host, port in s.hosts]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=nodes, **kwargs)

    # -- async ---------------------------------------------------------------------------------

    def aclient(self) -> Any:
        """The async client of the running loop (built on first use in that loop)."""
        loop = asyncio.get_running_loop()
        entry = self._async.get(id(loop))
        if entry is not None and entry[0] is loop:
            return entry[1]
        client = self._build_async()
        guard = self._close_with_loop(loop, client)
        with self._lock:
            self._async[id(loop)] = (loop, client, guard)
        # Park the guard on its yield; anext() on an async generator's first step is synchronous
        # up to the first await, so stepping it through the coroutine protocol is enough.
        step: Coroutine[Any, Any, None] = guard.__anext__()
        with contextlib.suppress(StopIteration):
            step.send(None)
        return client

    async def _close_with_loop(
        self, loop: asyncio.AbstractEventLoop, client: Any
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                entry = self._async.get(id(loop))
                if entry is not None and entry[1] is client:
                    del self._async[id(loop)]
            if self.settings.scheme == "redis+cluster":
                await client.aclose()
                # aclose() closes nothing while the client awaits re-initialization (after a
                # timeout or a connection error): every node's sockets would be left open.
                await client.nodes_manager.aclose()
                await client.nodes_manager.aclose("startup_nodes")
            else:
                await client.aclose(close_connection_pool=True)
            # A Sentinel-managed client also holds clients of the sentinels themselves.
            for sentinel_client in getattr(client, "cachekit_sentinels", ()):
                await sentinel_client.aclose(close_connection_pool=True)

    def _build_async(self) -> Any:
        s = self.settings
        kwargs = self._connection_kwargs()
        kwargs["retry"] = self._retry(True)
        if s.scheme == "redis+cluster":
            from redis.asyncio.cluster import ClusterNode, RedisCluster

            del kwargs["db"]
            if s.max_connections is not None:
                kwargs["max_connections"] = s.max_connections
            nodes = [ClusterNode(host, port) for host, port in s.hosts]
            return RedisCluster(startup_nodes=nodes, **kwargs)
        if s.scheme == "redis+sentinel":
            assert s.service is not None
            sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
                list(s.hosts),
                sentinel_kwargs=self._sentinel_kwargs(True),
                **kwargs,
            )
            client = sentinel.master_for(s.service, max_connections=s.max_connections)
            client.cachekit_sentinels = list(sentinel.sentinels)
            return client
        import redis.asyncio.connection as aconn

        connection_class: type[Any]
        if s.unix_path is not None:
            connection_class = aconn.UnixDomainSocketConnection
            kwargs["path"] = s.unix_path
        else:
            connection_class = aconn.SSLConnection if s.scheme == "rediss" else aconn.Connection
            kwargs["host"], kwargs["port"] = s.hosts[0]
            if s.scheme == "rediss":
                kwargs.update(self._ssl_kwargs())
        pool = aconn.ConnectionPool(
            connection_class=connection_class, max_connections=s.max_connections, **kwargs
        )
        return redis.asyncio.Redis(connection_pool=pool)

    # -- closing -------------------------------------------------------------------------------

    def _after_fork(self) -> None:
        """redis-py's pools reconnect in a new process by themselves; only the lock, which
        another thread of the parent may have held, is replaced. The asyncio clients stay:
        they belong to the parent's event loops, which the child does not run."""
        self._lock = threading.Lock()

    def close(self) -> None:
        """Disconnect the sync pool; the next call reconnects (a new pool is built lazily)."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            if self.settings.scheme != "redis+cluster":  # a cluster client closes its nodes
                # Idle connections only: one another thread is using finishes its command
                # (closing its socket under it raised redis-py's internal errors, untyped),
                # then goes back to this dropped pool and is closed when that is collected.
                client.connection_pool.disconnect(inuse_connections=False)
            client.close()
            for sentinel_client in getattr(client, "cachekit_sentinels", ()):
                sentinel_client.close()

    async def aclose(self) -> None:
        """Close the running loop's async client (others close with their loops)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._async.pop(id(loop), None)
        if entry is not None and entry[0] is loop:
            await entry[2].aclose()  # runs its finally: closes the client in this loop
