"""cachekit's errors from the memcached provider that are pymemcache's errors as well.

Django's ``PyMemcacheCache`` lets pymemcache's ``MemcacheClientError`` through when ``incr``
meets a value memcached cannot increment; code written against cachekit catches
:class:`~cachekit.errors.NotAnInteger`. The provider raises a subclass of both, so switching a
project to cachekit does not turn its handlers into dead code (as ``redis_errors`` does for
redis-py's).
"""

from __future__ import annotations

from ..errors import NotAnInteger

try:
    from pymemcache.exceptions import MemcacheClientError
except ImportError:  # pragma: no cover - the memcached extra is optional; the provider names it
    MemcacheClientError = Exception

__all__ = ["MemcachedNotAnInteger"]


class MemcachedNotAnInteger(NotAnInteger, MemcacheClientError):  # type: ignore[misc]
    """``incr``/``decr`` of a value that is not an integer (or by a delta that is not): what
    memcached refuses with ``CLIENT_ERROR`` and pymemcache raises as ``MemcacheClientError``."""
