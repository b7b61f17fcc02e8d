"""The one exception tree of cachekit.

Every error the package raises on purpose derives from :class:`CacheError`, so a caller can
catch the package's failures without catching its own bugs. Children that describe bad input
also derive from the builtin a caller would naturally expect (``ValueError``/``TypeError``),
so that code written against Django's or cachetools' caches keeps working.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "CacheError",
    "ConfigurationError",
    "InvalidArgument",
    "InvalidArgumentType",
    "InvalidKey",
    "LockError",
    "LockNotOwned",
    "NotAnInteger",
    "SerializationError",
    "UnsupportedOperation",
    "ValueTooLarge",
]


class CacheError(Exception):
    """Root of every error cachekit raises deliberately."""


class ConfigurationError(CacheError, ValueError):
    """A URL or option is unknown or has a bad value; the message names the key."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class SerializationError(CacheError):
    """A value could not be encoded, or a stored payload could not be trusted or decoded."""


class BackendUnavailable(CacheError):
    """The backing server could not be reached; the driver's error is chained as the cause."""


class ValueTooLarge(CacheError, ValueError):
    """A single value exceeds what the cache can hold (its memory bound, an item size limit)."""


class InvalidKey(CacheError, ValueError):
    """A key is not a non-empty ``str`` or is not acceptable to the backend."""


class NotAnInteger(CacheError, TypeError):
    """``incr``/``decr`` was asked of a value that is not an integer."""


class LockError(CacheError):
    """A lock could not be acquired within ``blocking_timeout``, or was misused."""


class LockNotOwned(LockError):
    """Release or extend of a lock this holder does not own (never taken, expired, or stolen)."""


class InvalidArgument(CacheError, ValueError):
    """An argument other than a key is out of range or malformed (a page size, a cursor, a NaN
    or too large TTL, a value sent over gRPC whose bytes do not match its content type...)."""


class InvalidArgumentType(CacheError, TypeError):
    """An argument other than a key or a value has the wrong type (a TTL given as a ``str``,
    a bare ``str`` as tags...): :class:`InvalidArgument`'s twin for a ``TypeError``."""


class UnsupportedOperation(CacheError, NotImplementedError):
    """The provider cannot do this at all (memcached cannot list its keys), not a failure."""
