"""The namespaces a server serves: name -> cache, plus the limits the server applies itself.

A namespace is a core :class:`~cachekit.Cache` built from any provider URL (memory by default),
handed over at start-up or created at run time by the admin service. The server owns the caches
it builds (it closes them, and may rebuild a memory cache to change its eviction policy); caches
handed to it in code stay their owner's, so their eviction settings are not changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..config import redact_url
from ..errors import BackendUnavailable, CacheError, ConfigurationError, UnsupportedOperation
from ..factory import create_cache
from ..interfaces import Cache
from ..providers.memory import MemoryCache
from ..providers.tiered import TieredCache
from ..sentinels import DEFAULT, MISSING, DefaultType
from ..serialization.msgpack import MsgpackSerializer
from . import values
from .events import EventHub

__all__ = [
    "Namespace",
    "NamespaceDeleted",
    "NamespaceExists",
    "NamespaceNotFound",
    "Namespaces",
    "build_cache",
    "redact_url",
]

log = logging.getLogger("cachekit.grpc")

#: Seconds a deleted namespace's running calls get to finish before its cache is closed.
DELETE_DRAIN_SECONDS = 10.0
#: Seconds the calls still running past that bound, once cancelled, get to unwind (answer
#: :class:`NamespaceDeleted`, give their connections back) before the cache is closed anyway.
_UNWIND_SECONDS: Final = 1.0

#: Namespace names: what a URL path segment can hold without escaping.
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
_MAX_NAME = 128


class NamespaceNotFound(CacheError, LookupError):
    """No namespace of that name is served."""


class NamespaceExists(CacheError):
    """CreateNamespace of a name already served."""


class NamespaceDeleted(BackendUnavailable):
    """A call was still running on a namespace when its delete stopped waiting for it: the
    call is cancelled and answers this (``UNAVAILABLE``; a Python client raises the public
    ``BackendUnavailable``). A write it was making may or may not have been applied."""


def check_name(name: str) -> str:
    if not name or len(name) > _MAX_NAME or not set(name) <= _NAME_CHARS:
        raise ConfigurationError(
            f"namespace names are 1-{_MAX_NAME} characters of [A-Za-z0-9._-], got {name!r}",
            key="namespace",
        )
    return name


def build_cache(name: str, url: str) -> Cache:
    """The cache of namespace ``name`` from a provider URL, named after the namespace unless the
    URL sets ``name=`` (metrics and errors name the namespace; a Redis cache without ``prefix=``
    keeps its keys under ``cachekit:NAME:``, one prefix per namespace)."""
    query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    options = {} if any(k == "name" for k, _ in query) else {"name": name}
    return create_cache(url, **options)


@dataclass(slots=True)
class Namespace:
    """One served cache and the server-side limits of its TTLs."""

    name: str
    cache: Cache
    url: str = ""
    owned: bool = False
    #: The URL the cache was built from, password included (``url`` is the redacted one):
    #: ``ConfigurePolicy`` rebuilds from it, so options it does not change are kept.
    source: str = field(default="", repr=False)
    #: TTL of writes that give none; ``None``: the provider's own default.
    default_ttl: float | None = None
    #: Cap of every TTL ("never" included); ``None``: no cap.
    max_ttl: float | None = None
    events: EventHub | None = None
    #: Whether the cache gives a stored :class:`~.values.Kept` back as one (see ``values``):
    #: then stored ``bytes`` are octets whatever their first byte.
    marks: bool = field(init=False, default=False)
    #: Whether the cache's serializer is MessagePack: objects JSON cannot carry are read as
    #: ``application/msgpack`` rather than as pickle envelopes (see ``values.to_wire``).
    packs: bool = field(init=False, default=False)
    #: Calls running on this namespace (counted by the server's ``CallTracker``), and the event
    #: a delete waits on for them to end before it closes the cache under them.
    running: int = field(init=False, default=0)
    idle: asyncio.Event | None = field(init=False, default=None)
    #: The tasks of those calls (a delete cancels the ones left after its wait), and then the
    #: error they answer instead of the cancellation.
    tasks: set[asyncio.Task[Any]] = field(init=False, default_factory=set)
    abandoned: NamespaceDeleted | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.events is None:
            self.events = EventHub()
        self.marks, self.packs = holds_kept(self.cache), packs_msgpack(self.cache)

    def enter(self) -> None:
        """A call starts on this namespace, in the current task (see :meth:`leave`)."""
        self.running += 1
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)

    def leave(self) -> None:
        """One call on this namespace ended (it entered with :meth:`enter`)."""
        self.running -= 1
        task = asyncio.current_task()
        if task is not None:
            self.tasks.discard(task)
        if not self.running and self.idle is not None:
            self.idle.set()

    @property
    def hub(self) -> EventHub:
        assert self.events is not None
        return self.events

    def effective_ttl(self, ttl: float | DefaultType | None) -> float | DefaultType | None:
        """Apply the namespace's default and cap to a request's TTL (seconds, None = never)."""
        if ttl is DEFAULT:
            if self.default_ttl is not None:
                ttl = self.default_ttl
            elif self.max_ttl is None:
                return DEFAULT
            else:
                ttl = getattr(self.cache, "default_ttl", None)
        cap = self.max_ttl
        if cap is not None and (ttl is None or ttl > cap):
            return cap
        return ttl

    def policy(self) -> dict[str, Any]:
        """What the admin service reports as this namespace's policy."""
        cache = self.cache
        if isinstance(cache, MemoryCache):
            stats = cache.get_stats()
            return {
                "eviction_policy": stats.policy or "",
                "max_entries": cache.max_entries,
                "max_memory_bytes": cache.max_memory_bytes,
            }
        return {"eviction_policy": "", "max_entries": None, "max_memory_bytes": None}

    def reconfigure_memory(self, **changes: Any) -> None:
        """Rebuild an owned memory cache with new bounds or policy, moving its live entries.

        The new cache is built from the namespace's URL with only the changed options replaced
        (serializer, sizer and the rest are kept) and becomes the reported URL. Its counters
        carry on from the old cache's (a reconfiguration is not a restart); entries the new
        bounds evict while they move count as evictions.
        """
        old = self.cache
        if not isinstance(old, MemoryCache) or not self.owned:
            raise UnsupportedPolicy(
                f"namespace {self.name!r}: eviction settings can only be changed on memory "
                "caches the server built (configure other providers on their own servers)"
            )
        source = self.source or f"memory://?{urlencode(_memory_options(old))}"
        url = _with_options(
            source, {k: "none" if v is None else str(v) for k, v in changes.items()}
        )
        new = build_cache(self.name, url)
        if not isinstance(new, MemoryCache):  # the URL names a memory cache: cannot happen
            new.close()
            raise UnsupportedPolicy(f"namespace {self.name!r}: {redact_url(url)} is not memory")
        for key in old.keys():
            value = old._peek(key)  # not counted as a hit
            if value is MISSING:
                continue
            remaining = old.ttl(key)
            if remaining == 0.0:
                continue
            try:
                new.set(key, value, ttl=remaining, tags=old.tags_of(key))
            except CacheError:
                continue  # over the new memory bound on its own: not kept, as set_many would
        marks, self.cache, self.marks = self.marks, new, holds_kept(new)
        self.packs = packs_msgpack(new)
        self.source, self.url = url, redact_url(url)
        if self.marks and not marks:  # moved from a sniffing namespace: mark its envelopes
            for key in new.keys():
                stored = new._peek(key)
                if type(stored) is bytes and stored[:1] == b"\xc1":
                    content_type, data = values.to_wire(stored, sniff=True)
                    try:
                        marked = values.to_stored(content_type, data)
                        new.set(key, marked, ttl=new.ttl(key), tags=new.tags_of(key))
                    except CacheError:
                        continue  # left as it was
        _carry_counters(old, new)
        old.close()


def _memory_options(cache: MemoryCache) -> dict[str, str]:
    """The options of a memory cache handed over without a URL (no serializer or sizer): its
    policy, bounds and default TTL, so a reconfiguration changes only what it names."""
    options = {
        "name": cache.name,
        "policy": cache.get_stats().policy or "lru",
        "max_entries": "none" if cache.max_entries is None else str(cache.max_entries),
    }
    if cache.max_memory_bytes is not None:
        options["max_memory_bytes"] = str(cache.max_memory_bytes)
    if cache.default_ttl is not None:
        options["default_ttl"] = str(cache.default_ttl)
    return options


def _with_options(url: str, changes: Mapping[str, str]) -> str:
    """``url`` with the query options in ``changes`` replaced or added, the others kept."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in changes]
    query += changes.items()
    # Not urlunsplit: it drops the "//" of "memory://?...".
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


def _carry_counters(old: MemoryCache, new: MemoryCache) -> None:
    """Give ``new`` the counters and start time of the cache it replaces; the moved entries are
    no sets, and the evictions the new bounds caused while they moved are added."""
    with old._lock:
        old._drain_logs()
        with new._lock:
            new._drain_logs()
            new._evictions += old._evictions
            new._hits, new._misses = old._hits, old._misses
            new._sets, new._deletes = old._sets, old._deletes
            new._expirations = old._expirations
            new._started_wall, new._started = old._started_wall, old._started


#: An envelope as a probe of what a cache gives back (a pickle one, as pickle clients send).
_PROBE: Final = values.Kept(b"\xc1\x01\x04\x00\x80\x05N.")


def holds_kept(cache: Cache) -> bool:
    """Whether ``cache`` gives a stored :class:`~.values.Kept` back as one: a memory cache
    without a serializer keeps the object, and cachekit's serializers (JSON and MessagePack
    included) mark it in its header; one that writes it as plain ``bytes`` or refuses it does
    not, and neither does a cache of unknown storage. A tiered cache holds one if both its
    levels do."""
    if isinstance(cache, TieredCache):
        return holds_kept(cache.l1) and holds_kept(cache.l2)
    if isinstance(cache, MemoryCache) and cache._dumps is None:
        return True
    serializer = getattr(cache, "serializer", None)  # a file cache reads through its store
    if serializer is None:
        dumps, loads = getattr(cache, "_dumps", None), getattr(cache, "_loads", None)
    else:
        dumps, loads = getattr(serializer, "dumps", None), getattr(serializer, "loads", None)
    if not (callable(dumps) and callable(loads)):
        return False
    try:
        return type(loads(dumps(_PROBE))) is values.Kept
    except Exception:
        return False


def packs_msgpack(cache: Cache) -> bool:
    """Whether ``cache`` stores through a MessagePack serializer (a tiered cache: its L2)."""
    if isinstance(cache, TieredCache):
        return packs_msgpack(cache.l2)
    serializer = getattr(cache, "serializer", None) or getattr(cache, "_serializer", None)
    return isinstance(serializer, MsgpackSerializer)


class UnsupportedPolicy(UnsupportedOperation):
    """ConfigurePolicy asked a namespace for something its provider cannot change (travels to
    clients as the public ``UnsupportedOperation``)."""


class Namespaces:
    """Name -> :class:`Namespace`; mutated only from the server's event loop."""

    def __init__(
        self,
        caches: Mapping[str, Cache] = {},
        *,
        queue_size: int = 1024,
        drain: float = DELETE_DRAIN_SECONDS,
    ) -> None:
        self.queue_size = queue_size
        #: Seconds a delete waits for the calls still running on the namespace (see release).
        self.drain = drain
        self._by_name: dict[str, Namespace] = {}
        #: Removed namespaces whose caches wait for their running calls, by id (not hashable).
        self._releasing: dict[int, Namespace] = {}
        for name, cache in caches.items():
            if not isinstance(cache, Cache):
                raise ConfigurationError(
                    f"namespace {name!r}: expected a cachekit.Cache, got {type(cache).__name__}",
                    key="namespaces",
                )
            self._by_name[check_name(name)] = Namespace(name, cache, events=EventHub(queue_size))

    def get(self, name: str) -> Namespace:
        found = self._by_name.get(name)
        if found is None:
            if not name:
                raise ConfigurationError("namespace is required", key="namespace")
            raise NamespaceNotFound(f"no namespace {name!r} on this server")
        return found

    def find(self, name: str) -> Namespace | None:
        """The namespace of that name, or None (no error: the per-call tracking's lookup)."""
        return self._by_name.get(name)

    def create(self, name: str, url: str = "") -> Namespace:
        check_name(name)
        if name in self._by_name:
            raise NamespaceExists(f"namespace {name!r} already exists")
        url = url or "memory://"
        cache = build_cache(name, url)
        ns = Namespace(
            name,
            cache,
            url=redact_url(url),
            owned=True,
            source=url,
            events=EventHub(self.queue_size),
        )
        self._by_name[name] = ns
        return ns

    def add(self, name: str, cache: Cache, *, owned: bool = False) -> Namespace:
        """Serve an existing cache under ``name`` (in code; the admin service uses create)."""
        check_name(name)
        if name in self._by_name:
            raise NamespaceExists(f"namespace {name!r} already exists")
        ns = Namespace(name, cache, owned=owned, events=EventHub(self.queue_size))
        self._by_name[name] = ns
        return ns

    def delete(self, name: str) -> Namespace:
        ns = self.get(name)
        del self._by_name[name]
        if ns.owned:
            ns.cache.close()
        return ns

    async def adelete(self, name: str, drain: float | None = None) -> Namespace:
        """:meth:`delete` from the server's loop: :meth:`remove`, then :meth:`release`."""
        ns = self.remove(name)
        await self.release(ns, drain)
        return ns

    def remove(self, name: str) -> Namespace:
        """Stop serving ``name``: calls from now on find no such namespace."""
        ns = self.get(name)
        del self._by_name[name]
        return ns

    async def release(self, ns: Namespace, drain: float | None = None) -> None:
        """Close a removed namespace's cache once the calls still running on it have ended
        (at most ``drain`` seconds, by default :attr:`drain`): closed under a call, a Redis
        client leaked its connection and the call's write landed after the delete had returned.

        Calls still running then (stalled on their backend) are cancelled: each answers
        :class:`NamespaceDeleted`, and its cancelled I/O drops its connection, before the cache
        is closed. Closed under them, they hung until their own deadline (the close did not
        reach them), a write then landed after the delete, and its connection leaked.
        """
        drain = self.drain if drain is None else drain
        self._releasing[id(ns)] = ns  # closed by aclose() if the server stops first
        try:
            if ns.running:
                ns.idle = asyncio.Event()
                try:
                    await asyncio.wait_for(ns.idle.wait(), drain)
                except TimeoutError:
                    await _abandon(ns, drain)
        finally:
            if self._releasing.pop(id(ns), None) is not None and ns.owned:
                await _release(ns.cache)

    def lookup(self, name: str) -> Namespace | None:
        """The namespace served as ``name`` now, if any (never raises)."""
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)  # one C call: a snapshot, whatever another thread does

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Any:
        # The Prometheus scrape thread iterates while the server's loop may delete a namespace:
        # names then lookups raised KeyError; one copy (a single C call) cannot.
        snapshot = dict(self._by_name)
        return iter([snapshot[n] for n in sorted(snapshot)])

    def close(self) -> None:
        """Close the caches the server built."""
        for ns in self._by_name.values():
            if ns.owned:
                ns.cache.close()

    async def aclose(self) -> None:
        """:meth:`close` from the server's loop (see :func:`_release`)."""
        releasing, self._releasing = list(self._releasing.values()), {}
        for ns in [*self._by_name.values(), *releasing]:
            if ns.owned:
                await _release(ns.cache)


async def _abandon(ns: Namespace, drain: float) -> None:
    """Cancel the calls still running on removed ``ns`` after ``drain`` seconds; wait a little
    for them to unwind (the call tracker answers each with ``ns.abandoned``)."""
    log.warning(
        "namespace %r: cancelling %d calls still running %.1fs after its delete",
        ns.name,
        ns.running,
        drain,
    )
    ns.abandoned = NamespaceDeleted(
        f"namespace {ns.name!r} was deleted while this call ran, and the call was cancelled "
        f"after {drain:g}s (a write it was making may or may not have been applied)"
    )
    for task in list(ns.tasks):
        task.cancel()
    assert ns.idle is not None
    try:
        await asyncio.wait_for(ns.idle.wait(), _UNWIND_SECONDS)
    except TimeoutError:  # a call that ignores cancellation: closed under it, as a last resort
        log.warning("namespace %r: closing its cache under %d calls", ns.name, ns.running)


async def _release(cache: Cache) -> None:
    """Close a cache from the loop that served it: network providers keep one async client per
    loop (``aclose`` closes this loop's) besides their sync pool (``close``); closing only the
    latter leaves the async connections to be collected unclosed (a ResourceWarning)."""
    await cache.aclose()
    cache.close()
