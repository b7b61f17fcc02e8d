"""Flask-Caching's hit/miss signals (sent when ``CACHE_ENABLE_SIGNALS`` is true).

Receivers get ``cache`` (the extension), ``cache_key``, ``args``, ``kwargs`` and, for memoize,
``f`` (the undecorated function), as with Flask-Caching.
"""

from __future__ import annotations

from blinker import Namespace

__all__ = ["cache_memoize_hit", "cache_memoize_miss", "cache_view_hit", "cache_view_miss"]

_signals = Namespace()

#: A ``cached`` view served from the cache.
cache_view_hit = _signals.signal("cache-view-hit")
#: A ``cached`` view computed (not found, forced or stale).
cache_view_miss = _signals.signal("cache-view-miss")
#: A ``memoize`` function served from the cache.
cache_memoize_hit = _signals.signal("cache-memoize-hit")
#: A ``memoize`` function computed.
cache_memoize_miss = _signals.signal("cache-memoize-miss")
