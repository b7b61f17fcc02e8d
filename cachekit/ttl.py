"""TTL normalisation shared by every provider.

The contract: ``DEFAULT`` means the cache's ``default_ttl``; ``None`` means never expire;
``0`` or a negative number means "do not store / expire now"; ints, floats and ``timedelta``
are accepted. Providers call :func:`resolve_ttl` once per write and then only deal with
``None`` (forever) or a float number of seconds (``<= 0`` meaning expire now).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypeAlias

from .errors import ConfigurationError, InvalidArgument, InvalidArgumentType
from .sentinels import DEFAULT, DefaultType

__all__ = ["TTL", "TTLArg", "check_default_ttl", "resolve_ttl", "to_seconds"]

_INF = float("inf")

#: A TTL as a user may pass it.
TTL: TypeAlias = float | int | timedelta | None
#: A TTL argument of the contract's methods.
TTLArg: TypeAlias = TTL | DefaultType


def to_seconds(ttl: TTL) -> float | None:
    """Convert a TTL value to seconds, rejecting values that would silently mean something else.

    ``inf`` is another spelling of "never" and becomes ``None``; NaN is refused
    (:class:`~cachekit.errors.InvalidArgument`), since it compares false with every time and
    would make an entry neither live nor expired; so is an integer too large for a float, as
    Redis refuses any TTL over ~285,000 years. A wrong type raises
    :class:`~cachekit.errors.InvalidArgumentType`.
    """
    if ttl is None:
        return None
    tp = type(ttl)
    if tp is int or (isinstance(ttl, (int, float)) and not isinstance(ttl, bool)):
        try:
            seconds = float(ttl)  # type: ignore[arg-type]
        except OverflowError:  # an int beyond a float: 10**400
            return _beyond_float(ttl)  # type: ignore[arg-type]
        if tp is int:
            return seconds
    elif isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    else:
        raise InvalidArgumentType(
            f"ttl must be a number of seconds, a timedelta, None or DEFAULT, "
            f"not {type(ttl).__name__}"
        )
    if seconds == _INF:
        return None
    if seconds != seconds:  # noqa: PLR0124 - the NaN test
        raise InvalidArgument("ttl must not be NaN")
    return seconds


def _beyond_float(ttl: int) -> float:
    """A negative TTL of any size means "expire now"; a positive one this large is refused
    (not taken as "never": ``None`` says that, and Redis refuses far smaller ones)."""
    if ttl < 0:
        return -_INF
    raise InvalidArgument("ttl is too large (beyond a float); use None for no expiry")


def resolve_ttl(ttl: TTLArg, default_ttl: float | None) -> float | None:
    """Return the effective TTL in seconds (``None`` = forever, ``<= 0`` = expire now)."""
    if ttl is DEFAULT:
        return default_ttl
    return to_seconds(ttl)


def check_default_ttl(value: TTL, *, key: str = "default_ttl") -> float | None:
    """Validate a configured default TTL: a default of 0 would silently cache nothing."""
    try:
        seconds = to_seconds(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{key}: {exc}", key=key) from None
    if seconds is not None and seconds <= 0:
        # an int's repr may be too long to print (-10**5000); its seconds say the same
        shown = f"{seconds:g}" if isinstance(value, int) else repr(value)
        raise ConfigurationError(
            f"{key} must be a positive number of seconds or None (never expire), got {shown}",
            key=key,
        )
    return seconds
