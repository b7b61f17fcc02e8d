"""cachekit's errors from the Redis providers, which are redis-py's errors as well.

Code written against redis-py, Django's ``RedisCache`` or django-redis catches
``redis.exceptions.ConnectionError`` for an outage and ``redis.exceptions.LockError`` for a lock
misuse, and ``redis.exceptions.ResponseError`` when ``incr`` meets a value that is not an
integer; code written against cachekit catches :class:`~cachekit.errors.BackendUnavailable`,
:class:`~cachekit.errors.LockError` and :class:`~cachekit.errors.NotAnInteger`. The Redis
providers raise subclasses of both, so switching a project to cachekit does not turn its
handlers into dead code.
"""

from __future__ import annotations

import redis.exceptions

from ..errors import BackendUnavailable, LockError, LockNotOwned, NotAnInteger

__all__ = ["RedisLockError", "RedisLockNotOwned", "RedisNotAnInteger", "RedisUnavailable"]


class RedisUnavailable(BackendUnavailable, redis.exceptions.ConnectionError):
    """Redis could not be reached (or its circuit breaker is open)."""


class RedisNotAnInteger(NotAnInteger, redis.exceptions.ResponseError):
    """``incr``/``decr`` of a value that is not an integer (or by a delta that is not): the
    server's refusal, which redis-py and Django's ``RedisCache`` raise as ``ResponseError``."""

    def __init__(self, *args: object) -> None:
        # NotAnInteger is a TypeError, whose __init__ does not pass on to redis-py's: without
        # this the error lacks the attributes its repr() reads, and repr() itself raises.
        redis.exceptions.ResponseError.__init__(self, *args)


class RedisLockError(LockError, redis.exceptions.LockError):
    """A Redis lock could not be acquired within ``blocking_timeout``, or was misused."""


class RedisLockNotOwned(LockNotOwned, redis.exceptions.LockNotOwnedError):
    """Release or extend of a Redis lock this holder does not own."""
