"""django-redis's ``OPTIONS`` read onto the Redis provider's, so its ``CACHES`` entries switch by
changing ``BACKEND`` alone.

django-redis names its options in capitals (``SOCKET_TIMEOUT``, ``SERIALIZER``, ...) and points
at its own classes by dotted path. Those with a cachekit meaning become the provider's option;
those that only tune what cachekit does its own way are accepted with a note (a system-check
warning, ``cachekit_django.W001``); those that would change behaviour cachekit cannot reproduce
(a sharding or custom client, a connection factory) fail ``manage.py check`` with E001 and a
hint, rather than being quietly ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from cachekit.errors import ConfigurationError

__all__ = ["DJANGO_REDIS_OPTIONS", "translate"]

_PACKAGE: Final = "django_redis."
#: Direct renames: django-redis's option -> the provider's.
_RENAMES: Final = {
    "SOCKET_TIMEOUT": "socket_timeout",
    "SOCKET_CONNECT_TIMEOUT": "socket_connect_timeout",
    "PASSWORD": "password",
    "USERNAME": "username",
    "IGNORE_EXCEPTIONS": "fail_open",
}
_SERIALIZERS: Final = {
    "django_redis.serializers.pickle.PickleSerializer": "pickle",
    "django_redis.serializers.json.JSONSerializer": "json",
    "django_redis.serializers.msgpack.MSGPackSerializer": "msgpack",
}
_COMPRESSORS: Final = {
    "django_redis.compressors.identity.IdentityCompressor": "none",
    "django_redis.compressors.zlib.ZlibCompressor": "zlib",
    "django_redis.compressors.zstd.ZStdCompressor": "zstd",
}
_CLIENTS: Final = {
    "django_redis.client.DefaultClient": None,
    "django_redis.client.default.DefaultClient": None,
    "django_redis.client.HerdClient": (
        "OPTIONS CLIENT_CLASS HerdClient: cachekit's get_or_set already computes once per key "
        "across processes (a Redis lock), so herd timeouts are not used"
    ),
    "django_redis.client.herd.HerdClient": (
        "OPTIONS CLIENT_CLASS HerdClient: cachekit's get_or_set already computes once per key "
        "across processes (a Redis lock), so herd timeouts are not used"
    ),
}
_CLIENT_HINTS: Final = {
    "SentinelClient": "give a redis+sentinel://s1:26379,s2:26379/mymaster/0 LOCATION instead",
    "ShardClient": (
        "cachekit does not shard over standalone servers; use Redis Cluster "
        "(cachekit_django.cache.RedisClusterCache)"
    ),
}
#: Keys of ``CONNECTION_POOL_KWARGS`` with a provider option of the same name.
_POOL_KWARGS: Final = frozenset(
    {
        "max_connections",
        "socket_timeout",
        "socket_connect_timeout",
        "health_check_interval",
        "db",
        "username",
        "password",
        "ssl_ca_certs",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_cert_reqs",
        "ssl_check_hostname",
    }
)
#: ``CONNECTION_POOL_KWARGS`` redis-py takes that cachekit decides itself.
_POOL_IGNORED: Final = frozenset({"retry_on_timeout", "client_name", "decode_responses"})
#: Accepted with a note: what cachekit does instead.
_NOTED: Final = {
    "PARSER_CLASS": "redis-py uses hiredis whenever it is installed (cachekit's redis extra)",
    "PICKLE_VERSION": "cachekit writes its own pickle protocol (values are not shared with "
    "django-redis in any case)",
    "REPLICA_READ_ONLY": "replicas are not read from",
    "CLOSE_CONNECTION": "connections are pooled per process and kept across requests",
}
#: Refused: the part they replace is cachekit's own.
_REFUSED: Final = {
    "CONNECTION_POOL_CLASS": "cachekit builds its own redis-py pools (size: max_connections)",
    "REDIS_CLIENT_CLASS": "cachekit drives redis-py's own client",
    "REDIS_CLIENT_KWARGS": "cachekit drives redis-py's own client; its options are the "
    "provider's (socket_timeout, retries, ...)",
    "CONNECTION_FACTORY": "cachekit builds its own connections",
    "SENTINELS": "give a redis+sentinel://s1:26379,s2:26379/mymaster/0 LOCATION instead",
    "SENTINEL_KWARGS": "give a redis+sentinel://s1:26379,s2:26379/mymaster/0 LOCATION instead",
}
#: Every django-redis OPTIONS key this module reads.
DJANGO_REDIS_OPTIONS: Final = frozenset(
    {*_RENAMES, "CLIENT_CLASS", "SERIALIZER", "COMPRESSOR", "CONNECTION_POOL_KWARGS"}
    | set(_NOTED)
    | set(_REFUSED)
)


def translate(options: dict[str, Any]) -> tuple[str, ...]:
    """Replace django-redis's keys in ``options`` (in place) by the provider's; returns the
    notes for what is accepted but not used. Raises :class:`ConfigurationError` naming the key
    for what cachekit cannot honour."""
    notes: list[str] = []
    for key in sorted(DJANGO_REDIS_OPTIONS & set(options)):
        value = options.pop(key)
        if key in _REFUSED:
            raise ConfigurationError(
                f"django-redis's {key} is not supported: {_REFUSED[key]}", key=key
            )
        if key in _NOTED:
            notes.append(f"OPTIONS {key!r} is not used: {_NOTED[key]}")
        elif key in _RENAMES:
            _put(options, _RENAMES[key], value, key)
        elif key == "CLIENT_CLASS":
            note = _client(value)
            if note:
                notes.append(note)
        elif key == "SERIALIZER":
            _put(options, "serializer", _choice(key, value, _SERIALIZERS), key)
        elif key == "COMPRESSOR":
            _put(options, "compression", _choice(key, value, _COMPRESSORS), key)
        else:
            notes.extend(_pool_kwargs(options, value))
    return tuple(notes)


def _put(options: dict[str, Any], name: str, value: Any, given_as: str) -> None:
    if name in options:
        raise ConfigurationError(
            f"OPTIONS gives both {given_as!r} (django-redis's name) and {name!r}: keep one",
            key=given_as,
        )
    options[name] = value


def _dotted(key: str, value: Any) -> str:
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if not isinstance(value, str):
        raise ConfigurationError(
            f"{key} must be a dotted path such as 'django_redis...', got {value!r}", key=key
        )
    return value


def _choice(key: str, value: Any, known: Mapping[str, str]) -> str:
    path = _dotted(key, value)
    if path in known:
        return known[path]
    offered = ", ".join(sorted(known))
    raise ConfigurationError(
        f"{key} {path!r} has no cachekit equivalent; cachekit reads {offered} "
        "(or use cachekit's own serializer/compression options)",
        key=key,
    )


def _client(value: Any) -> str | None:
    path = _dotted("CLIENT_CLASS", value)
    if path in _CLIENTS:
        return _CLIENTS[path]
    name = path.rsplit(".", 1)[-1]
    hint = _CLIENT_HINTS.get(name) if path.startswith(_PACKAGE) else None
    raise ConfigurationError(
        f"CLIENT_CLASS {path!r} is not supported: "
        + (hint or "cachekit's backend is its own client (django-redis's DefaultClient is)"),
        key="CLIENT_CLASS",
    )


def _pool_kwargs(options: dict[str, Any], value: Any) -> list[str]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"CONNECTION_POOL_KWARGS must be a dict, got {type(value).__name__}",
            key="CONNECTION_POOL_KWARGS",
        )
    unused: list[str] = []
    for name, setting in value.items():
        if name in _POOL_KWARGS:
            _put(options, name, setting, f"CONNECTION_POOL_KWARGS[{name!r}]")
        elif name in _POOL_IGNORED:
            unused.append(name)
        else:
            raise ConfigurationError(
                f"CONNECTION_POOL_KWARGS[{name!r}] is not a connection setting cachekit reads "
                f"(it reads {', '.join(sorted(_POOL_KWARGS))})",
                key="CONNECTION_POOL_KWARGS",
            )
    if not unused:
        return []
    return [
        f"CONNECTION_POOL_KWARGS {', '.join(map(repr, sorted(unused)))} are redis-py "
        "settings cachekit decides itself (retries: the retries option; replies are bytes)"
    ]
