"""An optional ``/metrics`` blueprint exporting the app's caches to Prometheus.

The scrape registers the app's caches with cachekit's collector (weakly held, idempotent), so
the blueprint can be registered before or after ``init_app``. Needs ``prometheus-client``
(``pip install 'cachekit[metrics]'``); importing this module without it raises ImportError.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from cachekit.metrics.prometheus import register_cache

from .cli import app_caches

__all__ = ["metrics_blueprint"]


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
        for _, core in app_caches(current_app):
            register_cache(core, registry)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    return blueprint
