"""Cache metrics: the hot-path latency sampler and, lazily, the Prometheus exporter.

:class:`LatencySampler` has no dependencies and is what providers import. The Prometheus
pieces (:class:`~cachekit.metrics.prometheus.CacheCollector`, ``register_cache``,
``unregister_cache``, ``start_metrics_server``, ``make_wsgi_app``) are resolved on first
attribute access (PEP 562), so ``import cachekit.metrics`` works without ``prometheus-client``;
touching them without it raises :class:`~cachekit.errors.ConfigurationError` naming the
``cachekit[metrics]`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .latency import DEFAULT_LATENCY_BOUNDS, GetTimer, LatencySampler

if TYPE_CHECKING:  # the lazy names, re-exported for type checkers and IDEs
    # isort: off
    from .prometheus import (
        CacheCollector as CacheCollector,
        make_wsgi_app as make_wsgi_app,
        register_cache as register_cache,
        start_metrics_server as start_metrics_server,
        unregister_cache as unregister_cache,
    )
    # isort: on

# Only the dependency-free names: ``from cachekit.metrics import *`` must not need the extra.
__all__ = ["DEFAULT_LATENCY_BOUNDS", "GetTimer", "LatencySampler"]

_LAZY = frozenset(
    {
        "CacheCollector",
        "make_wsgi_app",
        "register_cache",
        "start_metrics_server",
        "unregister_cache",
    }
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import prometheus

        return getattr(prometheus, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
