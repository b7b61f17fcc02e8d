"""Flask-Caching's ``CACHE_*`` configuration translated into a cachekit provider.

Every key is checked in ``init_app``: an unknown ``CACHE_TYPE``, a backend cachekit has no
provider for, or a bad value raises :class:`cachekit.errors.ConfigurationError` whose ``key`` is
the Flask config key, so a typo fails at start-up instead of on the first cached call.
``CACHEKIT_URL`` (any ``create_cache`` URL) takes precedence over ``CACHE_TYPE``, and
``CACHEKIT_OPTIONS`` (a dict) reaches the provider as-is, for what Flask-Caching cannot say
(eviction policies, the near cache, Redis Cluster, tags, fail-open...).
"""

from __future__ import annotations

import hashlib
import os
import ssl
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from cachekit import DEFAULT, create_cache
from cachekit import Cache as CoreCache
from cachekit.config import bool_option
from cachekit.errors import ConfigurationError
from cachekit.providers.tiered import DEFAULT_L1

__all__ = ["FlaskCacheSettings", "flask_timeout_to_ttl"]

#: Flask-Caching's defaults, applied under the app's own keys.
DEFAULTS: dict[str, Any] = {
    "CACHE_DEFAULT_TIMEOUT": 300,
    "CACHE_IGNORE_ERRORS": False,
    "CACHE_THRESHOLD": 500,
    "CACHE_KEY_PREFIX": "flask_cache_",
    "CACHE_MEMCACHED_SERVERS": None,
    "CACHE_DIR": None,
    "CACHE_FILE_HASH_METHOD": hashlib.sha256,
    "CACHE_NO_NULL_WARNING": False,
    "CACHE_HASH_METHOD": hashlib.sha256,
    "CACHE_OPTIONS": None,
    "CACHE_ARGS": [],
    "CACHE_SOURCE_CHECK": False,
    "CACHE_ENABLE_SIGNALS": False,
    "CACHE_SERIALIZER": None,
    "CACHEKIT_OPTIONS": None,
}

# CACHE_TYPE short names (and Flask-Caching's dotted paths to them) -> cachekit provider kind.
_TYPES = {
    "simple": "memory",
    "simplecache": "memory",
    "redis": "redis",
    "rediscache": "redis",
    "redissentinel": "sentinel",
    "redissentinelcache": "sentinel",
    "rediscluster": "cluster",
    "redisclustercache": "cluster",
    "memcached": "memcached",
    "memcachedcache": "memcached",
    "gaememcached": "memcached",
    "filesystem": "file",
    "filesystemcache": "file",
    "null": "null",
    "nullcache": "null",
}
# CACHEKIT_URL scheme -> kind; every other scheme is a network provider's.
_SCHEME_KINDS = {"memory": "memory", "file": "file", "null": "null"}
# Kinds whose provider has ``fail_open`` (what CACHE_IGNORE_ERRORS maps onto).
_FAIL_OPEN_KINDS = frozenset({"network", "redis", "sentinel", "cluster", "memcached", "file"})
# Backends Flask-Caching has and cachekit does not: refused by name rather than replaced.
_UNSUPPORTED = {
    "uwsgi": "cachekit has no uWSGI provider",
    "uwsgicache": "cachekit has no uWSGI provider",
    "saslmemcached": "SASL authentication is not supported by the memcached provider",
    "saslmemcachedcache": "SASL authentication is not supported by the memcached provider",
    "spreadsaslmemcached": "SASL authentication is not supported by the memcached provider",
    "spreadsaslmemcachedcache": "SASL authentication is not supported by the memcached provider",
}


def flask_timeout_to_ttl(timeout: Any, *, key: str = "timeout") -> Any:
    """A Flask-Caching timeout as a cachekit TTL: ``None`` is the default, ``0`` never expires.

    Returns :data:`cachekit.DEFAULT` for ``None``; a ``timedelta`` is rounded up to whole
    seconds as Flask-Caching does; a negative value is expired at once (nothing is stored), as
    in Flask-Caching's ``SimpleCache``, file and memcached backends.
    """
    if timeout is None:
        return DEFAULT
    if isinstance(timeout, timedelta):
        seconds = timeout.total_seconds()
        if seconds < 0:
            return -1  # expired at once, however little below zero
        whole = int(seconds) + (1 if seconds > int(seconds) else 0)
        return None if whole == 0 else whole
    if isinstance(timeout, str):
        try:
            timeout = int(timeout)
        except ValueError:
            raise ConfigurationError(
                f"{key} must be whole seconds, got {timeout!r}", key=key
            ) from None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ConfigurationError(
            f"{key} must be seconds (int) or a timedelta, got {timeout!r}", key=key
        )
    return None if timeout == 0 else timeout


def _copying_l1(l1: Any, url: str) -> Any:
    """A near cache's L1 that stores copies (see the memory case in ``from_config``): its hits
    would otherwise hand every request the object L2 decoded once."""
    if l1 is None:
        l1 = parse_qs(urlsplit(url).query).get("l1", [DEFAULT_L1])[-1]
    if isinstance(l1, Mapping):
        url_query = parse_qs(urlsplit(str(l1.get("url", ""))).query)
        named = "serializer" in l1 or "serializer" in url_query
        return l1 if named else {**l1, "serializer": "pickle"}
    if isinstance(l1, str) and "serializer" not in parse_qs(urlsplit(l1).query):
        return l1 + ("&" if "?" in l1 else "?") + "serializer=pickle"
    return l1  # anything else: the provider reports it


_BOOL = bool_option()


def _bool(config: Mapping[str, Any], key: str) -> bool:
    value = config[key]
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    try:  # the core's words (on/off, yes/no...), so a flag reads the same in every config
        return bool(_BOOL.parse(value))
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a bool, got {value!r}", key=key) from None


def _host_port(host: str, port: int, *, key: str) -> str:
    """``host:port`` for a URL, an IPv6 literal in brackets (``[::1]:6379``)."""
    if any(c in host for c in "/?#@,"):  # would be read as another part of the URL
        raise ConfigurationError(f"{key}: {host!r} is not a host name or address", key=key)
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _positive_int(config: Mapping[str, Any], key: str) -> int:
    value = config[key]
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number < 1 or (isinstance(value, float) and value != number):
        raise ConfigurationError(f"{key} must be a positive int, got {value!r}", key=key)
    return number


@dataclass
class FlaskCacheSettings:
    """The validated result of a Flask config: how to build the cache and decorator defaults."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)
    hash_method: Callable[..., Any] = hashlib.sha256
    source_check: bool = False
    enable_signals: bool = False
    ignore_errors: bool = False
    #: The Flask key each option came from, and the one the URL came from: the core's errors
    #: name its own option (or ``url``), re-raised under the key the user wrote.
    option_keys: dict[str, str] = field(default_factory=dict)
    url_key: str = "CACHE_TYPE"

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> FlaskCacheSettings:
        """Validate ``raw`` (the app's config merged with the extension's) and translate it."""
        config = {**DEFAULTS, **raw}
        hash_method = config["CACHE_HASH_METHOD"]
        if not callable(hash_method):
            raise ConfigurationError(
                "CACHE_HASH_METHOD must be a hash constructor such as hashlib.sha256, "
                f"got {hash_method!r}",
                key="CACHE_HASH_METHOD",
            )
        if config["CACHE_ARGS"]:
            raise ConfigurationError(
                "CACHE_ARGS (positional backend arguments) has no cachekit equivalent; "
                "use CACHEKIT_URL / CACHEKIT_OPTIONS",
                key="CACHE_ARGS",
            )
        ignore_errors = _bool(config, "CACHE_IGNORE_ERRORS")
        settings = cls(
            url="",
            hash_method=hash_method,
            source_check=_bool(config, "CACHE_SOURCE_CHECK"),
            enable_signals=_bool(config, "CACHE_ENABLE_SIGNALS"),
            ignore_errors=ignore_errors,
        )
        ttl = flask_timeout_to_ttl(config["CACHE_DEFAULT_TIMEOUT"], key="CACHE_DEFAULT_TIMEOUT")
        if isinstance(ttl, int | float) and ttl < 0:
            raise ConfigurationError(
                "CACHE_DEFAULT_TIMEOUT must be 0 (never expire) or positive: a negative default "
                f"would store nothing (SimpleCache) or never expire (RedisCache), got "
                f"{config['CACHE_DEFAULT_TIMEOUT']!r}",
                key="CACHE_DEFAULT_TIMEOUT",
            )
        options: dict[str, Any] = {"default_ttl": None if ttl is DEFAULT else ttl}
        keys = settings.option_keys
        keys["default_ttl"] = "CACHE_DEFAULT_TIMEOUT"
        url = config.get("CACHEKIT_URL")
        if url is not None:
            if not isinstance(url, str) or "://" not in url:
                raise ConfigurationError(
                    f"CACHEKIT_URL must be a cache URL such as 'memory://', got {url!r}",
                    key="CACHEKIT_URL",
                )
            settings.url, settings.url_key = url, "CACHEKIT_URL"
            scheme = url.partition("://")[0].lower()
            if "CACHE_DEFAULT_TIMEOUT" not in raw:
                options = {}  # the URL's own default_ttl (or none) applies
            kind = _SCHEME_KINDS.get(scheme, "network")
            if kind == "network" and "CACHE_KEY_PREFIX" in raw and scheme != "tiered":
                options["prefix"] = cls._prefix(config)
                keys["prefix"] = "CACHE_KEY_PREFIX"
        else:
            kind, settings.url, settings.url_key, extra = cls._from_type(config)
            options.update(extra)
            # Options of the translation's own (a client's TLS settings) came with the URL.
            keys.update({name: _FLASK_KEY_OF.get(name, settings.url_key) for name in extra})
        if ignore_errors and kind in _FAIL_OPEN_KINDS:
            options["fail_open"] = True
            keys["fail_open"] = "CACHE_IGNORE_ERRORS"
        serializer = config["CACHE_SERIALIZER"]
        if serializer is not None:
            if not isinstance(serializer, str):
                raise ConfigurationError(
                    "CACHE_SERIALIZER must name a cachekit serializer ('pickle', 'json', "
                    f"'msgpack'); cachelib serializer objects are not used, got {serializer!r}",
                    key="CACHE_SERIALIZER",
                )
            if kind != "null":  # NullCache serializes nothing, as in Flask-Caching
                options["serializer"] = serializer
                keys["serializer"] = "CACHE_SERIALIZER"
        for key in ("CACHE_OPTIONS", "CACHEKIT_OPTIONS"):
            extra_options = config[key]
            if extra_options is None or (kind == "null" and key == "CACHE_OPTIONS"):
                continue  # Flask-Caching's NullCache takes no backend options either
            if not isinstance(extra_options, Mapping):
                raise ConfigurationError(
                    f"{key} must be a dict of provider options, got {extra_options!r}", key=key
                )
            if "url" in extra_options:  # create_cache's own argument, and the errors' key
                raise ConfigurationError(
                    f"{key} cannot hold 'url': set CACHEKIT_URL instead", key=key
                )
            options.update(extra_options)
            keys.update(dict.fromkeys(extra_options, key))
        if (
            kind == "memory"
            and "serializer" not in options
            and "serializer" not in parse_qs(urlsplit(settings.url).query)
        ):
            # Copies, as every Flask-Caching backend stores: a memory:// cache would otherwise
            # hand every request the one stored object, and a cached Response would collect
            # each request's after-request changes (its session cookie) for the next ones.
            options["serializer"] = "pickle"
        elif settings.url.lower().startswith("tiered://"):
            options["l1"] = _copying_l1(options.get("l1"), settings.url)
            keys.setdefault("l1", settings.url_key)  # the URL's l1, unless an option gave it
        settings.options = options
        return settings

    @staticmethod
    def _prefix(config: Mapping[str, Any]) -> str:
        prefix = config["CACHE_KEY_PREFIX"]
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(
                f"CACHE_KEY_PREFIX must be a non-empty str, got {prefix!r}",
                key="CACHE_KEY_PREFIX",
            )
        return prefix

    @classmethod
    def _from_type(cls, config: Mapping[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
        """``(kind, url, the Flask key the URL came from, options)`` of a ``CACHE_TYPE``."""
        cache_type = config.get("CACHE_TYPE", "SimpleCache")
        if not isinstance(cache_type, str):
            raise ConfigurationError(
                f"CACHE_TYPE must be a str, got {cache_type!r}", key="CACHE_TYPE"
            )
        short = cache_type.rpartition(".")[2].lower()
        if short in _UNSUPPORTED:
            raise ConfigurationError(
                f"CACHE_TYPE {cache_type!r} is not supported: {_UNSUPPORTED[short]}",
                key="CACHE_TYPE",
            )
        kind = _TYPES.get(short)
        if kind is None:
            accepted = (
                "SimpleCache, RedisCache, RedisSentinelCache, RedisClusterCache, MemcachedCache, "
                "FileSystemCache, NullCache"
            )
            raise ConfigurationError(
                f"unknown CACHE_TYPE {cache_type!r}; accepted: {accepted} (or set CACHEKIT_URL)",
                key="CACHE_TYPE",
            )
        if kind == "memory":
            threshold = _positive_int(config, "CACHE_THRESHOLD")
            # Flask-Caching's SimpleCache pickles values: readers get independent copies.
            options = {"max_entries": threshold, "serializer": "pickle"}
            return kind, "memory://flask", "CACHE_TYPE", options
        if kind == "file":
            return kind, "file://", "CACHE_TYPE", cls._filesystem_options(config)
        if kind == "null":
            # Flask-Caching warns for exactly CACHE_TYPE == "NullCache" (its default included).
            if cache_type == "NullCache" and not _bool(config, "CACHE_NO_NULL_WARNING"):
                warnings.warn(  # Flask-Caching's warning, silenced the same way
                    "cachekit_flask: CACHE_TYPE is set to NullCache, caching is effectively "
                    "disabled (set CACHE_NO_NULL_WARNING=True to silence this)",
                    UserWarning,
                    stacklevel=4,
                )
            return kind, "null://flask", "CACHE_TYPE", {}
        prefix = cls._prefix(config)
        if kind == "memcached":
            return kind, cls._memcached_url(config), "CACHE_MEMCACHED_SERVERS", {"prefix": prefix}
        if kind == "cluster":
            nodes = config.get("CACHE_REDIS_CLUSTER") or config.get("CACHE_REDIS_URL")
            if not nodes or not isinstance(nodes, str):
                raise ConfigurationError(
                    "RedisClusterCache needs CACHE_REDIS_CLUSTER ('host1:port1,host2:port2')",
                    key="CACHE_REDIS_CLUSTER",
                )
            hosts = nodes.partition("://")[2] if "://" in nodes else nodes
            source = (
                "CACHE_REDIS_CLUSTER" if config.get("CACHE_REDIS_CLUSTER") else "CACHE_REDIS_URL"
            )
            url = f"redis+cluster://{cls._auth(config)}{hosts}"
            return kind, url, source, {"prefix": prefix}
        if kind == "sentinel":
            sentinels = config.get("CACHE_REDIS_SENTINELS", [("127.0.0.1", 26379)])
            try:
                hosts = ",".join(
                    _host_port(str(host), int(port), key="CACHE_REDIS_SENTINELS")
                    for host, port in sentinels
                )
            except (TypeError, ValueError):
                raise ConfigurationError(
                    f"CACHE_REDIS_SENTINELS must be [(host, port), ...], got {sentinels!r}",
                    key="CACHE_REDIS_SENTINELS",
                ) from None
            master = config.get("CACHE_REDIS_SENTINEL_MASTER", "mymaster")
            db = cls._db(config)
            url = f"redis+sentinel://{cls._auth(config)}{hosts}/{master}/{db}"
            extra: dict[str, Any] = {"prefix": prefix}
            sentinel_password = config.get("CACHE_REDIS_SENTINEL_PASSWORD")
            if sentinel_password is not None:  # the sentinels' own, as Flask-Caching passes it
                extra["sentinel_password"] = sentinel_password
            return "redis", url, "CACHE_REDIS_SENTINELS", extra
        redis_url = config.get("CACHE_REDIS_URL")
        if redis_url:
            if not isinstance(redis_url, str) or "://" not in redis_url:
                raise ConfigurationError(
                    f"CACHE_REDIS_URL must be a redis:// URL, got {redis_url!r}",
                    key="CACHE_REDIS_URL",
                )
            if "CACHE_REDIS_DB" in config and not _names_db(redis_url):
                # Flask-Caching calls redis.from_url(url, db=CACHE_REDIS_DB): the URL's own
                # database wins, and this fills in one it lacks.
                redis_url = _with_db(redis_url, cls._db(config))
            return kind, redis_url, "CACHE_REDIS_URL", {"prefix": prefix}
        host = config.get("CACHE_REDIS_HOST", "localhost")
        if not isinstance(host, str):
            # Flask-Caching also takes a redis.Redis client here: its connection settings are
            # read (cachekit builds its own pools and client).
            url, tls = _client_url(host)
            return kind, url, "CACHE_REDIS_HOST", {"prefix": prefix, **tls}
        try:
            port = int(config.get("CACHE_REDIS_PORT", 6379))
        except (TypeError, ValueError):
            port = 0
        if not 0 < port < 65536:  # checked here: the URL's error would blame the host
            raise ConfigurationError(
                "CACHE_REDIS_PORT must be a port (1-65535), got "
                f"{config.get('CACHE_REDIS_PORT')!r}",
                key="CACHE_REDIS_PORT",
            )
        address = _host_port(host, port, key="CACHE_REDIS_HOST")
        url = f"redis://{cls._auth(config)}{address}/{cls._db(config)}"
        return kind, url, "CACHE_REDIS_HOST", {"prefix": prefix}

    @staticmethod
    def _filesystem_options(config: Mapping[str, Any]) -> dict[str, Any]:
        """FileSystemCache's keys: CACHE_DIR (made absolute now, as cachelib resolves it
        against the working directory at start-up) and CACHE_THRESHOLD (0 = no bound)."""
        directory = config["CACHE_DIR"]
        if not isinstance(directory, str | os.PathLike) or not os.fspath(directory):
            raise ConfigurationError(
                f"FileSystemCache needs CACHE_DIR, the directory of the cache files, "
                f"got {directory!r}",
                key="CACHE_DIR",
            )
        if not callable(config["CACHE_FILE_HASH_METHOD"]):
            raise ConfigurationError(
                "CACHE_FILE_HASH_METHOD must be a hash constructor such as hashlib.sha256, got "
                f"{config['CACHE_FILE_HASH_METHOD']!r}",
                key="CACHE_FILE_HASH_METHOD",
            )
        threshold = config["CACHE_THRESHOLD"]
        unbounded = threshold in (0, "0") and not isinstance(threshold, bool)
        max_entries = None if unbounded else _positive_int(config, "CACHE_THRESHOLD")
        return {"directory": os.path.abspath(os.fspath(directory)), "max_entries": max_entries}

    @staticmethod
    def _auth(config: Mapping[str, Any]) -> str:
        password = config.get("CACHE_REDIS_PASSWORD")
        return f":{quote(str(password), safe='')}@" if password else ""

    @staticmethod
    def _db(config: Mapping[str, Any]) -> int:
        db = config.get("CACHE_REDIS_DB", 0)
        if isinstance(db, bool) or not isinstance(db, int) or db < 0:
            raise ConfigurationError(
                f"CACHE_REDIS_DB must be an int >= 0, got {db!r}", key="CACHE_REDIS_DB"
            )
        return db

    @staticmethod
    def _memcached_url(config: Mapping[str, Any]) -> str:
        if config.get("CACHE_MEMCACHED_USERNAME") or config.get("CACHE_MEMCACHED_PASSWORD"):
            raise ConfigurationError(
                "CACHE_MEMCACHED_USERNAME/PASSWORD: SASL authentication is not supported by "
                "the memcached provider",
                key="CACHE_MEMCACHED_USERNAME"
                if config.get("CACHE_MEMCACHED_USERNAME")
                else "CACHE_MEMCACHED_PASSWORD",
            )
        servers = config["CACHE_MEMCACHED_SERVERS"] or ["127.0.0.1:11211"]
        if isinstance(servers, str):
            servers = [servers]
        if not all(isinstance(s, str) and s for s in servers):
            raise ConfigurationError(
                f"CACHE_MEMCACHED_SERVERS must be a list of 'host:port', got {servers!r}",
                key="CACHE_MEMCACHED_SERVERS",
            )
        return "memcached://" + ",".join(servers)

    def build(self) -> CoreCache:
        """The core cache; its own validation errors name the Flask key they came from."""
        try:
            return create_cache(self.url, **self.options)
        except ConfigurationError as exc:
            # An option nobody gave by name (or ``url``) came in the URL's query string.
            flask_key = self.option_keys.get(exc.key or "", self.url_key)
            raise ConfigurationError(f"{flask_key}: {exc}", key=flask_key) from exc


#: The Flask key behind each option ``_from_type`` makes (others came with its URL).
_FLASK_KEY_OF = {
    "prefix": "CACHE_KEY_PREFIX",
    "max_entries": "CACHE_THRESHOLD",
    "directory": "CACHE_DIR",
    "sentinel_password": "CACHE_REDIS_SENTINEL_PASSWORD",
    "serializer": "CACHE_TYPE",  # SimpleCache's pickle, not a user's choice
}


#: redis-py's ``ssl_cert_reqs`` spellings as cachekit's option takes them.
_CERT_REQS: dict[Any, str] = {
    ssl.CERT_NONE: "none",
    ssl.CERT_OPTIONAL: "optional",
    ssl.CERT_REQUIRED: "required",
}


def _names_db(url: str) -> bool:
    """Whether a Redis URL says its database (``/N`` or ``?db=N``), as redis-py reads it."""
    parts = urlsplit(url)
    in_query = "db" in parse_qs(parts.query)
    if parts.scheme == "unix":  # its path is the socket's
        return in_query
    return parts.path.strip("/") != "" or in_query


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"{url}{'&' if parts.query else '?'}db={db}"
    base = url.split("?", 1)[0].rstrip("/")
    return f"{base}/{db}" + (f"?{parts.query}" if parts.query else "")


def _client_url(client: Any) -> tuple[str, dict[str, Any]]:
    """The URL and TLS options of a ``redis.Redis`` client given as ``CACHE_REDIS_HOST`` (its
    timeouts and pool size are cachekit's own options, not read from it)."""
    import redis

    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, Mapping) or type(pool) not in (
        redis.ConnectionPool,
        redis.BlockingConnectionPool,
    ):
        raise ConfigurationError(
            "CACHE_REDIS_HOST must be a host name or a redis.Redis client on a plain connection "
            f"pool, got {type(client).__name__} (for Sentinel, use CACHE_TYPE="
            "'RedisSentinelCache' with CACHE_REDIS_SENTINELS)",
            key="CACHE_REDIS_HOST",
        )
    user = quote(str(kwargs.get("username") or ""), safe="")
    password = kwargs.get("password")
    auth = f"{user}:{quote(str(password), safe='')}@" if password else (f"{user}@" if user else "")
    db = int(kwargs.get("db") or 0)
    if kwargs.get("path"):
        return f"unix://{auth}{os.path.abspath(kwargs['path'])}?db={db}", {}
    host = str(kwargs.get("host", "localhost"))
    if ":" in host:  # IPv6
        host = f"[{host}]"
    port = kwargs.get("port", 6379)
    if not issubclass(pool.connection_class, redis.SSLConnection):
        return f"redis://{auth}{host}:{port}/{db}", {}
    tls = {
        name: kwargs[name]
        for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")
        if kwargs.get(name) is not None
    }
    reqs = kwargs.get("ssl_cert_reqs")
    if reqs is not None:
        tls["ssl_cert_reqs"] = _CERT_REQS.get(reqs, reqs)
        if tls["ssl_cert_reqs"] == "none":  # nothing verified: no host name to check either
            tls.pop("ssl_check_hostname", None)
    return f"rediss://{auth}{host}:{port}/{db}", tls
