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

import ssl
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from cachekit.errors import ConfigurationError

__all__ = ["DJANGO_REDIS_OPTIONS", "Translated", "translate"]

_PACKAGE: Final = "django_redis."
#: Renames: django-redis's option -> the provider's.
_TIMEOUTS: Final = {
    "SOCKET_TIMEOUT": "socket_timeout",
    "SOCKET_CONNECT_TIMEOUT": "socket_connect_timeout",
}
_CREDENTIALS: Final = {"PASSWORD": "password", "USERNAME": "username"}
_JSON_NOTE: Final = (
    "OPTIONS SERIALIZER JSONSerializer: cachekit's json serializer refuses datetime, date, "
    "time, timedelta, Decimal and lazy translation strings, which django-redis's "
    "(DjangoJSONEncoder) writes as strings: set() raises TypeError for them; use 'pickle', "
    "or convert them first"
)
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
_HERD_NOTE: Final = (
    "OPTIONS CLIENT_CLASS HerdClient: the default client is used. HerdClient serves a stale "
    "value to get() while one caller refreshes it; cachekit instead protects get_or_set (one "
    "computation per key across processes, a Redis lock), and a plain get() of an expired key "
    "is a miss"
)
_CLIENTS: Final = {
    "django_redis.client.DefaultClient": None,
    "django_redis.client.default.DefaultClient": None,
    "django_redis.client.HerdClient": _HERD_NOTE,
    "django_redis.client.herd.HerdClient": _HERD_NOTE,
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
#: redis-py's other spellings of ``ssl_cert_reqs`` (``ssl.VerifyMode`` members are ints).
_CERT_REQS: Final[dict[Any, str]] = {
    None: "none",
    ssl.CERT_NONE: "none",
    ssl.CERT_OPTIONAL: "optional",
    ssl.CERT_REQUIRED: "required",
}
#: ``CONNECTION_POOL_KWARGS`` redis-py takes that cachekit decides itself.
_POOL_IGNORED: Final = frozenset({"retry_on_timeout", "client_name", "decode_responses"})
#: Accepted with a note: what cachekit does instead.
_NOTED: Final = {
    "PARSER_CLASS": "redis-py uses hiredis whenever it is installed (cachekit's redis extra)",
    "PICKLE_VERSION": "cachekit writes its own pickle protocol (values are not shared with "
    "django-redis in any case)",
    "REPLICA_READ_ONLY": "replicas are not read from",
    "CLOSE_CONNECTION": "connections are pooled per process and kept across requests",
    "LOG_IGNORED_EXCEPTIONS": "django-redis itself reads only the "
    "DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS setting; with fail_open (IGNORE_EXCEPTIONS) cachekit "
    "logs outages itself (one WARNING per 10 s) and counts them",
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
    {*_TIMEOUTS, *_CREDENTIALS, "IGNORE_EXCEPTIONS", "CLIENT_CLASS", "SERIALIZER", "COMPRESSOR"}
    | {"CONNECTION_POOL_KWARGS"}
    | set(_NOTED)
    | set(_REFUSED)
)


class Translated(NamedTuple):
    """What :func:`translate` found: warnings for what is accepted but not used, and the key
    the user wrote for each provider option it set (so errors name the user's key)."""

    notes: tuple[str, ...]
    aliases: dict[str, str]


def translate(options: dict[str, Any], ignore_exceptions: bool = False) -> Translated:
    """Replace django-redis's keys in ``options`` (in place) by the provider's. Raises
    :class:`ConfigurationError` naming the key for what cachekit cannot honour.

    ``ignore_exceptions`` is django-redis's ``DJANGO_REDIS_IGNORE_EXCEPTIONS`` setting: the
    default of ``IGNORE_EXCEPTIONS``, so of ``fail_open`` when neither is given."""
    notes: list[str] = []
    aliases: dict[str, str] = {}
    for key in sorted(DJANGO_REDIS_OPTIONS & set(options)):
        value = options.pop(key)
        if key in _REFUSED:
            raise ConfigurationError(
                f"django-redis's {key} is not supported: {_REFUSED[key]}", key=key
            )
        if key in _NOTED:
            notes.append(f"OPTIONS {key!r} is not used: {_NOTED[key]}")
        elif key in _TIMEOUTS:
            # django-redis passes a timeout only when it is truthy: 0 and None mean none.
            _put(options, aliases, _TIMEOUTS[key], value or None, key)
        elif key in _CREDENTIALS:
            if value:  # django-redis skips an empty one (os.environ.get(...) unset)
                _put(options, aliases, _CREDENTIALS[key], value, key)
        elif key == "IGNORE_EXCEPTIONS":
            _put(options, aliases, "fail_open", _flag(key, value), key)
        elif key == "CLIENT_CLASS":
            note = _client(value)
            if note:
                notes.append(note)
        elif key == "SERIALIZER":
            name = _choice(key, value, _SERIALIZERS)
            _put(options, aliases, "serializer", name, key)
            if name == "json":
                notes.append(_JSON_NOTE)
        elif key == "COMPRESSOR":
            _put(options, aliases, "compression", _choice(key, value, _COMPRESSORS), key)
        else:
            notes.extend(_pool_kwargs(options, aliases, value))
    if ignore_exceptions and "fail_open" not in options:
        options["fail_open"] = True
        aliases["fail_open"] = "DJANGO_REDIS_IGNORE_EXCEPTIONS"
    return Translated(tuple(notes), aliases)


def _put(
    options: dict[str, Any], aliases: dict[str, str], name: str, value: Any, given_as: str
) -> None:
    if name in options:
        raise ConfigurationError(
            f"OPTIONS gives both {given_as!r} (django-redis's name) and {name!r}: keep one",
            key=given_as,
        )
    options[name] = value
    aliases[name] = given_as.partition("[")[0]  # the OPTIONS key the user wrote


def _flag(key: str, value: Any) -> bool:
    if isinstance(value, bool) or (type(value) is int and value in (0, 1)):
        return bool(value)
    raise ConfigurationError(f"{key} must be True or False, got {value!r}", key=key)


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


def _pool_kwargs(options: dict[str, Any], aliases: dict[str, str], value: Any) -> list[str]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"CONNECTION_POOL_KWARGS must be a dict, got {type(value).__name__}",
            key="CONNECTION_POOL_KWARGS",
        )
    unused: list[str] = []
    for name, given in value.items():
        if name in _POOL_KWARGS:
            setting = given
            if name == "ssl_cert_reqs" and (given is None or type(given) is not str):
                # redis-py also takes None and ssl.CERT_* (Heroku's recipe: None)
                setting = _CERT_REQS.get(given, given) if isinstance(given, int | None) else given
            if name in ("username", "password") and not setting:
                continue
            _put(options, aliases, name, setting, f"CONNECTION_POOL_KWARGS[{name!r}]")
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
