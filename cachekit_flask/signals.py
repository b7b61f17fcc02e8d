"""Flask-Caching's hit/miss signals (sent when ``CACHE_ENABLE_SIGNALS`` is true).

Receivers get ``cache`` (the extension), ``cache_key``, ``args``, ``kwargs`` and, for memoize,
``f`` (the undecorated function), as with Flask-Caching. When ``flask_caching.signals`` is
imported, its signal of the same name is sent too, so receivers an app connected to
Flask-Caching's signals keep working after only its ``Cache`` import changed.
"""

from __future__ import annotations

import sys
from typing import Any

from blinker import NamedSignal, Namespace

__all__ = ["cache_memoize_hit", "cache_memoize_miss", "cache_view_hit", "cache_view_miss", "emit"]

_signals = Namespace()

#: A ``cached`` view served from the cache.
cache_view_hit = _signals.signal("cache-view-hit")
#: A ``cached`` view computed (not found, forced or stale).
cache_view_miss = _signals.signal("cache-view-miss")
#: A ``memoize`` function served from the cache.
cache_memoize_hit = _signals.signal("cache-memoize-hit")
#: A ``memoize`` function computed.
cache_memoize_miss = _signals.signal("cache-memoize-miss")


def emit(signal: NamedSignal, **kwargs: Any) -> None:
    """Send ``signal``, and Flask-Caching's namesake when that module is loaded (an app that
    connected to it has imported it)."""
    signal.send(**kwargs)
    theirs = sys.modules.get("flask_caching.signals")
    if theirs is not None:
        twin = getattr(theirs, signal.name.replace("-", "_"), None)
        if twin is not None and twin is not signal:
            twin.send(**kwargs)
