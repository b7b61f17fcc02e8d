"""What ``cached`` and ``memoize`` share: calling the wrapped function and the option callables.

The outcome of a computation that must not be stored (``response_filter`` said no) or must be
stored with its own TTL (a :class:`CachedResponse`) leaves the core's ``get_or_set`` as an
exception carrying the value: the core stores nothing when its factory raises. Callers that
waited on the same single-flight do not receive that value: it is an object of the leader's
request (a response whose cookies the leader's request code sets), so each waiter receives
:class:`ComputeOwn` instead (the single-flight hands every waiter a copy of the leader's
exception, and these exceptions copy as that) and computes its own, as without the cache.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable
from typing import Any

from flask import Response
from werkzeug.exceptions import HTTPException

from cachekit.errors import ConfigurationError

from .settings import flask_timeout_to_ttl

logger = logging.getLogger(__name__)

__all__ = [
    "CachedResponse",
    "ComputeOwn",
    "RECOMPUTE",
    "NotStored",
    "StoreWith",
    "join_generator",
    "own_timeout",
    "wants_args",
    "wants_extra_args",
]


#: A lookup outcome: recompute and overwrite, without the single-flight (a forced update, a
#: stale value, or a cached ``None`` that ``cache_none=False`` does not count as a hit).
RECOMPUTE: Any = type("Recompute", (), {"__repr__": lambda self: "RECOMPUTE"})()


class CachedResponse(Response):
    """A response a ``cached`` view returns to choose its own TTL (Flask-Caching's class)."""

    timeout: float | None = None

    def __init__(self, response: Response, timeout: Any) -> None:
        # Adopt the response's state in place, as Flask-Caching does.
        self.__dict__ = response.__dict__
        self.timeout = _seconds(flask_timeout_to_ttl(timeout))


def _seconds(ttl: Any) -> float | None:
    """A TTL from :func:`flask_timeout_to_ttl` as seconds (a fraction kept: 0.5 is not 0, which
    would mean the decorator's timeout), or ``None`` for the default and for never."""
    return ttl if isinstance(ttl, int | float) else None


def own_timeout(rv: Any) -> float | None:
    """The TTL a view's response asks for: a :class:`CachedResponse`'s, or that of
    Flask-Caching's own ``CachedResponse`` (an app that changed only its ``Cache`` import still
    returns those); ``None`` for any other value or no timeout."""
    if isinstance(rv, CachedResponse):
        return rv.timeout
    theirs = sys.modules.get("flask_caching")  # not imported: the app cannot have made one
    their_class = getattr(theirs, "CachedResponse", None)
    if their_class is None or not isinstance(rv, their_class):
        return None
    try:
        return _seconds(flask_timeout_to_ttl(rv.timeout))
    except ConfigurationError:  # Flask-Caching stores such a response anyway: keep the view up
        logger.warning(
            "flask_caching.CachedResponse timeout %r is not seconds: the decorator's is used",
            rv.timeout,
        )
        return None


class ComputeOwn(Exception):
    """What a single-flight waiter receives for a leader's value it must not share."""


class _LeadersValue(Exception):
    """A computed value leaving ``get_or_set`` as an exception: its waiters' copy is
    :class:`ComputeOwn`, never the leader's object."""

    def __copy__(self) -> ComputeOwn:
        return ComputeOwn("the leader's value was not stored: compute this caller's own")


class NotStored(_LeadersValue):
    """The computed value, which ``response_filter`` kept out of the cache."""

    def __init__(self, value: Any) -> None:
        super().__init__("value not stored")
        self.value = value


class StoreWith(_LeadersValue):
    """The computed value, to be stored with a TTL of its own (``CachedResponse.timeout``)."""

    def __init__(self, value: Any, ttl: Any) -> None:
        super().__init__("value stored with its own timeout")
        self.value = value
        self.ttl = ttl


def _parameters(f: Callable[..., Any]) -> list[inspect.Parameter]:
    return list(inspect.signature(f).parameters.values())


def wants_args(f: Callable[..., Any]) -> bool:
    """Whether ``f`` takes any positional argument (``unless(f, *args)`` vs ``unless()``)."""
    return any(p.kind != p.KEYWORD_ONLY for p in _parameters(f))


def wants_extra_args(f: Callable[..., Any]) -> bool:
    """Whether ``is_stale`` takes arguments beyond the cached value."""
    return sum(p.kind != p.KEYWORD_ONLY for p in _parameters(f)) > 1


def join_generator(rv: Any) -> Any:
    """A generator's output joined (``str``/``bytes``) or listed, so it can be cached."""
    chunks = list(rv)
    if all(isinstance(chunk, str) for chunk in chunks):
        return "".join(chunks)
    if all(isinstance(chunk, bytes) for chunk in chunks):
        return b"".join(chunks)
    return chunks


def filter_value(rv: Any) -> Any:
    """What ``response_filter`` is shown: an HTTP exception's response, else the value."""
    return rv.get_response() if isinstance(rv, HTTPException) else rv


class Predicate:
    """An ``unless``/``forced_update`` callable, its arity read once at decoration time."""

    __slots__ = ("fn", "with_args")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.with_args = wants_args(fn)

    def bypass(self, f: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """``unless``: called as ``unless(f, *args, **kwargs)`` when it takes arguments."""
        if self.with_args:
            return self.fn(f, *args, **kwargs) is True
        return self.fn() is True

    def forced(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """``forced_update``: called as ``forced_update(*args, **kwargs)`` when it takes some."""
        if self.with_args:
            return self.fn(*args, **kwargs) is True
        return self.fn() is True


class StalePredicate:
    """An ``is_stale`` callable: ``is_stale(value)`` or ``is_stale(value, *args, **kwargs)``."""

    __slots__ = ("extra", "fn")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.extra = wants_extra_args(fn)

    def __call__(self, rv: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if self.extra:
            return self.fn(rv, *args, **kwargs) is True
        return self.fn(rv) is True


def optional(cls: type[Any], fn: Callable[..., Any] | None) -> Any:
    """``cls(fn)`` for a callable option, ``None`` for an absent one."""
    return cls(fn) if callable(fn) else None
