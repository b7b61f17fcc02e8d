"""The cache contract every provider implements and every adapter maps onto.

Written once, the way Django's ``BaseCache`` is: providers implement the primitives
(``get``, ``set``, ``add``, ``delete``, ``touch``, ``ttl``, ``incr``, ``clear``,
``get_stats``, ``close``), and inherit the composite operations, which they override only
where their backend can do better (one ``MGET``, a pipeline). Every method has an ``a``-prefixed
async twin; the defaults here call the sync code, which is right for in-process providers that
never block on I/O, and network providers override them with real async I/O.

Semantics shared by all providers (and tested by :mod:`cachekit.testing`):

* keys are non-empty ``str`` encodable as UTF-8; anything else (a lone surrogate included)
  raises :class:`~cachekit.errors.InvalidKey`;
* a miss is detected with :data:`~cachekit.MISSING`, so ``None`` is a cacheable value;
* ``ttl=DEFAULT`` is the cache's ``default_ttl``; ``None`` never expires; ``<= 0`` does not
  store and removes any existing value (``add`` still reports whether the key was absent);
* ``incr``/``decr`` are atomic; a missing key starts from 0 with the default TTL (Redis
  semantics), a non-integer value raises :class:`~cachekit.errors.NotAnInteger`;
* ``ttl(key)`` is the remaining lifetime in seconds, ``None`` for a key that never expires and
  ``0.0`` for a missing key (django-redis semantics).
"""

from __future__ import annotations

import abc
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import Any, ClassVar

from . import forking
from .entry import EntryInfo
from .errors import (
    InvalidArgument,
    InvalidArgumentType,
    InvalidKey,
    NotAnInteger,
    SerializationError,
    UnsupportedOperation,
)
from .keyscan import check_scan_args
from .sentinels import DEFAULT, MISSING
from .singleflight import AsyncSingleFlight, SingleFlight
from .stats import CacheStats
from .ttl import TTLArg, to_seconds

__all__ = [
    "Cache",
    "DistributedCache",
    "EntryInfo",
    "check_encodable",
    "check_key",
    "check_tags",
]

#: Exact types a single-flight leader's unstored result may be handed to its waiters as is.
_SHAREABLE: frozenset[type] = frozenset({str, bytes, int, float, bool, complex, type(None)})

logger = logging.getLogger("cachekit")


def _undecodable(cache: Cache, key: str, exc: SerializationError) -> None:
    logger.debug("cache %r: cannot decode the entry under %r (%s): a miss", cache.name, key, exc)


def check_tags(tags: Iterable[str]) -> frozenset[str] | None:
    """Tags as a frozenset (``None`` for none); a bare ``str`` would be split into letters.
    Bad tags raise :class:`InvalidArgumentType` (a ``TypeError`` too); one with a lone
    surrogate, which has no UTF-8 bytes, :class:`InvalidArgument`."""
    if not tags:
        return None
    if isinstance(tags, (str, bytes)):
        raise InvalidArgumentType(
            f"tags must be an iterable of str such as [{tags!r}], not a bare {type(tags).__name__}"
        )
    try:
        tagset = frozenset(tags)
    except TypeError as exc:  # not iterable, or an unhashable tag
        raise InvalidArgumentType(f"tags must be an iterable of non-empty str: {exc}") from None
    for tag in tagset:
        if type(tag) is not str or not tag:
            raise InvalidArgumentType(f"tags must be non-empty str, got {tag!r}")
        if not tag.isascii():
            try:
                tag.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidArgument(
                    f"tags must be encodable as UTF-8 (no lone surrogates), got {tag!r}"
                ) from None
    return tagset


def check_key(key: object) -> str:
    """Return ``key`` if it is a non-empty ``str`` encodable as UTF-8, else raise
    :class:`InvalidKey`: a key must reach every backend (and gRPC) as the same bytes, and a
    lone surrogate (``"a\\ud800"``) has none."""
    if type(key) is str and key and key.isascii():  # the usual key: no encoding to try
        return key
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"cache keys must be non-empty str, got {key!r}")
    key = str(key)  # a str subclass: normalise to a plain str
    check_encodable(key)
    return key


def check_encodable(key: str) -> None:
    """Raise :class:`InvalidKey` unless the ``str`` ``key`` encodes as UTF-8; for providers
    whose fast paths skip :func:`check_key` for plain ``str`` keys."""
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidKey(
                f"cache keys must be encodable as UTF-8 (no lone surrogates), got {key!r}"
            ) from None


class Cache(abc.ABC):
    """Base class of every provider; see the module docstring for the shared semantics."""

    #: Registry name of the provider (``"memory"``, ``"redis"``...).
    provider_name: ClassVar[str] = ""

    # Slots keep attribute access on the hot path specialised by CPython (an instance dict with
    # over ~30 keys loses that); subclasses without __slots__ still get a __dict__.
    __slots__ = (
        "__weakref__",
        "_async_single_flight",
        "_flight_wait",
        "_single_flight",
        "name",
    )

    def __init__(self, *, name: str = "default") -> None:
        self.name = name
        self._bound_flights(None)
        forking.register(self)

    def _bound_flights(self, wait: float | None) -> None:
        """New single-flights whose waiters wait at most ``wait`` seconds for a leader (None:
        :data:`cachekit.singleflight.WAIT_TIMEOUT`); a provider with a ``stampede_timeout``
        gives it, so the wait in this process and the wait across processes are one bound."""
        self._flight_wait = wait
        self._single_flight = SingleFlight(wait)
        self._async_single_flight = AsyncSingleFlight(wait)

    def _after_fork(self) -> None:
        """In a forked child (see :mod:`cachekit.forking`): computations in flight belong to
        the parent's threads; subclasses also drop connections and replace locks."""
        self._bound_flights(self._flight_wait)

    # -- primitives -------------------------------------------------------------------------

    @abc.abstractmethod
    def get(self, key: str, default: Any = None) -> Any:
        """Return the cached value, or ``default`` on a miss."""

    @abc.abstractmethod
    def set(self, key: str, value: Any, ttl: TTLArg = DEFAULT) -> None:
        """Store ``value`` under ``key``, replacing any existing value."""

    @abc.abstractmethod
    def add(self, key: str, value: Any, ttl: TTLArg = DEFAULT) -> bool:
        """Store only if ``key`` is absent; return whether it was absent."""

    def replace(self, key: str, value: Any, ttl: TTLArg = DEFAULT) -> bool:
        """Store only if ``key`` is present; return whether it was (``add``'s opposite:
        django-redis's ``set(..., xx=True)``, memcached's ``replace``). Atomic on the built-in
        providers; a non-positive ``ttl`` removes a present key. Providers without an atomic
        way raise :class:`~cachekit.errors.UnsupportedOperation`."""
        check_key(key)
        raise UnsupportedOperation(f"{self.provider_name}:// caches cannot replace")

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was present."""

    @abc.abstractmethod
    def touch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        """Give an existing key a new TTL; return whether it existed."""

    @abc.abstractmethod
    def ttl(self, key: str) -> float | None:
        """Remaining lifetime in seconds; ``None`` if it never expires, ``0.0`` if missing."""

    @abc.abstractmethod
    def incr(self, key: str, delta: int = 1) -> int:
        """Atomically add ``delta`` and return the new value."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Remove every key of this cache (only its own namespace on shared servers)."""

    @abc.abstractmethod
    def get_stats(self) -> CacheStats:
        """A snapshot of this cache's counters."""

    def close(self) -> None:  # noqa: B027 - optional hook: nothing to release by default
        """Release connections and background resources; the cache may be reopened lazily."""

    # -- composites ---------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds a live value (does not count as a hit or a miss where possible)."""
        return self.get(key, MISSING) is not MISSING

    #: What a non-integer raises here (a provider's subclass may also be its driver's error).
    _not_an_integer: ClassVar[type[NotAnInteger]] = NotAnInteger

    def decr(self, key: str, delta: int = 1) -> int:
        """Atomically subtract ``delta`` and return the new value."""
        if type(delta) is not int:
            raise self._not_an_integer(f"delta must be an int, got {delta!r}")
        return self.incr(key, -delta)

    def scan_keys(
        self, pattern: str = "*", *, cursor: str = "", count: int = 100
    ) -> tuple[str, list[str]]:
        """One page of this cache's keys matching a Redis glob: ``(next_cursor, keys)``.

        Start with ``cursor=""``; ``next_cursor == ""`` means done. A page may hold fewer than
        ``count`` keys, and (as with Redis ``SCAN``) a key may show up in more than one page.
        Providers that cannot list keys raise :class:`~cachekit.errors.UnsupportedOperation`.
        """
        check_scan_args(pattern, cursor, count)
        raise UnsupportedOperation(f"{type(self).__name__} cannot list its keys")

    def inspect(self, key: str) -> EntryInfo | None:
        """What is stored under ``key`` (``None`` if nothing); not counted as a hit or miss."""
        key = check_key(key)
        value = self._peek(key)
        if value is MISSING:
            return None
        return EntryInfo(key, self.ttl(key), None, None, None, type(value).__name__)

    def _get_with_ttl(self, key: str) -> tuple[Any, float | None]:
        """``(value or MISSING, remaining seconds)``, counted as one lookup; for near caches.

        Network providers override this to read both in one round trip.
        """
        value = self.get(key, MISSING)
        return value, (0.0 if value is MISSING else self.ttl(key))

    def _get_many_with_ttl(self, keys: list[str]) -> dict[str, tuple[Any, float | None]]:
        """``{key: (value, remaining seconds)}`` of the present keys; see :meth:`_get_with_ttl`."""
        return {key: (value, self.ttl(key)) for key, value in self.get_many(keys).items()}

    async def _aget_with_ttl(self, key: str) -> tuple[Any, float | None]:
        """The async twin of :meth:`_get_with_ttl` (network providers: one round trip)."""
        value = await self.aget(key, MISSING)
        return value, (0.0 if value is MISSING else await self.attl(key))

    async def _aget_many_with_ttl(self, keys: list[str]) -> dict[str, tuple[Any, float | None]]:
        """The async twin of :meth:`_get_many_with_ttl`."""
        found = await self.aget_many(keys)
        return {key: (value, await self.attl(key)) for key, value in found.items()}

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Return the present keys only, mapped to their values."""
        found: dict[str, Any] = {}
        for key in keys:
            value = self.get(key, MISSING)
            if value is not MISSING:
                found[key] = value
        return found

    def set_many(self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT) -> list[str]:
        """Store every item; return the keys that could not be stored."""
        if ttl is not DEFAULT:  # checked up front, as DistributedCache.set_many does
            to_seconds(ttl)
        checked = {check_key(key): value for key, value in mapping.items()}
        for key, value in checked.items():
            self.set(key, value, ttl)
        return []

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove the keys; return how many were present."""
        return sum(1 for key in keys if self.delete(key))

    def get_or_set(self, key: str, default_or_factory: Any, ttl: TTLArg = DEFAULT) -> Any:
        """Return the cached value, storing ``default_or_factory`` (or its result) on a miss.

        With a callable, concurrent callers for the same missing key in this process run it once
        and all receive its result (single-flight). The result is stored with ``add``: a value
        someone else wrote meanwhile (a write-through ``set`` while a slow factory ran) is newer
        than the factory's, so it wins and is what every caller gets.
        """
        return self._get_or_set(key, default_or_factory, ttl, partial(self.add, ttl=ttl))

    def _get_or_set(
        self, key: str, default_or_factory: Any, ttl: TTLArg, add: Callable[[str, Any], bool]
    ) -> Any:
        if ttl is not DEFAULT:
            to_seconds(ttl)  # a bad TTL fails before any lookup or factory runs
        value = self.get(key, MISSING)
        if value is not MISSING:
            return value
        if not callable(default_or_factory):
            return self._add_or_current(key, default_or_factory, add)
        return self._fill_miss(key, default_or_factory, add)

    def _fill_miss(
        self, key: str, factory: Callable[[], Any], add: Callable[[str, Any], bool]
    ) -> Any:
        """``get_or_set`` after its lookup missed: the single-flight computation and store (an
        adapter that made, and counted, its own lookup calls this, so a miss counts once)."""
        return self._single_flight.do(
            key,
            lambda: self._lead(key, factory, add),
            lambda: self._compute_alone(key, factory, add),
            lambda value: self._stored_or(key, value, factory, add),
        )

    def _stored_or(
        self, key: str, value: Any, factory: Callable[[], Any], add: Callable[[str, Any], bool]
    ) -> Any:
        """What a single-flight waiter gets: the stored value (its own copy where the provider
        decodes one per read). If nothing was stored (failing open, a null cache, a value too
        big), the leader's ``value`` only if immutable: a mutable one is an object of the
        leader's (a response its request code then changes), so the waiter computes its own,
        as without a cache."""
        current = self._fill_peek(key)
        if current is not MISSING:
            return current
        if type(value) in _SHAREABLE:
            return value
        return self._compute_alone(key, factory, add)

    def _lead(self, key: str, factory: Callable[[], Any], add: Callable[[str, Any], bool]) -> Any:
        """What this process's single-flight leader runs: providers that keep other processes
        from computing at the same time (a lock on the server, on a file) override it."""
        return self._compute_alone(key, factory, add)

    def _compute_alone(
        self, key: str, factory: Callable[[], Any], add: Callable[[str, Any], bool]
    ) -> Any:
        """The stored value if there is one (a previous leader may have just stored it), else
        the factory's: what a single-flight leader, a waiter and a re-entrant call run."""
        current = self._fill_peek(key)
        if current is not MISSING:
            return current
        return self._add_or_current(key, factory(), add)

    def _add_or_current(self, key: str, value: Any, add: Callable[[str, Any], bool]) -> Any:
        if add(key, value):
            return value
        current = self._fill_peek(key)
        return value if current is MISSING else current

    def _peek(self, key: str) -> Any:
        """A read that providers which can do so keep out of the hit/miss counts."""
        return self.get(key, MISSING)

    async def _apeek(self, key: str) -> Any:
        return await self.aget(key, MISSING)

    def _fill_peek(self, key: str) -> Any:
        """The fill's uncounted re-read. An entry that cannot be decoded (written meanwhile by
        another program, or another version, in a shared namespace) is no value a leader
        stored: the fill computes its own, as if the key were missing."""
        try:
            return self._peek(key)
        except SerializationError as exc:
            _undecodable(self, key, exc)
            return MISSING

    async def _afill_peek(self, key: str) -> Any:
        """The async twin of :meth:`_fill_peek`."""
        try:
            return await self._apeek(key)
        except SerializationError as exc:
            _undecodable(self, key, exc)
            return MISSING

    # -- async twins ----------------------------------------------------------------------------

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.get(key, default)

    async def aset(self, key: str, value: Any, ttl: TTLArg = DEFAULT) -> None:
        self.set(key, value, ttl)

    async def aadd(self, key: str, value: Any, ttl: TTLArg = DEFAULT) -> bool:
        return self.add(key, value, ttl)

    async def areplace(self, key: str, value: Any, ttl: TTLArg = DEFAULT) -> bool:
        return self.replace(key, value, ttl)

    async def adelete(self, key: str) -> bool:
        return self.delete(key)

    async def aexists(self, key: str) -> bool:
        return self.exists(key)

    async def aclear(self) -> None:
        self.clear()

    async def atouch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        return self.touch(key, ttl)

    async def attl(self, key: str) -> float | None:
        return self.ttl(key)

    async def aincr(self, key: str, delta: int = 1) -> int:
        return self.incr(key, delta)

    async def adecr(self, key: str, delta: int = 1) -> int:
        return self.decr(key, delta)

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Any]:
        return self.get_many(keys)

    async def aset_many(self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT) -> list[str]:
        return self.set_many(mapping, ttl)

    async def adelete_many(self, keys: Iterable[str]) -> int:
        return self.delete_many(keys)

    async def ascan_keys(
        self, pattern: str = "*", *, cursor: str = "", count: int = 100
    ) -> tuple[str, list[str]]:
        return self.scan_keys(pattern, cursor=cursor, count=count)

    async def ainspect(self, key: str) -> EntryInfo | None:
        return self.inspect(key)

    async def aget_stats(self) -> CacheStats:
        return self.get_stats()

    async def aclose(self) -> None:
        self.close()

    async def aget_or_set(self, key: str, default_or_factory: Any, ttl: TTLArg = DEFAULT) -> Any:
        """Async :meth:`get_or_set`; the factory may be a plain or a coroutine function."""
        return await self._aget_or_set(key, default_or_factory, ttl, partial(self.aadd, ttl=ttl))

    async def _aget_or_set(
        self,
        key: str,
        default_or_factory: Any,
        ttl: TTLArg,
        add: Callable[[str, Any], Awaitable[bool]],
    ) -> Any:
        if inspect.isawaitable(default_or_factory):
            raise InvalidArgumentType(
                "aget_or_set takes a value or a (coroutine) function, not an awaitable: "
                "pass the function itself so it runs only on a miss"
            )
        if ttl is not DEFAULT:
            to_seconds(ttl)
        value = await self.aget(key, MISSING)
        if value is not MISSING:
            return value
        if not callable(default_or_factory):
            return await self._aadd_or_current(key, default_or_factory, add)
        return await self._afill_miss(key, default_or_factory, add)

    async def _afill_miss(
        self, key: str, factory: Callable[[], Any], add: Callable[[str, Any], Awaitable[bool]]
    ) -> Any:
        """The async twin of :meth:`_fill_miss`."""
        return await self._async_single_flight.do(
            key,
            lambda: self._alead(key, factory, add),
            lambda: self._acompute_alone(key, factory, add),
            lambda value: self._astored_or(key, value, factory, add),
        )

    async def _astored_or(
        self,
        key: str,
        value: Any,
        factory: Callable[[], Any],
        add: Callable[[str, Any], Awaitable[bool]],
    ) -> Any:
        """The async twin of :meth:`_stored_or`."""
        current = await self._afill_peek(key)
        if current is not MISSING:
            return current
        if type(value) in _SHAREABLE:
            return value
        return await self._acompute_alone(key, factory, add)

    async def _alead(
        self, key: str, factory: Callable[[], Any], add: Callable[[str, Any], Awaitable[bool]]
    ) -> Any:
        """The async twin of :meth:`_lead`."""
        return await self._acompute_alone(key, factory, add)

    async def _acompute_alone(
        self, key: str, factory: Callable[[], Any], add: Callable[[str, Any], Awaitable[bool]]
    ) -> Any:
        """The async twin of :meth:`_compute_alone` (the factory may be a coroutine function)."""
        current = await self._afill_peek(key)
        if current is not MISSING:
            return current
        result = factory()
        if inspect.isawaitable(result):
            result = await result
        return await self._aadd_or_current(key, result, add)

    async def _aadd_or_current(
        self, key: str, value: Any, add: Callable[[str, Any], Awaitable[bool]]
    ) -> Any:
        if await add(key, value):
            return value
        current = await self._afill_peek(key)
        return value if current is MISSING else current

    # -- conveniences -----------------------------------------------------------------------------

    def __contains__(self, key: str) -> bool:
        return self.exists(key)

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


class DistributedCache(Cache):
    """A cache that can also invalidate by glob pattern and by tag.

    ``set``/``add``/``set_many``/``get_or_set`` take ``tags``; ``invalidate_tags`` removes every
    live key carrying any of the tags and returns how many it removed.
    """

    __slots__ = ()

    @abc.abstractmethod
    def set(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> None:
        """Store ``value``; ``tags`` name groups it can later be invalidated with."""

    @abc.abstractmethod
    def add(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> bool:
        """Store only if absent; see :meth:`Cache.add`."""

    def replace(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        """Store only if present; see :meth:`Cache.replace`. ``tags`` replace the old ones."""
        check_key(key)
        check_tags(tags)
        raise UnsupportedOperation(f"{self.provider_name}:// caches cannot replace")

    @abc.abstractmethod
    def delete_pattern(self, pattern: str) -> int:
        """Remove the keys matching a glob pattern (``*``, ``?``, ``[...]``); return the count."""

    @abc.abstractmethod
    def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Remove every key carrying any of ``tags``; return the count."""

    def tagged_keys(self, tags: Iterable[str]) -> list[str]:
        """The live keys carrying any of ``tags``, sorted: what :meth:`invalidate_tags` would
        remove now (for dry runs; a snapshot, not atomic with a later invalidation)."""
        check_tags(tags)
        raise UnsupportedOperation(f"{self.provider_name}:// caches cannot list a tag's keys")

    def set_many(
        self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> list[str]:
        # Every argument is checked before the first write: an empty mapping is no excuse for
        # a bad TTL or tag, and a bad key must not leave the keys before it stored.
        if ttl is not DEFAULT:
            to_seconds(ttl)
        tags = check_tags(tags) or ()
        checked = {check_key(key): value for key, value in mapping.items()}
        for key, value in checked.items():
            self.set(key, value, ttl, tags=tags)
        return []

    def get_or_set(
        self,
        key: str,
        default_or_factory: Any,
        ttl: TTLArg = DEFAULT,
        *,
        tags: Iterable[str] = (),
    ) -> Any:
        add = partial(self.add, ttl=ttl, tags=check_tags(tags) or ())
        return self._get_or_set(key, default_or_factory, ttl, add)

    async def aset(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> None:
        self.set(key, value, ttl, tags=tags)

    async def aadd(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        return self.add(key, value, ttl, tags=tags)

    async def areplace(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        return self.replace(key, value, ttl, tags=tags)

    async def aset_many(
        self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> list[str]:
        return self.set_many(mapping, ttl, tags=tags)

    async def adelete_pattern(self, pattern: str) -> int:
        return self.delete_pattern(pattern)

    async def ainvalidate_tags(self, tags: Iterable[str]) -> int:
        return self.invalidate_tags(tags)

    async def atagged_keys(self, tags: Iterable[str]) -> list[str]:
        return self.tagged_keys(tags)

    async def aget_or_set(
        self,
        key: str,
        default_or_factory: Any,
        ttl: TTLArg = DEFAULT,
        *,
        tags: Iterable[str] = (),
    ) -> Any:
        add = partial(self.aadd, ttl=ttl, tags=check_tags(tags) or ())
        return await self._aget_or_set(key, default_or_factory, ttl, add)
