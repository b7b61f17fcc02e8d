"""``cachekit_flask.Cache``: Flask-Caching's extension object over a core cachekit cache.

Layered as proxies and per-app state (:mod:`.base`), then ``cached`` (:mod:`.cached`), then
``memoize`` (:mod:`.memoize`).
"""

from __future__ import annotations

from .memoize import MemoizeMixin

__all__ = ["Cache"]


class Cache(MemoizeMixin):
    """Flask-Caching-compatible extension; ``Cache(app)`` or ``Cache()`` + ``init_app(app)``."""
