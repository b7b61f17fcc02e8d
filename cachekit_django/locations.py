"""``LOCATION`` and ``OPTIONS`` of a ``CACHES`` entry -> a cachekit URL and provider options.

Each named backend accepts the ``LOCATION`` forms of the Django backend it replaces, so switching
is a one-line change: ``MemoryCache`` a ``LocMemCache`` name, ``RedisCache`` the Redis URL(s) of
Django's ``RedisCache``, ``MemcachedCache`` the ``host:port`` list of ``PyMemcacheCache``,
``FileCache`` the directory of ``FileBasedCache``; all of
them (and ``CacheKitCache``) also take a cachekit URL of their kind. ``OPTIONS`` are the
provider's options, plus Django's own ``MAX_ENTRIES``/``CULL_FREQUENCY`` (memory and file) and the
few pymemcache client options that have a cachekit meaning.

Nothing here connects or builds a cache: :func:`plan` only translates and validates the parts
the adapter owns; the provider validates its options when it is built (and the system checks
build it once at start-up, see :mod:`cachekit_django.checks`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from cachekit.config import int_option, parse_url
from cachekit.errors import ConfigurationError

from . import redis_options

__all__ = ["DJANGO_OPTIONS", "KINDS", "Plan", "plan"]

#: Django's own OPTIONS keys (read by ``BaseCache``), never passed to a provider.
DJANGO_OPTIONS: Final = frozenset({"MAX_ENTRIES", "CULL_FREQUENCY"})
#: URL schemes each backend kind accepts (``cachekit``: any registered provider).
KINDS: Final[dict[str, tuple[str, ...]]] = {
    "memory": ("memory",),
    "redis": ("redis", "rediss", "unix", "redis+sentinel"),
    "memcached": ("memcached",),
    "redis+cluster": ("redis+cluster",),
    "tiered": ("tiered",),
    "file": ("file",),
}
#: Django's defaults for LocMemCache (``BaseCache.__init__``).
DEFAULT_MAX_ENTRIES: Final = 300
DEFAULT_CULL_FREQUENCY: Final = 3
#: cachekit options that bound the memory provider natively (its eviction policy decides).
_NATIVE_BOUNDS: Final = ("max_entries", "max_memory_bytes")
#: pymemcache client options of Django's PyMemcacheCache that need no setting here (cachekit's
#: memcached clients always use TCP_NODELAY, one connection per thread, unicode keys, replies).
_PYMEMCACHE_IMPLIED: Final = {
    "no_delay": True,
    "use_pooling": True,
    "allow_unicode_keys": True,
    "default_noreply": False,
}


@dataclass(frozen=True)
class Plan:
    """What to build for one ``CACHES`` entry."""

    url: str
    options: dict[str, Any]
    scheme: str
    #: Django-style culling of the memory provider: (MAX_ENTRIES, CULL_FREQUENCY), or None when
    #: the provider's own bounds and policy govern (``max_entries``/``max_memory_bytes`` given).
    cull: tuple[int, int] | None = None
    #: Things accepted but not used, for a system-check warning.
    notes: tuple[str, ...] = field(default=())
    #: The OPTIONS key the user wrote for a provider option set from another name
    #: (django-redis's ``SOCKET_TIMEOUT`` for ``socket_timeout``): errors name it.
    aliases: Mapping[str, str] = field(default_factory=dict)


def _servers(location: str | Sequence[str]) -> list[str]:
    """Django's server lists: a list, or a string split on ``;`` and ``,``."""
    if isinstance(location, str):
        return [part.strip() for part in re.split("[;,]", location) if part.strip()]
    if isinstance(location, Sequence) and all(isinstance(s, str) for s in location):
        return [s.strip() for s in location if s.strip()]
    raise ConfigurationError(
        f"LOCATION must be a str or a list of str, got {type(location).__name__}", key="LOCATION"
    )


def _int_setting(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} must be an integer, got {value!r}", key=name)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be an integer, got {value!r}", key=name) from None
    if number < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {number}", key=name)
    return number


def _memory(location: str, options: dict[str, Any], django: dict[str, Any]) -> Plan:
    if "://" in location:
        url = location
    else:
        url = "memory://"
        options.setdefault("name", location or "default")
    query = parse_url(url).options
    native = any(bound in options or bound in query for bound in _NATIVE_BOUNDS)
    if native:
        for name in DJANGO_OPTIONS & set(django):
            raise ConfigurationError(
                f"{name} is Django's culling bound; this cache is bounded by cachekit's "
                "max_entries/max_memory_bytes (its eviction policy decides): give one or the other",
                key=name,
            )
        return Plan(url, options, "memory")
    max_entries = _int_setting("MAX_ENTRIES", django.get("MAX_ENTRIES", DEFAULT_MAX_ENTRIES), 1)
    cull = _int_setting("CULL_FREQUENCY", django.get("CULL_FREQUENCY", DEFAULT_CULL_FREQUENCY), 0)
    options["max_entries"] = max_entries
    return Plan(url, options, "memory", cull=(max_entries, cull))


def _file(location: str, options: dict[str, Any], django: dict[str, Any]) -> Plan:
    """Django's ``FileBasedCache`` forms: a directory path (made absolute, as Django does), or
    a ``file://`` URL. ``MAX_ENTRIES`` (Django's default 300) bounds the entry count; the
    provider prunes expired files first, then the least recently written, to 90% of it."""
    if "://" in location:
        url = location
    else:
        if not location:
            raise ConfigurationError(
                "a file cache LOCATION is a directory, such as '/var/tmp/django_cache'",
                key="LOCATION",
            )
        url = "file://"
        options["directory"] = os.path.abspath(location)
    notes: tuple[str, ...] = ()
    if "max_entries" not in options and "max_entries" not in parse_url(url).options:
        options["max_entries"] = _int_setting(
            "MAX_ENTRIES", django.get("MAX_ENTRIES", DEFAULT_MAX_ENTRIES), 1
        )
    elif "MAX_ENTRIES" in django:
        raise ConfigurationError(
            "give MAX_ENTRIES or cachekit's max_entries, not both", key="MAX_ENTRIES"
        )
    if "CULL_FREQUENCY" in django:
        _int_setting("CULL_FREQUENCY", django["CULL_FREQUENCY"], 0)
        notes = (
            "CULL_FREQUENCY is not used by file caches: when MAX_ENTRIES is reached, expired "
            "files go first, then the least recently written, down to 90% of the bound",
        )
    return Plan(url, options, "file", notes=notes)


#: The URLs Django's RedisCache takes in a ``;``/``,``-separated list (primary, then replicas).
_LISTED_SCHEMES: Final = ("redis://", "rediss://", "unix://")


def _redis(location: str | Sequence[str], options: dict[str, Any]) -> Plan:
    if (
        isinstance(location, str)
        and "://" in location
        and not location.strip().lower().startswith(_LISTED_SCHEMES)
    ):
        # One redis+sentinel:// URL, whose own host list has commas: not a list of servers.
        servers = [location.strip()]
    else:
        servers = _servers(location) or ["redis://127.0.0.1:6379/0"]
    translated = redis_options.translate(options, _django_redis_ignores_exceptions())
    notes = translated.notes
    if len(servers) > 1:
        # Django's RedisCache writes to the first URL and reads from the others (replicas);
        # here every call goes to the first, which is correct, only not read-offloaded.
        notes += (
            f"LOCATION lists {len(servers)} Redis URLs: cachekit uses the first for reads and "
            "writes (replicas are not read from; use redis+sentinel:// for failover)",
        )
    url = servers[0]
    if "://" not in url:
        raise ConfigurationError(
            f"a Redis LOCATION is a URL such as redis://127.0.0.1:6379/0, got {url!r}",
            key="LOCATION",
        )
    url, unused = _pool_options(url, options, translated.aliases)
    if unused:
        notes = (
            *notes,
            f"OPTIONS {', '.join(map(repr, unused))} are redis-py connection settings cachekit "
            "does not use (its retries and timeouts are the retries/socket_* options)",
        )
    return Plan(url, options, parse_url(url).scheme, notes=notes, aliases=translated.aliases)


def _django_redis_ignores_exceptions() -> bool:
    """django-redis's ``DJANGO_REDIS_IGNORE_EXCEPTIONS`` setting (its ``IGNORE_EXCEPTIONS``
    default): a site switching from django-redis keeps failing open."""
    from django.conf import settings

    return settings.configured and bool(getattr(settings, "DJANGO_REDIS_IGNORE_EXCEPTIONS", False))


#: Django's RedisCache passes OPTIONS to redis-py's ConnectionPool.from_url, whose URL wins
#: over them: these fill what the URL leaves out.
_URL_PARTS: Final = ("db", "username", "password")
#: Connection settings of redis-py's that cachekit has no use for: accepted, with a warning.
_UNUSED_POOL_OPTIONS: Final = ("client_name", "retry_on_timeout")
#: A database number as redis-py takes it: an int or a string of digits, not ``2.7`` or
#: ``True``, which ``int()`` would quietly turn into another database.
_DB_NUMBER: Final = int_option(minimum=0)


def _db(value: Any, key: str) -> int:
    try:
        return int(_DB_NUMBER.parse(value))
    except (TypeError, ValueError):
        raise ConfigurationError(f"db must be a database number, got {value!r}", key=key) from None


def _pool_options(
    url: str, options: dict[str, Any], aliases: Mapping[str, str] | None = None
) -> tuple[str, list[str]]:
    """Django's documented ``OPTIONS={"db": "10"}`` (and credentials, and redis-py's
    ``redis://h?db=2``) moved into the URL, as redis-py's ``from_url`` reads them: each part the
    URL has itself wins (its query's ``db`` over its path's), each part it lacks is filled in."""
    aliases = aliases or {}
    given = {key: options.pop(key) for key in _URL_PARTS if key in options}
    unused = sorted(key for key in _UNUSED_POOL_OPTIONS if options.pop(key, None) is not None)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # not the URL itself in the message: it may hold a password
        raise ConfigurationError(
            f"LOCATION is not a valid URL ({exc}); a '[' or ']' in a password is written %5B/%5D",
            key="LOCATION",
        ) from None
    scheme, netloc, path, query = parts.scheme, parts.netloc, parts.path, parts.query
    segments = [segment for segment in path.split("/") if segment]
    db = None if given.get("db") is None else _db(given["db"], aliases.get("db", "db"))
    pairs = parse_qsl(query, keep_blank_values=True)
    in_query = [value for name, value in pairs if name == "db"]
    if scheme in ("redis", "rediss") and in_query:  # redis://h:6379?db=2: redis-py's first pick
        path = f"/{_db(in_query[0], 'LOCATION')}"
        query = urlencode([(name, value) for name, value in pairs if name != "db"])
    elif db is not None:
        if scheme in ("redis", "rediss") and not segments:
            path = f"/{db}"
        elif scheme == "redis+sentinel" and len(segments) == 1:  # /SERVICE -> /SERVICE/DB
            path = f"/{segments[0]}/{db}"
        elif scheme == "unix" and not in_query:  # the provider merges options over the query
            options["db"] = db
        elif scheme == "redis+cluster" and db != 0:
            raise ConfigurationError(
                f"a Redis Cluster has database 0 only, got {db}", key=aliases.get("db", "db")
            )
    netloc = _credentials(netloc, given.get("username"), given.get("password"))
    if (netloc, path, query) == (parts.netloc, parts.path, parts.query):
        return url, unused
    # Not urlunsplit: it writes unix:///path.sock, whose netloc is empty, as unix:/path.sock.
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else ""), unused


def _credentials(netloc: str, username: Any, password: Any) -> str:
    """``netloc`` with the username and password it lacks (each on its own, as redis-py's
    ``from_url`` fills them); empty ones are not credentials."""
    userinfo, _, hosts = netloc.rpartition("@")
    user, colon, secret = userinfo.partition(":")
    if username and not user:
        user = quote(str(username), safe="")
    if password and not secret:
        secret, colon = quote(str(password), safe=""), ":"
    if not user and not secret:
        return netloc
    return f"{user}{colon}{secret}@{hosts}"


def _memcached(location: str | Sequence[str], options: dict[str, Any]) -> Plan:
    if isinstance(location, str) and location.startswith("memcached://"):
        url = location
    else:
        servers = _servers(location) or ["127.0.0.1:11211"]
        for server in servers:
            if server.startswith("unix:") or "/" in server:
                raise ConfigurationError(
                    f"memcached over a unix socket ({server!r}) is not supported by cachekit's "
                    "memcached provider; listen on a loopback TCP port instead",
                    key="LOCATION",
                )
        url = "memcached://" + ",".join(servers)
    if "ignore_exc" in options:
        options["fail_open"] = options.pop("ignore_exc")
    if "dead_timeout" in options:  # HashClient's name for how long a failed server is skipped
        options["dead_retry"] = options.pop("dead_timeout")
    notes: tuple[str, ...] = ()
    if options.pop("retry_timeout", None) is not None:
        notes = (
            "OPTIONS 'retry_timeout' is pymemcache's pause between retries of a failing server; "
            "cachekit retries at once ('retry_attempts') and then skips the server for "
            "'dead_retry' seconds (pymemcache's 'dead_timeout'): it is not used",
        )
    for name, implied in _PYMEMCACHE_IMPLIED.items():
        if name in options:
            value = options.pop(name)
            if value != implied:
                raise ConfigurationError(
                    f"pymemcache option {name}={value!r} is not supported: cachekit's memcached "
                    f"provider always runs with {name}={implied!r}",
                    key=name,
                )
    return Plan(url, options, "memcached", notes=notes)


def _cluster(location: str | Sequence[str], options: dict[str, Any]) -> Plan:
    translated = redis_options.translate(options, _django_redis_ignores_exceptions())
    if isinstance(location, str) and location.startswith("redis+cluster://"):
        url = location
    else:
        servers = _servers(location)
        if not servers:
            raise ConfigurationError(
                "a Redis Cluster LOCATION lists startup nodes: 'h1:7000,h2:7001' or "
                "'redis+cluster://h1:7000,h2:7001'",
                key="LOCATION",
            )
        nodes = [_node(server) for server in servers]
        credentials = {userinfo for userinfo, _ in nodes}
        if len(credentials) > 1:
            # One cluster, one login: the URL holds its credentials once, before every node.
            raise ConfigurationError(
                "the startup nodes in LOCATION give different credentials; a cluster has one "
                "username and password: give the same on every node (or in OPTIONS)",
                key="LOCATION",
            )
        userinfo = credentials.pop()
        url = "redis+cluster://" + (f"{userinfo}@" if userinfo else "")
        url += ",".join(host for _, host in nodes)
    url, unused = _pool_options(url, options, translated.aliases)
    notes = translated.notes
    if unused:
        notes += (
            f"OPTIONS {', '.join(map(repr, unused))} are redis-py connection settings cachekit "
            "does not use (its retries and timeouts are the retries/socket_* options)",
        )
    return Plan(url, options, "redis+cluster", notes=notes, aliases=translated.aliases)


def _node(server: str) -> tuple[str, str]:
    """``redis://[user:pw@]h:7000/0`` or ``h:7000`` -> (``user:pw``, ``h:7000``): the
    credentials apart, since a cluster URL holds them once (a cluster has database 0 only)."""
    if "://" in server:
        scheme, _, server = server.partition("://")
        if scheme != "redis":  # rediss:// would quietly become plaintext: no TLS to a cluster
            raise ConfigurationError(
                f"a cluster node is redis://[user:pass@]host:port, got a {scheme}:// URL "
                "(cachekit does not speak TLS to a Redis Cluster)",
                key="LOCATION",
            )
    userinfo, _, host = server.rstrip("/").removesuffix("/0").rpartition("@")
    return userinfo, host


def plan(kind: str, location: Any, params: Mapping[str, Any]) -> Plan:
    """Translate one ``CACHES`` entry for a backend of ``kind`` (a :data:`KINDS` key or
    ``"cachekit"``); raises :class:`~cachekit.errors.ConfigurationError` naming the bad key."""
    raw_options = params.get("OPTIONS") or {}
    if not isinstance(raw_options, Mapping):
        raise ConfigurationError(
            f"OPTIONS must be a dict, got {type(raw_options).__name__}", key="OPTIONS"
        )
    for key in raw_options:
        if not isinstance(key, str):  # they become keyword arguments of the provider
            raise ConfigurationError(
                f"OPTIONS keys are option names (str), got {key!r}", key="OPTIONS"
            )
    options = {k: v for k, v in raw_options.items() if k not in DJANGO_OPTIONS}
    django = {k: v for k, v in raw_options.items() if k in DJANGO_OPTIONS}
    if location is None:
        location = ""
    elif isinstance(location, os.PathLike):  # FileBasedCache's BASE_DIR / "cache"
        location = os.fspath(location)
    cluster_nodes = kind == "redis+cluster" and str(location).startswith("redis://")
    if kind == "cachekit" or (
        isinstance(location, str) and "://" in location and not cluster_nodes
    ):
        if not isinstance(location, str) or "://" not in location:
            raise ConfigurationError(
                "CacheKitCache's LOCATION is a cachekit URL such as 'redis://127.0.0.1:6379/0' "
                f"or 'memory://?max_entries=10000', got {location!r}",
                key="LOCATION",
            )
        scheme = parse_url(location).scheme
        if kind != "cachekit" and scheme not in KINDS[kind]:
            accepted = ", ".join(f"{s}://" for s in KINDS[kind])
            raise ConfigurationError(
                f"this backend takes {accepted} URLs (or Django's LOCATION forms), got "
                f"{scheme}://; use cachekit_django.cache.CacheKitCache for any URL",
                key="LOCATION",
            )
        kind = next((k for k, schemes in KINDS.items() if scheme in schemes), "cachekit")
    if kind == "file":
        if not isinstance(location, str):
            raise ConfigurationError("a file cache LOCATION is a directory (str)", key="LOCATION")
        return _file(location, options, django)
    if kind != "memory" and django:
        raise ConfigurationError(
            f"{', '.join(sorted(django))} only apply to the memory backend (Django culls only "
            "its local caches); remove them, or bound the server itself",
            key=sorted(django)[0],
        )
    if kind == "memory":
        if not isinstance(location, str):
            raise ConfigurationError("a memory LOCATION is a name (str)", key="LOCATION")
        return _memory(location, options, django)
    if kind == "redis":
        return _redis(location, options)
    if kind == "memcached":
        return _memcached(location, options)
    if kind == "redis+cluster":
        return _cluster(location, options)
    if not isinstance(location, str) or "://" not in location:
        raise ConfigurationError(
            f"a {kind} LOCATION is a {kind}:// URL, got {location!r}", key="LOCATION"
        )
    # tiered, or a provider registered by a third party: the URL is all there is.
    return Plan(location, options, parse_url(location).scheme)
