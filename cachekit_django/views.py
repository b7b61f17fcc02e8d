"""Prometheus ``/metrics`` for every cache alias of the project.

Each scrape builds a private ``CollectorRegistry`` holding cachekit's own collector
(:class:`cachekit.metrics.prometheus.CacheCollector`) over the core cache of every cachekit
alias, plus ``cachekit_django_alias_info`` mapping each alias to its cache name, provider and
backend class. A private registry, rather than the process-wide one, means the page shows
exactly the project's ``CACHES``, and no registration outlives a settings change (tests swap
``CACHES`` freely). Series are labelled ``cache`` (the core cache's name) and ``provider``, as in
every other cachekit export, so dashboards work the same with or without Django.

Core names collide easily: Django never tells a backend its alias, so two Redis aliases whose
``OPTIONS`` set no ``name`` are both ``default``. The first alias (in ``CACHES`` order) keeps its
core's name; a later alias whose *different* core has a name already exported is exported under
its alias name instead (``sessions``, or ``sessions-2`` if that is taken too), through a small
renaming proxy - one series set per alias, never per key. Aliases that share one core (same
``LOCATION`` and options, only ``KEY_PREFIX`` differing) share its series: the counters are the
core's, and ``cachekit_django_alias_info`` maps both aliases to the same ``cache`` label.

Protect it: set ``CACHEKIT_METRICS_TOKEN`` and the view demands ``Authorization: Bearer
<token>`` (Prometheus: ``authorization: {credentials: ...}`` in the scrape config); otherwise
restrict the path at the proxy. Memory caches are per process: under gunicorn each worker
answers with its own figures (see docs/django-ops.md).
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

import cachekit

from .management.aliases import AliasInfo, aliases

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["build_registry", "metrics"]

logger = logging.getLogger(__name__)


class _Renamed:
    """An alias's core cache exported under another ``name`` (its own collided with another
    alias's); held by the registry's collectors for the scrape, weakly by ``CacheCollector``."""

    __slots__ = ("__weakref__", "_core", "name", "provider_name")

    def __init__(self, core: cachekit.Cache, name: str) -> None:
        self._core = core
        self.name = name
        self.provider_name = core.provider_name

    def get_stats(self) -> cachekit.CacheStats:
        return dataclasses.replace(self._core.get_stats(), name=self.name)


def _exported(infos: list[AliasInfo]) -> tuple[dict[str, tuple[str, str]], list[cachekit.Cache]]:
    """Each cachekit alias's ``(cache, provider)`` labels, distinct per core, and the caches
    (cores or renaming proxies) to register, in settings order."""
    labels: dict[str, tuple[str, str]] = {}
    by_core: dict[int, tuple[str, str]] = {}
    taken: set[tuple[str, str]] = set()
    exported: list[cachekit.Cache] = []
    for info in infos:
        core = info.core
        if core is None:
            continue
        known = by_core.get(id(core))
        if known is not None:  # one core behind several aliases: one set of series
            labels[info.alias] = known
            continue
        provider = core.provider_name
        name = core.name
        if (name, provider) in taken:
            name, n = info.alias, 2
            while (name, provider) in taken:
                name, n = f"{info.alias}-{n}", n + 1
            exported.append(cast("cachekit.Cache", _Renamed(core, name)))
        else:
            exported.append(core)
        taken.add((name, provider))
        labels[info.alias] = by_core[id(core)] = (name, provider)
    return labels, exported


class _AliasInfoCollector:
    """``cachekit_django_alias_info{alias,backend,cache,provider} 1`` for every alias, and
    ``cachekit_django_alias_misconfigured{alias,backend,error} 1`` for each cachekit alias whose
    entry could not be built (so it is not mistaken for a foreign backend with no series)."""

    def __init__(
        self,
        infos: list[AliasInfo],
        labels: dict[str, tuple[str, str]],
        keep: list[cachekit.Cache],
    ) -> None:
        self._infos = infos
        self._labels = labels
        self._keep = keep  # the renaming proxies live as long as the registry

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "cachekit_django_alias_info",
            "Django cache aliases: backend class and, for cachekit backends, cache and provider.",
            labels=["alias", "backend", "cache", "provider"],
        )
        for info in self._infos:
            cache, provider = self._labels.get(info.alias, ("", ""))
            family.add_metric([info.alias, info.backend, cache, provider], 1.0)
        yield family
        broken = GaugeMetricFamily(
            "cachekit_django_alias_misconfigured",
            "Django cache aliases whose cachekit configuration is invalid, with the error.",
            labels=["alias", "backend", "error"],
        )
        for info in self._infos:
            if info.configuration_error is not None:
                broken.add_metric([info.alias, info.backend, str(info.configuration_error)], 1.0)
        yield broken


def build_registry() -> CollectorRegistry:
    """A fresh registry reporting every cachekit alias (what one scrape of /metrics serves)."""
    try:
        from prometheus_client import CollectorRegistry

        from cachekit.metrics.prometheus import CacheCollector
    except cachekit.ConfigurationError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
    registry = CollectorRegistry(auto_describe=False)
    collector = CacheCollector()
    infos = aliases()
    for info in infos:
        if info.misconfigured is not None:
            logger.warning("cachekit /metrics: alias %r is %s", info.alias, info.misconfigured)
    labels, exported = _exported(infos)
    for cache in exported:
        try:
            collector.add(cache)
        except cachekit.ConfigurationError as exc:  # not expected: the names are distinct
            logger.warning("cachekit /metrics: cache %r left out: %s", cache.name, exc)
    registry.register(collector)
    registry.register(_AliasInfoCollector(infos, labels, exported))  # type: ignore[arg-type]
    return registry


def _authorized(request: HttpRequest) -> bool:
    token = getattr(settings, "CACHEKIT_METRICS_TOKEN", None)
    if not token:
        return True
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode(), str(token).encode()
    )


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus exposition of every cache alias (text format, or OpenMetrics if asked)."""
    if not _authorized(request):
        response = HttpResponse("authorization required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="cachekit metrics"'
        return response
    registry = build_registry()  # first: it names the extra to install if prometheus is missing
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)
