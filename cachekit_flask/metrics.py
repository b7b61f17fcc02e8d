"""An optional ``/metrics`` blueprint exporting the app's caches to Prometheus.

The scrape registers the app's caches with cachekit's collector (weakly held, idempotent), so
the blueprint can be registered before or after ``init_app``. Needs ``prometheus-client``
(``pip install 'cachekit[metrics]'``); importing this module without it raises ImportError.

Core names collide easily: two ``Cache(app)`` objects with the same ``CACHE_TYPE`` (one for
views, one for memoize) are both ``flask``, and an app factory run twice in one process
registers a second ``flask`` cache in the process-wide registry. The first cache registered
keeps its name; a later one whose name (and provider) is already exported in that registry is
exported as ``NAME-2`` (``NAME-3``...) through a small renaming proxy, which the app keeps so
the label stays the same from scrape to scrape - as the Django view renames colliding aliases.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import TYPE_CHECKING, cast

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from cachekit.errors import ConfigurationError
from cachekit.metrics.prometheus import register_cache

from .cli import app_caches

if TYPE_CHECKING:
    from cachekit import Cache as CoreCache
    from cachekit.stats import CacheStats

__all__ = ["metrics_blueprint"]

#: ``app.extensions`` key: per registry, the renaming proxies of the app's colliding caches.
_RENAMED_KEY = "cachekit_flask.metrics"


class _Renamed:
    """An app's core cache exported under another ``name`` (its own was taken in the registry);
    held by the app, weakly by ``CacheCollector``."""

    __slots__ = ("__weakref__", "_core", "name", "provider_name")

    def __init__(self, core: CoreCache, name: str) -> None:
        self._core = core
        self.name = name
        self.provider_name = core.provider_name

    def get_stats(self) -> CacheStats:
        return dataclasses.replace(self._core.get_stats(), name=self.name)


def _register(app: Flask, core: CoreCache, registry: CollectorRegistry) -> None:
    """Register ``core`` in ``registry``, or its renaming proxy if its name is taken there."""
    per_registry: weakref.WeakKeyDictionary[CollectorRegistry, dict[int, _Renamed]]
    per_registry = app.extensions.setdefault(_RENAMED_KEY, weakref.WeakKeyDictionary())
    renamed = per_registry.get(registry, {})
    proxy = renamed.get(id(core))  # the app holds its cores: an id stays theirs
    if proxy is not None:
        register_cache(cast("CoreCache", proxy), registry)  # idempotent; again if unregistered
        return
    try:
        register_cache(core, registry)
    except ConfigurationError:
        pass  # another live cache of that name and provider: export this one renamed
    else:
        return
    n = 2
    while True:
        proxy = _Renamed(core, f"{core.name}-{n}")
        try:
            register_cache(cast("CoreCache", proxy), registry)
        except ConfigurationError:
            n += 1
            continue
        per_registry.setdefault(registry, renamed)[id(core)] = proxy
        return


def metrics_blueprint(
    registry: CollectorRegistry = REGISTRY,
    *,
    path: str = "/metrics",
    name: str = "cachekit_metrics",
) -> Blueprint:
    """A blueprint serving ``registry`` (with the app's caches in it) at ``path``."""
    blueprint = Blueprint(name, __name__)

    @blueprint.get(path)
    def metrics() -> Response:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        for _, core in app_caches(app):
            _register(app, core, registry)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    return blueprint
