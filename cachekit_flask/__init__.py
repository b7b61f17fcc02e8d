"""Flask adapter for cachekit: a drop-in for Flask-Caching's ``Cache`` over cachekit providers.

Switching is one import::

    from cachekit_flask import Cache      # was: from flask_caching import Cache

The ``CACHE_*`` configuration keys, the decorators' options, the memoize and view key formats
and the ``{% cache %}`` tag are Flask-Caching's; ``CACHEKIT_URL``/``CACHEKIT_OPTIONS`` reach
every cachekit provider option. ``init_app`` also registers the ``flask cachekit`` commands.
See ``docs/flask.md``.
"""

from __future__ import annotations

from typing import Any

from .calling import CachedResponse
from .extension import Cache
from .keys import make_template_fragment_key
from .signals import cache_memoize_hit, cache_memoize_miss, cache_view_hit, cache_view_miss

__all__ = [
    "Cache",
    "CachedResponse",
    "cache_memoize_hit",
    "cache_memoize_miss",
    "cache_view_hit",
    "cache_view_miss",
    "make_template_fragment_key",
    "metrics_blueprint",
]


def __getattr__(name: str) -> Any:
    # Lazy: the blueprint needs prometheus-client, an optional extra.
    if name == "metrics_blueprint":
        from .metrics import metrics_blueprint

        return metrics_blueprint
    raise AttributeError(f"module 'cachekit_flask' has no attribute {name!r}")
