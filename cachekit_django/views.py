"""Prometheus ``/metrics`` for every cache alias of the project.

Each scrape builds a private ``CollectorRegistry`` holding cachekit's own collector
(:class:`cachekit.metrics.prometheus.CacheCollector`) over the core cache of every cachekit
alias, plus ``cachekit_django_alias_info`` mapping each alias to its cache name, provider and
backend class. A private registry, rather than the process-wide one, means the page shows
exactly the project's ``CACHES``, and no registration outlives a settings change (tests swap
``CACHES`` freely). Series are labelled ``cache`` (the core cache's name) and ``provider``, as in
every other cachekit export, so dashboards work the same with or without Django.

Protect it: set ``CACHEKIT_METRICS_TOKEN`` and the view demands ``Authorization: Bearer
<token>`` (Prometheus: ``authorization: {credentials: ...}`` in the scrape config); otherwise
restrict the path at the proxy. Memory caches are per process: under gunicorn each worker
answers with its own figures (see docs/django-ops.md).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

import cachekit

from .management.aliases import aliases

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["build_registry", "metrics"]

logger = logging.getLogger(__name__)


class _AliasInfoCollector:
    """``cachekit_django_alias_info{alias,backend,cache,provider} 1`` for every alias."""

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "cachekit_django_alias_info",
            "Django cache aliases: backend class and, for cachekit backends, cache and provider.",
            labels=["alias", "backend", "cache", "provider"],
        )
        for info in aliases():
            cache = info.core.name if info.core is not None else ""
            provider = info.core.provider_name if info.core is not None else ""
            family.add_metric([info.alias, info.backend, cache, provider], 1.0)
        yield family


def build_registry() -> CollectorRegistry:
    """A fresh registry reporting every cachekit alias (what one scrape of /metrics serves)."""
    try:
        from prometheus_client import CollectorRegistry

        from cachekit.metrics.prometheus import CacheCollector
    except cachekit.ConfigurationError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
    registry = CollectorRegistry(auto_describe=False)
    collector = CacheCollector()
    for info in aliases():
        if info.core is None:
            continue
        try:
            collector.add(info.core)
        except cachekit.ConfigurationError as exc:
            logger.warning("cachekit /metrics: alias %r left out: %s", info.alias, exc)
    registry.register(collector)
    registry.register(_AliasInfoCollector())  # type: ignore[arg-type]
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
