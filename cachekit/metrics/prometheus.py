"""Prometheus export of cache statistics, computed at scrape time only.

A custom collector rather than ``Counter``/``Gauge`` objects updated by the providers: the
providers already keep their counters (for ``get_stats()``), so mirroring every operation into
prometheus-client metrics would double the hot-path cost for nothing. Here a scrape calls
``get_stats()`` once per registered cache and turns the snapshots into metric families, each
sample labelled with ``cache`` (the cache's name) and ``provider``.

Caches are held by weak reference: registering one for metrics must not keep it, and its
connections, alive after the application dropped it. A dead cache simply disappears from the
next scrape. One :class:`CacheCollector` is kept per ``CollectorRegistry``.

A failing ``get_stats()`` (a provider bug, a server gone away) is logged and that cache is left
out of the scrape, counted in ``cachekit_stats_errors_total``; metrics never break the scrape,
let alone the caller.

Network providers answer ``get_stats()`` even while their server is unreachable, with their
client-side counters and zeros (or, for memcached, a sum over the nodes that answered) for the
figures read from the server. Exported as such, ``cachekit_evictions_total`` would fall to 0 and
jump back when the server returns - a phantom burst for ``rate()``. So when ``extra`` says the
server read failed (``server_error``, a Redis snapshot without ``server_version``, memcached
``nodes_up`` below its node count, at the top level or nested as a tiered cache's ``l2``), the
server-derived series (evictions, expirations, items, memory and its limit) are left out of that
scrape, and ``cachekit_server_up`` says 0 (1 when read; absent for caches without a server).

Counters carry ``_created`` (the snapshot's ``started_at``), so a ``reset_stats()`` reads as a
counter reset rather than as counters going down.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cachekit import forking
from cachekit.errors import ConfigurationError

try:
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
    from prometheus_client import make_wsgi_app as _prometheus_wsgi_app
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess test
    if (exc.name or "").partition(".")[0] != "prometheus_client":
        raise
    raise ConfigurationError(
        "Prometheus metrics need prometheus-client: pip install 'cachekit[metrics]'",
        key="metrics",
    ) from exc

if TYPE_CHECKING:
    from threading import Thread
    from wsgiref.simple_server import WSGIServer
    from wsgiref.types import WSGIApplication

    from cachekit.interfaces import Cache
    from cachekit.stats import CacheStats

__all__ = [
    "CacheCollector",
    "extra_is_counter",
    "extra_metric_name",
    "make_wsgi_app",
    "register_cache",
    "start_metrics_server",
    "unregister_cache",
]

logger = logging.getLogger(__name__)

_LABELS = ("cache", "provider")

#: Counter families: (name without ``_total``, CacheStats attribute, help).
_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("cachekit_hits", "hits", "Lookups that found a live value."),
    ("cachekit_misses", "misses", "Lookups that found nothing."),
    ("cachekit_sets", "sets", "Values stored."),
    ("cachekit_deletes", "deletes", "Keys deleted by a caller."),
    ("cachekit_evictions", "evictions", "Values evicted to respect a size or memory bound."),
    ("cachekit_expirations", "expirations", "Values removed because their TTL ran out."),
)
_GAUGES: tuple[tuple[str, str], ...] = (
    ("cachekit_items", "Values currently held."),
    ("cachekit_memory_bytes", "Bytes held, by the provider's own accounting."),
    ("cachekit_memory_limit_bytes", "Configured memory bound (only caches that have one)."),
    ("cachekit_max_entries", "Configured entry bound (only caches that have one)."),
    ("cachekit_hit_ratio", "Hits over lookups since the counters started; 0 before any."),
    ("cachekit_uptime_seconds", "Seconds since the counters started."),
)
_HISTOGRAM = ("cachekit_get_latency_seconds", "Latency of a sample of get() calls.")
_STATS_ERRORS = ("cachekit_stats_errors", "Scrapes that skipped this cache: get_stats() raised.")
_SERVER_UP = (
    "cachekit_server_up",
    "1 when this scrape read the server's figures, 0 when it could not (those series are left "
    "out); only caches backed by a server.",
)
#: Series read from the server, left out of a scrape whose server read failed.
_SERVER_COUNTERS = frozenset({"cachekit_evictions", "cachekit_expirations"})
_SERVER_GAUGES = frozenset(
    {"cachekit_items", "cachekit_memory_bytes", "cachekit_memory_limit_bytes"}
)

# Every exposed sample name the core families produce; an ``extra`` gauge may not take one.
_RESERVED = frozenset(
    [f"{name}{suffix}" for name, _, _ in _COUNTERS for suffix in ("", "_total", "_created")]
    + [name for name, _ in _GAUGES]
    + [f"{_HISTOGRAM[0]}{suffix}" for suffix in ("", "_bucket", "_sum", "_count", "_created")]
    + [f"{_STATS_ERRORS[0]}{suffix}" for suffix in ("", "_total", "_created")]
    + [_SERVER_UP[0]]
)
_INVALID_NAME_CHARS = re.compile(r"[^a-z0-9_]+")


def extra_metric_name(key: str) -> str | None:
    """The gauge name for a ``CacheStats.extra`` key, or ``None`` if it has no usable one.

    Lower-cased, runs of characters Prometheus does not allow folded to ``_``, prefixed with
    ``cachekit_``; names that would collide with a core family are refused.
    """
    body = _INVALID_NAME_CHARS.sub("_", key.lower()).strip("_")
    if not body:
        return None
    name = f"cachekit_{body}"
    return None if name in _RESERVED else name


#: ``extra`` counts whose keys do not end in ``_total`` (a tiered cache's, kept readable in
#: ``get_stats()``; an L2's nested entries arrive here prefixed with ``l2_``).
_COUNTER_EXTRAS = frozenset(
    {
        "l1_hits",
        "l1_misses",
        "l1_evictions",
        "l2_hits",
        "l2_misses",
        "invalidations_received",
        "invalidations_sent",
        "invalidation_publish_errors",
        "subscriber_reconnects",
    }
)


def extra_is_counter(key: str) -> bool:
    """Whether the ``extra`` entry ``key`` only ever grows (between resets), so is exported as
    a counter (``rate()`` works on it, and the name ends in ``_total``) rather than a gauge.
    """
    return key.endswith("_total") or key in _COUNTER_EXTRAS


def _bound_label(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(float(bound))


@dataclass(slots=True, eq=False)
class _Entry:
    ref: weakref.ref[Cache]
    stats_errors: int = 0


class _Families:
    """The core metric families of one scrape, typed so each gets the right ``add_metric``."""

    def __init__(self) -> None:
        self.counters = {
            name: CounterMetricFamily(name, doc, labels=_LABELS) for name, _, doc in _COUNTERS
        }
        self.gauges = {name: GaugeMetricFamily(name, doc, labels=_LABELS) for name, doc in _GAUGES}
        self.histogram = HistogramMetricFamily(*_HISTOGRAM, labels=_LABELS)
        self.stats_errors = CounterMetricFamily(*_STATS_ERRORS, labels=_LABELS)
        self.server_up = GaugeMetricFamily(*_SERVER_UP, labels=_LABELS)

    def __iter__(self) -> Iterator[Metric]:
        yield from self.counters.values()
        yield from self.gauges.values()
        yield self.histogram
        yield self.stats_errors
        yield self.server_up


class CacheCollector:
    """A prometheus-client collector reporting every registered cache at scrape time.

    Usually obtained through :func:`register_cache`, which keeps one per registry; it can also be
    built and registered by hand (``registry.register(CacheCollector())``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Keyed by id(); an entry whose referent died is pruned on the next access, so a
        # recycled id can never resolve to the wrong cache (the dead ref returns None).
        self._entries: dict[int, _Entry] = {}
        forking.register(self)

    def _after_fork(self) -> None:
        """A forked child's scrape-failure counts start at zero, as its caches' counters do
        (see :mod:`cachekit.forking`); the lock, which a scrape may have held, is replaced."""
        self._lock = threading.Lock()
        for entry in self._entries.values():
            entry.stats_errors = 0

    # -- registration -----------------------------------------------------------------------

    def add(self, cache: Cache) -> None:
        """Report ``cache`` from now on (idempotent); it stays weakly referenced.

        Raises :class:`~cachekit.errors.ConfigurationError` if another live cache already uses
        the same ``name`` and provider, since their series would be indistinguishable.
        """
        with self._lock:
            self._prune()
            entry = self._entries.get(id(cache))
            if entry is not None and entry.ref() is cache:
                return
            labels = (cache.name, cache.provider_name)
            for other in self._entries.values():
                live = other.ref()
                if live is not None and (live.name, live.provider_name) == labels:
                    raise ConfigurationError(
                        f"a cache named {cache.name!r} (provider {cache.provider_name!r}) is "
                        "already registered for metrics; give each cache a distinct name",
                        key="name",
                    )
            self._entries[id(cache)] = _Entry(weakref.ref(cache))

    def remove(self, cache: Cache) -> bool:
        """Stop reporting ``cache``; return whether it was registered."""
        with self._lock:
            entry = self._entries.get(id(cache))
            if entry is None or entry.ref() is not cache:
                return False
            del self._entries[id(cache)]
            return True

    def caches(self) -> list[Cache]:
        """The live registered caches, in registration order."""
        return [cache for cache, _ in self._live()]

    def _prune(self) -> None:
        dead = [key for key, entry in self._entries.items() if entry.ref() is None]
        for key in dead:
            del self._entries[key]

    def _live(self) -> list[tuple[Cache, _Entry]]:
        with self._lock:
            self._prune()
            pairs = [(entry.ref(), entry) for entry in self._entries.values()]
        return [(cache, entry) for cache, entry in pairs if cache is not None]

    # -- the Collector protocol -------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """The fixed families (without samples), so a registry can detect name clashes.

        ``extra`` gauges depend on the providers and are not described.
        """
        yield from _Families()

    def collect(self) -> Iterator[Metric]:
        """Snapshot every live cache and yield its metric families."""
        snapshots: list[CacheStats] = []
        errors: list[tuple[tuple[str, str], int]] = []
        seen: set[tuple[str, str]] = set()
        for cache, entry in self._live():
            try:
                stats = cache.get_stats()
            except Exception:
                # Deliberately broad: one broken cache must not blank every other one.
                logger.exception(
                    "cachekit metrics: get_stats() of cache %r raised; left out of this scrape",
                    cache.name,
                )
                with self._lock:
                    entry.stats_errors += 1
                errors.append(((cache.name, cache.provider_name), entry.stats_errors))
                continue
            labels = (stats.name, stats.provider)
            if labels in seen:
                logger.warning(
                    "cachekit metrics: two caches report name=%r provider=%r; the second is "
                    "left out of the scrape",
                    *labels,
                )
                continue
            seen.add(labels)
            snapshots.append(stats)
            errors.append((labels, entry.stats_errors))

        families = _Families()
        for stats in snapshots:
            self._add_core(families, stats)
        for labels, count in errors:
            families.stats_errors.add_metric(list(labels), float(count))
        yield from families
        yield from self._extras(snapshots)

    # -- building families --------------------------------------------------------------------

    @staticmethod
    def _add_core(families: _Families, stats: CacheStats) -> None:
        labels = [stats.name, stats.provider]
        failed = stats.server_read_error is not None  # see CacheStats.server_read_error
        if stats.reads_server:
            families.server_up.add_metric(labels, 0.0 if failed else 1.0)
        created = float(stats.started_at)
        for name, attr, _ in _COUNTERS:
            if failed and name in _SERVER_COUNTERS:
                continue  # a zero now would read as a reset, and the next figure as a burst
            families.counters[name].add_metric(labels, float(getattr(stats, attr)), created=created)
        gauges = families.gauges
        values: dict[str, float | None] = {
            "cachekit_items": float(stats.items),
            "cachekit_memory_bytes": float(stats.memory_bytes),
            "cachekit_memory_limit_bytes": (
                None if stats.memory_limit is None else float(stats.memory_limit)
            ),
            "cachekit_max_entries": None if stats.max_entries is None else float(stats.max_entries),
            "cachekit_hit_ratio": stats.hit_ratio,
            "cachekit_uptime_seconds": float(stats.uptime),
        }
        for name, gauge_value in values.items():
            if gauge_value is None or (failed and name in _SERVER_GAUGES):
                continue
            gauges[name].add_metric(labels, gauge_value)

        buckets = stats.get_latency_buckets
        if not buckets:
            return  # this provider does not sample latency
        if buckets[-1][0] != math.inf:
            logger.warning(
                "cachekit metrics: cache %r reports latency buckets without +Inf; "
                "histogram left out",
                stats.name,
            )
            return
        histogram = families.histogram
        histogram.add_metric(
            labels,
            [(_bound_label(bound), float(count)) for bound, count in buckets],
            float(stats.get_latency_sum),
        )
        # HistogramMetricFamily.add_metric takes no ``created``: the sample by hand, as
        # prometheus-client's own histograms expose it (text format: a ``_created`` gauge).
        histogram.add_sample(
            f"{_HISTOGRAM[0]}_created", dict(zip(_LABELS, labels, strict=True)), created
        )

    @staticmethod
    def _extras(snapshots: list[CacheStats]) -> Iterator[Metric]:
        """Numeric ``CacheStats.extra`` entries as ``cachekit_<key>`` series (bools as 0/1):
        counters for the counts (:func:`extra_is_counter`), gauges for the rest.

        A nested mapping (a tiered cache's ``l2``) is flattened one level, its entries prefixed
        with its key (``l2_breaker_state``); deeper ones (memcached's per-node ``nodes``, keyed
        by address) are left out, so the series stay per cache, never per node or key.
        """
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        seen: set[tuple[str, str, str]] = set()
        for stats in snapshots:
            for key, value in _flat_extras(stats.extra):
                name = extra_metric_name(key)
                if name is None or (name, stats.name, stats.provider) in seen:
                    continue
                seen.add((name, stats.name, stats.provider))
                family = families.get(name)
                if family is None:
                    doc = f"Provider-specific statistic {key!r}."
                    family = families[name] = (
                        CounterMetricFamily(name, doc, labels=_LABELS)
                        if extra_is_counter(key)
                        else GaugeMetricFamily(name, doc, labels=_LABELS)
                    )
                family.add_metric([stats.name, stats.provider], float(value))
        yield from families.values()


def _flat_extras(extra: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """The numeric entries of ``extra``, then those of its mappings one level down, prefixed."""
    nested: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in extra.items():
        if isinstance(value, (int, float)):  # bool is an int: 0/1
            yield str(key), value
        elif isinstance(value, Mapping):
            nested.append((str(key), value))
    for prefix, mapping in nested:
        for key, value in mapping.items():
            if isinstance(value, (int, float)):
                yield f"{prefix}_{key}", value


# -- one collector per registry ---------------------------------------------------------------

_collectors: weakref.WeakKeyDictionary[CollectorRegistry, CacheCollector] = (
    weakref.WeakKeyDictionary()
)
_collectors_lock = threading.Lock()


def register_cache(cache: Cache, registry: CollectorRegistry = REGISTRY) -> CacheCollector:
    """Export ``cache`` through ``registry`` (weakly held; registering twice is harmless).

    Returns the registry's :class:`CacheCollector`, created and registered on first use.
    """
    with _collectors_lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = CacheCollector()
            registry.register(collector)
            _collectors[registry] = collector
    collector.add(cache)
    return collector


def unregister_cache(cache: Cache, registry: CollectorRegistry = REGISTRY) -> bool:
    """Stop exporting ``cache``; return whether it was registered with ``registry``."""
    with _collectors_lock:
        collector = _collectors.get(registry)
    return collector is not None and collector.remove(cache)


def start_metrics_server(
    port: int, addr: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> tuple[WSGIServer, Thread]:
    """Serve ``registry`` over HTTP from a daemon thread; loopback by default, not ``0.0.0.0``.

    ``port=0`` picks a free port (read it from ``server.server_port``). Returns the server and
    its thread so the caller can ``shutdown()``/``server_close()`` it.
    """
    return start_http_server(port, addr=addr, registry=registry)


def make_wsgi_app(registry: CollectorRegistry = REGISTRY) -> WSGIApplication:
    """A WSGI app serving ``registry``, to mount in an existing web application."""
    app: WSGIApplication = _prometheus_wsgi_app(registry)
    return app
