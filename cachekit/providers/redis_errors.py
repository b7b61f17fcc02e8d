"""cachekit's errors from the Redis providers, which are redis-py's errors as well.

Code written against redis-py, Django's ``RedisCache`` or django-redis catches
``redis.exceptions.ConnectionError`` for an outage and ``redis.exceptions.LockError`` for a lock
misuse; code written against cachekit catches :class:`~cachekit.errors.BackendUnavailable` and
:class:`~cachekit.errors.LockError`. The Redis providers raise these subclasses of both, so
switching a project to cachekit does not turn its outage handlers into dead code.
"""

from __future__ import annotations

import redis.exceptions

from ..errors import BackendUnavailable, LockError, LockNotOwned

__all__ = ["RedisLockError", "RedisLockNotOwned", "RedisUnavailable"]


class RedisUnavailable(BackendUnavailable, redis.exceptions.ConnectionError):
    """Redis could not be reached (or its circuit breaker is open)."""


class RedisLockError(LockError, redis.exceptions.LockError):
    """A Redis lock could not be acquired within ``blocking_timeout``, or was misused."""


class RedisLockNotOwned(LockNotOwned, redis.exceptions.LockNotOwnedError):
    """Release or extend of a Redis lock this holder does not own."""
