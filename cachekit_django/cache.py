"""Django cache backends over cachekit: ``CACHES = {"default": {"BACKEND": ...}}``.

:class:`CacheKitCache` takes any cachekit URL as ``LOCATION``; :class:`MemoryCache`,
:class:`RedisCache`, :class:`MemcachedCache`, :class:`RedisClusterCache` and
:class:`TieredCache` are the same backend restricted to one provider, each also accepting the
``LOCATION`` forms of the Django backend it replaces (see :mod:`.locations`).

A thin adapter: Django's conventions are translated into the core's contract and nothing the core
owns is redone here. Keys are made and validated exactly as ``BaseCache`` does (``KEY_PREFIX``,
``VERSION``, ``KEY_FUNCTION``, ``CacheKeyWarning``; the memcached backend raises
``InvalidCacheKey`` as Django's memcached backends do), with the common case - a valid key from
the default key function - checked by C-level ``str`` methods instead of a regex generator.
``TIMEOUT``/``timeout`` map onto the core's TTLs one to one (``None`` forever, ``<= 0`` not
stored), ``incr``/``decr`` of a missing key raise ``ValueError``, ``set_many`` returns the keys
that failed, ``delete_many`` returns how many it removed (as django-redis; ``None`` for none
given, as Django). The core caches are shared per process
(:mod:`.shared`), so ``close()`` keeps their pools, as Django's ``RedisCache`` does.

The in-process providers store objects, so values are copied where Django's ``LocMemCache``
guarantees copies (:mod:`.values`); the network providers serialize anyway. Async methods call
the core's async twins: real asyncio I/O for Redis, direct calls for the memory provider.
"""

from __future__ import annotations

import datetime
import inspect
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    BaseCache,
    InvalidCacheBackendError,
    InvalidCacheKey,
    default_key_func,
    memcache_key_warnings,
)

from cachekit import MISSING, Cache, CacheStats, DistributedCache
from cachekit.config import parse_url
from cachekit.errors import (
    ConfigurationError,
    InvalidArgument,
    NotAnInteger,
    SerializationError,
    UnsupportedOperation,
    ValueTooLarge,
)
from cachekit.interfaces import check_tags

from .locations import Plan, plan
from .redis_structures import RedisStructuresMixin
from .shared import shared_cache
from .values import IMMUTABLE_TYPES, Pickled, Tree, freeze, isolate

__all__ = [
    "CacheKitCache",
    "FileCache",
    "InvalidCacheConfiguration",
    "MemcachedCache",
    "MemoryCache",
    "RedisCache",
    "RedisClusterCache",
    "TieredCache",
]

_loads = pickle.loads
_MAX_KEY = 250  # memcached's key limit, as django.core.cache.backends.base checks it
#: Made keys remembered per backend (str keys at the default version); the memo is dropped
#: whole when full, which costs a high-cardinality workload one insert per call, no more.
_MEMO_SIZE = 4096
_GLOB_SPECIALS = str.maketrans({c: "\\" + c for c in "*?[]\\"})
_PATTERN_MARK = "\x00cachekit-pattern\x00"


class InvalidCacheConfiguration(InvalidCacheBackendError, ConfigurationError):
    """A ``CACHES`` entry cachekit cannot build: Django's error type, naming the bad ``key``."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        ConfigurationError.__init__(self, message, key=key)

    def fresh(self) -> InvalidCacheConfiguration:
        """A copy to raise: raising one instance on every call would grow its traceback, and
        the frames (and requests) it holds, with each call."""
        copy = InvalidCacheConfiguration(str(self), key=self.key)
        copy.__cause__ = self.__cause__
        return copy


class _Unconfigured:
    """Stands in for the core cache of a bad ``CACHES`` entry: every use raises its error."""

    provider_name = "unconfigured"

    def __init__(self, error: InvalidCacheConfiguration) -> None:
        self._error = error

    def __getattr__(self, name: str) -> Any:
        error = self._error

        def fail(*args: Any, **kwargs: Any) -> Any:
            raise error.fresh()

        if name.startswith("__"):
            raise AttributeError(name)
        return fail

    def __repr__(self) -> str:
        return f"<unconfigured: {self._error}>"


def _escape_glob(text: str) -> str:
    return text.translate(_GLOB_SPECIALS)


#: memcached reads an expiry beyond this many seconds as a Unix time.
_THIRTY_DAYS = 30 * 24 * 3600


def _whole_seconds(seconds: float | None) -> int | None:
    """Redis's ``TTL`` rounding (``(pttl + 500) // 1000``), for every provider alike."""
    return None if seconds is None else int(seconds + 0.5)


def _unix_seconds(when: Any, per_second: int, method: str) -> float:
    """``when`` of ``expire_at``/``pexpire_at`` as a Unix time in seconds: a datetime, or a
    number of seconds (``per_second=1``) or milliseconds (``1000``) since the epoch."""
    if isinstance(when, datetime.datetime):
        return when.timestamp()
    if isinstance(when, int | float) and not isinstance(when, bool):
        return when / per_second
    raise InvalidArgument(
        f"{method}(): when must be a datetime or a Unix time in "
        f"{'seconds' if per_second == 1 else 'milliseconds'}, got {when!r}"
    )


def _pickle_error(exc: SerializationError) -> BaseException:
    """The pickle error behind a core SerializationError, which is what Django's backends raise
    (``pickle.PickleError``, or ``TypeError`` for objects pickle refuses), else ``exc``."""
    cause = exc.__cause__
    if isinstance(cause, (pickle.PickleError, TypeError, AttributeError)):
        return cause
    return exc


def _same(value: Any) -> Any:
    return value


def _decoder(core: Any) -> Callable[[Any], Any]:
    """A copy of a value as ``core`` decodes it on a read (``loads(dumps(value))`` of its own
    serializer), or a pickle round trip where it has none. ``null://`` stores nothing, so
    there is nothing to copy from: the caller's own object, as Django's ``DummyCache`` gives."""
    if getattr(core, "provider_name", None) == "null":
        return _same
    if not isinstance(core, _Unconfigured):
        for name in ("serializer", "_serializer"):  # public on some providers, private on others
            serializer = getattr(core, name, None)
            dumps, loads = getattr(serializer, "dumps", None), getattr(serializer, "loads", None)
            if callable(dumps) and callable(loads):
                return lambda value: loads(dumps(value))
    return isolate


class RawClient:
    """What django-redis's ``cache.client`` offers for raw access: :meth:`get_client`, so
    ``django_redis.get_redis_connection(alias)`` and :func:`get_redis_connection` work."""

    __slots__ = ("_core",)

    def __init__(self, core: Any) -> None:
        self._core = core

    def get_client(self, write: bool = True, tried: Any = None) -> Any:
        """The provider's redis-py client (one pool serves reads and writes: ``write`` and
        ``tried``, django-redis's replica selection, change nothing)."""
        return self._core.redis_client()


def get_redis_connection(alias: str = "default", write: bool = True) -> Any:
    """django-redis's helper: the raw redis-py client behind ``caches[alias]``.

    Keys are as the server stores them (the provider's ``prefix``, then Django's made key).
    """
    from django.core.cache import caches

    client = getattr(caches[alias], "client", None)
    if not isinstance(client, RawClient):
        raise UnsupportedOperation(f"caches[{alias!r}] has no Redis client")
    return client.get_client(write)


class CacheKitCache(BaseCache):
    """A Django cache backend on any cachekit provider (``LOCATION`` is a cachekit URL)."""

    #: Which provider family ``LOCATION`` must name (a key of ``locations.KINDS``).
    kind: ClassVar[str] = "cachekit"

    def __init__(self, location: Any, params: dict[str, Any]) -> None:
        # Made keys of validated str keys at the default version: with the default KEY_FUNCTION
        # a key's made form depends only on KEY_PREFIX and VERSION, whose setters drop it.
        self._made: dict[Any, str] = {}
        super().__init__(params)
        built: Plan | None = None
        try:
            built = self.plan(location, params)
            core = shared_cache(built)
        except ConfigurationError as exc:
            # Not raised here: Django's own system checks build every cache, and ours must get
            # to report this (cachekit_django.E001, with a hint). Any use raises it.
            error = InvalidCacheConfiguration(f"{type(self).__name__}: {exc}", key=exc.key)
            error.__cause__ = exc
            core = _Unconfigured(error)  # type: ignore[assignment]
        self._cachekit: Cache = core
        provider = core.provider_name
        # memcached refuses what Django's memcached backends refuse; others warn (BaseCache).
        self._strict_keys = provider == "memcached"
        # A memory provider given a serializer stores encoded copies itself.
        serialized = built is not None and (
            "serializer" in built.options or "serializer" in parse_url(built.url).options
        )
        self._freeze = provider == "memory" and not serialized
        self._isolate = provider == "tiered"
        # Django-style culling: batch writes go one by one (see set_many).
        self._culls = built is not None and built.cull is not None and provider == "memory"
        # get_or_set's copy of a value the core handed back as given (serializing providers).
        self._fresh: Callable[[Any], Any] = _decoder(core)
        self._distributed = isinstance(core, DistributedCache)
        self._see_key_parts()
        # Bound once: the per-call path does no attribute lookups on the core.
        self._get: Callable[..., Any] = core.get
        self._set: Callable[..., Any] = core.set
        self._aget: Callable[..., Any] = core.aget
        self._aset: Callable[..., Any] = core.aset

    @classmethod
    def plan(cls, location: Any, params: Mapping[str, Any]) -> Plan:
        """What this backend builds for ``location``/``params`` (used by the system checks)."""
        return plan(cls.kind, location, params)

    # -- keys and timeouts ----------------------------------------------------------------------

    @property
    def key_prefix(self) -> str:
        return self._key_prefix

    @key_prefix.setter
    def key_prefix(self, value: str) -> None:
        self._key_prefix = value
        self._forget_made_keys()

    @property
    def version(self) -> int:
        return self._version

    @version.setter
    def version(self, value: int) -> None:
        self._version = value
        self._forget_made_keys()

    #: What makes and checks keys: replacing one, on the class or on an instance (``cache.
    #: key_func = ...``, ``mock.patch.object(cache, "make_key")``), turns the fast paths off.
    _KEY_PARTS: ClassVar[frozenset[str]] = frozenset(
        {"key_func", "make_key", "validate_key", "make_and_validate_key"}
    )

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in self._KEY_PARTS and "_made" in vars(self):
            self._see_key_parts()

    def __delattr__(self, name: str) -> None:
        super().__delattr__(name)
        if name in self._KEY_PARTS and "_made" in vars(self):
            self._see_key_parts()

    def _see_key_parts(self) -> None:
        """Decide the key fast paths from what makes and checks keys now."""
        cls, own = type(self), vars(self)
        self._default_keys = (
            getattr(self, "key_func", None) is default_key_func
            and cls.make_key is CacheKitCache.make_key
            and "make_key" not in own
        )
        self._fast_validation = (
            cls.validate_key is CacheKitCache.validate_key and "validate_key" not in own
        )
        # get/set inline make_and_validate_key when neither it nor a part of it is customised.
        self._inline_keys = (
            self._default_keys
            and self._fast_validation
            and cls.make_and_validate_key is CacheKitCache.make_and_validate_key
            and "make_and_validate_key" not in own
        )
        self._forget_made_keys()

    def _forget_made_keys(self) -> None:
        # vars(): a subclass may set key_prefix/version before calling our __init__.
        made = vars(self).get("_made")
        if made is not None:
            made.clear()

    def _inline_key(self, key: Any, version: int | None) -> str:
        """make_and_validate_key for the default KEY_FUNCTION and validation, remembering keys
        that pass (a warned or refused key is checked again on every use, as in Django)."""
        memo = version is None and type(key) is str
        prefix = self._key_prefix
        if version is None:
            version = self._version
        made = "%s:%s:%s" % (prefix, version, key)  # noqa: UP031 - Django's
        if len(made) > _MAX_KEY or " " in made or not made.isprintable():
            self.validate_key(made)
        elif memo:
            remembered = self._made
            if len(remembered) >= _MEMO_SIZE:
                remembered.clear()
            remembered[key] = made
            if prefix is not self._key_prefix or version != self._version:
                remembered.clear()  # changed by another thread meanwhile: drop what was made
        return made

    def make_and_validate_key(self, key: Any, version: int | None = None) -> str:
        if self._inline_keys:
            # Exact str only: a str subclass (a str Enum member) equal to a remembered key
            # formats differently, and would otherwise get that key's made form.
            made = self._made.get(key) if version is None and type(key) is str else None
            return made if made is not None else self._inline_key(key, version)
        if version is None:
            version = self.version
        if self._default_keys:
            made: str = "%s:%s:%s" % (self.key_prefix, version, key)  # noqa: UP031 - Django's
        else:
            made = self.make_key(key, version=version)
        # A key is fine for memcached when short, printable and without spaces: three C calls.
        # Anything else (isprintable() also rejects harmless non-ASCII) gets Django's check.
        if (
            not self._fast_validation
            or len(made) > _MAX_KEY
            or " " in made
            or not made.isprintable()
        ):
            self.validate_key(made)
        return made

    def validate_key(self, key: str) -> None:
        if self._strict_keys:
            for warning in memcache_key_warnings(key):
                raise InvalidCacheKey(warning)
            return
        super().validate_key(key)

    def _timeout(self, timeout: Any) -> Any:
        if timeout is DEFAULT_TIMEOUT:
            return self.default_timeout
        if timeout is True or timeout is False:  # Django's backends: 1 s, and not stored
            return int(timeout)
        return timeout

    def _unsupported(self, message: str) -> Exception:
        """``UnsupportedOperation(message)``, or a misconfigured entry's configuration error:
        which provider it lacks does not tell what it would have done ("unconfigured:// caches
        have no tags" sent users looking for the wrong mistake)."""
        error = self.configuration_error
        return error.fresh() if error is not None else UnsupportedOperation(message)

    def _tags(self, tags: Iterable[str]) -> list[str]:
        """Tags in this cache's namespace (``KEY_PREFIX``), refused where there are none."""
        if not self._distributed:
            raise self._unsupported(
                f"{self._cachekit.provider_name}:// caches have no tags (use redis:// or memory://)"
            )
        tagset = check_tags(tags) or ()
        prefix = self.key_prefix
        return [f"{prefix}:{tag}" for tag in tagset] if prefix else list(tagset)

    def _store(self, value: Any) -> Any:
        if self._freeze:
            return freeze(value)
        if self._isolate:
            return isolate(value)
        return value

    def _load(self, value: Any) -> Any:
        if type(value) is Tree:
            return value.copy()
        if type(value) is Pickled:
            return _loads(value)
        if self._isolate:
            return isolate(value)
        return value

    # -- Django's contract ------------------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        if self._inline_keys:  # make_and_validate_key, inlined: a get is a few hundred ns
            made = self._made.get(key) if version is None and type(key) is str else None
            if made is None:
                made = self._inline_key(key, version)
        else:
            made = self.make_and_validate_key(key, version)
        value = self._get(made, MISSING)
        if value is MISSING:
            return default
        if type(value) is Tree:
            return value.copy()
        if type(value) is Pickled:
            return _loads(value)
        if self._isolate:
            return isolate(value)
        return value

    def set(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
        nx: bool = False,
        xx: bool = False,
    ) -> bool | None:
        """Django's ``set``; as django-redis's, ``nx=True`` stores only if absent (``add``) and
        ``xx=True`` only if present (``replace``), returning whether it stored."""
        if nx or xx:
            if nx and xx:
                raise ValueError("set(): nx and xx exclude each other")
            if nx:
                return self.add(key, value, timeout, version, tags=tags)
            return self.replace(key, value, timeout, version, tags=tags)
        if self._inline_keys:  # see get()
            made = self._made.get(key) if version is None and type(key) is str else None
            if made is None:
                made = self._inline_key(key, version)
        else:
            made = self.make_and_validate_key(key, version)
        if timeout is DEFAULT_TIMEOUT:  # _timeout(), inlined
            ttl = self.default_timeout
        elif timeout is True or timeout is False:
            ttl = int(timeout)
        else:
            ttl = timeout
        if self._freeze:
            if type(value) not in IMMUTABLE_TYPES:  # freeze()'s first test, without the call
                value = freeze(value)
        elif self._isolate:
            value = isolate(value)
        try:
            if tags:
                self._set(made, value, ttl, tags=self._tags(tags))
            else:
                self._set(made, value, ttl)
        except SerializationError as exc:
            raise _pickle_error(exc) from None
        except ValueTooLarge:
            # As from Django's PyMemcacheCache (pymemcache's MemcacheServerError): an error,
            # and the key does not keep its old value (memcached drops it too).
            if self._strict_keys:
                self._cachekit.delete(made)
            raise

    def add(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> bool:
        return self._store_if("add", key, value, timeout, version, tags)

    def replace(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> bool:
        """Store only if the key is present, atomically (``set(..., xx=True)``); whether it
        was. Not in Django's API: ``add``'s opposite, as memcached's ``replace``."""
        return self._store_if("replace", key, value, timeout, version, tags)

    def _store_if(  # noqa: PLR0917 - add's and replace's arguments, passed on
        self, op: str, key: Any, value: Any, timeout: Any, version: int | None, tags: Any
    ) -> bool:
        """The core's conditional write ``op`` (``add``/``replace``) of a Django key."""
        made = self.make_and_validate_key(key, version)
        write = getattr(self._cachekit, op)
        value, ttl = self._store(value), self._timeout(timeout)
        try:
            if tags:
                return bool(write(made, value, ttl, tags=self._tags(tags)))
            return bool(write(made, value, ttl))
        except SerializationError as exc:
            raise _pickle_error(exc) from None

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        made = self.make_and_validate_key(key, version)
        return self._cachekit.touch(made, self._timeout(timeout))

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._cachekit.delete(self.make_and_validate_key(key, version))

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._cachekit.exists(self.make_and_validate_key(key, version))

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        made, again = self._made_keys(keys, version)
        if not made:
            return {}
        found = self._cachekit.get_many(made)
        load = self._load
        result = {made[k]: load(v) for k, v in found.items()}
        if again:
            self._answer_again(result, found, made, again)
        return result

    def _made_keys(
        self, keys: Iterable[Any], version: int | None
    ) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
        """``get_many``'s ``{made key: key}``, and the ``(made key, key)`` of each key whose made
        key an earlier one has (``1`` and ``"1"``: both ``:1:1``)."""
        made: dict[str, Any] = {}
        again: list[tuple[str, Any]] = []
        make = self.make_and_validate_key
        for key in keys:
            made_key = make(key, version)
            if made_key in made:
                again.append((made_key, key))
            else:
                made[made_key] = key
        return made, again

    def _answer_again(
        self,
        result: dict[Any, Any],
        found: Mapping[str, Any],
        made: Mapping[str, Any],
        again: list[tuple[str, Any]],
    ) -> None:
        """Answer each key of ``again`` too, with a copy of its own, as ``LocMemCache`` and
        ``FileBasedCache`` answer every key asked (Django's Redis and memcached backends keep
        one of them)."""
        copy = self._load if self._freeze or self._isolate else self._fresh
        for made_key, key in again:
            if made_key in found and key is not made[made_key]:
                result[key] = copy(found[made_key])

    def set_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> list[Any]:
        if not data:
            return []
        originals: dict[str, Any] = {}
        mapping: dict[str, Any] = {}
        store = self._store
        for key, value in data.items():
            made = self.make_and_validate_key(key, version)
            originals[made] = key
            mapping[made] = store(value)
        ttl = self._timeout(timeout)
        core: Any = self._cachekit
        try:
            if self._culls:
                # LocMemCache culls at the first new key past MAX_ENTRIES, then fills up again:
                # the culler (shared.Culler) sees each write on its own, as LocMemCache's set.
                write = self._set
                if tags:
                    tagged = self._tags(tags)
                    for made, value in mapping.items():
                        write(made, value, ttl, tags=tagged)
                else:
                    for made, value in mapping.items():
                        write(made, value, ttl)
                return []
            if tags:
                failed = core.set_many(mapping, ttl, tags=self._tags(tags))
            else:
                failed = core.set_many(mapping, ttl)
        except SerializationError as exc:
            raise _pickle_error(exc) from None
        return [originals[k] for k in failed]

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> int | None:
        """How many of ``keys`` were removed, as django-redis returns it (Django's backends
        return ``None``); ``None`` for no keys, as Django's."""
        made = [self.make_and_validate_key(key, version) for key in keys]
        if not made:
            return None
        return self._cachekit.delete_many(made)

    def incr(
        self,
        key: Any,
        delta: int = 1,
        version: int | None = None,
        *,
        ignore_key_check: bool = False,
    ) -> int:
        """Django's ``incr``; ``ignore_key_check=True`` (django-redis) starts a missing key at 0
        instead of raising."""
        made = self.make_and_validate_key(key, version)
        # Django's backends raise ValueError for a missing key (the core would start it at 0);
        # between the check and the increment the race is the one Django's RedisCache has.
        if not ignore_key_check and not self._cachekit.exists(made):
            raise ValueError(f"Key '{made}' not found")
        try:
            return self._cachekit.incr(made, delta)
        except NotAnInteger:
            total = self._incr_beyond_int64(made, delta, ignore_key_check)
            if total is None:
                raise
            return total

    def _incr_beyond_int64(self, made: str, delta: Any, create: bool) -> int | None:
        """django-redis's fallback when Redis's ``INCRBY`` overflows (signed 64 bits): the sum
        in Python, stored as an int keeping the TTL (atomic: ``WATCH``/``MULTI``). ``None``
        where it does not apply (not Redis, a delta or value that is not an int)."""
        core = self._cachekit
        if type(delta) is not int or not callable(getattr(core, "redis_client", None)):
            return None
        from cachekit.providers import redis_raw

        return redis_raw.add_to_int(core, made, delta, create=create)

    def get_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> Any:
        """Stampede-safe: a callable ``default`` runs once per key across this process's
        threads (and across processes on Redis) while others wait for its result."""
        made = self.make_and_validate_key(key, version)
        ttl = self._timeout(timeout)
        computed: list[Any] = []
        source = self._source(default, computed, False)
        core: Any = self._cachekit
        try:
            if tags:
                result = core.get_or_set(made, source, ttl, tags=self._tags(tags))
            else:
                result = core.get_or_set(made, source, ttl)
            return self._own_copy(result, default, computed)
        except SerializationError as exc:
            raise _pickle_error(exc) from None

    def _source(self, default: Any, computed: list[Any], awaits: bool) -> Any:
        """What get_or_set hands the core for ``default``: the in-process providers get it in
        stored form (:meth:`_store`); for the others a callable's results are kept in
        ``computed``, so :meth:`_own_copy` knows them. ``awaits``: aget_or_set's, whose callable
        may be a coroutine function (its result awaited, as the core awaits it)."""
        store = self._store if self._freeze or self._isolate else None
        if not callable(default):
            return default if store is None else store(default)

        def keep(value: Any) -> Any:
            if store is not None:
                return store(value)
            computed.append(value)
            return value

        if not awaits:
            return lambda: keep(default())

        async def produce() -> Any:
            value = default()
            if inspect.isawaitable(value):
                value = await value
            return keep(value)

        return produce

    def _own_copy(self, result: Any, default: Any, computed: list[Any]) -> Any:
        """get_or_set's answer from the core's ``result``. Where the core stores objects in
        stored form (memory, tiered) it is a copy of them; a serializing provider returns the
        object it stored (``default``, or what the callable returned): the caller gets a copy
        decoded as a ``get`` would decode it, never its own object (Django returns
        ``get(key, default)``), so changing it changes neither the caller's defaults nor what
        the next miss stores."""
        if self._freeze or self._isolate:
            return self._load(result)
        if result is default or any(result is value for value in computed):
            return self._fresh(result)
        return result

    def clear(self) -> None:
        self._cachekit.clear()

    def close(self, **kwargs: Any) -> None:
        """Nothing to do per request: the core cache and its pools are shared by the process."""

    # -- beyond Django ----------------------------------------------------------------------------

    @property
    def client(self) -> RawClient:
        """django-redis's ``cache.client`` for raw access (``cache.client.get_client()``); Redis
        and Redis Cluster backends only."""
        core = self._cachekit
        # Duck-typed: importing the Redis provider would import redis-py, an optional extra.
        if not callable(getattr(core, "redis_client", None)):
            # AttributeError, so that hasattr(cache, "client") is False, as for Django's own
            # backends (code probing for django-redis does that).
            raise AttributeError(
                f"{core.provider_name}:// caches have no Redis client (redis:// and "
                "redis+cluster:// do)"
            )
        return RawClient(core)

    @property
    def cachekit(self) -> Cache:
        """The core cache (keys stored in Django's made form: ``KEY_PREFIX:VERSION:key``)."""
        return self._cachekit

    def get_stats(self) -> CacheStats:
        return self._cachekit.get_stats()

    def ttl(self, key: Any, version: int | None = None) -> int | None:
        """django-redis's: whole seconds left, rounded as Redis's ``TTL`` rounds them; ``None``
        for a key that never expires, ``0`` for a missing key (:meth:`pttl` for milliseconds)."""
        return _whole_seconds(self._cachekit.ttl(self.make_and_validate_key(key, version)))

    def make_pattern(
        self, pattern: str, version: int | None = None, prefix: str | None = None
    ) -> str:
        """The glob over made keys matching ``pattern`` in this cache's prefix (or ``prefix``,
        as django-redis's) and version."""
        if not isinstance(pattern, str) or not pattern:
            raise TypeError(f"pattern must be a non-empty str, got {pattern!r}")
        if version is None:
            version = self.version
        if prefix is None:
            made = self.make_key(_PATTERN_MARK, version=version)
        else:
            made = self.key_func(_PATTERN_MARK, prefix, version)
        head, mark, tail = made.partition(_PATTERN_MARK)
        if not mark:
            raise UnsupportedOperation(
                "the key function (KEY_FUNCTION or make_key) does not keep the key verbatim in "
                "the made key, so a pattern cannot be mapped onto made keys"
            )
        return _escape_glob(head) + pattern + _escape_glob(tail)

    # -- django-redis's extras ---------------------------------------------------------------------

    def iter_keys(
        self, search: str, itersize: int | None = None, version: int | None = None
    ) -> Iterator[str]:
        """The keys (as given to ``set``) matching a Redis glob, listed page by page (``SCAN``
        on Redis): django-redis's ``iter_keys``. Providers that cannot list keys (memcached)
        raise :class:`~cachekit.errors.UnsupportedOperation`."""
        glob = self.make_pattern(search, version)
        head, _, tail = self.make_key(_PATTERN_MARK, version=version).partition(_PATTERN_MARK)
        cut = len(tail)
        cursor = ""
        while True:
            cursor, made_keys = self._cachekit.scan_keys(glob, cursor=cursor, count=itersize or 500)
            for made in made_keys:
                yield made[len(head) : len(made) - cut]
            if not cursor:
                return

    def keys(self, search: str, version: int | None = None) -> list[str]:
        """django-redis's ``keys``: :meth:`iter_keys` as a list."""
        return list(self.iter_keys(search, version=version))

    def persist(self, key: Any, version: int | None = None) -> bool:
        """django-redis's: drop the key's expiry; whether it exists."""
        return self.touch(key, None, version)

    def expire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        """django-redis's: a new timeout in seconds (``touch``; ``DEFAULT_TIMEOUT`` is the
        alias's ``TIMEOUT``); whether the key exists."""
        return self.touch(key, timeout, version)

    def pexpire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        """django-redis's: a new timeout in milliseconds. ``DEFAULT_TIMEOUT`` is the alias's
        ``TIMEOUT`` in seconds, as for ``expire`` (django-redis hands that number of seconds to
        ``PEXPIRE`` as milliseconds)."""
        if timeout is DEFAULT_TIMEOUT:
            return self.touch(key, timeout, version)
        return self.touch(key, None if timeout is None else timeout / 1000, version)

    def expire_at(self, key: Any, when: Any, version: int | None = None) -> bool:
        """django-redis's: expire at ``when``, a datetime (aware, or naive in local time) or a
        Unix time in seconds; a time in the past removes the key, as Redis ``EXPIREAT`` does."""
        return self._expire_at(key, _unix_seconds(when, 1, "expire_at"), version)

    def pexpire_at(self, key: Any, when: Any, version: int | None = None) -> bool:
        """django-redis's: :meth:`expire_at` with a Unix time in milliseconds (or a datetime)."""
        return self._expire_at(key, _unix_seconds(when, 1000, "pexpire_at"), version)

    def _expire_at(self, key: Any, at: float, version: int | None) -> bool:
        seconds = at - time.time()
        if seconds <= 0:
            return self.delete(key, version)
        return self.touch(key, seconds, version)

    def pttl(self, key: Any, version: int | None = None) -> int | None:
        """django-redis's: milliseconds left; ``None`` never expires, ``0`` missing."""
        seconds = self._cachekit.ttl(self.make_and_validate_key(key, version))
        return None if seconds is None else round(seconds * 1000)  # 1.001 s is 1001 ms

    def _distributed_core(self, op: str) -> DistributedCache:
        core = self._cachekit
        if not isinstance(core, DistributedCache):
            raise self._unsupported(f"{core.provider_name}:// caches cannot {op}")
        return core

    def delete_pattern(
        self,
        pattern: str,
        version: int | None = None,
        prefix: str | None = None,
        client: Any = None,
        itersize: int | None = None,
    ) -> int:
        """Remove this cache's keys matching a Redis-style glob; returns how many.

        django-redis's signature: ``prefix`` stands for ``KEY_PREFIX`` in this call, and
        ``itersize`` pages the scan (``SCAN ... COUNT itersize``, each page deleted before the
        next is read) where the default is one provider-side pass. cachekit keeps its own
        connections, so ``client`` is refused.
        """
        if client is not None:
            raise UnsupportedOperation(
                "delete_pattern(client=...): cachekit backends use their own connections"
            )
        core = self._distributed_core("delete by pattern")
        glob = self.make_pattern(pattern, version, prefix)
        if itersize is None:
            return core.delete_pattern(glob)
        if type(itersize) is not int or itersize < 1:
            raise ValueError(f"itersize must be an int >= 1, got {itersize!r}")
        removed, cursor = 0, ""
        while True:
            cursor, made_keys = core.scan_keys(glob, cursor=cursor, count=itersize)
            if made_keys:
                removed += core.delete_many(made_keys)
            if not cursor:
                return removed

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Remove every key stored with any of ``tags``; returns how many."""
        core = self._distributed_core("invalidate tags")
        return core.invalidate_tags(self._tags(tags))

    def lock(  # noqa: PLR0917 - django-redis's positional signature
        self,
        key: str,
        version: int | None = None,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = True,
    ) -> Any:
        """A distributed lock (Redis providers): ``with cache.lock("job", timeout=30):``.

        django-redis's signature and defaults: held until released unless ``timeout`` (seconds)
        is given, the token kept per thread. Its errors are cachekit's and redis-py's
        (``LockError``, ``LockNotOwnedError``)."""
        return self._core_lock(
            "lock",
            key,
            version,
            timeout=timeout,
            sleep=sleep,
            blocking=blocking,
            blocking_timeout=blocking_timeout,
            thread_local=thread_local,
        )

    def _core_lock(self, method: str, name: str, version: int | None, **options: Any) -> Any:
        """The core provider's ``lock``/``alock`` on the made key, or UnsupportedOperation."""
        make: Callable[..., Any] | None = getattr(self._cachekit, method, None)
        if make is None:
            raise UnsupportedOperation(
                f"{self._cachekit.provider_name}:// caches have no distributed lock"
            )
        made = self.make_and_validate_key(name, version)
        return make(made, **options)

    # -- async ----------------------------------------------------------------------------------

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        value = await self._aget(self.make_and_validate_key(key, version), MISSING)
        if value is MISSING:
            return default
        return self._load(value)

    async def aset(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> None:
        made = self.make_and_validate_key(key, version)
        value, ttl = self._store(value), self._timeout(timeout)
        try:
            if tags:
                await self._aset(made, value, ttl, tags=self._tags(tags))
            else:
                await self._aset(made, value, ttl)
        except SerializationError as exc:
            raise _pickle_error(exc) from None
        except ValueTooLarge:
            if self._strict_keys:  # see set()
                await self._cachekit.adelete(made)
            raise

    async def aadd(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> bool:
        return await self._astore_if("aadd", key, value, timeout, version, tags)

    async def areplace(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> bool:
        return await self._astore_if("areplace", key, value, timeout, version, tags)

    async def _astore_if(  # noqa: PLR0917 - see _store_if
        self, op: str, key: Any, value: Any, timeout: Any, version: int | None, tags: Any
    ) -> bool:
        made = self.make_and_validate_key(key, version)
        write = getattr(self._cachekit, op)
        value, ttl = self._store(value), self._timeout(timeout)
        try:
            if tags:
                return bool(await write(made, value, ttl, tags=self._tags(tags)))
            return bool(await write(made, value, ttl))
        except SerializationError as exc:
            raise _pickle_error(exc) from None

    async def atouch(
        self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        made = self.make_and_validate_key(key, version)
        return await self._cachekit.atouch(made, self._timeout(timeout))

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        return await self._cachekit.adelete(self.make_and_validate_key(key, version))

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        return await self._cachekit.aexists(self.make_and_validate_key(key, version))

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        made, again = self._made_keys(keys, version)
        if not made:
            return {}
        found = await self._cachekit.aget_many(made)
        load = self._load
        result = {made[k]: load(v) for k, v in found.items()}
        if again:
            self._answer_again(result, found, made, again)
        return result

    async def aset_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> list[Any]:
        if not data:
            return []
        originals: dict[str, Any] = {}
        mapping: dict[str, Any] = {}
        for key, value in data.items():
            made = self.make_and_validate_key(key, version)
            originals[made] = key
            mapping[made] = self._store(value)
        ttl = self._timeout(timeout)
        core: Any = self._cachekit
        try:
            if self._culls:  # see set_many
                write = self._aset
                if tags:
                    tagged = self._tags(tags)
                    for made, value in mapping.items():
                        await write(made, value, ttl, tags=tagged)
                else:
                    for made, value in mapping.items():
                        await write(made, value, ttl)
                return []
            if tags:
                failed = await core.aset_many(mapping, ttl, tags=self._tags(tags))
            else:
                failed = await core.aset_many(mapping, ttl)
        except SerializationError as exc:
            raise _pickle_error(exc) from None
        return [originals[k] for k in failed]

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> int | None:
        """See :meth:`delete_many`."""
        made = [self.make_and_validate_key(key, version) for key in keys]
        if not made:
            return None
        return await self._cachekit.adelete_many(made)

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        made = self.make_and_validate_key(key, version)
        if not await self._cachekit.aexists(made):
            raise ValueError(f"Key '{made}' not found")
        try:
            return await self._cachekit.aincr(made, delta)
        except NotAnInteger:
            core = self._cachekit
            if type(delta) is not int or not callable(getattr(core, "redis_client", None)):
                raise
            from cachekit.providers import redis_raw

            total = await redis_raw.aadd_to_int(core, made, delta, create=False)
            if total is None:
                raise
            return total

    async def aget_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> Any:
        made = self.make_and_validate_key(key, version)
        ttl = self._timeout(timeout)
        computed: list[Any] = []
        source = self._source(default, computed, True)
        core: Any = self._cachekit
        try:
            if tags:
                result = await core.aget_or_set(made, source, ttl, tags=self._tags(tags))
            else:
                result = await core.aget_or_set(made, source, ttl)
            return self._own_copy(result, default, computed)
        except SerializationError as exc:
            raise _pickle_error(exc) from None

    async def aclear(self) -> None:
        await self._cachekit.aclear()

    async def aclose(self, **kwargs: Any) -> None:
        """See :meth:`close`."""

    async def attl(self, key: Any, version: int | None = None) -> int | None:
        return _whole_seconds(await self._cachekit.attl(self.make_and_validate_key(key, version)))

    async def adelete_pattern(
        self, pattern: str, version: int | None = None, prefix: str | None = None
    ) -> int:
        core = self._distributed_core("delete by pattern")
        return await core.adelete_pattern(self.make_pattern(pattern, version, prefix))

    async def ainvalidate_tags(self, tags: Iterable[str]) -> int:
        core = self._distributed_core("invalidate tags")
        return await core.ainvalidate_tags(self._tags(tags))

    def alock(  # noqa: PLR0917 - lock()'s
        self,
        key: str,
        version: int | None = None,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
    ) -> Any:
        """The async twin of :meth:`lock` (``async with cache.alock("job"):``); its token is
        kept per lock object (an event loop's tasks share one thread)."""
        return self._core_lock(
            "alock",
            key,
            version,
            timeout=timeout,
            sleep=sleep,
            blocking=blocking,
            blocking_timeout=blocking_timeout,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._cachekit!r}>"

    @property
    def configuration_error(self) -> InvalidCacheConfiguration | None:
        """Why this entry could not be built (its system check, E001, says so at start-up)."""
        core = self._cachekit
        return core._error if isinstance(core, _Unconfigured) else None


class MemoryCache(CacheKitCache):
    """In-process cache; ``LOCATION`` is a ``LocMemCache`` name (caches sharing it share data)
    or a ``memory://`` URL. ``MAX_ENTRIES``/``CULL_FREQUENCY`` cull as ``LocMemCache`` does,
    unless cachekit's ``max_entries``/``max_memory_bytes`` bound it with its eviction policy."""

    kind = "memory"


def _redis_backend_timeout(self: CacheKitCache, timeout: Any = DEFAULT_TIMEOUT) -> int | None:
    """Django's ``RedisCache.get_backend_timeout``: whole seconds (``None`` never expires, ``0``
    deletes), where ``BaseCache``'s (``LocMemCache``'s) is an absolute time."""
    timeout = self._timeout(timeout)
    return None if timeout is None else max(0, int(timeout))


class RedisCache(RedisStructuresMixin, CacheKitCache):
    """Redis; ``LOCATION`` as Django's ``RedisCache`` (``redis://``, ``rediss://``,
    ``unix://``), or ``redis+sentinel://``. django-redis's hash, set and sorted-set methods
    come from :class:`~.redis_structures.RedisStructuresMixin`."""

    kind = "redis"
    get_backend_timeout = _redis_backend_timeout


class MemcachedCache(CacheKitCache):
    """memcached; ``LOCATION`` as Django's ``PyMemcacheCache`` (``"h1:11211;h2:11211"`` or a
    list) or a ``memcached://`` URL."""

    kind = "memcached"

    def get_backend_timeout(self, timeout: Any = DEFAULT_TIMEOUT) -> int:
        """Django's memcached backends': ``0`` never expires, ``-1`` deletes, beyond 30 days an
        absolute time (as memcached reads it)."""
        timeout = self._timeout(timeout)
        if timeout is None:
            return 0
        if int(timeout) == 0:
            timeout = -1
        if timeout > _THIRTY_DAYS:
            timeout += int(time.time())
        return int(timeout)


class RedisClusterCache(RedisStructuresMixin, CacheKitCache):
    """Redis Cluster; ``LOCATION`` lists startup nodes (``"h1:7000,h2:7001"``) or is a
    ``redis+cluster://`` URL. Has django-redis's data-structure methods (one key per command
    where django-redis takes several: each key has a slot of its own)."""

    kind = "redis+cluster"
    get_backend_timeout = _redis_backend_timeout


class TieredCache(CacheKitCache):
    """A near cache: ``LOCATION`` is a ``tiered://?l1=...&l2=...`` URL."""

    kind = "tiered"
    get_backend_timeout = _redis_backend_timeout  # relative seconds, as its providers take


class FileCache(CacheKitCache):
    """Files in a directory shared by every process on the host; ``LOCATION`` as Django's
    ``FileBasedCache`` (a directory path) or a ``file://`` URL. ``MAX_ENTRIES`` bounds it."""

    kind = "file"
